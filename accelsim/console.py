"""Consoles, the one-line error exit and the progress bar shared by every ``accelsim`` command (no torch).

Piped output (CI logs, files) gets a wide fixed width instead of rich's 80 columns. Progress bars go to
stderr, optionally only once the work has taken ``delay_s`` seconds, and vanish when done; off a terminal a
long run prints a plain progress line now and then instead.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["out_console", "err_console", "fail", "user_text", "one_line", "run_app", "ProgressBar", "ProgressLines"]

#: Echoed user values (names, paths, keys) longer than this are cut with "..."; whole error lines at MAX_LINE.
ECHO_CHARS = 120
MAX_LINE = 2000

out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, cut at ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def user_text(value: object, limit: int = ECHO_CHARS) -> str:
    """A user-supplied value (config name, path, key) ready to put inside a rich-markup string: one line,
    truncated, and with ``[`` escaped so ``[bold]`` or ``[/]`` is printed literally, never interpreted."""
    return escape(one_line(str(value), limit))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: <message>`` as one line on stderr (rich markup in the message is shown literally, so a
    path like ``x[1].yaml`` survives; newlines become spaces) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", soft_wrap=True)
    return typer.Exit(code)


def run_app(app: typer.Typer, args: list[str] | None = None) -> None:
    """Run a typer app so that click's usage errors (unknown option, missing value, ``--tokens 1e8``) are one
    ``error:`` line and exit 2 like every other bad input, instead of click's multi-line usage box."""
    try:  # typer >= 0.20 vendors click as typer._click (and moves Abort to typer.exceptions)
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions as click_exc
    abort = getattr(click_exc, "Abort", None) or _typer_abort()

    try:
        rv = app(args=args, prog_name="accelsim", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()  # the help text a bare command prints
        sys.exit(exc.exit_code)
    except click_exc.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx is not None else "accelsim"
        err_console.print(
            f"[bold red]error:[/] {escape(one_line(exc.format_message()))} (see {escape(cmd)} --help)", soft_wrap=True
        )
        sys.exit(2)
    except abort:
        err_console.print("[bold red]error:[/] interrupted", soft_wrap=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


def _typer_abort() -> type[BaseException]:
    try:
        from typer.exceptions import Abort
    except ImportError:  # pragma: no cover - no Abort anywhere: nothing to catch but Ctrl-C itself
        return KeyboardInterrupt
    return Abort


class ProgressBar:
    """``bar(done, total)`` callback drawing a rich progress bar on stderr; ``bar.close()`` removes it.

    Nothing is drawn when ``enabled`` is false or before ``delay_s`` seconds have passed since the bar was made
    (short runs stay quiet). When stderr is not a terminal (CI logs, ``2> file``) a run longer than ``interval_s``
    still reports: one plain ``<label>: <done>/<total> (<elapsed> s)`` line every ``interval_s`` seconds and one
    at the end.
    """

    def __init__(self, label: str, enabled: bool = True, delay_s: float = 0.0, interval_s: float = 30.0):
        self.label = label
        self.enabled = enabled
        self.terminal = err_console.is_terminal
        self.delay_s = delay_s
        self.interval_s = interval_s
        self.t0 = time.monotonic()
        self.last_line = -math.inf
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.t0 < self.delay_s:
            return
        if not self.terminal:  # the first line once the run has taken interval_s: short runs print nothing
            due = now - self.t0 >= self.interval_s and now - self.last_line >= self.interval_s
            if due or (done >= total and self.last_line > -math.inf):
                self.last_line = now
                err_console.print(f"{self.label}: {done}/{total} ({now - self.t0:.0f} s)", markup=False)
                self.enabled = done < total  # the end is reported once
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                f"[cyan]{escape(self.label)}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class ProgressLines:
    """``progress(done, total)`` for a sweep: a rich bar with ETA on a terminal; otherwise one plain line on
    stderr each time another ``every_percent`` of the work is done (CI logs get ~20 lines, not thousands)."""

    def __init__(self, label: str, every_percent: float = 5.0):
        self.label = label
        self.every = every_percent
        self.t0 = time.monotonic()
        self.bar = ProgressBar(label) if err_console.is_terminal else None
        self.next_pct = 0.0
        self.first: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = done  # runs found already done do not count towards the rate
        if self.bar is not None:
            self.bar(done, total)
            return
        pct = 100.0 * done / total if total else 100.0
        if pct + 1e-9 < self.next_pct and done != total:
            return
        while self.next_pct <= pct + 1e-9:
            self.next_pct += self.every
        elapsed = time.monotonic() - self.t0
        new = done - self.first
        eta = f", eta {elapsed / new * (total - done):.0f} s" if new and done < total else ""
        err_console.print(f"{self.label}: {done}/{total} ({pct:.0f}%), elapsed {elapsed:.0f} s{eta}", soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
