"""Simulate a whole trace on one hardware config: sites one after another in trace order.

``simulate(hw, trace)`` is a pure function of its inputs (no randomness, no clock): the same config and trace
give identical results. It imports neither pandas nor torch; ``accelsim.report`` turns results into tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from accelsim import __version__
from accelsim.config.hw import HwConfig
from accelsim.sim.actions import ACTIONS
from accelsim.sim.engine import BREAKDOWN, SiteTiming, simulate_site
from accelsim.sim.fast_engine import occupancy_cycles, simulate_site_fast
from accelsim.sim.tiling import check_sites
from accelsim.sim.work import SiteWork, build_site_work, mask_key, site_mask
from accelsim.trace.format import Trace

DRAM_KINDS = ("weight", "activation", "metadata", "output")

#: Site engines: ``fast`` (compiled kernel, default) and ``simpy`` (the reference event model); both give the
#: identical :class:`SiteTiming` (``tests/test_engine_equivalence.py``).
ENGINES: dict[str, Callable[..., SiteTiming]] = {"fast": simulate_site_fast, "simpy": simulate_site}


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
    engine: str = "fast",
    memo: bool = True,
    weight_scales: tuple[int, float] | None = None,
) -> RunResult:
    """Simulate every site of ``trace`` on ``hw`` (decode: every step of every site, one token per sequence).

    Args:
        progress: called as ``progress(done, total)`` after each site.
        engine: ``"fast"`` (compiled site kernel) or ``"simpy"`` (the reference event model); same numbers.
        memo: reuse the work and timing of an identical earlier site step of this run (same numbers).
        weight_scales: ``(group_size, scale_bytes)`` of group-quantised weights (``build_site_work``).
    """
    return simulate_many([hw], trace, progress=progress, engine=engine, memo=memo, weight_scales=weight_scales)[0]


def simulate_many(
    hws: Sequence[HwConfig],
    trace: Trace,
    *,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "fast",
    memo: bool = True,
    weight_scales: tuple[int, float] | None = None,
) -> list[RunResult]:
    """:func:`simulate` of several configs in one pass over the trace: each site input is read once and each
    distinct mask (``work.mask_key``) computed once per site, shared by every config that selects alike."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    runs = [_ConfigRun(hw, trace, ENGINES[engine], memo, weight_scales) for hw in hws]
    n_sites = len(trace.sites)
    by_key = {mask_key(r.hw): r.hw for r in runs}
    for done, (site, x, masks) in enumerate(_sites_with_masks(trace, by_key), start=1):
        for r in runs:
            r.site(site, x, masks[mask_key(r.hw)])
        if progress is not None:
            progress(done, n_sites)
    return [_finish(r.hw, trace, r.rows) for r in runs]


#: Read the next input (and compute its masks) in a worker thread; ``False``: all in this thread (profiling).
PREFETCH = True


def _sites_with_masks(trace: Trace, by_key: dict[tuple, HwConfig]) -> Iterator[tuple[Any, np.ndarray, dict]]:
    """``(site, x, {mask key: mask})`` in trace order. Sites that read one input in a row share it and its masks;
    a worker thread reads the next input and computes its masks while this one is simulated (the inflate, the
    finiteness check and the mask kernels release the GIL). At most two inputs are held at a time."""
    runs: list[list] = []
    for s in trace.sites:
        if runs and runs[-1][0].input_id == s.input_id:
            runs[-1].append(s)
        else:
            runs.append([s])

    def load(site) -> tuple[np.ndarray, dict]:
        x = trace.site_input(site)
        return x, {key: site_mask(hw, x) for key, hw in by_key.items()}

    if not PREFETCH:
        for group in runs:
            x, masks = load(group[0])
            for s in group:
                yield s, x, masks
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="accelsim-prefetch") as pool:
        nxt = pool.submit(load, runs[0][0]) if runs else None
        for i, group in enumerate(runs):
            assert nxt is not None
            x, masks = nxt.result()
            nxt = pool.submit(load, runs[i + 1][0]) if i + 1 < len(runs) else None
            for s in group:
                yield s, x, masks


class _ConfigRun:
    """One config's pass over the trace: its rows, the on-chip input, and the memo of identical site steps."""

    def __init__(
        self,
        hw: HwConfig,
        trace: Trace,
        site_engine: Callable[..., SiteTiming],
        memo: bool,
        weight_scales: tuple[int, float] | None = None,
    ):
        check_sites(hw, [(s.K, s.O) for s in trace.sites])
        self.hw, self.site_engine = hw, site_engine
        self.weight_scales = weight_scales  # fixed for the whole run, so the memo keys need not name it
        self.bpc, self.lat = hw.dram_bytes_per_cycle, hw.dram.latency_cycles
        self.decode = trace.phase == "decode"
        self.batch = trace.n_sequences if self.decode else 1
        self.rows: list[dict[str, Any]] = []
        self.prev_input: str | None = None
        # Exact memo: a step's work is a function of (hw, the rows of x it reads, O, reuse); without a mask, or
        # with a shape-only mask, of the shape alone. Keys name exactly those inputs, so a hit is the same work.
        self.memo: dict[tuple, tuple[SiteWork, SiteTiming]] | None = {} if memo else None
        self.by_shape = mask_key(hw)[0] in ("dense", "static")
        # Cross-site weight prefetch (dram.prefetch_next_site): the previous site's tail idle DRAM cycles per step.
        self.weight_prefetch = hw.dram.prefetch_next_site
        self.prev_tail: dict[int, int] = {}

    def _prefetched(self, key: tuple | None, work: SiteWork, budget: int, reuse: bool):
        """The step with its first weight tile (or its leading whole bursts) already on chip, or ``None``.

        The previous site's tail idle channel cycles ``budget`` take the whole first tile when its occupancy fits,
        otherwise the whole bursts that fit (the rest of the tile, with its row-activation cycles, is read as
        usual). With ``gather_rows`` only when the rows are known: the input is the previous site's, on chip.
        Returns ``(timing, prefetched bytes, channel cycles moved to the previous site)``."""
        nbytes = int(work.weight_bytes[0])
        if budget <= 0 or nbytes <= 0 or (work.gather_rows and not reuse):
            return None
        extra = float(work.weight_extra_cycles[0])
        if int(occupancy_cycles(np.array([nbytes]), self.bpc, extra)[0]) <= budget:
            pf_bytes, pf_extra = nbytes, extra
        else:
            burst = self.hw.dram.burst_bytes
            pf_bytes, pf_extra = min(nbytes - 1, int(budget * self.bpc) // burst * burst), 0.0
            if pf_bytes <= 0:
                return None
        occ = int(occupancy_cycles(np.array([pf_bytes]), self.bpc, pf_extra)[0])
        pkey = None if key is None else (*key, "prefetch", pf_bytes)
        if pkey is not None and pkey in self.memo:
            return self.memo[pkey]
        wb, wx = np.array(work.weight_bytes, dtype=np.int64), np.array(work.weight_extra_cycles, dtype=np.float64)
        wb[0] -= pf_bytes
        wx[0] -= pf_extra
        timing = self.site_engine(replace(work, weight_bytes=wb, weight_extra_cycles=wx), self.bpc, self.lat)
        out = (timing, pf_bytes, occ)
        if pkey is not None:
            self.memo[pkey] = out
        return out

    def _step(self, site, xs: np.ndarray, ms: np.ndarray | None, r0: int, reuse: bool):
        key = None
        if self.memo is not None:
            src = ("shape",) if self.by_shape else (site.input_id, r0)
            key = (*src, xs.shape, site.O, reuse)
            if key in self.memo:
                return (*self.memo[key], key)
        ws = self.weight_scales
        work = build_site_work(self.hw, xs, site.O, mask=ms, reuse_input=reuse, weight_scales=ws)
        if reuse and work.n_act != 1:
            work = build_site_work(self.hw, xs, site.O, mask=ms, reuse_input=False, weight_scales=ws)
        out = (work, self.site_engine(work, self.bpc, self.lat))
        if key is not None:
            self.memo[key] = out
        return (*out, key)

    def site(self, site, x: np.ndarray, mask: np.ndarray | None) -> None:
        hw, batch = self.hw, self.batch
        if self.memo is not None and not self.by_shape and site.input_id != self.prev_input:
            self.memo.clear()  # masked keys name one input: they cannot hit again
        # a decode step holds one token of each of the trace's B sequences (rows r*B .. r*B + B - 1)
        steps = [(r, r + batch) for r in range(0, x.shape[0], batch)] if self.decode else [(0, x.shape[0])]
        row = _site_row(site, len(steps), x.shape[0])
        if self.weight_prefetch:
            row.update({"prefetched_weight_bytes": 0, "prefetch_saved_cycles": 0})
        tails: dict[int, int] = {}
        for s_idx, (r0, r1) in enumerate(steps):
            xs = x[r0:r1]
            ms = None if mask is None else mask[r0:r1]
            # The previous site's input is still on chip (and compressed) when it was one activation tile
            # (one token tile under full_k).
            reuse = self.prev_input == site.input_id
            work, timing, key = self._step(site, xs, ms, r0, reuse)
            if self.weight_prefetch:
                pf = self._prefetched(key, work, self.prev_tail.get(s_idx, 0), reuse)
                if pf is not None:
                    cold = timing.cycles
                    timing, nbytes, occ = pf
                    row["prefetched_weight_bytes"] += nbytes
                    row["prefetch_saved_cycles"] += cold - timing.cycles
                    self.rows[-1]["dram_busy_cycles"] += occ  # the transfer ran in the previous site's idle tail
                tails[s_idx] = timing.tail_idle_cycles
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
        self.prev_input = site.input_id
        self.prev_tail = tails
        peak = hw.peak_macs_per_cycle
        row["utilization"] = row["mac_active_count"] / (row["cycles"] * peak) if row["cycles"] else 0.0
        row["dense_equivalent_utilization"] = row["dense_macs"] / (row["cycles"] * peak) if row["cycles"] else 0.0
        row["kept_density"] = row["kept_values"] / (row["tokens"] * site.K)
        row["union_density"] = row["union_rows"] / row["real_rows"] if row["real_rows"] else 0.0
        row["time_s"] = row["cycles"] / hw.clock_hz
        self.rows.append(row)


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
