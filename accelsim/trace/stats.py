"""Activation statistics of a trace, per site kind (numpy and pandas only).

``activation_stats(trace)`` gives one row per kind (q k v o gate up down, in that order): how many values,
the share of near-zero values (``|x| < 1e-3``), kurtosis (Pearson: 3 for a Gaussian, 6 for a Laplacian),
the median and maximum of ``|x|``, and TEAL's shape check, the ratio of the 65% and 25% quantiles of ``|x|``
(a Gaussian gives 2.93, a Laplacian 3.65). Sites that share an input (q/k/v, gate/up) see the same values,
so their rows agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accelsim.nm import nm_mask, parse_pattern
from accelsim.trace.format import KINDS, Site, Trace, TraceData

NEAR_ZERO = 1e-3
GAUSS_Q65_Q25 = 2.932  # |x| quantile ratio of a normal distribution: 0.9346 / 0.3186
LAPLACE_Q65_Q25 = 3.649  # of a Laplace distribution: ln(1/0.35) / ln(1/0.75)
_SAMPLE_CAP = 2_000_000  # values per group kept for the quantiles (strided, deterministic)


class _Moments:
    """Streaming sums for count, mean, variance, kurtosis and extremes (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.s = np.zeros(4)
        self.near_zero = 0
        self.max_abs = 0.0
        self.samples: list[np.ndarray] = []
        self.kept_share = 0.0  # sum over rows of (kept x^2 / all x^2)
        self.tokens = 0
        self.union_channels = 0
        self.channels = 0
        self.nm: tuple[int, int] | None = None

    def add(self, x: np.ndarray, *, stride: int, nm: tuple[int, int] | None = None) -> None:
        if nm is not None:
            keep = nm_mask(np.abs(x), *nm)
            sq = np.square(x, dtype=np.float64)
            total = sq.sum(axis=1)
            kept = np.where(keep, sq, 0.0).sum(axis=1)
            self.kept_share += float(np.sum(kept / np.where(total > 0, total, 1.0)))
            self.tokens += x.shape[0]
            self.union_channels += int(keep.any(axis=0).sum())
            self.channels += x.shape[1]
            self.nm = nm
        v = np.asarray(x, dtype=np.float64).ravel()
        self.n += v.size
        p = v.copy()
        for i in range(4):
            self.s[i] += p.sum()
            if i < 3:
                p *= v
        a = np.abs(v)
        self.near_zero += int((a < NEAR_ZERO).sum())
        self.max_abs = max(self.max_abs, float(a.max()) if a.size else 0.0)
        self.samples.append(a[::stride].astype(np.float32))

    def row(self) -> dict[str, float]:
        n = self.n
        mean = self.s[0] / n
        e2, e3, e4 = self.s[1] / n, self.s[2] / n, self.s[3] / n
        var = e2 - mean**2
        m4 = e4 - 4 * mean * e3 + 6 * mean**2 * e2 - 3 * mean**4
        a = np.concatenate(self.samples)
        q25, q50, q65 = np.quantile(a, [0.25, 0.5, 0.65])
        extra = {}
        if self.nm is not None:
            tag = f"{self.nm[0]}_{self.nm[1]}"
            extra = {
                f"kept_l2_{tag}": self.kept_share / self.tokens,
                f"union_rows_{tag}": self.union_channels / self.channels,
            }
        return {
            "values": n,
            "near_zero_share": self.near_zero / n,
            "kurtosis": float(m4 / var**2) if var > 0 else float("nan"),
            "mean": float(mean),
            "std": float(np.sqrt(max(var, 0.0))),
            "median_abs": float(q50),
            "max_abs": self.max_abs,
            "q65_q25": float(q65 / q25) if q25 > 0 else float("inf"),
            **extra,
        }


@contextlib.contextmanager
def _reader(trace: Trace | TraceData | str | Path) -> Iterator[tuple[list[Site], Callable[[Site], np.ndarray]]]:
    """``(sites, read)`` for a path (opened and closed here), an open :class:`Trace` or a :class:`TraceData`."""
    if isinstance(trace, TraceData):
        yield list(trace.sites), (lambda s: trace.inputs[s.input_id])
    elif isinstance(trace, Trace):
        yield list(trace.sites), trace.site_input
    else:
        with Trace(trace) as tr:
            yield list(tr.sites), tr.site_input


def _kind_order(kinds: set[str]) -> list[str]:
    return [k for k in KINDS if k in kinds] + sorted(kinds - set(KINDS))


def _inputs_once(sites: list[Site], read: Callable[[Site], np.ndarray]) -> Iterator[tuple[str, list[Site], np.ndarray]]:
    """Each distinct input once, with the sites that read it."""
    by_input: dict[str, list[Site]] = {}
    for s in sites:
        by_input.setdefault(s.input_id, []).append(s)
    for iid, ss in by_input.items():
        yield iid, ss, read(ss[0])


def activation_stats(trace: Trace | TraceData | str | Path, *, by: str = "kind", nm: str | None = None) -> pd.DataFrame:
    """Statistics of the recorded inputs per site ``kind`` (default), per ``layer`` and kind, or per ``site``.

    ``trace`` is a path, an open :class:`Trace` or a :class:`TraceData`; inputs are read one at a time.
    ``nm="8:16"`` adds two columns about that pattern's masks (the accelsim selection rule on ``|x|``):
    ``kept_l2_8_16``, the share of a row's ``sum x^2`` that the kept entries hold (mean over rows), and
    ``union_rows_8_16``, the share of input channels kept by at least one of the trace's T rows (what
    ``gather_rows`` must fetch for a tile of all T tokens)."""
    if by not in ("kind", "layer", "site"):
        raise ValueError(f"by={by!r}: allowed kind, layer, site")
    pattern = parse_pattern(nm) if nm is not None else None
    with _reader(trace) as (sites, read):
        groups: dict[Any, _Moments] = {}
        members: dict[Any, int] = {}
        n_inputs = len({s.input_id for s in sites})
        per_input = max(4096, _SAMPLE_CAP // n_inputs)
        for _, ss, x in _inputs_once(sites, read):
            stride = -(-x.size // per_input)
            for s in ss:
                key: Any = {"kind": s.kind, "layer": (s.layer, s.kind), "site": (s.index, s.name)}[by]
                groups.setdefault(key, _Moments()).add(x, stride=stride, nm=pattern)
                members[key] = members.get(key, 0) + 1
    rows = []
    if by == "kind":
        for k in _kind_order(set(groups)):
            rows.append({"kind": k, "sites": members[k], **groups[k].row()})
    elif by == "layer":
        for layer, k in sorted(groups, key=lambda lk: (lk[0], _kind_order({s.kind for s in sites}).index(lk[1]))):
            rows.append({"layer": layer, "kind": k, **groups[(layer, k)].row()})
    else:
        by_index = {s.index: s for s in sites}
        for idx, name in sorted(groups):
            s = by_index[idx]
            rows.append({"site": idx, "name": name, "layer": s.layer, "kind": s.kind, **groups[(idx, name)].row()})
    return pd.DataFrame(rows)


def format_stats(df: pd.DataFrame) -> str:
    """A plain-text table of :func:`activation_stats` (for the CLI and docs)."""
    show = df.copy()
    for col, fmt in (
        ("near_zero_share", "{:.2%}"),
        ("kurtosis", "{:.1f}"),
        ("mean", "{:.3g}"),
        ("std", "{:.3g}"),
        ("median_abs", "{:.3g}"),
        ("max_abs", "{:.4g}"),
        ("q65_q25", "{:.2f}"),
    ):
        if col in show:
            show[col] = show[col].map(fmt.format)
    for col in [c for c in show.columns if c.startswith(("kept_l2_", "union_rows_"))]:
        show[col] = show[col].map("{:.1%}".format)
    for col, fmt in ():
        if col in show:
            show[col] = show[col].map(fmt.format)
    return show.to_string(index=False)


def batch_union_density(
    trace: Trace | str | Path, *, nm: str = "8:16", batches: tuple[int, ...] | None = None
) -> pd.DataFrame:
    """Union density of the N:M masks over a batch, per site kind: the share of a site's ``K`` input channels
    (weight rows for ``gather_rows``) that at least one row of the tile keeps.

    Decode trace with ``B`` sequences: the tile of step ``r`` and batch ``b`` is rows ``r*B .. r*B + b-1``
    (sequences ``0 .. b-1`` at that step); the column ``union_density_b<b>`` is the mean over steps and over
    the kind's sites. Prefill: the tile is all ``T`` tokens of sequences ``0 .. b-1``. ``batches`` defaults
    to 1, 2, 4, ... up to ``B``; a batch above ``B`` is an error (``Trace.require_sequences``)."""
    n, m = parse_pattern(nm)
    owned = not isinstance(trace, Trace)
    tr = Trace(trace) if owned else trace
    try:
        seqs = tr.n_sequences
        bs = batches or tuple(b for b in (1, 2, 4, 8, 16, 32, 64) if b <= seqs)
        for b in bs:
            tr.require_sequences(b)
        sums: dict[str, np.ndarray] = {}
        count: dict[str, int] = {}
        for _, ss, x in _inputs_once(tr.sites, tr.site_input):
            keep = nm_mask(np.abs(x), n, m)
            if tr.phase == "decode":
                tiles = keep.reshape(-1, seqs, keep.shape[1])  # [steps, B, K]
                dens = [float(tiles[:, :b].any(axis=1).mean()) for b in bs]
            else:
                tiles = keep.reshape(seqs, -1, keep.shape[1])  # [B, T, K]
                dens = [float(tiles[:b].any(axis=(0, 1)).mean()) for b in bs]
            for s in ss:
                sums[s.kind] = sums.get(s.kind, np.zeros(len(bs))) + np.asarray(dens)
                count[s.kind] = count.get(s.kind, 0) + 1
    finally:
        if owned:
            tr.close()
    rows = []
    for k in _kind_order(set(sums)):
        dens = {f"union_density_b{b}": v / count[k] for b, v in zip(bs, sums[k], strict=True)}
        rows.append({"kind": k, "sites": count[k], **dens})
    return pd.DataFrame(rows)
