"""Sensitivity of the Pareto fronts to the cost table: scale one entry at a time (no new simulation: the
energy is recomputed from the runs' action counts) and report which scalings change a front."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from accelsim.cost.table import CostError, CostTable, default_table
from accelsim.explore.tradeoff import AXES, Run, _fronts, _pattern_order, tradeoff

DEFAULT_SCALINGS: dict[str, tuple[float, ...]] = {
    "energy.dram_bit": (0.5, 2.0),
    "energy.sram_read_64b_8kib": (0.5, 2.0),
    "energy.mac_bf16_acc32": (0.5, 2.0),
    "energy.mux2_bit": (0.5, 2.0),
    "energy.comparator_bit": (0.5, 2.0),
    "area.mux2_bit": (0.5, 2.0),
    "area.comparator_bit": (0.5, 2.0),
    "area.register_bit": (0.5, 2.0),
    "area.sram_mib": (0.5, 2.0),
    "area.mac_bf16_acc32": (0.5, 2.0),
}
"""Entries scaled by default in :func:`sensitivity` (sources disagree 2-4x: x0.5 and x2)."""


def sensitivity(
    runs: Sequence[Run],
    accuracy: pd.DataFrame,
    scalings: Mapping[str, Sequence[float]] | None = None,
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
    criterion: str = "magnitude",
    mitigation: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """For each entry and factor, recompute the trade-off with that one entry scaled and compare the fronts.

    Returns one row per (entry, factor, trace, axis): the front's patterns, whether it ``changed`` against the
    unscaled table, which patterns ``entered`` / ``left``, and whether the order by cost changed.
    """
    table = table or default_table()
    scalings = DEFAULT_SCALINGS if scalings is None else scalings
    kw = {"node_nm": node_nm, "criterion": criterion, "mitigation": mitigation, "model": model}
    base = tradeoff(runs, accuracy, table=table, **kw)
    base_fronts = _fronts(base)
    order_col = {**AXES, "all": AXES["energy"]}
    base_order = {
        (t, axis): list(g.sort_values(col, kind="stable")["label"])
        for t, g in base.groupby("trace")
        for axis, col in order_col.items()
    }
    rows = []
    for entry, factors in scalings.items():
        for f in factors:
            df = tradeoff(runs, accuracy, table=table.scaled({entry: f}), **kw)
            fronts = _fronts(df)
            for (trace, axis), front in fronts.items():
                g = df[df["trace"] == trace]
                order = list(g.sort_values(order_col[axis], kind="stable")["label"])
                b = base_fronts[(trace, axis)]
                rows.append(
                    {
                        "entry": entry,
                        "factor": f,
                        "trace": trace,
                        "axis": axis,
                        "front": " ".join(sorted(front, key=_pattern_order)),
                        "changed": front != b,
                        "entered": " ".join(sorted(front - b, key=_pattern_order)),
                        "left": " ".join(sorted(b - front, key=_pattern_order)),
                        "order_changed": order != base_order[(trace, axis)],
                        "order": " < ".join(order),
                    }
                )
    return pd.DataFrame(rows)


def breakeven(
    runs: Sequence[Run],
    accuracy: pd.DataFrame,
    entries: Iterable[str] | None = None,
    *,
    max_factor: float = 16.0,
    steps_per_octave: int = 4,
    table: CostTable | None = None,
    node_nm: int | None = None,
    criterion: str = "magnitude",
    mitigation: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """For each entry, the factors nearest to 1 (one below, one above) at which some Pareto front changes.

    Factors are scanned on a geometric grid (``steps_per_octave`` per factor 2) out to ``1/max_factor`` and
    ``max_factor``; an empty cell means no change within that range. Rows: ``entry``, ``down_factor``,
    ``down_change``, ``up_factor``, ``up_change`` (what changed: ``trace/axis: +entered -left``).
    """
    table = table or default_table()
    entries = list(DEFAULT_SCALINGS if entries is None else entries)
    kw = {"node_nm": node_nm, "criterion": criterion, "mitigation": mitigation, "model": model}
    base = _fronts(tradeoff(runs, accuracy, table=table, **kw))
    n = int(round(math.log2(max_factor) * steps_per_octave))
    grid = [2 ** (i / steps_per_octave) for i in range(1, n + 1)]
    rows = []
    for entry in entries:
        row: dict[str, Any] = {"entry": entry}
        for side, factors in (("down", [1 / g for g in grid]), ("up", grid)):
            row[f"{side}_factor"], row[f"{side}_change"] = None, ""
            for f in factors:
                fronts = _fronts(tradeoff(runs, accuracy, table=table.scaled({entry: f}), **kw))
                diff = [
                    f"{t}/{axis}: "
                    + " ".join(
                        [
                            *(f"+{p}" for p in sorted(fr - base[(t, axis)])),
                            *(f"-{p}" for p in sorted(base[(t, axis)] - fr)),
                        ]
                    )
                    for (t, axis), fr in fronts.items()
                    if fr != base[(t, axis)]
                ]
                if diff:
                    row[f"{side}_factor"], row[f"{side}_change"] = f, "; ".join(diff)
                    break
        rows.append(row)
    return pd.DataFrame(rows)


def parse_scalings(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``["energy.dram_bit=0.5,2", "area.mux2_bit=0.5,2"]`` -> ``{"energy.dram_bit": (0.5, 2.0), ...}``."""
    out: dict[str, tuple[float, ...]] = {}
    for s in specs:
        key, sep, vals = s.partition("=")
        if not sep or not key.strip() or not vals.strip():
            raise CostError(f"--scale {s!r}: expected ENTRY=F1,F2 (e.g. energy.dram_bit=0.5,2)")
        try:
            fs = tuple(float(v) for v in vals.split(","))
        except ValueError:
            raise CostError(f"--scale {s!r}: factors must be numbers") from None
        if any(not f > 0 for f in fs):
            raise CostError(f"--scale {s!r}: factors must be > 0")
        out[key.strip()] = fs
    return out
