"""Validation group 3: bounds, on random small configs (per site) and on synthetic traces (per site of a run).

For one site (one pass: a prefill GEMM or one decode step) with ``bpc`` bytes per DRAM cycle and latency
``lat``:

Lower bounds (each is a reason the site cannot be faster):

* compute: the PE runs its compute tiles one after another: ``cycles >= PE busy``; and useful MACs at the
  array's exact peak rate: ``cycles >= mac_active * issue_interval / (units * t*o*k)`` (``mma``) or
  ``mac_active / (R*C)`` (systolic);
* DRAM: every byte crosses the one channel, and the last transfer's data is usable ``lat`` later:
  ``cycles >= ceil(total bytes / bpc) + lat`` (with infinite bandwidth: ``lat``);
* fill + compute + drain: the first compute tile needs its activations and weights (and, on the path, their
  compression), and the last output tile is written after the last compute tile:
  ``cycles >= fill + PE busy + ceil(last output bytes / bpc) + lat``.

Upper bound (the sum of stage times): at every cycle before the site ends, the PE is busy, or the channel is
transferring, or some transfer is within its latency, or the compressor is busy or within its latency (a
waiting PE waits for one of those; nothing waits for nothing). So
``cycles <= PE busy + DRAM busy + lat * (transfers of > 0 bytes) + compressor busy + compressor latency * (token
tiles compressed)``.

And the cycle breakdown columns sum exactly to ``cycles`` per site and in the run totals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_hw
from accelsim.config.hw import HwConfig
from accelsim.sim.engine import BREAKDOWN, simulate_site
from accelsim.sim.run import simulate
from accelsim.sim.tiling import TilingError
from accelsim.sim.work import build_site_work
from accelsim.trace.format import Trace
from accelsim.trace.synthetic import make_test_trace
from tests.test_validation_reference import random_case

HW_DIR = Path(__file__).resolve().parents[1] / "hw_configs"
SHIPPED = ("dense", "nm2_4", "nm4_8", "nm8_16", "nm16_32", "unstructured")


def exact_peak_rate(hw: HwConfig) -> float:
    a = hw.array
    if a.dataflow == "mma":
        mm = a.mma
        return mm.units * mm.tokens * mm.outputs * mm.reduction / mm.issue_interval_cycles
    return a.systolic.rows * a.systolic.cols


def _occ(nbytes: float, bpc: float) -> int:
    return 0 if math.isinf(bpc) or nbytes <= 0 else math.ceil(nbytes / bpc - 1e-9)


def site_bounds(hw: HwConfig, work) -> tuple[int, int]:
    """(lower, upper) bound of one pass from its work (bytes, tile cycles) and the config alone."""
    bpc, lat = hw.dram_bytes_per_cycle, hw.dram.latency_cycles
    pe = int(np.sum(work.tile_cycles))
    a = work.actions
    total = (
        a["dram_read_byte_activation"]
        + a["dram_read_byte_metadata"]
        + a["dram_read_byte_weight"]
        + a["dram_write_byte_output"]
    )
    compute = max(pe, math.ceil(a["mac_active"] / exact_peak_rate(hw) - 1e-9))
    dram = (_occ(total, bpc) + lat) if total > 0 else 0
    act0, meta0, w0 = int(work.act_read_bytes[0]), int(work.meta_read_bytes[0]), int(work.weight_bytes[0])
    fill = _occ(act0 + meta0 + w0, bpc) + (lat if act0 + meta0 + w0 > 0 else 0)
    if act0 + meta0 > 0:
        fill = max(fill, _occ(act0 + meta0, bpc) + lat + int(work.compress_busy[0]) + work.compress_latency)
    out_last = int(work.out_bytes[-1])
    drain = (_occ(out_last, bpc) + lat) if out_last > 0 else 0
    lower = max(compute, dram, fill + pe + drain)

    transfers = [*work.act_read_bytes, *work.meta_read_bytes, *work.weight_bytes, *work.out_bytes]
    dram_busy = sum(_occ(b, bpc) for b in transfers)
    n_nonzero = sum(1 for b in transfers if b > 0)
    compressing = int(np.count_nonzero(work.compress_busy))
    upper = pe + dram_busy + lat * n_nonzero + int(np.sum(work.compress_busy)) + work.compress_latency * compressing
    return lower, upper


N_SITES = 400


def test_bounds_on_random_sites():
    rng = np.random.default_rng(42)
    done = tight_low = tight_up = 0
    while done < N_SITES:
        case = random_case(rng)
        if case is None:
            continue
        hw, T, K, O, reuse = case  # noqa: N806
        # larger shapes than the reference model can step
        T, K, O = T * int(rng.integers(1, 5)), K * int(rng.integers(1, 5)), O * int(rng.integers(1, 5))  # noqa: N806
        try:
            x = rng.normal(size=(T, K)).astype(np.float16)
            work = build_site_work(hw, x, O, reuse_input=reuse)
        except TilingError:  # the bigger K does not fit this tiny machine
            continue
        t = simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles)
        lower, upper = site_bounds(hw, work)
        where = (hw.model_dump_json(exclude={"name", "clock_hz", "cost"}), T, K, O, reuse)
        assert lower <= t.cycles <= upper, (lower, t.cycles, upper, where)
        assert t.dram_busy_cycles == sum(
            _occ(b, hw.dram_bytes_per_cycle)
            for b in [*work.act_read_bytes, *work.meta_read_bytes, *work.weight_bytes, *work.out_bytes]
        )
        assert t.pe_busy_cycles == int(np.sum(work.tile_cycles))
        assert sum(t.breakdown.values()) == t.cycles
        assert set(t.breakdown) == set(BREAKDOWN) and min(t.breakdown.values()) >= 0, t.breakdown
        tight_low += t.cycles == lower
        tight_up += t.cycles == upper
        done += 1
    # the bounds are not vacuous: some sites meet each of them exactly
    assert tight_low > 0 and tight_up > 0, (tight_low, tight_up)
    print(f"bounds met exactly: lower {tight_low}, upper {tight_up} of {done}")


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("bounds")
    return {
        "prefill": make_test_trace(d / "prefill.npz", tokens=24, layers=1, seed=3),
        "decode": make_test_trace(d / "decode.npz", tokens=3, layers=1, phase="decode", seed=4),
    }


def _variants():
    """The six shipped configs, and some of them on other arrays, bandwidths and placements."""
    out = []
    for cfg in SHIPPED:
        out.append((cfg, {}))
    systolic = {"rows": 16, "cols": 16, "weight_load_rows_per_cycle": 2, "os_weight_link_factor": 2.0}
    out.append(("nm2_4", {"array": {"dataflow": "ws", "systolic": systolic}}))
    out.append(("dense", {"array": {"dataflow": "os", "systolic": systolic}}))
    out.append(("nm4_8", {"array": {"dataflow": "os", "systolic": systolic}}))
    out.append(("unstructured", {"array": {"dataflow": "os", "systolic": systolic}}))
    out.append(("nm2_4", {"dram": {"bandwidth_gb_per_s": 16.0, "latency_cycles": 300, "burst_bytes": 64}}))
    out.append(("nm8_16", {"dram": {"bandwidth_gb_per_s": float("inf"), "latency_cycles": 50, "burst_bytes": 64}}))
    out.append(
        ("nm2_4", {"sparsity": {"compressor": {"groups_per_cycle": 8, "latency_cycles": 3, "placement": "producer"}}})
    )
    out.append(("nm2_4", {"sparsity": {"compressor": {"groups_per_cycle": 2, "latency_cycles": 40}}}))
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def variant_hw(cfg: str, over: dict) -> HwConfig:
    base = load_hw(HW_DIR / f"{cfg}.yaml").model_dump()
    if "array" in over:
        base["array"] = {"dataflow": over["array"]["dataflow"], "systolic": over["array"]["systolic"]}
        over = {k: v for k, v in over.items() if k != "array"}
    return HwConfig.model_validate(_merge(base, over))


@pytest.mark.parametrize(("cfg", "over"), _variants(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_bounds_and_breakdown_on_synthetic_traces(traces, cfg, over, phase):
    hw = variant_hw(cfg, over)
    bpc, lat = hw.dram_bytes_per_cycle, hw.dram.latency_cycles
    with Trace(traces[phase]) as tr:
        res = simulate(hw, tr)
    for row in res.sites:
        cyc, steps = row["cycles"], row["steps"]
        assert sum(row[f"{p}_cycles"] for p in BREAKDOWN) == cyc, row["name"]
        total_bytes = sum(row[f"dram_{k}_bytes"] for k in ("weight", "activation", "metadata", "output"))
        # per pass the DRAM bound is ceil(bytes/bpc) + lat; summed over passes
        assert cyc >= row["pe_busy_cycles"]
        assert cyc >= _occ(total_bytes, bpc) + steps * lat
        assert cyc >= row["mac_active_count"] / exact_peak_rate(hw) - 1e-9
        tokens_per_pass = row["tokens"] // steps
        n_t = math.ceil(tokens_per_pass / row["T_tile"])
        n_out = n_t * math.ceil(row["O"] / row["O_tile"])
        n_tiles = n_out * math.ceil(row["K"] / row["K_tile"])
        max_transfers = steps * (2 * n_t + n_tiles + n_out)
        cmp_lat = hw.sparsity.compressor.latency_cycles if hw.sparsity.compressor is not None else 0
        upper = (
            row["pe_busy_cycles"]
            + row["dram_busy_cycles"]
            + lat * max_transfers
            + row["compressor_busy_cycles"]
            + cmp_lat * steps * n_t
        )
        assert cyc <= upper, (row["name"], cyc, upper)
        assert row["dram_busy_cycles"] >= _occ(total_bytes, bpc)
    tot = res.totals
    assert tot["cycles"] == sum(r["cycles"] for r in res.sites)
    assert sum(tot[f"{p}_cycles"] for p in BREAKDOWN) == tot["cycles"]
