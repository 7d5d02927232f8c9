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


def _pyplot():
    """``matplotlib.pyplot``, on the Agg backend unless a notebook backend is active."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Any):
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=(8, 4.5), layout="constrained")
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
    labels = list(df["pattern"])
    by_config = len(set(labels)) < len(labels) and "config" in df.columns  # one pattern on several machines
    if by_config:
        labels = list(df["config"])
    wide = len(labels) > 6
    ax.set_xticks(list(x), labels, rotation=30 if wide else 0, ha="right" if wide else "center")
    ax.set_ylabel("cycles (millions)")
    what = "hardware config (same machine otherwise)" if by_config else "activation sparsity pattern (same machine)"
    ax.set_xlabel(what)
    ax.set_ylim(0, float(bottom.max()) * 1.12 if len(bottom) else 1)
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


_TRADEOFF_PANELS = (
    ("speedup_vs_dense", "speedup vs dense (x, higher is better)", None, False),
    ("energy_vs_dense", "energy per token vs dense", "front_energy", False),
    ("area_overhead_fraction", "sparsity area overhead vs dense (fraction, log)", "front_area", True),
)


def tradeoff_grid(df: pd.DataFrame, *, title: str | None = None):
    """Cost against accuracy, one row of panels per trace (rows of :func:`accelsim.explore.tradeoff.tradeoff`).

    x: perplexity increase over dense (``delta_ppl``); y: speedup, energy per token against dense, and area
    overhead of the sparsity hardware (log scale: unstructured is an order of magnitude above N:M). Points on
    the panel's Pareto front (``front_energy``, ``front_area``) are filled and joined; others are hollow.
    Configs without an accuracy record are left out.
    """
    d = df[df["delta_ppl"].notna()]
    traces = list(dict.fromkeys(d["trace"]))
    fig, axes = _pyplot().subplots(
        len(traces), len(_TRADEOFF_PANELS), figsize=(13, 3.6 * len(traces)), squeeze=False, layout="constrained"
    )
    for r, tr in enumerate(traces):
        g = d[d["trace"] == tr].sort_values("delta_ppl")
        phase = g["phase"].iloc[0] if "phase" in g else ""
        for c, (col, label, front, log) in enumerate(_TRADEOFF_PANELS):
            ax = axes[r][c]
            pts = g if col != "area_overhead_fraction" else g[g["pattern"] != "dense"]
            on = pts[front].astype(bool) if front else pd.Series(False, index=pts.index)
            ax.scatter(pts["delta_ppl"], pts[col], s=36, facecolors="none", edgecolors="C0", zorder=2)
            ax.scatter(pts.loc[on, "delta_ppl"], pts.loc[on, col], s=36, color="C0", zorder=3)
            if on.any():
                f = pts[on].sort_values("delta_ppl")
                ax.plot(f["delta_ppl"], f[col], color="C0", lw=1, alpha=0.6, zorder=1, label="Pareto front (filled)")
            for i, (_, p) in enumerate(pts.sort_values("delta_ppl").iterrows()):
                ax.annotate(  # alternate above/below so neighbours (16:32, 8:16) do not overprint
                    str(p.get("label", p["pattern"])),
                    (p["delta_ppl"], p[col]),
                    xytext=(0, 6 if i % 2 == 0 else -6),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if i % 2 == 0 else "top",
                    fontsize=8,
                )
            ax.margins(x=0.08, y=0.15)
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("perplexity increase over dense (delta_ppl)")
            ax.set_ylabel(label, fontsize=9)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_title(f"{tr} ({phase})", fontsize=9, loc="left")
            if on.any() and r == 0:
                ax.legend(fontsize=8, frameon=False, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


_SWEEP_PLANES = (
    ("area_overhead_percent", "sparsity area overhead vs the dense machine (%)"),
    ("energy_vs_dense", "energy vs the dense machine (ratio, lower is better)"),
)


def _point_label(row: pd.Series, keys: list[str]) -> str:
    """The swept values of a point, keys shortened to their last part: ``pattern=2:4 units=8``."""
    return " ".join(f"{k.rpartition('.')[2]}={row[k]}" for k in keys)


_OFFSETS_PT = [(dx, dy) for dy in (6, -6, 16, -16, 26, -26, 36, -36) for dx in (4, -4)]


def _label_without_overlap(ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Label each ``(x, y, text)``, trying offsets around the point nearest first and keeping the first whose
    box stays inside the axes and overlaps no label already placed (the last offset when none is free)."""
    from matplotlib.text import Text

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    for x, y, text in points:
        for dx, dy in _OFFSETS_PT:  # a leader line: a label moved off a crowded point still points at it
            ann = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 3},
            )  # fmt: skip
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).expanded(1.02, 1.1)  # the text, not its leader line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if (inside and not any(box.overlaps(b) for b in placed)) or (dx, dy) == _OFFSETS_PT[-1]:
                placed.append(box)
                break
            ann.remove()


def sweep_tradeoff(df: pd.DataFrame, keys: list[str], *, title: str | None = None):
    """Trade-offs of a sweep (rows of ``accelsim sweep``'s table), one row of panels per trace.

    y: ``speedup_vs_dense`` (higher is better); x: area overhead and energy against the dense machine of the
    same point (lower is better), and the perplexity increase when the table has ``delta_ppl`` (``--accuracy``;
    points without an accuracy record are not drawn in that panel). Points on the panel's Pareto front (no
    other point is at least as fast and at most as costly, and better in one) are filled, joined and labelled
    with their swept ``keys``; the others are hollow and unlabelled, so that hundreds of points stay readable.
    """
    from accelsim.explore.tradeoff import pareto_front

    planes = list(_SWEEP_PLANES)
    if "delta_ppl" in df.columns and df["delta_ppl"].notna().any():
        planes.append(("delta_ppl", "perplexity increase over dense (delta_ppl)"))
    traces = list(dict.fromkeys(df["trace"]))
    labels = []
    fig, axes = _pyplot().subplots(
        len(traces), len(planes), figsize=(6 * len(planes), 4.2 * len(traces)), squeeze=False, layout="constrained"
    )
    for r, tr in enumerate(traces):
        g = df[df["trace"] == tr].assign(_slowdown=lambda d: -d["speedup_vs_dense"])
        for c, (col, label) in enumerate(planes):
            ax = axes[r][c]
            on = pareto_front(g, col, accuracy="_slowdown")
            pts = g[g[col].notna()]
            ax.scatter(pts[col], pts["speedup_vs_dense"], s=30, facecolors="none", edgecolors="C0", zorder=2,
                       label=f"sweep point ({len(pts)})")  # fmt: skip
            f = g[on].sort_values(col)
            ax.plot(f[col], f["speedup_vs_dense"], "o-", color="C1", ms=6, lw=1, zorder=3,
                    label=f"Pareto front ({len(f)})")  # fmt: skip
            ax.margins(x=0.12, y=0.15)
            labels.append((ax, [(p[col], p["speedup_vs_dense"], _point_label(p, keys)) for _, p in f.iterrows()]))
            ax.set_xlabel(label, fontsize=9)
            ax.set_ylabel("speedup vs the dense machine (x)", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, frameon=False, loc="best")
            if c == 0:
                ax.set_title(f"{tr} ({g['phase'].iloc[0]})", fontsize=9, loc="left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.draw_without_rendering()  # fix the layout first, so that label boxes are measured where they end up
    fig.set_layout_engine("none")
    for ax, pts in labels:
        _label_without_overlap(ax, pts)
    return fig
