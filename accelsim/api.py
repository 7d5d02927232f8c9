"""The public Python API: one simulated design point, and sweeps over many.

The CLI and the notebooks call these same functions. ``evaluate`` is a pure function of its inputs (files
are read, nothing is written), so sweep points can run anywhere: ``sweep(..., executor=...)`` takes any
object with ``submit`` (a ``concurrent.futures`` executor, or a ``dask.distributed.Client``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from accelsim.config.hw import HwConfig, load_hw
from accelsim.sim.actions import ACTIONS
from accelsim.sim.run import RunResult, simulate_many
from accelsim.trace.format import Trace, file_sha256


def with_overrides(hw: HwConfig, overrides: Mapping[str, Any]) -> HwConfig:
    """A validated copy of ``hw`` with dotted keys replaced, e.g. ``{"dram.bandwidth_gb_per_s": 512}``."""
    data = hw.model_dump()
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise KeyError(f"override '{dotted}': '{key}' is not a section of the config")
            node = node[key]
        if leaf not in node:
            raise KeyError(f"override '{dotted}': unknown key '{leaf}' (allowed: {', '.join(sorted(node))})")
        node[leaf] = value
    return HwConfig.model_validate(data)


def cost_of(hw: HwConfig, totals: Mapping[str, Any], dense_hw: HwConfig | None):
    """``(energy_pj by component, area_um2 by component, sparsity area overhead)``, or Nones without a cost model."""
    try:
        from accelsim import cost
    except ImportError:
        return None, None, None
    if not hasattr(cost, "energy_breakdown"):
        return None, None, None
    counts = {a: int(totals[f"{a}_count"]) for a in ACTIONS}
    energy = cost.energy_breakdown(hw, counts)
    area = cost.area_breakdown(hw)
    overhead = cost.sparsity_area_overhead(hw, dense_hw) if dense_hw is not None else None
    return energy, area, overhead


def _as_config(hw: HwConfig | str | Path) -> tuple[HwConfig, str | None]:
    if isinstance(hw, HwConfig):
        return hw, None
    cfg = load_hw(hw)
    if cfg.cost is not None:
        from accelsim.cost import check_cost_section

        check_cost_section(cfg.cost, str(hw))
    return cfg, str(hw)


def evaluate(
    hw: HwConfig | str | Path,
    trace: str | Path,
    *,
    baseline: HwConfig | str | Path | None = None,
    keep_result: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "fast",
) -> dict[str, Any]:
    """Simulate ``trace`` on ``hw`` (and on the dense ``baseline``) and return the summary record.

    The record holds totals with units in every key, the speedup against the baseline, energy and area when
    the cost model is available, and provenance (accelsim version, hashes of the config and the trace).
    With ``keep_result`` the full :class:`RunResult` is under ``"_result"`` (for per-site tables).
    ``progress(done, total)`` is called after each site of each simulation. ``engine``: ``"fast"`` (compiled
    site kernel) or ``"simpy"`` (the reference event model); the numbers are identical.
    """
    return evaluate_many([hw], trace, baseline=baseline, keep_result=keep_result, progress=progress, engine=engine)[0]


def evaluate_many(
    hws: Iterable[HwConfig | str | Path],
    trace: str | Path,
    *,
    baseline: HwConfig | str | Path | Iterable[HwConfig | str | Path | None] | None = None,
    keep_result: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "fast",
) -> list[dict[str, Any]]:
    """:func:`evaluate` of several configs on one trace, in one pass over it (``simulate_many``): each input is
    read once, each distinct mask computed once, and equal configs (a shared dense baseline) simulated once.

    ``baseline``: one dense config for all, or one per config (``None`` entries for none)."""
    from accelsim.report.tables import run_record, summary

    loaded = [_as_config(h) for h in hws]
    bases = list(baseline) if isinstance(baseline, (list, tuple)) else [baseline] * len(loaded)
    if len(bases) != len(loaded):
        raise ValueError(f"baseline: {len(bases)} entries for {len(loaded)} configs")
    dense: list[HwConfig | None] = []
    for b in bases:
        if b is None:
            dense.append(None)
            continue
        d, _ = _as_config(b)
        if d.sparsity.kind != "dense":
            raise ValueError(f"{b}: sparsity.kind is '{d.sparsity.kind}'; a baseline must be 'dense'")
        dense.append(d)
    unique: list[HwConfig] = []
    for c in [c for c, _ in loaded] + [d for d in dense if d is not None]:
        if c not in unique:
            unique.append(c)
    with Trace(trace) as tr:
        results = simulate_many(unique, tr, progress=progress, engine=engine)
        meta = dict(tr.meta)
    by_cfg = list(zip(unique, results, strict=True))

    def result_of(c: HwConfig) -> RunResult:
        return next(r for u, r in by_cfg if u == c)

    records = []
    trace_sha = file_sha256(trace)
    for (cfg, cfg_path), dense_cfg in zip(loaded, dense, strict=True):
        res = result_of(cfg)
        base_res = None if dense_cfg is None else result_of(dense_cfg)
        energy, area, overhead = cost_of(cfg, res.totals, dense_cfg)
        rec = summary(res, baseline=base_res, energy_pj=energy, area_um2=area, area_overhead_fraction=overhead)
        rec = run_record(
            rec,
            hw_path=cfg_path or f"<{cfg.name}>",
            hw_sha256=file_sha256(cfg_path) if cfg_path else cfg.digest(),
            trace_path=str(trace),
            trace_sha256=trace_sha,
            trace_meta=meta,
        )
        if keep_result:
            rec["_result"] = res
        records.append(rec)
    return records


def sweep(
    configs: Iterable[HwConfig | str | Path],
    traces: Iterable[str | Path],
    *,
    baseline: HwConfig | str | Path | None = None,
    executor: Any = None,
):
    """Evaluate every (config, trace) pair; a pandas DataFrame with one row per pair.

    Args:
        executor: anything with ``submit(fn, *args, **kw) -> future`` (``concurrent.futures`` executors,
            ``dask.distributed.Client``); ``None`` runs the points one after another in this process.
    """
    import pandas as pd

    configs, traces = list(configs), list(traces)
    points = [(c, t) for t in traces for c in configs]
    if executor is None:  # one pass per trace: inputs read once, masks shared (evaluate_many)
        records = [rec for t in traces for rec in evaluate_many(configs, t, baseline=baseline)]
    else:
        futures = [executor.submit(evaluate, c, t, baseline=baseline) for c, t in points]
        records = [f.result() for f in futures]
    rows = []
    for rec in records:
        flat = {k: v for k, v in rec.items() if not isinstance(v, dict)}
        flat["trace"] = rec["provenance"]["trace"]
        rows.append(flat)
    return pd.DataFrame(rows)
