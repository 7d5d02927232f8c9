"""Validation group 4: properties, checked with hypothesis on random machines and sites (and on traces).

1. More DRAM bandwidth never costs cycles (and, likewise, less DRAM latency never does).
2. N:M never costs more than dense plus its own latencies. The bound tested, per site, on the same machine
   with the same tiling, is

       cycles(n:m) <= cycles(dense) + decoder_latency * compute_tiles
                      + [consumer compressor]  sum over token tiles of (compressor busy + compressor latency)
                      + [gather_rows]          (DRAM latency + longest other transfer) * token tiles
                      + [producer, finite bw]  1 cycle * token tiles

   Why each term: the decoder's m:1 stage is paid once per compute tile (array fill); a compressor on the
   critical path delays each token tile by at most its busy time plus its pipeline latency; ``gather_rows`` is
   causal, so a token tile's first weight read waits for its mask instead of overlapping the activation read's
   latency (one more DRAM latency per token tile), and by the time it is made the channel may have started
   another token tile's activation read or an output write that it would have preceded in dense (one more
   occupancy of the longest such transfer: hypothesis found this one); under producer placement the metadata
   is a transfer of its own, whose occupancy rounds up separately (at most one channel cycle per token tile).
   Everything else in the sparse run is no more work than in dense: fewer or equal weight and activation
   bytes, and no compute tile longer than its dense twin. That last premise is a property of the *hardware*,
   so the machines drawn for this test provide it: ``mma`` operand and metadata buffers wide enough to issue the
   m/n-wider sparse instruction at the issue rate, ``ws`` weight-load paths that load a sparse fold (its
   groups' ``m`` candidate rows) in one cycle as a dense one, ``os`` any link width (narrow links stream ``K``
   as dense does); ``m`` divides ``K`` (no padded group) and no reduction tile splits a group. Without these
   premises sparsity *can* cost cycles, as it should: e.g. a ``ws`` array loading one row per cycle at small
   ``T`` (the design page: "at one row per cycle, small T gains nothing") or an operand buffer too narrow
   for m/n-wider weight operands (``operand_stall``). ``test_sparsity_can_cost_cycles_without_the_premises``
   shows both.
3. The same inputs give identical outputs: every number of a run, twice.

(Energy equals the sum of its parts is the cost model's property and is tested with it.)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from accelsim.config import load_hw
from accelsim.config.hw import HwConfig
from accelsim.nm import metadata_bits_per_group
from accelsim.sim.engine import simulate_site
from accelsim.sim.operands import candidate_rows
from accelsim.sim.run import simulate
from accelsim.sim.tiling import TilingError, choose_tiling
from accelsim.sim.work import build_site_work
from accelsim.trace.format import Trace
from accelsim.trace.synthetic import make_test_trace

HW_DIR = Path(__file__).resolve().parents[1] / "hw_configs"
PATTERNS = [(1, 2), (2, 4), (3, 4), (1, 4), (2, 3), (4, 8), (5, 8), (8, 16), (1, 3)]
BANDWIDTHS = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 16.0, 64.0, math.inf]
FAST = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,  # the same examples in every run (CI); the slow variants explore afresh
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- strategies ----------------------------------------------------------------------------------------------
@st.composite
def sparsity(draw, dataflow: str, *, allow_static=True, allow_unstructured=True) -> dict:
    kinds = ["dense", "nm"] + (["static"] if allow_static else [])
    if allow_unstructured and dataflow != "ws":
        kinds.append("unstructured")
    kind = draw(st.sampled_from(kinds))
    if kind == "dense":
        return {"kind": "dense"}
    common = {
        "compressor": {
            "groups_per_cycle": draw(st.integers(1, 8)),
            "latency_cycles": draw(st.integers(0, 6)),
            "placement": draw(st.sampled_from(["consumer", "producer"])),
        },
        "decoder": {"latency_cycles": draw(st.integers(0, 4))},
        "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": draw(st.sampled_from([1.0, 4.0, 64.0]))},
    }
    if kind == "unstructured":
        return {
            "kind": "unstructured",
            "density": draw(st.sampled_from([0.25, 0.5, 0.7])),
            "weight_fetch": draw(st.sampled_from(["dense", "gather_rows"])),
            **common,
        }
    n, m = draw(st.sampled_from(PATTERNS))
    static = kind == "static"
    return {
        "kind": "nm",
        "n": n,
        "m": m,
        "selection": "static_first_n" if static else "dynamic",
        "weight_fetch": "dense" if static else draw(st.sampled_from(["dense", "gather_rows"])),
        "metadata_format": draw(st.sampled_from(["index", "bitmask"])),
        **common,
    }


@st.composite
def machines(draw) -> dict:
    """A random small machine as a config dict (any dataflow, sparsity, buffers, DRAM)."""
    df = draw(st.sampled_from(["ws", "os", "mma"]))
    arr: dict = {"dataflow": df}
    if df == "mma":
        arr["mma"] = {
            "units": draw(st.integers(1, 4)),
            "tokens": draw(st.integers(1, 8)),
            "outputs": draw(st.integers(1, 8)),
            "reduction": draw(st.integers(1, 8)),
            "issue_interval_cycles": draw(st.integers(1, 4)),
            "latency_cycles": draw(st.integers(0, 8)),
            "operand_buffer_read_bytes_per_cycle": draw(st.sampled_from([8.0, 32.0, 100.0, 1000.0])),
        }
    else:
        arr["scalesim_compat"] = draw(st.booleans())
        arr["systolic"] = {
            "rows": draw(st.integers(1, 16)),
            "cols": draw(st.integers(1, 16)),
            "weight_load_rows_per_cycle": draw(st.sampled_from([1, 2, 4])),
            "os_weight_link_factor": draw(st.sampled_from([1.0, 2.0, 4.0])),
        }
    return {
        "name": "prop",
        "clock_hz": 1e9,
        "precision": {
            "activation_bytes": 2,
            "weight_bytes": draw(st.sampled_from([0.5, 1, 2])),
            "accumulator_bytes": 4,
            "output_bytes": 2,
        },
        "array": arr,
        "sram": {
            "activation_buffer_bytes": draw(st.sampled_from([256, 1024, 8192])),
            "weight_buffer_bytes": draw(st.sampled_from([256, 1024, 8192])),
            "output_buffer_bytes": draw(st.sampled_from([256, 1024, 8192])),
            "max_tokens_per_tile": draw(st.integers(1, 16)),
        },
        "dram": {
            "bandwidth_gb_per_s": draw(st.sampled_from(BANDWIDTHS)),
            "latency_cycles": draw(st.sampled_from([0, 3, 20, 100])),
            "burst_bytes": draw(st.sampled_from([1, 8, 64])),
        },
        "sparsity": draw(sparsity(df)),
    }


shapes = st.tuples(st.integers(1, 40), st.integers(1, 64), st.integers(1, 48), st.integers(0, 2**31 - 1))


def _x(T: int, K: int, seed: int) -> np.ndarray:  # noqa: N803
    return np.random.default_rng(seed).normal(size=(T, K)).astype(np.float16)


def cycles(cfg: dict, x: np.ndarray, O: int) -> int:  # noqa: N803
    hw = HwConfig.model_validate(cfg)
    work = build_site_work(hw, x, O)
    return simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles).cycles


def _with(cfg: dict, section: str, **kv) -> dict:
    return {**cfg, section: {**cfg[section], **kv}}


def _tiles_ok(cfg: dict, T: int, K: int, O: int) -> bool:  # noqa: N803
    try:
        choose_tiling(HwConfig.model_validate(cfg), T, K, O)
    except TilingError:
        return False
    return True


# --- 1. bandwidth and latency --------------------------------------------------------------------------------
@FAST
@given(machines(), shapes, st.data())
def test_more_bandwidth_never_costs_cycles(cfg, shape, data):
    T, K, O, seed = shape  # noqa: N806
    assume(_tiles_ok(cfg, T, K, O))
    x = _x(T, K, seed)
    lo, hi = sorted(data.draw(st.lists(st.sampled_from(BANDWIDTHS), min_size=2, max_size=2, unique=True)))
    slow = cycles(_with(cfg, "dram", bandwidth_gb_per_s=lo), x, O)
    fast = cycles(_with(cfg, "dram", bandwidth_gb_per_s=hi), x, O)
    assert fast <= slow, (lo, slow, hi, fast)


@FAST
@given(machines(), shapes, st.data())
def test_less_dram_latency_never_costs_cycles(cfg, shape, data):
    T, K, O, seed = shape  # noqa: N806
    assume(_tiles_ok(cfg, T, K, O))
    x = _x(T, K, seed)
    lo, hi = sorted(data.draw(st.lists(st.integers(0, 300), min_size=2, max_size=2, unique=True)))
    assert cycles(_with(cfg, "dram", latency_cycles=lo), x, O) <= cycles(_with(cfg, "dram", latency_cycles=hi), x, O)


def test_bandwidth_sweep_on_a_trace_is_monotone(tmp_path):
    trace = make_test_trace(tmp_path / "t.npz", tokens=8, layers=1)
    for cfg in ("dense", "nm2_4", "unstructured"):
        base = load_hw(HW_DIR / f"{cfg}.yaml").model_dump()
        prev = None
        for bw in (16.0, 64.0, 128.0, 256.0, 1024.0, math.inf):
            hw = HwConfig.model_validate(_with(base, "dram", bandwidth_gb_per_s=bw))
            with Trace(trace) as tr:
                res = simulate(hw, tr)
            per_site = [r["cycles"] for r in res.sites]
            if prev is not None:
                assert all(a <= b for a, b in zip(per_site, prev, strict=True)), (cfg, bw)
            prev = per_site


# --- 2. N:M against dense ------------------------------------------------------------------------------------
@st.composite
def provisioned_nm_machines(draw) -> dict:
    """A machine whose sparse hardware is provisioned (see the module docstring) and its dynamic N:M config."""
    cfg = draw(machines())
    df = cfg["array"]["dataflow"]
    n, m = draw(st.sampled_from(PATTERNS))
    fmt = draw(st.sampled_from(["index", "bitmask"]))
    wb = cfg["precision"]["weight_bytes"]
    meta_bw = 64.0
    if df == "mma":
        mm = dict(cfg["array"]["mma"])
        op = mm["tokens"] * mm["reduction"] * 2 + mm["outputs"] * candidate_rows(mm["reduction"], n, m) * wb
        mm["operand_buffer_read_bytes_per_cycle"] = float(math.ceil(mm["units"] * op / mm["issue_interval_cycles"]))
        bits = metadata_bits_per_group(n, m, fmt) / n
        meta_bw = float(
            max(1, math.ceil(mm["units"] * mm["tokens"] * mm["reduction"] * bits / 8 / mm["issue_interval_cycles"]))
        )
        cfg = {**cfg, "array": {**cfg["array"], "mma": mm}}
    elif df == "ws":
        R = cfg["array"]["systolic"]["rows"]  # noqa: N806
        rpc = min(4096, max(R, (math.ceil(R / n) + 1) * m))  # a sparse fold's candidate rows in one cycle
        cfg = {
            **cfg,
            "array": {**cfg["array"], "systolic": {**cfg["array"]["systolic"], "weight_load_rows_per_cycle": rpc}},
        }
    dense = {**cfg, "sparsity": {"kind": "dense"}}
    sparse = {
        **cfg,
        "sparsity": {
            "kind": "nm",
            "n": n,
            "m": m,
            "weight_fetch": draw(st.sampled_from(["dense", "gather_rows"])),
            "metadata_format": fmt,
            "compressor": {
                "groups_per_cycle": draw(st.integers(1, 8)),
                "latency_cycles": draw(st.integers(0, 6)),
                "placement": draw(st.sampled_from(["consumer", "producer"])),
            },
            "decoder": {"latency_cycles": draw(st.integers(0, 4))},
            "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": meta_bw},
        },
    }
    return dense, sparse


def nm_extra_allowance(hw: HwConfig, work) -> int:
    """The right-hand side of the bound in the module docstring, minus cycles(dense)."""
    sp = hw.sparsity
    allowance = sp.decoder.latency_cycles * work.n_t * work.n_o * work.n_k
    allowance += int(np.sum(work.compress_busy)) + work.compress_latency * int(np.count_nonzero(work.compress_busy))
    if sp.weight_fetch == "gather_rows":
        bpc = hw.dram_bytes_per_cycle
        others = [*work.act_read_bytes, *work.meta_read_bytes, *work.out_bytes]
        longest = 0 if math.isinf(bpc) else max(math.ceil(b / bpc - 1e-9) for b in others)
        allowance += (hw.dram.latency_cycles + longest) * work.n_t
    if sp.compressor.placement == "producer" and not math.isinf(hw.dram_bytes_per_cycle):
        allowance += work.n_t
    return allowance


def _nm_vs_dense(dense_cfg: dict, sparse_cfg: dict, T: int, groups: int, O: int, seed: int):  # noqa: N803
    m = sparse_cfg["sparsity"]["m"]
    K = groups * m  # noqa: N806
    hd, hs = HwConfig.model_validate(dense_cfg), HwConfig.model_validate(sparse_cfg)
    try:
        td, ts = choose_tiling(hd, T, K, O), choose_tiling(hs, T, K, O)
    except TilingError:
        return None
    if td != ts or ts.K_tile % m:
        return None
    x = _x(T, K, seed)
    wd, ws = build_site_work(hd, x, O), build_site_work(hs, x, O)
    cd = simulate_site(wd, hd.dram_bytes_per_cycle, hd.dram.latency_cycles).cycles
    cs = simulate_site(ws, hs.dram_bytes_per_cycle, hs.dram.latency_cycles).cycles
    return cd, cs, nm_extra_allowance(hs, ws)


@settings(FAST, max_examples=120)
@given(provisioned_nm_machines(), st.integers(1, 40), st.integers(1, 8), st.integers(1, 48), st.integers(0, 2**31 - 1))
def test_nm_costs_at_most_dense_plus_its_latencies(pair, T, groups, O, seed):  # noqa: N803
    res = _nm_vs_dense(*pair, T, groups, O, seed)
    assume(res is not None)
    cd, cs, allowance = res
    assert cs <= cd + allowance, (cs, cd, allowance)


def test_gather_rows_weight_read_can_queue_behind_another_transfer():
    """The case hypothesis found: why the gather_rows term holds one transfer occupancy besides the latency.

    1:2 on a 2x4 ws, 0.5 B/cycle, no latency, 3 token tiles of 2 tokens: each tile's weight read (1-2 B) is
    made only after its compression, when the channel has just started the next tile's 8-byte activation read
    (16 cycles) - in dense it is requested at once and goes first.
    """
    sys_ = {"rows": 2, "cols": 4, "weight_load_rows_per_cycle": 6, "os_weight_link_factor": 1.0}
    dense = {
        "name": "g",
        "clock_hz": 1e9,
        "precision": {"activation_bytes": 2, "weight_bytes": 0.5, "accumulator_bytes": 4, "output_bytes": 2},
        "array": {"dataflow": "ws", "scalesim_compat": False, "systolic": sys_},
        "sram": {
            "activation_buffer_bytes": 256,
            "weight_buffer_bytes": 256,
            "output_buffer_bytes": 256,
            "max_tokens_per_tile": 2,
        },
        "dram": {"bandwidth_gb_per_s": 0.5, "latency_cycles": 0, "burst_bytes": 1},
        "sparsity": {"kind": "dense"},
    }
    sparse = {
        **dense,
        "sparsity": {
            "kind": "nm",
            "n": 1,
            "m": 2,
            "weight_fetch": "gather_rows",
            "compressor": {"groups_per_cycle": 1, "latency_cycles": 0, "placement": "consumer"},
            "decoder": {"latency_cycles": 0},
            "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": 64.0},
        },
    }
    cd, cs, allowance = _nm_vs_dense(dense, sparse, 6, 1, 1, 0)
    assert (cd, cs) == (87, 94)
    compress_only = 3 * 2  # 3 token tiles x 2 groups at 1 group per cycle, no latency
    assert cs > cd + compress_only  # more than the compressor's time ...
    assert cs <= cd + allowance  # ... within the bound with the queued activation read (16 cycles per tile)


def test_nm_bound_on_the_shipped_configs_over_a_trace(tmp_path):
    """The shipped machine is provisioned (2048 B/cycle operands up to m/n = 3, metadata within the issue rate)."""
    traces = [
        make_test_trace(tmp_path / "p.npz", tokens=40, layers=1, seed=1),
        make_test_trace(tmp_path / "d.npz", tokens=2, layers=1, phase="decode", seed=2),
    ]
    dense = load_hw(HW_DIR / "dense.yaml")
    for cfg in ("nm2_4", "nm4_8", "nm8_16", "nm16_32"):
        hw = load_hw(HW_DIR / f"{cfg}.yaml")
        for path in traces:
            with Trace(path) as tr:
                sites = list(tr.iter_sites())
            for site, x in sites:
                for r0 in range(x.shape[0]) if "d.npz" in str(path) else [None]:
                    xs = x if r0 is None else x[r0 : r0 + 1]
                    wd, ws = build_site_work(dense, xs, site.O), build_site_work(hw, xs, site.O)
                    assert wd.tiling == ws.tiling
                    cd = simulate_site(wd, dense.dram_bytes_per_cycle, dense.dram.latency_cycles).cycles
                    cs = simulate_site(ws, hw.dram_bytes_per_cycle, hw.dram.latency_cycles).cycles
                    assert cs <= cd + nm_extra_allowance(hw, ws), (cfg, site.name, cs, cd)


def test_sparsity_can_cost_cycles_without_the_premises():
    """Not a bug: under-provisioned sparse hardware loses to dense, and the breakdown says why."""
    base = {
        "name": "p",
        "clock_hz": 1e9,
        "sram": {"activation_buffer_bytes": 1 << 20, "weight_buffer_bytes": 1 << 20, "output_buffer_bytes": 1 << 20},
        "dram": {"bandwidth_gb_per_s": math.inf, "latency_cycles": 0},
    }

    def nm(n, m):
        return {
            "kind": "nm",
            "n": n,
            "m": m,
            "compressor": {"groups_per_cycle": 64, "latency_cycles": 0},
            "decoder": {"latency_cycles": 0},
            "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": 1e6},
        }

    # ws, one weight row loaded per cycle, one token: a 3:4 fold moves its groups' 4 candidate rows per 3 PE
    # rows, which the 1-token stream cannot hide
    ws = {**base, "array": {"dataflow": "ws", "systolic": {"rows": 8, "cols": 1, "weight_load_rows_per_cycle": 1}}}
    x = _x(1, 60, 0)
    hw = HwConfig.model_validate({**ws, "sparsity": nm(3, 4)})
    assert int(build_site_work(hw, x, 4).tile_parts["weight_load"].sum()) > 0
    assert cycles({**ws, "sparsity": nm(3, 4)}, x, 4) > cycles({**ws, "sparsity": {"kind": "dense"}}, x, 4)
    # mma whose operand buffer feeds dense instructions at the issue rate but not 4/3-wider weight operands
    mma = {
        **base,
        "array": {
            "dataflow": "mma",
            "mma": {
                "units": 1,
                "tokens": 2,
                "outputs": 16,
                "reduction": 16,
                "issue_interval_cycles": 1,
                "latency_cycles": 0,
                "operand_buffer_read_bytes_per_cycle": 576,
            },
        },
    }
    x = _x(2, 64, 0)
    hw = HwConfig.model_validate({**mma, "sparsity": nm(3, 4)})
    assert int(build_site_work(hw, x, 64).tile_parts["operand_stall"].sum()) > 0
    assert cycles({**mma, "sparsity": nm(3, 4)}, x, 64) > cycles({**mma, "sparsity": {"kind": "dense"}}, x, 64)


# --- 3. determinism ------------------------------------------------------------------------------------------
def _numbers(obj):
    """Every number (and string) of a result, flattened in a fixed order, for exact comparison."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return [(k, _numbers(v)) for k, v in sorted(obj.items())]
    if isinstance(obj, (list, tuple)):
        return [_numbers(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


@FAST
@given(machines(), shapes)
def test_same_inputs_identical_site_results(cfg, shape):
    T, K, O, seed = shape  # noqa: N806
    assume(_tiles_ok(cfg, T, K, O))
    runs = []
    for _ in range(2):
        hw = HwConfig.model_validate(cfg)
        work = build_site_work(hw, _x(T, K, seed), O)
        timing = simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles)
        runs.append((_numbers(timing), _numbers(work.actions), _numbers(work.tile_parts), _numbers(work.stats)))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_same_trace_identical_run_results(tmp_path, phase):
    a = make_test_trace(tmp_path / "a.npz", tokens=6 if phase == "prefill" else 2, layers=1, phase=phase, seed=9)
    b = make_test_trace(tmp_path / "b.npz", tokens=6 if phase == "prefill" else 2, layers=1, phase=phase, seed=9)
    assert a.read_bytes() == b.read_bytes()  # same arguments, same trace bytes
    for cfg in ("dense", "nm2_4", "nm16_32", "unstructured"):
        hw = load_hw(HW_DIR / f"{cfg}.yaml")
        results = []
        for path in (a, a, b):
            with Trace(path) as tr:
                results.append(_numbers(simulate(hw, tr)))
        assert results[0] == results[1] == results[2], cfg


# --- slow: the same properties with many more (and fresh) examples -------------------------------------------
SLOW = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@SLOW
@given(machines(), shapes, st.data())
def test_more_bandwidth_never_costs_cycles_many(cfg, shape, data):
    test_more_bandwidth_never_costs_cycles.hypothesis.inner_test(cfg, shape, data)


@pytest.mark.slow
@SLOW
@given(provisioned_nm_machines(), st.integers(1, 64), st.integers(1, 12), st.integers(1, 64), st.integers(0, 2**31 - 1))
def test_nm_costs_at_most_dense_plus_its_latencies_many(pair, T, groups, O, seed):  # noqa: N803
    test_nm_costs_at_most_dense_plus_its_latencies.hypothesis.inner_test(pair, T, groups, O, seed)
