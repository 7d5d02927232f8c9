"""Consoles, the one-line error exit and the progress bar shared by every ``accelsim`` command (no torch).

Piped output (CI logs, files) gets a wide fixed width instead of rich's 80 columns. Progress bars go to
stderr, only on a terminal, optionally only once the work has taken ``delay_s`` seconds, and vanish when done.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["out_console", "err_console", "fail", "ProgressBar", "ProgressLines"]

out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: <message>`` as one line on stderr (rich markup in the message is shown literally, so a
    path like ``x[1].yaml`` survives) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


class ProgressBar:
    """``bar(done, total)`` callback drawing a rich progress bar on stderr; ``bar.close()`` removes it.

    Nothing is drawn when ``enabled`` is false, when stderr is not a terminal, or before ``delay_s`` seconds
    have passed since the bar was made (short runs stay quiet).
    """

    def __init__(self, label: str, enabled: bool = True, delay_s: float = 0.0):
        self.label = label
        self.enabled = enabled and err_console.is_terminal
        self.delay_s = delay_s
        self.t0 = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.t0 < self.delay_s:
                return
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
