"""The compiled site kernel (``fast_engine``) gives exactly the simpy engine's SiteTiming, and the fast mask
kernels give exactly the original stable-sort masks.

* every site step of every shipped config on both committed traces (the cycles-baseline workload), timing by
  timing: cycles, the whole breakdown, DRAM / compressor / PE busy cycles;
* random SiteWork from hypothesis: bytes (zero included), tile cycles (zero included), fractional and infinite
  bandwidths, latencies, compressor busy and latency, gather on and off, 1 to 3 buffer slots;
* whole runs: ``simulate(engine="fast")`` and ``simulate(engine="simpy")`` give the same RunResult;
* masks: the real layer-0 inputs of the committed prefill trace (many ties in ``|x|``) under every pattern.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import accelsim.sim.run as run_mod
from accelsim.config import load_hw
from accelsim.nm import _nm_mask_sort, nm_mask, topk_mask
from accelsim.sim.engine import simulate_site
from accelsim.sim.fast_engine import occupancy_cycles, simulate_site_fast
from accelsim.sim.tiling import Tiling
from accelsim.sim.work import TILE_PARTS, SiteWork, _first_span_reads
from accelsim.trace.format import Trace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import baseline  # noqa: E402

CONFIGS = baseline.configs()


def _timing_tuple(t):
    return (t.cycles, tuple(t.breakdown.items()), t.dram_busy_cycles, t.compressor_busy_cycles, t.pe_busy_cycles)


@pytest.mark.parametrize("trace", baseline.TRACES)
def test_fast_equals_simpy_on_every_baseline_site(trace, monkeypatch):
    checked = []

    def both(work, bpc, lat, **kw):
        ref = simulate_site(work, bpc, lat, **kw)
        fast = simulate_site_fast(work, bpc, lat, **kw)
        assert _timing_tuple(fast) == _timing_tuple(ref), (trace, work.n_t, work.n_o, work.n_k)
        checked.append(ref.cycles)
        return ref

    monkeypatch.setitem(run_mod.ENGINES, "check", both)
    for cfg in CONFIGS:
        with Trace(ROOT / trace) as tr:
            run_mod.simulate(load_hw(cfg), tr, engine="check", memo=False)
    assert len(checked) >= 210 * len(CONFIGS)
    assert sum(checked) > 0


def k_tiled_hw(name: str, mode: str = "k_tiled", *, small_weights: bool = False):
    """A shipped config with ``sram.activation_tiling`` set and a 64 KiB activation buffer, in which full-K tiles of
    SmolLM2's K=1536 hold only 8 tokens (prefill: K-tiled activation tiles of 512 channels); ``small_weights``: a
    64 KiB weight buffer too, so that even one decode token's reduction is split (K_tile=512 < K=576)."""
    hw = load_hw(ROOT / "hw_configs" / f"{name}.yaml")
    upd = {"activation_tiling": mode, "activation_buffer_bytes": 65536}
    if small_weights:
        upd["weight_buffer_bytes"] = 65536
    return hw.model_copy(update={"sram": hw.sram.model_copy(update=upd)})


@pytest.mark.parametrize("trace", baseline.TRACES)
def test_fast_equals_simpy_with_k_tiled_activation_tiles(trace, monkeypatch):
    k_tiled_sites = []

    def both(work, bpc, lat, **kw):
        ref = simulate_site(work, bpc, lat, **kw)
        fast = simulate_site_fast(work, bpc, lat, **kw)
        assert _timing_tuple(fast) == _timing_tuple(ref), (trace, work.n_t, work.n_o, work.n_k, work.n_act)
        if work.act_tile is not None:
            k_tiled_sites.append(work.n_act)
        return ref

    monkeypatch.setitem(run_mod.ENGINES, "check", both)
    decode = "decode" in trace
    for name in ("dense", "nm8_16") if decode else ("dense", "nm8_16", "unstructured", "nm2_4"):
        for mode in ("k_tiled", "auto"):
            with Trace(ROOT / trace) as tr:  # the memo skips only site steps whose work is identical
                run_mod.simulate(k_tiled_hw(name, mode, small_weights=decode), tr, engine="check")
    assert len(k_tiled_sites) > 100
    assert max(k_tiled_sites) > 1


def test_whole_run_is_identical_with_either_engine():
    hw = load_hw(ROOT / "hw_configs" / "nm8_16.yaml")
    with Trace(ROOT / baseline.TRACES[1]) as tr:
        a = run_mod.simulate(hw, tr, engine="simpy")
    with Trace(ROOT / baseline.TRACES[1]) as tr:
        b = run_mod.simulate(hw, tr, engine="fast")
    assert a.sites == b.sites
    assert a.totals == b.totals


@pytest.mark.parametrize("mode", ["k_tiled", "auto"])
def test_whole_k_tiled_run_is_identical_with_either_engine(mode):
    hw = k_tiled_hw("nm8_16", mode)
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        a = run_mod.simulate(hw, tr, engine="simpy")
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        b = run_mod.simulate(hw, tr, engine="fast")
    assert a.sites == b.sites
    assert a.totals == b.totals
    assert any(r["K_tile"] < r["K"] for r in a.sites)  # K-tiled activation tiles were in play


def test_unknown_engine_is_a_clear_error():
    hw = load_hw(ROOT / "hw_configs" / "dense.yaml")
    with Trace(ROOT / baseline.TRACES[0]) as tr, pytest.raises(ValueError, match="engine must be one of fast, simpy"):
        run_mod.simulate(hw, tr, engine="turbo")


@st.composite
def site_work(draw):
    n_t = draw(st.integers(1, 4))
    n_o = draw(st.integers(1, 3))
    n_k = draw(st.integers(1, 3))
    n_tiles, n_out = n_t * n_o * n_k, n_t * n_o

    def ints(n, hi, zero_p=0.25):
        vals = draw(st.lists(st.integers(0, hi), min_size=n, max_size=n))
        zeros = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        return np.array([0 if z < zero_p else v for v, z in zip(vals, zeros, strict=True)], dtype=np.int64)

    parts = {p: np.zeros(n_tiles, dtype=np.int64) for p in TILE_PARTS}
    parts["compute"] = ints(n_tiles, 60, 0.15)
    parts["pipeline"] = ints(n_tiles, 8, 0.5)
    parts["weight_load"] = ints(n_tiles, 8, 0.6)
    gather = draw(st.booleans())
    extra = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.5, 7.0]), min_size=n_tiles, max_size=n_tiles)))
    # activation tiles: one per token tile (full_k), one per compute tile with the mask from the span's first read
    # (k_tiled, as build_site_work makes them), or random runs of compute tiles with random earlier mask sources
    act_mode = draw(st.sampled_from(["token", "k_tiled", "runs"]))
    act_tile = mask_tile = None
    if act_mode == "k_tiled":
        act_tile = np.arange(n_tiles, dtype=np.int64)
        mask_tile = _first_span_reads(n_t, n_o, n_k)
    elif act_mode == "runs":
        starts = draw(st.lists(st.booleans(), min_size=n_tiles - 1, max_size=n_tiles - 1))
        act_tile = np.concatenate(([0], np.cumsum(starts))).astype(np.int64)
        mask_tile = np.array([draw(st.integers(0, int(a))) for a in act_tile], dtype=np.int64)
    n_act = n_t if act_tile is None else int(act_tile[-1]) + 1
    work = SiteWork(
        tiling=Tiling(1, 1, 1),
        n_t=n_t,
        n_o=n_o,
        n_k=n_k,
        act_read_bytes=ints(n_act, 400),
        meta_read_bytes=ints(n_act, 40, 0.5),
        compress_busy=ints(n_act, 30, 0.4),
        compress_latency=draw(st.integers(0, 6)),
        weight_bytes=ints(n_tiles, 500),
        weight_extra_cycles=extra if gather else np.zeros(n_tiles),
        tile_parts=parts,
        out_bytes=ints(n_out, 300),
        actions={},
        gather_rows=gather,
        act_tile=act_tile,
        mask_tile=mask_tile,
    )
    bpc = draw(st.sampled_from([1.0, 3.0, 7.5, 16.0, 33.3, 128.0, math.inf]))
    lat = draw(st.integers(0, 25))
    slots = draw(st.integers(1, 3))
    return work, bpc, lat, slots


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(site_work())
def test_fast_equals_simpy_on_random_site_work(case):
    work, bpc, lat, slots = case
    ref = simulate_site(work, bpc, lat, buffer_slots=slots)
    fast = simulate_site_fast(work, bpc, lat, buffer_slots=slots)
    assert _timing_tuple(fast) == _timing_tuple(ref)


def test_occupancy_uses_the_engine_formula():
    b = np.array([0, 1, 16, 17, 1000])
    assert occupancy_cycles(b, 16.0).tolist() == [0, 1, 1, 2, 63]
    assert occupancy_cycles(b, math.inf).tolist() == [0] * 5
    assert occupancy_cycles(b, 16.0, np.array([0, 2.5, 0, 0, 1.0])).tolist() == [0, 3, 1, 2, 64]


def test_zero_cycle_transfers_fall_back_to_simpy(monkeypatch):
    """A finite bandwidth so high that a transfer takes 0 cycles is the simpy engine's own corner case."""
    work = SiteWork(
        tiling=Tiling(1, 1, 1),
        n_t=1,
        n_o=1,
        n_k=1,
        act_read_bytes=np.array([4]),
        meta_read_bytes=np.array([0]),
        compress_busy=np.array([0]),
        compress_latency=0,
        weight_bytes=np.array([4]),
        weight_extra_cycles=np.zeros(1),
        tile_parts={p: np.array([5 if p == "compute" else 0]) for p in TILE_PARTS},
        out_bytes=np.array([2]),
        actions={},
    )
    calls = []
    import accelsim.sim.engine as engine_mod

    real = engine_mod.simulate_site
    monkeypatch.setattr(engine_mod, "simulate_site", lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        fast = simulate_site_fast(work, 1e12, 3)
    except ValueError as exc:  # simpy refuses the negative delay such a transfer needs
        fast = exc
    assert calls == [1]
    try:
        ref = real(work, 1e12, 3)
    except ValueError as exc:
        ref = exc
    assert type(fast) is type(ref)
    if not isinstance(ref, Exception):
        assert _timing_tuple(fast) == _timing_tuple(ref)


# --- masks -----------------------------------------------------------------------------------------------

PATTERNS = [(1, 2), (2, 4), (4, 8), (8, 16), (12, 16), (4, 16), (16, 32), (8, 32), (3, 7), (5, 64), (40, 96)]


def _layer0_inputs():
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        seen = {}
        for s, x in tr.iter_sites():
            if s.layer == 0 and s.input_id not in seen:
                seen[s.input_id] = np.abs(np.array(x).astype(np.float32))
    return seen


def test_fast_masks_equal_the_stable_sort_rule_on_tie_heavy_layer0_inputs():
    inputs = _layer0_inputs()
    assert len(inputs) >= 3
    n_tied = 0
    for name, a in inputs.items():
        _, counts = np.unique(a, return_counts=True)
        n_tied += int((counts > 1).sum())
        for n, m in PATTERNS:
            assert np.array_equal(nm_mask(a, n, m), _nm_mask_sort(a, n, m)), (name, n, m)
        k = a.shape[1]
        for density in (0.5, 0.25, 0.1, 1 / k):
            keep_n = min(k, max(1, int(round(density * k))))
            assert np.array_equal(topk_mask(a, density), _nm_mask_sort(a, keep_n, k)), (name, density)
        # float16 scores (the trace dtype) and float64 give the same masks as well
        a16 = a.astype(np.float16)
        assert np.array_equal(nm_mask(a16, 8, 16), _nm_mask_sort(a16, 8, 16))
        assert np.array_equal(nm_mask(a.astype(np.float64), 2, 4), _nm_mask_sort(a, 2, 4))
    assert n_tied > 1000  # the point of the test: layer-0 |x| is full of ties


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.integers(1, 5),
    st.integers(1, 200),
    st.integers(1, 130),
    st.data(),
)
def test_fast_masks_equal_the_stable_sort_rule_on_random_ties(t, k, m, data):
    n = data.draw(st.integers(1, m))
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    vals = data.draw(
        st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, np.inf, -np.inf]), min_size=t * k, max_size=t * k)
    )
    s = np.array(vals, dtype=dtype).reshape(t, k)
    assert np.array_equal(nm_mask(s, n, m), _nm_mask_sort(s, n, m))
    assert np.array_equal(nm_mask(s, n, max(k, m)), _nm_mask_sort(s, n, max(k, m)))


def _old_site_mask(hw, x):
    """``work.site_mask`` as it was: float32 ``|x|`` and the stable sort."""
    sp = hw.sparsity
    if sp.kind == "dense":
        return None
    a = np.abs(np.asarray(x).astype(np.float32))
    k = a.shape[1]
    if sp.kind == "unstructured":
        return _nm_mask_sort(a, min(k, max(1, int(round(sp.density * k)))), k)
    if sp.selection == "static_first_n":
        return (np.arange(k) % sp.m < sp.n)[None, :].repeat(a.shape[0], axis=0)
    return _nm_mask_sort(a, sp.n, sp.m)


@pytest.mark.parametrize("trace", baseline.TRACES)
def test_site_mask_of_every_shipped_config_equals_the_old_rule(trace):
    from accelsim.sim.work import site_mask

    hws = [load_hw(c) for c in CONFIGS]
    with Trace(ROOT / trace) as tr:
        for s, x in tr.iter_sites():
            if s.layer not in (0, 15, 29):
                continue
            assert x.dtype == np.float16
            for hw in hws:
                got, want = site_mask(hw, x), _old_site_mask(hw, x)
                assert (got is None) == (want is None)
                if got is not None:
                    assert np.array_equal(got, want), (s.name, hw.name)
                    assert np.array_equal(site_mask(hw, x.astype(np.float32)), want), (s.name, hw.name)


# --- several configs in one pass ---------------------------------------------------------------------------


def test_simulate_many_equals_the_baseline_of_every_config():
    """One pass over the trace for all shipped configs (shared reads and masks) gives every stored site cycle."""
    import json

    stored = json.loads(baseline.BASELINE.read_text())["results"][baseline.TRACES[0]]
    hws = [load_hw(c) for c in CONFIGS]
    with Trace(ROOT / baseline.TRACES[0]) as tr:
        results = run_mod.simulate_many(hws, tr)
    for cfg, res in zip(CONFIGS, results, strict=True):
        assert [r["cycles"] for r in res.sites] == stored[cfg.stem]["site_cycles"], cfg.stem


def test_evaluate_many_records_equal_separate_evaluations():
    from accelsim.api import evaluate, evaluate_many

    paths = [ROOT / "hw_configs" / f"{n}.yaml" for n in ("nm8_16", "nm2_4", "unstructured", "dense")]
    dense = ROOT / "hw_configs" / "dense.yaml"
    trace = ROOT / baseline.TRACES[1]
    many = evaluate_many(paths, trace, baseline=dense)
    for p, rec in zip(paths, many, strict=True):
        assert rec == evaluate(p, trace, baseline=dense), p.stem
    assert evaluate(paths[0], trace, baseline=dense, engine="simpy") == many[0]
