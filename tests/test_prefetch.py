"""Cross-site weight prefetch (``dram.prefetch_next_site``, docs/timing-model.md "Cross-site weight prefetch").

* off (the default, every shipped config): no prefetch columns, and the cycles baseline test keeps the cycles;
* on, on both committed SmolLM2 traces for dense, 8:16 and 16:32: total cycles fall, no site gets slower, no
  site is faster than its PE busy time, DRAM bytes and every action count (so the energy) are unchanged, and the
  DRAM busy cycles are moved to the previous site (rounding a split transfer up, never lost);
* both engines agree with it on (whole runs, and the tail idle cycles of random site works);
* a hand-counted two-site case, whole tile and leading bursts.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_engine_equivalence import site_work

import accelsim.sim.run as run_mod
from accelsim.config import load_hw
from accelsim.sim.engine import simulate_site
from accelsim.sim.fast_engine import simulate_site_fast
from accelsim.sim.tiling import Tiling
from accelsim.sim.work import TILE_PARTS, SiteWork
from accelsim.trace.format import Site, Trace, TraceData, write_trace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import baseline  # noqa: E402

PATTERNS = ("dense", "nm8_16", "nm16_32")


def _with_prefetch(hw, on: bool = True):
    return hw.model_copy(update={"dram": hw.dram.model_copy(update={"prefetch_next_site": on})})


def test_prefetch_is_off_in_every_shipped_config_and_adds_no_columns():
    for cfg in baseline.configs():
        assert load_hw(cfg).dram.prefetch_next_site is False, cfg.name
    hw = load_hw(ROOT / "hw_configs" / "dense.yaml")
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        res = run_mod.simulate(hw, tr)
    assert "prefetched_weight_bytes" not in res.sites[0]
    assert "prefetched_weight_bytes" not in res.totals


@pytest.mark.parametrize("trace", baseline.TRACES)
def test_prefetch_lowers_cycles_and_keeps_bytes_and_actions(trace):
    hws = []
    for name in PATTERNS:
        hw = load_hw(ROOT / "hw_configs" / f"{name}.yaml")
        hws += [hw, _with_prefetch(hw)]
    with Trace(ROOT / trace) as tr:
        res = run_mod.simulate_many(hws, tr)
    for name, off, on in zip(PATTERNS, res[0::2], res[1::2], strict=True):
        assert on.totals["cycles"] < off.totals["cycles"], (trace, name)
        assert on.totals["prefetched_weight_bytes"] > 0, (trace, name)
        assert on.totals["prefetch_saved_cycles"] == off.totals["cycles"] - on.totals["cycles"], (trace, name)
        steps = 0
        for a, b in zip(off.sites, on.sites, strict=True):
            assert b["cycles"] <= a["cycles"], (trace, name, a["name"])
            assert b["prefetch_saved_cycles"] == a["cycles"] - b["cycles"]
            assert b["cycles"] >= b["pe_busy_cycles"] > 0, (trace, name, a["name"])
            assert b["compute_cycles"] == a["compute_cycles"]
            assert b["dram_weight_bytes"] == a["dram_weight_bytes"] >= b["prefetched_weight_bytes"]
            for key in a:
                if key.endswith("_count") and key != "static_cycle_count":
                    assert b[key] == a[key], (trace, name, a["name"], key)
            steps += a["steps"]
        # a transfer split between two sites rounds each part up: at most one cycle more per site step
        busy_off, busy_on = off.totals["dram_busy_cycles"], on.totals["dram_busy_cycles"]
        assert busy_off <= busy_on <= busy_off + steps, (trace, name)


def test_both_engines_agree_with_prefetch_on():
    hws = [_with_prefetch(load_hw(ROOT / "hw_configs" / f"{n}.yaml")) for n in ("dense", "nm8_16")]
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        fast = run_mod.simulate_many(hws, tr, engine="fast")
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        ref = run_mod.simulate_many(hws, tr, engine="simpy")
    for a, b in zip(fast, ref, strict=True):
        assert a.totals["prefetched_weight_bytes"] > 0
        assert a.sites == b.sites
        assert a.totals == b.totals


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(site_work())
def test_tail_idle_cycles_agree_between_engines(case):
    work, bpc, lat, slots = case
    ref = simulate_site(work, bpc, lat, buffer_slots=slots)
    fast = simulate_site_fast(work, bpc, lat, buffer_slots=slots)
    assert fast.tail_idle_cycles == ref.tail_idle_cycles >= 0
    assert fast.tail_idle_cycles <= max(0, ref.cycles - lat)


def _one_tile_work(weight_bytes: int) -> SiteWork:
    """One token tile, one compute tile of 100 cycles, no activation bytes, 32 output bytes."""
    parts = {p: np.zeros(1, dtype=np.int64) for p in TILE_PARTS}
    parts["compute"] = np.array([100])
    zero = np.zeros(1, dtype=np.int64)
    return SiteWork(
        tiling=Tiling(1, 1, 1),
        n_t=1,
        n_o=1,
        n_k=1,
        act_read_bytes=zero,
        meta_read_bytes=zero,
        compress_busy=zero,
        compress_latency=0,
        weight_bytes=np.array([weight_bytes]),
        weight_extra_cycles=np.zeros(1),
        tile_parts=parts,
        out_bytes=np.array([32]),
        actions={
            "dram_read_byte_weight": weight_bytes,
            "dram_read_byte_activation": 0,
            "dram_read_byte_metadata": 0,
            "dram_write_byte_output": 32,
        },
        gather_rows=False,
        stats={"dense_macs": 8 * 64 * 16, "kept_density": 1.0, "union_density": 1.0},
    )


@pytest.mark.parametrize("engine", ["fast", "simpy"])
@pytest.mark.parametrize(
    ("b_bytes", "b_cold", "b_warm", "b_prefetched"),
    [
        # 800 B = 50 channel cycles fit site A's 100 idle cycles: the whole tile is on chip at B's cycle 0.
        # cold: weights [0, 50) + 5 latency, PE [55, 155), write [155, 157) + 5 -> 162
        # warm: PE [0, 100), write [100, 102) + 5 -> 107
        (800, 162, 107, 800),
        # 3200 B = 200 cycles do not fit: the leading 100 cycles x 16 B = 1600 B (25 bursts of 64 B) do.
        # cold: [0, 200) + 5, PE [205, 305), write -> 312; warm: [0, 100) + 5, PE [105, 205), write -> 212
        (3200, 312, 212, 1600),
    ],
)
def test_hand_counted_two_sites(tmp_path, monkeypatch, engine, b_bytes, b_cold, b_warm, b_prefetched):
    # 16 GB/s at 1 GHz = 16 B per cycle, 5 cycles latency.
    # Site A (160 B of weights = 10 cycles): weights [0, 10) arrive at 15, PE [15, 115), write [115, 117),
    # done at 122. Prefetch window [15, 122 - 5) = 102 cycles, channel busy [115, 117) in it: 100 idle cycles.
    hw = load_hw(ROOT / "hw_configs" / "dense.yaml")
    dram = {"bandwidth_gb_per_s": 16.0, "latency_cycles": 5}
    hw = hw.model_copy(update={"dram": hw.dram.model_copy(update=dram)})
    works = {16: _one_tile_work(160), 32: _one_tile_work(b_bytes)}
    monkeypatch.setattr(run_mod, "build_site_work", lambda hw, xs, o, **kw: works[o])
    sites = [Site(0, "a", 0, "q", 64, 16, "x0"), Site(1, "b", 0, "o", 64, 32, "x1")]
    inputs = {"x0": np.ones((8, 64), np.float16), "x1": np.ones((8, 64), np.float16)}
    meta = {
        "model": "hand-counted",
        "model_sha256": "",
        "phase": "prefill",
        "text_source": "none",
        "text_sha256": "",
        "tool_version": "tests",
        "synthetic": True,
        "synthetic_info": {"generator": "tests/test_prefetch.py"},
    }
    path = write_trace(tmp_path / "two.npz", TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=np.arange(8)))
    with Trace(path) as tr:
        off, on = run_mod.simulate_many([hw, _with_prefetch(hw)], tr, engine=engine)
    assert [r["cycles"] for r in off.sites] == [122, b_cold]
    assert [r["cycles"] for r in on.sites] == [122, b_warm]
    assert on.sites[1]["prefetched_weight_bytes"] == b_prefetched
    assert on.sites[1]["prefetch_saved_cycles"] == b_cold - b_warm
    # channel cycles of the prefetched bytes are counted in site A: 10 + 2 + b_prefetched / 16
    pf_cycles = math.ceil(b_prefetched / 16)
    assert on.sites[0]["dram_busy_cycles"] == 12 + pf_cycles
    assert on.sites[1]["dram_busy_cycles"] == math.ceil((b_bytes - b_prefetched) / 16) + 2
    assert on.totals["dram_weight_bytes"] == off.totals["dram_weight_bytes"] == 160 + b_bytes
