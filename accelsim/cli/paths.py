"""Default paths (``hw_configs/``, ``traces/``) that work from any working directory.

The shipped configs and traces live in the repository next to the ``accelsim`` package. A command's default
path is tried in the working directory first (a user's own ``hw_configs/`` wins), then in the checkout the
installed package comes from; when neither has it, the error says where it looked and which option to give.
A path the user typed is never re-interpreted.
"""

from __future__ import annotations

from pathlib import Path

from accelsim.console import fail

CHECKOUT = Path(__file__).resolve().parents[2]
"""The directory holding the ``accelsim`` package: the repository root for a source (editable) install."""


def resolve_default(path: Path, default: Path, option: str) -> Path:
    """``path`` itself unless it is the option's relative ``default`` and missing from the working directory;
    then the same path in :data:`CHECKOUT`. Raises the one-line exit 2 when neither exists."""
    if path != default or path.is_absolute() or path.exists():
        return path
    shipped = CHECKOUT / path
    if shipped.exists():
        return shipped
    raise fail(
        f"{option} {path}: the default is not in the working directory ({Path.cwd()}) nor next to the installed "
        f"package ({CHECKOUT}); give {option} PATH (the repository's hw_configs/ and traces/)"
    )


def hide_flag_types() -> None:
    """Typer's rich help prints ``<bool>`` in the type column of flags (``--json``, ``--plot/--no-plot``,
    ``--help``), which take no value. Show nothing there, as click's plain help does."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - an older typer without the class prints no type column
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_accelsim_flags", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._accelsim_flags = True
    TyperOption.display_type_rich = display_type_rich
