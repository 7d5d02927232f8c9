"""Figures for reports. Each function takes a DataFrame (and an optional Axes) and returns the Figure.

No global matplotlib state is changed; the Agg backend is used when none is set.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from accelsim.sim.engine import BREAKDOWN

_LABELS = {
    "compute": "compute (kept MACs)",
    "rounding": "instruction/fold rounding",
    "pipeline": "pipeline fill/drain",
    "decoder": "decoder latency",
    "weight_load": "weight load (ws)",
    "operand_stall": "operand-buffer stall",
    "metadata_stall": "metadata stall",
    "dram_stall": "DRAM stall",
    "compressor_stall": "compressor stall",
    "writeback_stall": "write-back stall",
}


def _axes(ax: Any):
    import matplotlib

    if ax is not None:
        return ax.figure, ax
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    return fig, ax


def breakdown_bars(df: pd.DataFrame, *, ax: Any = None, title: str | None = None):
    """Stacked bars of the cycle breakdown per config (rows of ``accelsim compare``'s records).

    ``df`` needs ``pattern`` and the ``<part>_cycles`` columns; bars are in million cycles, and the speedup
    against dense is written on top of each bar when ``speedup_vs_dense`` is present.
    """
    fig, ax = _axes(ax)
    parts = [p for p in BREAKDOWN if f"{p}_cycles" in df.columns and df[f"{p}_cycles"].sum() > 0]
    bottom = pd.Series(0.0, index=df.index)
    colors = dict(zip(BREAKDOWN, [f"C{i}" for i in range(len(BREAKDOWN))], strict=True))
    x = range(len(df))
    for p in parts:
        vals = df[f"{p}_cycles"] / 1e6
        ax.bar(x, vals, bottom=bottom, label=_LABELS.get(p, p), color=colors[p], width=0.7)
        bottom = bottom + vals
    if "speedup_vs_dense" in df.columns:
        for xi, (top, s) in enumerate(zip(bottom, df["speedup_vs_dense"], strict=True)):
            ax.annotate(f"{s:.2f}x", (xi, top), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x), list(df["pattern"]))
    ax.set_ylabel("cycles (millions)")
    ax.set_xlabel("activation sparsity pattern (same machine)")
    ax.set_ylim(0, float(bottom.max()) * 1.12 if len(bottom) else 1)
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
