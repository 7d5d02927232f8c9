"""Smoke mode of the simulator-speed benchmarks (``benchmarks/run_all.py --smoke``): they run and their records
are complete and consistent. Nothing here is about time (speed figures live in ``benchmarks/results.json``), and
nothing is installed: SCALE-Sim takes part only when ``benchmarks/.scalesim-venv`` already exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_scalesim  # noqa: E402
from results_io import update_results  # noqa: E402


def test_run_all_smoke_writes_every_part_and_keeps_other_keys(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"accuracy": {"written by": "another benchmark"}}))
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["accuracy"] == {"written by": "another benchmark"}

    sbs = data["side_by_side"]
    assert sbs["status"] == "complete" and sbs["smoke"] is True
    assert len(sbs["cases"]) == len(bench_scalesim.SMOKE_GEMMS) * len(bench_scalesim.SMOKE_ARRAYS) * 2
    for c in sbs["cases"]:
        assert c["accelsim_cycles"] == c["closed_form_cycles"] > 0
        assert c["accelsim_wall_ms"]["min"] <= c["accelsim_wall_ms"]["median"] <= c["accelsim_wall_ms"]["max"]
        if c["scalesim_cycles"] is None:  # not installed: the output says why
            assert "skipped" in c["scalesim_status"] and "SCALE-Sim skipped" in r.stdout
        else:
            assert c["cycles_equal"] is True and c["scalesim_cycles"] == c["accelsim_cycles"]
            assert c["speedup"] > 0
    assert sbs["all_cycles_equal"] is not False

    wm = data["whole_model"]
    assert wm["status"] == "complete"
    assert set(wm["groups"]) == {"smoke_synthetic_prefill4", "smoke_serving_b2_context64"}
    for grp in wm["groups"].values():
        assert {c["config"] for c in grp["cases"]} == {"dense", "nm8_16"}
        for c in grp["cases"]:
            assert c["simulated_cycles"] > 0 and c["dense_macs"] > 0
            assert c["peak_rss_mb"] >= c["rss_before_simulate_mb"] > 0
            assert c["dense_equivalent_macs_per_wall_s"] == c["dense_macs"] / c["wall_s"]["median"]
        one = grp["all_configs_one_pass"]
        assert one["simulated_cycles"] == sum(c["simulated_cycles"] for c in grp["cases"])
    # the same pass without the reader thread (same cycles, or the benchmark fails); its wall times are recorded
    rt = wm["groups"]["smoke_synthetic_prefill4"]["reader_thread"]
    assert rt["one_pass_wall_s_on"] == wm["groups"]["smoke_synthetic_prefill4"]["all_configs_one_pass_wall_s"]
    assert rt["wall_speedup"] == rt["one_pass_wall_s_off"] / rt["one_pass_wall_s_on"] > 0
    # the serving decode step: batch 2 at 64-token context; its cycles are the step's (TPOT x clock), and its
    # dense MACs add attention (QK^T and PV over the cache) to the linear sites of both sequences
    for c in wm["groups"]["smoke_serving_b2_context64"]["cases"]:
        assert c["scenario"]["batch"] == 2 and c["scenario"]["context_tokens"] == 64 and c["phase"] == "decode"
        assert 0 < c["attention_dense_macs_per_config"] < c["dense_macs"]
        (tpot_ms,) = c["tpot_ms"].values()
        assert tpot_ms > 0 and 0 < c["attention_share"][c["config"]] < 1
    dense, nm = sorted(wm["groups"]["smoke_serving_b2_context64"]["cases"], key=lambda c: c["config"] != "dense")
    assert dense["dense_macs"] == nm["dense_macs"] and nm["simulated_cycles"] < dense["simulated_cycles"]

    sw = data["sweep_throughput"]
    assert sw["configs"] == ["dense", "nm8_16"] and sw["points"] == 2
    assert sw["local"]["points_per_minute"] == 60.0 * 2 / sw["local"]["wall_s"]
    dask = sw["dask_local_cluster"]
    if dask["status"] == "ok":  # same cycles on the cluster as locally, or the benchmark fails
        assert dask["cycles_equal_to_local"] is True and dask["points_per_minute"] > 0
    else:
        assert "dask.distributed is not installed" in dask["status"]


def test_timeout_still_bounds_the_speedup():
    rec = {"accelsim_wall_ms": {"median": 2.0}, "accelsim_cycles": 5}
    bench_scalesim._fill_scalesim(rec, [{"status": "timeout"}], 300.0)
    assert rec["scalesim_status"] == "timeout: > 300 s" and rec["scalesim_wall_s"] == "> 300"
    assert rec["speedup"] is None and rec["speedup_lower_bound"] == 150_000.0
    assert rec["speedup_display"] == "> 150,000x" and rec["meets_target"] is True and rec["cycles_equal"] is None


def test_scalesim_cycle_mismatch_is_flagged():
    rec = {"accelsim_wall_ms": {"median": 1.0}, "accelsim_cpu_ms": {"median": 1.0}, "accelsim_cycles": 5}
    run = {"status": "ok", "cycles": 6, "wall_s": 10.0, "cpu_s": 9.0, "import_s": 0.1, "peak_rss_mb": 50.0}
    bench_scalesim._fill_scalesim(rec, [run], 300.0)
    assert rec["cycles_equal"] is False and rec["meets_target"] is False
    assert rec["speedup"] == 10_000.0


def test_update_results_replaces_only_its_keys(tmp_path):
    p = tmp_path / "r.json"
    update_results(p, {"a": 1, "b": {"x": 1}})
    update_results(p, {"b": {"y": 2}})
    assert json.loads(p.read_text()) == {"a": 1, "b": {"y": 2}}


def test_smoke_without_scalesim_skips_it_and_installs_nothing(tmp_path):
    venv = tmp_path / "no-scalesim-venv"
    out = tmp_path / "r.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scalesim.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ACCELSIM_SCALESIM_VENV": str(venv)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "SCALE-Sim skipped" in r.stdout and not venv.exists()
    sbs = json.loads(out.read_text())["side_by_side"]
    assert sbs["cases_cycles_checked_against_scalesim"] == 0 and sbs["all_cycles_equal"] is None
    assert all(c["scalesim_cycles"] is None and c["accelsim_cycles"] == c["closed_form_cycles"] for c in sbs["cases"])
