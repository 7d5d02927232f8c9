"""``run_app``: click's usage errors and aborts become one line; any other exception reaches the caller as itself."""

from __future__ import annotations

import pytest
import typer

from accelsim.console import run_app


def _app(action):
    app = typer.Typer(add_completion=False)

    @app.command()
    def go() -> None:
        action()

    @app.command()
    def other() -> None:  # two commands, so `go` is a subcommand as in accelsim
        pass

    return app


def test_an_unexpected_exception_is_not_masked_by_the_abort_handler():
    def boom():
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_app(_app(boom), ["go"])


def test_an_abort_is_one_line_and_exit_130(capsys):
    from typer.exceptions import Abort

    def stop():
        raise Abort()

    with pytest.raises(SystemExit) as exc:
        run_app(_app(stop), ["go"])
    assert exc.value.code == 130
    assert "error: interrupted" in capsys.readouterr().err


def test_a_usage_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        run_app(_app(lambda: None), ["go", "--nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--nope" in err and "\n" not in err
