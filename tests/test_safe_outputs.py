"""Outputs (issue 13): all-or-nothing output directories, killed runs, NaN-free JSON, literal user text,
progress off a terminal, refusal of runs that cannot fit, and byte-identical outputs of repeated runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from accelsim import console, safeio
from accelsim.config import load_hw
from accelsim.safeio import (
    TMP_TAG,
    NonFiniteJsonError,
    OutputPathError,
    TooLargeError,
    atomic_output_dir,
    check_fits,
    check_out_dir,
    check_sweep_fits,
    clean_stale_temporaries,
    dump_json,
    estimate_run,
)
from accelsim.sim.tiling import choose_tiling
from tests.helpers import smollm2_shaped_trace
from tests.test_hostile_inputs import invoke

REPO = Path(__file__).resolve().parents[1]
HW = REPO / "hw_configs"


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("t") / "pf8.npz", tokens=8, layers=1)


def _hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if TMP_TAG in p.name)


def test_a_failing_writer_leaves_the_previous_result_and_no_temporary(tmp_path):
    out = tmp_path / "res"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("old a\n")
        (tmp / "b.json").write_text("old b\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("new a\n")
        raise RuntimeError("disk on fire")
    assert (out / "a.csv").read_text() == "old a\n" and (out / "b.json").read_text() == "old b\n"
    assert _hidden(tmp_path) == []


def test_a_new_result_replaces_the_old_one_and_keeps_the_users_other_files(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "a.csv").write_text("old\n")
    with atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("new\n")
    assert (out / "a.csv").read_text() == "new\n" and (out / "notes.txt").read_text() == "mine\n"
    # an out holding only this run's files is swapped as a whole
    with atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("newer\n")
        (tmp / "notes.txt").write_text("rewritten\n")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "notes.txt"]
    assert (out / "a.csv").read_text() == "newer\n"
    assert _hidden(tmp_path) == []


_KILLED_WRITER = """
import os, signal, sys
from accelsim.safeio import atomic_output_dir
with atomic_output_dir(sys.argv[1]) as tmp:
    (tmp / "a.csv").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_leaves_the_previous_result_and_its_temporary_is_cleaned_next_time(tmp_path):
    out = tmp_path / "res"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("previous\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "a.csv").read_text() == "previous\n"
    stale = _hidden(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(f".res{TMP_TAG}")  # hidden: globs like res* skip it
    with atomic_output_dir(out) as tmp:
        (tmp / "a.csv").write_text("next\n")
    assert _hidden(tmp_path) == [] and (out / "a.csv").read_text() == "next\n"


def test_temporaries_of_live_processes_are_not_removed(tmp_path):
    mine = tmp_path / f".res{TMP_TAG}{os.getpid()}-abc"
    mine.mkdir()
    dead = tmp_path / f".res{TMP_TAG}999999999-abc"
    dead.mkdir()
    assert clean_stale_temporaries(tmp_path / "res") == [dead]
    assert mine.exists() and not dead.exists()


def test_output_checks_name_the_problem(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="exists and is a file"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(OutputPathError, match="not a directory"):
        check_out_dir(tmp_path / "f" / "sub")
    (tmp_path / "d" / "summary.json").mkdir(parents=True)
    with pytest.raises(OutputPathError, match="summary.json would be written as a file but is a directory"):
        check_out_dir(tmp_path / "d", ["sites.csv", "summary.json"])
    with pytest.raises(OutputPathError, match="pseudo file system"):
        check_out_dir("/proc/accelsim")
    check_out_dir(tmp_path / "new" / "deeper", ["a"])  # a missing directory under a writable one is fine
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_an_unwritable_parent_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_out_dir(ro / "out")
    finally:
        ro.chmod(0o755)


def test_json_never_holds_nan_or_infinity(tmp_path):
    with pytest.raises(NonFiniteJsonError, match=r"a\.b\[1\] is inf"):
        dump_json({"a": {"b": [1.0, float("inf")]}}, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    text = dump_json({"b": float("nan"), "a": 1}, nan_as_null=True)
    assert text == '{\n  "a": 1,\n  "b": null\n}\n'


def test_run_summary_json_has_null_for_a_missing_perplexity(tmp_path, trace):
    acc = tmp_path / "acc.json"
    rec = {"pattern": "2:4", "criterion": "magnitude", "mitigation": "none", "ppl": 30.0, "dense_ppl": 20.0}
    acc.write_text(json.dumps({"schema": "accelsim-accuracy/1", "records": [rec]}))
    out = tmp_path / "out"
    args = ["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--accuracy", str(acc), "--out", str(out)]
    code, stdout, err = invoke(args)
    assert code == 0, err
    text = (out / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["ppl"] is None
    assert "no matching record" in stdout


def test_repeated_runs_write_the_same_bytes(tmp_path, trace):
    outs = []
    for i in range(2):
        out = tmp_path / f"o{i}"
        code, _, err = invoke(["compare", "--trace", str(trace), "--hw-dir", str(HW), "--out", str(out)])
        assert code == 0, err
        outs.append(out)
    for name in ("compare.csv", "compare.json", "breakdown.png"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_user_text_is_printed_literally(tmp_path):
    d = tmp_path / "a[red]b"
    d.mkdir()
    cfg = d / "x[bold].yaml"
    cfg.write_text((HW / "nm8_16.yaml").read_text().replace("name: nm8_16", "name: '[bold]mine[/] [/]'"))
    code, out, err = invoke(["validate", "--hw", str(cfg)])
    assert code == 0, err
    assert "[bold]mine[/] [/]" in out and "a[red]b/x[bold].yaml: ok" in out
    long = "z" * 1000
    assert len(console.user_text(long)) <= console.ECHO_CHARS and console.user_text("a\nb") == "a b"


def test_progress_off_a_terminal_prints_plain_lines_for_long_runs(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(console.err_console, "_file", buf)  # restored to None: the console follows sys.stderr again
    quiet = console.ProgressBar("short", interval_s=3600.0)
    for i in range(5):
        quiet(i + 1, 5)
    assert buf.getvalue() == ""  # a short run off a terminal says nothing
    bar = console.ProgressBar("long", interval_s=0.0)
    assert not bar.terminal
    bar(1, 3)
    bar(3, 3)
    bar(3, 3)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("long: 1/3 (") and lines[-1].startswith("long: 3/3 (") and len(lines) == 2


def test_run_estimate_is_the_largest_site_and_refuses_what_cannot_fit():
    hw = load_hw(HW / "nm8_16.yaml")
    sites = [("small", 16, 576, 576), ("big", 1 << 20, 8192, 8192)]
    est = estimate_run(hw, sites, choose_tiling)
    assert est.largest_site == "big T=1048576 K=8192 O=8192"
    assert est.peak_bytes >= (1 << 20) * 8192 * safeio.BYTES_PER_ACTIVATION
    with pytest.raises(TooLargeError, match=r"estimated peak memory .* GB .* only 1 GB of memory is available"):
        check_fits(est, what="run", available=1_000_000_000)
    with pytest.raises(TooLargeError, match=r"sweep of 1,000,000 points: .* the limit is"):
        check_sweep_fits(1_000_000, est, available=1 << 60)
    small = estimate_run(hw, sites[:1], choose_tiling)
    check_fits(small, what="run", available=1 << 40)  # fits: no error


def test_run_refuses_before_simulating_when_the_estimate_exceeds_memory(tmp_path, trace, monkeypatch):
    monkeypatch.setattr(safeio, "available_memory_bytes", lambda: 50_000_000)
    out = tmp_path / "out"
    code, stdout, err = invoke(["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--out", str(out)])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "estimated peak memory" in lines[0] and "50 MB of memory is available" in lines[0]
    assert "largest site model.layers.0.down_proj T=8 K=1536 O=576" in lines[0]
    assert stdout == "" and not out.exists()


def test_outputs_are_the_same_bytes_with_1_and_2_threads(tmp_path, trace):
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        env["MKL_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = threads
        cmd = [sys.executable, "-m", "accelsim", "run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace)]
        proc = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    for name in ("sites.csv", "summary.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_python_m_accelsim_gives_one_line_usage_errors():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "accelsim", "trace", "--tokens", "1e8"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: Invalid value for '--tokens'")
    assert "(see accelsim trace --help)" in proc.stderr


def test_trace_metadata_with_nan_is_written_as_null_and_reads_back(tmp_path):
    from accelsim.trace.format import Trace, write_trace

    with Trace(smollm2_shaped_trace(tmp_path / "a.npz", tokens=2)) as tr:
        data = tr.to_data()
    data.meta["synthetic_info"] = {"kurtosis": float("nan"), "scale": [1.0, float("inf")]}
    p = write_trace(tmp_path / "b.npz", data)
    with Trace(p) as tr:
        assert tr.meta["synthetic_info"] == {"kurtosis": None, "scale": [1.0, None]}


def test_the_big_trace_helper_writes_a_readable_trace(tmp_path):
    from accelsim.trace.format import Trace
    from tests.helpers import big_smollm2_trace

    p = big_smollm2_trace(tmp_path / "b.npz", tokens=3, layers=2)
    with Trace(p) as tr:
        assert len(tr.sites) == 14 and tr.n_tokens == 3
        assert tr.site_input(6).shape == (3, 1536)


def test_a_read_only_file_system_is_refused(tmp_path, monkeypatch):
    # no read-only mount is available to an unprivileged test: report the directory's file system as read-only
    real = os.statvfs

    class _Ro:
        def __init__(self, st):
            self.f_flag = st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(safeio.os, "statvfs", lambda p: _Ro(real(p)))
    with pytest.raises(OutputPathError, match="is a read-only file system"):
        check_out_dir(tmp_path / "out")
    code, _, err = invoke(["validate", "--hw", str(HW / "dense.yaml")])  # reading is still fine
    assert code == 0, err
    code, out, err = invoke(["cost", "--hw", str(HW / "dense.yaml")])
    assert code == 0, err
    code, out, err = invoke(["compare", "--trace", "never-read.npz", "--out", str(tmp_path / "out")])
    assert code == 2 and err.startswith("error: --out ") and "read-only file system" in err and out == ""
