"""`accelsim sweep`: points over any config key, validation before anything runs, resume after a kill, and
byte-identical tables on local processes and a Dask LocalCluster. Sweeps run on the committed real traces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config import load_hw
from accelsim.explore import grid as g
from accelsim.explore import sweep as sw

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hw_configs"
PREFILL = ROOT / "traces" / "smollm2-135m_prefill32.npz"
runner = CliRunner()


def _sweep(out: Path, *args: str) -> object:
    return runner.invoke(app, ["sweep", "--trace", str(PREFILL), "--out", str(out), *args])


# --- points ---------------------------------------------------------------------------------------------------


def test_set_values_are_typed_and_the_product_is_ordered():
    assert g.parse_set("array.mma.units=4, 8,16") == ("array.mma.units", [4, 8, 16])
    assert g.parse_set("dram.bandwidth_gb_per_s=1e3,inf")[1][0] == 1000.0
    assert g.parse_set("sparsity.pattern=2:4,8:16") == ("sparsity.pattern", ["2:4", "8:16"])
    combos = g.expand(None, [("a.x", [1, 2]), ("b.y", ["p", "q"])])
    assert combos == [{"a.x": 1, "b.y": "p"}, {"a.x": 1, "b.y": "q"}, {"a.x": 2, "b.y": "p"}, {"a.x": 2, "b.y": "q"}]
    with pytest.raises(g.SweepError, match="given twice"):
        g.expand(None, [("a", [1]), ("a", [2])])


def test_a_point_is_the_config_with_the_key_changed_and_validated_like_a_file():
    base = load_hw(HW / "nm8_16.yaml")
    (p,) = g.build_points(
        HW / "nm8_16.yaml", [{"sparsity.pattern": "2:4", "dram.bandwidth_gb_per_s": 512.0}], HW / "dense.yaml"
    )
    assert (p.hw.sparsity.n, p.hw.sparsity.m, p.hw.dram.bandwidth_gb_per_s) == (2, 4, 512.0)
    assert p.hw.array == base.array and p.hw.sram == base.sram  # nothing else moved
    # the baseline is the same machine without sparsity hardware: the DRAM change applies, the pattern not
    assert p.baseline.sparsity.kind == "dense" and p.baseline.dram.bandwidth_gb_per_s == 512.0


def test_grid_files_yaml_and_csv(tmp_path):
    y = tmp_path / "g.yaml"
    y.write_text("points:\n  - {sparsity.pattern: '2:4', array.mma.units: 4}\n  - {sparsity.pattern: '8:16'}\n")
    c = tmp_path / "g.csv"
    c.write_text("sparsity.pattern,array.mma.units\n2:4,4\n8:16,16\n")
    assert g.read_grid(y) == [{"sparsity.pattern": "2:4", "array.mma.units": 4}, {"sparsity.pattern": "8:16"}]
    assert g.read_grid(c)[1] == {"sparsity.pattern": "8:16", "array.mma.units": 16}
    combos = g.expand(g.read_grid(c), [("dram.bandwidth_gb_per_s", [128, 256])])
    assert len(combos) == 4 and combos[1] == {
        "sparsity.pattern": "2:4",
        "array.mma.units": 4,
        "dram.bandwidth_gb_per_s": 256,
    }


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "array.mma.unitz=4,8"], ["array.mma.unitz=4", "unknown key 'unitz' in array.mma", "units"]),
        (["--set", "arary.mma.units=4"], ["unknown key 'arary'", "allowed here: array., clock_hz, cost."]),
        (["--set", "sparsity.patern=2:4"], ["unknown key 'patern' in sparsity", "n, pattern, selection"]),
        (["--set", "sparsity.pattern=8-16"], ["sparsity.pattern=8-16", "expected N:M"]),
        (["--set", "array.mma.units=4,abc"], ["array.mma.units=abc", "valid integer"]),
        (["--set", "dram.bandwidth_gb_per_s=fast"], ["dram.bandwidth_gb_per_s=fast", "valid number"]),
        (["--set", "sparsity.weight_fetch=dense,all"], ["sparsity.weight_fetch=all", "'dense' or 'gather_rows'"]),
        (["--set", "array=4"], ["array=4", "is a section"]),
        (["--set", "array.mma.units="], ["array.mma.units", "empty"]),
        (["--set", "sparsity.n=4,17"], ["sparsity.n=17", "n must be <= m"]),
        (["--set", "sram.weight_buffer_bytes=64,524288"], ["sram.weight_buffer_bytes=64", "no weight tile fits"]),
        (["--set", "cost.node_nm=45,3"], ["cost.node_nm=3", "must be one of 45, 16, 7, 5"]),
        (["--set", "sparsity.pattern=8:16", "--scheduler", "nowhere"], ["--scheduler nowhere", "tcp://HOST:PORT"]),
        ([], ["nothing to sweep"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_runs(tmp_path, args, words):
    out = tmp_path / "out"
    r = _sweep(out, *args)
    assert r.exit_code == 2, r.output
    assert r.output.count("error:") == 1 and len(r.output.strip().splitlines()) == 1, r.output
    for w in words:
        assert w in r.output
    assert not out.exists()


def test_a_dask_address_that_does_not_answer_fails_before_any_point_runs(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    addr = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    r = _sweep(out, "--set", "sparsity.pattern=8:16", "--scheduler", addr, "--timeout-s", "1")
    assert r.exit_code == 2 and addr in r.output and "no Dask scheduler answered" in r.output
    assert time.monotonic() - t0 < 30
    assert not out.exists()


def test_a_bad_grid_row_names_its_key_and_nothing_runs(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("- {sparsity.pattern: '2:4'}\n- {sparsity.pattern: '8:16', sram.weight_bufer_bytes: 1024}\n")
    out = tmp_path / "out"
    r = _sweep(out, "--grid", str(grid))
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "unknown key 'weight_bufer_bytes' in sram" in r.output and "weight_buffer_bytes" in r.output
    assert not out.exists()


def test_a_worker_that_sees_another_trace_file_refuses_to_run(tmp_path):
    hw = load_hw(HW / "nm8_16.yaml").model_dump(mode="json")
    with pytest.raises(g.SweepError, match="sha256 .* on this worker, expected 000000000000"):
        sw.run_task(hw, str(PREFILL), "0" * 64)


def test_progress_off_a_terminal_is_a_line_per_five_percent_not_one_per_run(capsys):
    from accelsim.console import ProgressLines

    prog = ProgressLines("sweep runs")
    for done in range(0, 1001):
        prog(done, 1000)
    prog.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 21  # 0 %, 5 %, ..., 100 %
    assert lines[0].startswith("sweep runs: 0/1000 (0%)") and lines[-1].startswith("sweep runs: 1000/1000 (100%)")
    assert all("elapsed" in x for x in lines)


# --- running --------------------------------------------------------------------------------------------------

SMALL = ["--set", "sparsity.pattern=2:4,8:16", "--set", "dram.bandwidth_gb_per_s=128,256"]


def test_table_one_row_per_point_units_and_the_dense_comparison(tmp_path):
    r = _sweep(tmp_path / "a", *SMALL, "--workers", "1")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "a" / "sweep.csv")
    assert list(df["point_index"]) == [0, 1, 2, 3]
    assert list(df["sparsity.pattern"]) == ["2:4", "2:4", "8:16", "8:16"]
    assert list(df["dram.bandwidth_gb_per_s"]) == [128, 256, 128, 256]
    # one journal line per distinct run: 4 points + 2 dense machines (one per bandwidth)
    assert len((tmp_path / "a" / sw.JOURNAL).read_text().splitlines()) == 6
    # the point at 256 GB/s is the shipped nm8_16 machine with its pattern: same cycles as `accelsim run`
    from accelsim.api import evaluate

    rec = evaluate(HW / "nm8_16.yaml", PREFILL, baseline=HW / "dense.yaml")
    row = df[(df["sparsity.pattern"] == "8:16") & (df["dram.bandwidth_gb_per_s"] == 256)].iloc[0]
    assert row["cycles"] == rec["cycles"] and row["speedup_vs_dense"] == pytest.approx(rec["speedup_vs_dense"])
    assert row["area_overhead_percent"] == pytest.approx(100 * rec["sparsity_area_overhead_fraction"])
    # sweep.json has the same rows at full precision (the CSV keeps 9 significant digits)
    rec_json = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert rec_json["keys"] == ["sparsity.pattern", "dram.bandwidth_gb_per_s"] and len(rec_json["rows"]) == 4
    assert list(rec_json["rows"][0]) == list(df.columns)
    (jrow,) = [x for x in rec_json["rows"] if x["sparsity.pattern"] == "8:16" and x["dram.bandwidth_gb_per_s"] == 256]
    assert jrow["energy_pj"] == pytest.approx(rec["energy_pj"], rel=1e-12)
    assert row["energy_pj"] == pytest.approx(rec["energy_pj"], rel=1e-8)
    assert (tmp_path / "a" / "sweep_tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # halving DRAM bandwidth never makes a point faster
    slow = df.set_index(["sparsity.pattern", "dram.bandwidth_gb_per_s"])["cycles"]
    assert slow["2:4", 128] >= slow["2:4", 256] and slow["8:16", 128] >= slow["8:16", 256]
    unitless = {"trace", "phase", "tokens", "config", "pattern", "mitigation", "point_index"}
    units = (
        "_cycles",
        "cycles",
        "_us",
        "_pj",
        "_um2",
        "_bytes",
        "_percent",
        "_per_cycle",
        "_per_s",
        "_per_token",
        "_vs_dense",
        "utilization",
        "density",
        "_macs",
    )
    for col in df.columns:
        if col in unitless or col.startswith("sparsity."):
            continue
        assert col.endswith(units) or ".".join(col.split(".")[:1]) in ("energy_pj", "area_um2"), col


OUTPUTS = ("sweep.csv", "sweep.json", "sweep_tradeoff.png")


def test_one_process_two_processes_and_a_local_cluster_give_identical_bytes(tmp_path):
    pytest.importorskip("distributed")
    args = ["--set", "sparsity.pattern=2:4,8:16", "--set", "array.mma.units=4,8"]
    runs = {
        "one": ["--workers", "1"],
        "two": ["--workers", "2"],
        "dask": ["--scheduler", "local", "--workers", "2"],
    }
    for name, extra in runs.items():
        r = _sweep(tmp_path / name, *args, *extra)
        assert r.exit_code == 0, r.output
        assert len((tmp_path / name / sw.JOURNAL).read_text().splitlines()) == 6  # 4 points + 2 dense machines
    for f in OUTPUTS:
        ref = (tmp_path / "one" / f).read_bytes()
        assert (tmp_path / "two" / f).read_bytes() == ref, f
        assert (tmp_path / "dask" / f).read_bytes() == ref, f
    # and the journals hold the same runs, only in another order
    lines = {n: sorted((tmp_path / n / sw.JOURNAL).read_text().splitlines()) for n in runs}
    assert lines["one"] == lines["two"] == lines["dask"]


def test_an_existing_dask_scheduler_by_address_gives_the_same_bytes_and_resumes_a_local_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    one, tcp = tmp_path / "one", tmp_path / "tcp"
    assert _sweep(one, "--set", "sparsity.pattern=2:4,8:16", "--workers", "1").exit_code == 0
    # half of the sweep done locally, the rest on the cluster: only the missing runs go there
    assert _sweep(tcp, "--set", "sparsity.pattern=2:4", "--workers", "1").exit_code == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        r = _sweep(tcp, "--set", "sparsity.pattern=2:4,8:16", "--scheduler", cluster.scheduler_address)
    assert r.exit_code == 0, r.output
    assert "(1 workers)" in r.output and "resumed: 2 of 3 runs" in r.output
    for f in OUTPUTS:
        assert (tcp / f).read_bytes() == (one / f).read_bytes(), f


def test_a_killed_sweep_resumes_without_recomputing_and_ends_with_the_same_table(tmp_path):
    args = ["--set", "sparsity.pattern=2:4,4:8,8:16,16:32", "--set", "dram.bandwidth_gb_per_s=128,256"]
    ref = tmp_path / "ref"
    assert _sweep(ref, *args, "--workers", "1").exit_code == 0
    n_runs = len((ref / sw.JOURNAL).read_text().splitlines())
    assert n_runs == 10  # 8 points + 2 dense machines

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "accelsim", "sweep", "--trace", str(PREFILL), "--out", str(out), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / sw.JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert 3 <= done_before < n_runs, "the sweep ended before it could be killed"
    assert not (out / "sweep.csv").exists()
    with journal.open("a") as fh:  # a line torn by the kill is ignored
        fh.write('{"key": "abc", "res')

    r = _sweep(out, *args, "--workers", "1")
    assert r.exit_code == 0, r.output
    assert f"resumed: {done_before} of {n_runs} runs" in r.output
    keys = [
        json.loads(x)["key"] for x in journal.read_text().splitlines() if x.startswith('{"key": "') and "result" in x
    ]
    assert len(keys) == n_runs == len(set(keys))  # every run once: nothing finished was computed again
    for f in OUTPUTS:
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


@pytest.mark.slow
def test_48_points_local_processes_and_local_cluster_identical(tmp_path):
    pytest.importorskip("distributed")
    args = [
        "--set", "sparsity.pattern=2:4,4:8,8:16,16:32",
        "--set", "array.mma.units=4,8,16,32",
        "--set", "dram.bandwidth_gb_per_s=128,256,512",
    ]  # fmt: skip
    a, b = tmp_path / "procs", tmp_path / "dask"
    r = _sweep(a, *args, "--workers", "2")
    assert r.exit_code == 0, r.output
    r = _sweep(b, *args, "--scheduler", "local", "--workers", "2")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(a / "sweep.csv")
    assert len(df) == 48 and df["point_index"].tolist() == list(range(48))
    for f in OUTPUTS:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
