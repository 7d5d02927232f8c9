"""Figures of a design-space sweep: heatmaps over two swept keys, the roofline of a run's sites, and the
per-layer cycle breakdown by stall cause. Each takes DataFrames (rows of ``accelsim sweep``'s table, or
``accelsim run``'s ``sites.csv`` / :func:`accelsim.report.tables.sites_frame`) and an optional Axes, and
returns the Figure; every axis and colour bar names its unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from accelsim.report.plots import _LABELS, _axes, _pyplot
from accelsim.sim.engine import BREAKDOWN

METRIC_LABELS = {
    "speedup_vs_dense": "speedup vs the dense machine (x)",
    "energy_vs_dense": "energy vs the dense machine (ratio)",
    "area_overhead_percent": "sparsity area overhead vs dense (%)",
    "cycles": "cycles",
    "time_us": "time (us)",
    "energy_pj_per_token": "energy per token (pJ)",
    "energy_pj": "energy (pJ)",
    "area_um2": "area (um^2)",
    "utilization": "utilization (kept MACs / peak MACs)",
    "dense_equivalent_utilization": "dense-equivalent utilization (dense MACs / peak MACs)",
    "delta_ppl": "perplexity increase over dense (delta_ppl)",
}
_KEY_UNITS = (
    ("_gb_per_s", "GB/s"),
    ("_hz", "Hz"),
    ("_bytes", "bytes"),
    ("_cycles", "cycles"),
    ("_nm", "nm"),
    ("_bits", "bits"),
    ("pattern", "N:M, kept of group"),
)


def metric_label(metric: str) -> str:
    """The axis label of a table column, with its unit (the column name when it is not a known metric)."""
    return METRIC_LABELS.get(metric, metric)


def key_label(key: str, values: Sequence[Any] = ()) -> str:
    """The axis label of a swept key: the key and its unit (``count`` for integer keys without one)."""
    for suffix, unit in _KEY_UNITS:
        if key.endswith(suffix):
            return f"{key} ({unit})"
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return f"{key} (count)"
    return key


def _sort_key(v: Any) -> tuple:
    """Numbers in numeric order; ``N:M`` patterns by density then group size; other strings as text."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return (0, float(v), "")
    n, sep, m = str(v).partition(":")
    if sep and n.isdigit() and m.isdigit() and int(m):
        return (1, int(n) / int(m), f"{int(m):08d}")
    return (2, 0.0, str(v))


def heatmap_table(
    df: pd.DataFrame,
    x: str,
    y: str,
    metric: str = "speedup_vs_dense",
    *,
    trace: str | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The cells of :func:`sweep_heatmap`: ``metric`` with one row per value of ``y`` and one column per value
    of ``x`` (both in numeric / density order), taken from the rows of one trace where the ``fixed`` keys
    have the given values. Each cell is one row of the sweep; a missing combination is NaN.

    Raises:
        ValueError: an unknown column, several traces without ``trace``, or a cell matched by several rows
        (another swept key varies: give it in ``fixed``).
    """
    fixed = dict(fixed or {})
    for col in (x, y, metric, *fixed):
        if col not in df.columns:
            raise ValueError(f"heatmap: no column {col!r} in the table (columns: {', '.join(map(str, df.columns))})")
    d = df
    if "trace" in d.columns:
        names = list(dict.fromkeys(d["trace"]))
        if trace is None and len(names) > 1:
            raise ValueError(f"heatmap: the table has traces {', '.join(names)}; give trace=")
        if trace is not None:
            if trace not in names:
                raise ValueError(f"heatmap: trace {trace!r} not in the table (traces: {', '.join(names)})")
            d = d[d["trace"] == trace]
    for k, v in fixed.items():
        d = d[d[k] == v]
    dup = d.duplicated([x, y], keep=False)
    if dup.any():
        cols = [str(c) for c in d.columns]
        swept = (
            cols[cols.index("point_index") + 1 : cols.index("config")] if {"point_index", "config"} <= {*cols} else []
        )
        swept += [c for c in cols if "." in c and not c.startswith(("energy_pj.", "area_um2."))]
        other = [c for c in dict.fromkeys(swept) if c not in (x, y) and d.loc[dup, c].nunique() > 1]
        raise ValueError(
            f"heatmap: several rows per ({x}, {y}) cell; fix the other swept keys with fixed= ({', '.join(other)})"
        )
    xs = sorted(dict.fromkeys(d[x]), key=_sort_key)
    ys = sorted(dict.fromkeys(d[y]), key=_sort_key)
    piv = d.set_index([y, x])[metric].astype(float)
    cells = [[piv.get((yv, xv), np.nan) for xv in xs] for yv in ys]
    return pd.DataFrame(cells, index=pd.Index(ys, name=y), columns=pd.Index(xs, name=x))


def sweep_heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    metric: str = "speedup_vs_dense",
    *,
    trace: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    ax: Any = None,
    title: str | None = None,
    fmt: str = "{:.2f}",
):
    """A heatmap of ``metric`` over two swept keys (the cells of :func:`heatmap_table`), each cell written
    with its value, a colour bar labelled with the metric's unit; missing combinations are left blank."""
    cells = heatmap_table(df, x, y, metric, trace=trace, fixed=fixed)
    fig, ax = _axes(ax)
    data = cells.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto", origin="lower")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(metric_label(metric), fontsize=9)
    finite = data[np.isfinite(data)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8, color="black" if v > mid else "white")
    ax.set_xticks(range(len(cells.columns)), [str(v) for v in cells.columns])
    ax.set_yticks(range(len(cells.index)), [str(v) for v in cells.index])
    ax.set_xlabel(key_label(x, list(cells.columns)), fontsize=9)
    ax.set_ylabel(key_label(y, list(cells.index)), fontsize=9)
    where = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in (fixed or {}).items())
    ax.set_title(title or f"{trace or ''}{' | ' if trace and where else ''}{where}", fontsize=9, loc="left")
    return fig


def sweep_heatmaps(df: pd.DataFrame, keys: Sequence[str], metric: str = "speedup_vs_dense", *, title=None):
    """One heatmap per trace of ``metric`` over the last two swept ``keys`` (x: the last, y: the one before);
    any other swept key is held at its value in the trace's best point (highest ``metric``; named in the panel
    title). Needs at least two keys."""
    if len(keys) < 2:
        raise ValueError("heatmaps need two swept keys")
    y, x = keys[-2], keys[-1]
    traces = list(dict.fromkeys(df["trace"]))
    fig, axes = _pyplot().subplots(1, len(traces), figsize=(6.4 * len(traces), 4.6), squeeze=False,
                                   layout="constrained")  # fmt: skip
    for ax, tr in zip(axes[0], traces, strict=True):
        g = df[df["trace"] == tr]
        best = g.loc[g[metric].astype(float).idxmax()] if len(g) else None
        fixed = {k: best[k] for k in keys[:-2]} if best is not None else {}
        shown = ", ".join(f"{k}={v}" for k, v in fixed.items())
        phase = f" ({g['phase'].iloc[0]})" if "phase" in g.columns and len(g) else ""
        sweep_heatmap(g, x, y, metric, trace=tr, fixed=fixed, ax=ax,
                      title=f"{tr}{phase}" + (f"\nat the best point's {shown}" if shown else ""))  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _roofs(hw) -> tuple[float, float | None, float]:
    """Peak kept MACs per cycle, the dense-equivalent peak of an N:M array (peak x M/N) and DRAM bytes/cycle."""
    peak = float(hw.peak_macs_per_cycle)
    sp = hw.sparsity
    dense_eq = peak * sp.m / sp.n if sp.kind == "nm" and sp.n and sp.m and sp.n < sp.m else None
    return peak, dense_eq, float(hw.dram_bytes_per_cycle)


def roofline(sites: pd.DataFrame, hw, *, ax: Any = None, title: str | None = None):
    """Roofline of a run's sites (rows of ``sites.csv`` of ``accelsim run --hw HW``, or
    :func:`accelsim.report.tables.sites_frame`).

    x: arithmetic intensity, dense MACs per DRAM byte moved (weights, activations, metadata and outputs);
    y: dense-equivalent throughput, dense MACs per cycle (above the array's peak when sparsity skips work).
    Roofs: the array's peak (kept MACs per cycle), the dense-equivalent peak of an N:M array (peak x M/N) and
    the DRAM bandwidth (bytes per cycle x intensity). One marker per site, coloured by site kind.
    """
    fig, ax = _axes(ax)
    dram = sites[[c for c in sites.columns if c.startswith("dram_") and c.endswith("_bytes")]].sum(axis=1)
    intensity = sites["dense_macs"] / dram.where(dram > 0)
    perf = sites["dense_macs"] / sites["cycles"].where(sites["cycles"] > 0)
    ok = intensity.notna() & perf.notna()
    peak, dense_eq, bw = _roofs(hw)
    lo = float(intensity[ok].min()) / 2 if ok.any() else 1.0
    hi = float(intensity[ok].max()) * 2 if ok.any() else 100.0
    top = dense_eq or peak
    if np.isfinite(bw) and bw > 0:  # show the ridge (where the DRAM roof meets the compute roof) too
        lo, hi = min(lo, top / bw / 2), max(hi, top / bw * 2)
    xs = np.geomspace(lo, hi, 200)
    if np.isfinite(bw):
        ax.plot(xs, np.minimum(bw * xs, top), color="0.25", lw=1.2, label=f"DRAM roof ({bw:.1f} bytes/cycle)")
    ax.axhline(peak, color="C3", lw=1, ls="--", label=f"peak kept MACs ({peak:.0f} MACs/cycle)")
    if dense_eq:
        sp = hw.sparsity
        ax.axhline(dense_eq, color="C2", lw=1, ls=":",
                   label=f"dense-equivalent peak at {sp.n}:{sp.m} ({dense_eq:.0f} MACs/cycle)")  # fmt: skip
    kinds = list(dict.fromkeys(sites["kind"])) if "kind" in sites.columns else ["site"]
    for i, kind in enumerate(kinds):
        sel = ok & (sites["kind"] == kind) if "kind" in sites.columns else ok
        ax.scatter(intensity[sel], perf[sel], s=22, color=f"C{(i + 4) % 10}", alpha=0.8, zorder=3,
                   label=f"{kind} sites ({int(sel.sum())})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (dense MACs per DRAM byte)", fontsize=9)
    ax.set_ylabel("throughput (dense MACs per cycle)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    # below the axes, clear of the tick labels and the x label (the pad is in legend font sizes): off the sites
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=4.5, ncols=2)
    ax.set_title(title or f"roofline of {hw.name} ({hw.sparsity.label})", fontsize=9, loc="left")
    return fig


def layer_breakdown(sites: pd.DataFrame, by: str = "layer") -> pd.DataFrame:
    """Cycles of each breakdown part summed per ``by`` (``layer`` or ``kind``), in the order of first
    appearance; the parts sum to the group's ``cycles``."""
    parts = [f"{p}_cycles" for p in BREAKDOWN if f"{p}_cycles" in sites.columns]
    return sites.groupby(by, sort=False)[["cycles", *parts]].sum()


def stall_breakdown(
    runs: Mapping[str, pd.DataFrame],
    *,
    baseline: pd.DataFrame | None = None,
    by: str = "layer",
    title: str | None = None,
):
    """The cycle breakdown by stall cause per layer (or per site kind with ``by="kind"``), one panel per run
    (``runs``: label -> sites frame, e.g. ``{"8:16": sites_816, "2:4": sites_24}``).

    Every panel stacks the same parts in the same order and colours (a part is drawn if it is non-zero in any
    panel) on a shared y-axis in thousands of cycles. With ``baseline`` (the dense run's sites on the same
    trace) each bar is labelled with its speedup (dense cycles / cycles of the group) and each panel title
    with the whole run's speedup.
    """
    frames = {label: layer_breakdown(s, by) for label, s in runs.items()}
    base = layer_breakdown(baseline, by) if baseline is not None else None
    parts = [p for p in BREAKDOWN if any(f"{p}_cycles" in f and f[f"{p}_cycles"].sum() > 0 for f in frames.values())]
    colors = {p: f"C{i}" for i, p in enumerate(BREAKDOWN)}
    n = len(frames)
    fig, axes = _pyplot().subplots(1, n, figsize=(max(5.0, 4.2 * n), 4.2), squeeze=False, sharey=True,
                                   layout="constrained")  # fmt: skip
    ymax = max(float(f["cycles"].max()) for f in frames.values()) / 1e3
    for ax, (label, f) in zip(axes[0], frames.items(), strict=True):
        x = np.arange(len(f))
        bottom = np.zeros(len(f))
        for p in parts:
            vals = f[f"{p}_cycles"].to_numpy(dtype=float) / 1e3 if f"{p}_cycles" in f else np.zeros(len(f))
            ax.bar(x, vals, bottom=bottom, color=colors[p], width=0.75, label=_LABELS.get(p, p))
            bottom += vals
        head = label
        if base is not None:
            sp = base["cycles"].reindex(f.index).to_numpy(dtype=float) / f["cycles"].to_numpy(dtype=float)
            for xi, (top, s) in enumerate(zip(bottom, sp, strict=True)):
                if np.isfinite(s):
                    ax.annotate(f"{s:.2f}x", (xi, top), xytext=(0, 2), textcoords="offset points", ha="center",
                                va="bottom", fontsize=7, rotation=90)  # fmt: skip
            head = f"{label}: {base['cycles'].sum() / f['cycles'].sum():.2f}x vs dense (labels: speedup per {by})"
        step = -(-len(f) // 15)  # at most ~15 tick labels, so that 30 layers stay legible
        ax.set_xticks(x[::step], [str(i) for i in f.index][::step], fontsize=7)
        ax.set_xlabel(f"{by} (trace order)", fontsize=9)
        ax.set_title(head, fontsize=9, loc="left")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("cycles (thousands)", fontsize=9)
    axes[0][0].set_ylim(0, ymax * (1.25 if base is not None else 1.08))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(parts), 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
