"""Issue 13's matrix: every hostile input class through the real command line (in-process, ``run_app``).

Each case must exit 2 with exactly one ``error:`` line on stderr that names the file and key (the case's
expected substrings), print no traceback, leave the directory it ran in exactly as it was (no output, no
temporaries) and stay under a peak-memory bound (tracemalloc, which numpy reports its arrays to).
"""

from __future__ import annotations

import contextlib
import io
import tracemalloc
from pathlib import Path

import pytest

from accelsim.cli import app
from accelsim.console import run_app
from tests.helpers import smollm2_shaped_trace
from tests.hostile_cases import ALL_CASES, CLI_CASES, CONFIG_CASES, TRACE_CASES

#: Peak Python/numpy allocation while a hostile input is rejected (the inputs are a few kB to 64 MB on disk).
PEAK_BYTES = 64 << 20


def invoke(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI as the console script does; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_app(app, args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("good") / "good.npz", tokens=4, layers=1)


def test_the_good_trace_runs(good, tmp_path):
    code, out, err = invoke(["run", "--hw", str(Path("hw_configs/dense.yaml").resolve()), "--trace", str(good)])
    assert code == 0, err


def test_the_matrix_is_large_enough():
    assert len(ALL_CASES) >= 60
    assert len({c[0] for c in ALL_CASES}) == len(ALL_CASES)
    assert len(TRACE_CASES) >= 20 and len(CONFIG_CASES) >= 20 and len(CLI_CASES) >= 15


@pytest.mark.parametrize(("name", "build", "expect"), ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_hostile_input_is_one_line_exit_2_nothing_written(name, build, expect, good, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    args = build(work, good)
    before = snapshot(work)
    tracemalloc.start()
    try:
        code, out, err = invoke(args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    for s in expect:
        assert s in lines[0], f"{s!r} not in {lines[0]!r}"
    assert len(lines[0]) <= 600, lines[0]
    assert snapshot(work) == before, "the run left files behind"
    assert peak < PEAK_BYTES, f"peak {peak / 1e6:.0f} MB"
