"""Simulate a whole trace on one hardware config: sites one after another in trace order.

``simulate(hw, trace)`` is a pure function of its inputs (no randomness, no clock): the same config and trace
give identical results. It imports neither pandas nor torch; ``accelsim.report`` turns results into tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accelsim import __version__
from accelsim.config.hw import HwConfig
from accelsim.sim.actions import ACTIONS
from accelsim.sim.engine import BREAKDOWN, simulate_site
from accelsim.sim.tiling import check_sites
from accelsim.sim.work import build_site_work, site_mask
from accelsim.trace.format import Trace

DRAM_KINDS = ("weight", "activation", "metadata", "output")


@dataclass
class RunResult:
    """Per-site rows and run totals; every numeric key carries its unit."""

    hw_name: str
    pattern: str
    phase: str
    synthetic: bool
    clock_hz: float
    peak_macs_per_cycle: int
    sites: list[dict[str, Any]]
    totals: dict[str, Any]
    union_density_by_kind: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)


def _site_row(site, steps: int, tokens: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "site": site.index,
        "name": site.name,
        "layer": site.layer,
        "kind": site.kind,
        "K": site.K,
        "O": site.O,
        "tokens": tokens,
        "steps": steps,
        "cycles": 0,
    }
    row.update({f"{p}_cycles": 0 for p in BREAKDOWN})
    row.update({f"dram_{k}_bytes": 0 for k in DRAM_KINDS})
    row.update({"dram_busy_cycles": 0, "compressor_busy_cycles": 0, "pe_busy_cycles": 0})
    row.update({f"{a}_count": 0 for a in ACTIONS})
    row.update({"dense_macs": 0, "kept_values": 0, "union_rows": 0.0, "real_rows": 0})
    return row


def simulate(
    hw: HwConfig,
    trace: Trace,
    *,
    progress: Callable[[int, int], None] | None = None,
    weight_scales: tuple[int, float] | None = None,
) -> RunResult:
    """Simulate every site of ``trace`` on ``hw`` (decode: every step of every site, one token per sequence).

    Args:
        progress: called as ``progress(done, total)`` after each site.
        weight_scales: ``(group_size, scale_bytes)`` of group-quantised weights (``build_site_work``).
    """
    bpc = hw.dram_bytes_per_cycle
    lat = hw.dram.latency_cycles
    decode = trace.phase == "decode"
    batch = trace.n_sequences if decode else 1
    rows: list[dict[str, Any]] = []
    mask_cache: tuple[str, np.ndarray | None] | None = None
    prev_input: str | None = None
    n_sites = len(trace.sites)
    check_sites(hw, [(s.K, s.O) for s in trace.sites])
    for done, (site, x) in enumerate(trace.iter_sites(), start=1):
        if mask_cache is None or mask_cache[0] != site.input_id:
            mask_cache = (site.input_id, site_mask(hw, x))
        mask = mask_cache[1]
        # a decode step holds one token of each of the trace's B sequences (rows r*B .. r*B + B - 1)
        steps = [(r, r + batch) for r in range(0, x.shape[0], batch)] if decode else [(0, x.shape[0])]
        row = _site_row(site, len(steps), x.shape[0])
        for r0, r1 in steps:
            xs = x[r0:r1]
            ms = None if mask is None else mask[r0:r1]
            # The previous site's input is still on chip (and compressed) when it was one token tile.
            reuse = prev_input == site.input_id
            work = build_site_work(hw, xs, site.O, mask=ms, reuse_input=reuse, weight_scales=weight_scales)
            if reuse and work.n_t != 1:
                work = build_site_work(hw, xs, site.O, mask=ms, reuse_input=False, weight_scales=weight_scales)
            timing = simulate_site(work, bpc, lat)
            row["cycles"] += timing.cycles
            for p, v in timing.breakdown.items():
                row[f"{p}_cycles"] += v
            for a, v in work.actions.items():
                row[f"{a}_count"] += int(v)
            row["static_cycle_count"] += timing.cycles
            row["dram_weight_bytes"] += work.actions["dram_read_byte_weight"]
            row["dram_activation_bytes"] += work.actions["dram_read_byte_activation"]
            row["dram_metadata_bytes"] += work.actions["dram_read_byte_metadata"]
            row["dram_output_bytes"] += work.actions["dram_write_byte_output"]
            row["dram_busy_cycles"] += timing.dram_busy_cycles
            row["compressor_busy_cycles"] += timing.compressor_busy_cycles
            row["pe_busy_cycles"] += timing.pe_busy_cycles
            row["dense_macs"] += int(work.stats["dense_macs"])
            row["kept_values"] += int(round(work.stats["kept_density"] * xs.size))
            real = work.n_t * site.K
            row["union_rows"] += work.stats["union_density"] * real
            row["real_rows"] += real
            row["T_tile"], row["K_tile"], row["O_tile"] = work.tiling.T_tile, work.tiling.K_tile, work.tiling.O_tile
        prev_input = site.input_id
        peak = hw.peak_macs_per_cycle
        row["utilization"] = row["mac_active_count"] / (row["cycles"] * peak) if row["cycles"] else 0.0
        row["dense_equivalent_utilization"] = row["dense_macs"] / (row["cycles"] * peak) if row["cycles"] else 0.0
        row["kept_density"] = row["kept_values"] / (row["tokens"] * site.K)
        row["union_density"] = row["union_rows"] / row["real_rows"] if row["real_rows"] else 0.0
        row["time_s"] = row["cycles"] / hw.clock_hz
        rows.append(row)
        if progress is not None:
            progress(done, n_sites)
    return _finish(hw, trace, rows)


def _finish(hw: HwConfig, trace: Trace, rows: list[dict[str, Any]]) -> RunResult:
    sum_keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in _NOT_SUMMED]
    totals: dict[str, Any] = {k: sum(r[k] for r in rows) for k in sum_keys}
    peak = hw.peak_macs_per_cycle
    cyc = totals["cycles"]
    totals["time_s"] = cyc / hw.clock_hz
    totals["utilization"] = totals["mac_active_count"] / (cyc * peak) if cyc else 0.0
    totals["dense_equivalent_utilization"] = totals["dense_macs"] / (cyc * peak) if cyc else 0.0
    totals["union_density"] = totals["union_rows"] / totals["real_rows"] if totals["real_rows"] else 0.0
    totals["dram_total_bytes"] = sum(totals[f"dram_{k}_bytes"] for k in DRAM_KINDS)
    totals["sites"] = len(rows)
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        acc = by_kind.setdefault(r["kind"], [0.0, 0.0])
        acc[0] += r["union_rows"]
        acc[1] += r["real_rows"]
    return RunResult(
        hw_name=hw.name,
        pattern=hw.sparsity.label,
        phase=trace.phase,
        synthetic=trace.synthetic,
        clock_hz=hw.clock_hz,
        peak_macs_per_cycle=peak,
        sites=rows,
        totals=totals,
        union_density_by_kind={k: (u / n if n else 0.0) for k, (u, n) in by_kind.items()},
        meta={"accelsim_version": __version__, "model": trace.meta.get("model"), "trace_tokens": rows[0]["tokens"]},
    )


_NOT_SUMMED = {
    "site",
    "layer",
    "K",
    "O",
    "tokens",
    "steps",
    "utilization",
    "dense_equivalent_utilization",
    "kept_density",
    "union_density",
    "T_tile",
    "K_tile",
    "O_tile",
    "time_s",
}
