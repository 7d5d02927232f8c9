"""TEAL (arXiv 2408.14690): magnitude thresholds calibrated from activation histograms, uniform or with the
block-wise greedy allocation across the seven projections.

* Histograms: for every sparsified linear, the ``|x|`` values of its *dense* input on the calibration windows
  go into 10,000 bins: 9,999 even bins from 0 to the 99th percentile of ``|x|`` on the first calibration
  window, plus one outlier bin up to the maximum. Inputs shared by several projections are histogrammed once.
* Threshold for a target sparsity ``s``: the inverse CDF of the ``|x|`` histogram at ``s`` (linear inside the
  bin), so ``P(|x| <= t) = s`` on the calibration data. TEAL histograms the signed ``x`` and reads
  ``icdf(0.5 + s/2)``, assuming a zero-mean symmetric distribution; the ``|x|`` histogram needs no such
  assumption and gives the same threshold when it holds. Entries with ``|x| > t`` are kept.
* Uniform: every projection at sparsity ``s``.
* Greedy (TEAL's ``greedyopt``): per decoder layer independently, on the dense inputs of that layer, start
  with every projection at 0 and repeatedly raise the sparsity of the one projection whose step increases the
  layer-output error least, where a step of projection ``p`` is ``base_step / w_p`` with ``w_p`` its weight
  count relative to ``q`` (every step removes about the same number of weight reads). Stop once the
  parameter-weighted sparsity ``sum_p w_p s_p / sum_p w_p`` reaches the target; take the path row nearest to
  it. The error is the mean squared difference to the dense layer output over all tokens (TEAL measures the
  last quarter of tokens because it sparsifies only the second half of each sequence; here every token is
  sparsified). Every layer ends at the same parameter-weighted sparsity; the greedy step moves sparsity
  between its projections only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from accelsim.accuracy.calibrate import _base_model, capture_block_inputs, run_block
from accelsim.accuracy.criteria import nearest_rank_quantile
from accelsim.accuracy.sparsify import Site, Sparsifier, decoder_layers

__all__ = ["Histogram", "collect_histograms", "uniform_thresholds", "greedy_allocation", "GREEDY_BASE_STEP"]

Progress = Callable[[int, int], None] | None
NUM_BINS = 10_000
GREEDY_BASE_STEP = 0.1


@dataclass
class Histogram:
    """``|x|`` histogram: ``counts[:-1]`` over even bins on ``[0, hi]``, ``counts[-1]`` over ``(hi, max]``."""

    hi: float
    max: float
    counts: torch.Tensor  # float64 [NUM_BINS]

    def add(self, a: torch.Tensor) -> None:
        a = a.reshape(-1).float()
        fine = torch.histc(a.clamp(max=self.hi), bins=NUM_BINS - 1, min=0.0, max=self.hi).double()
        over = int((a > self.hi).sum())
        fine[-1] -= over  # clamped outliers landed in the last fine bin
        self.counts[:-1] += fine
        self.counts[-1] += over
        self.max = max(self.max, float(a.max()))

    def icdf(self, q: float) -> float:
        """The ``|x|`` below which a fraction ``q`` of the calibration entries lie (0 for ``q <= 0``)."""
        if q <= 0.0:
            return 0.0
        total = float(self.counts.sum())
        cum = torch.cumsum(self.counts, 0)
        target = q * total
        i = int(torch.searchsorted(cum, torch.tensor(target, dtype=cum.dtype)))
        i = min(i, NUM_BINS - 1)
        width = self.hi / (NUM_BINS - 1)
        lo_edge = i * width
        hi_edge = (i + 1) * width if i < NUM_BINS - 1 else self.max
        prev = float(cum[i - 1]) if i > 0 else 0.0
        c = float(self.counts[i])
        frac = (target - prev) / c if c > 0 else 1.0
        return lo_edge + min(max(frac, 0.0), 1.0) * (hi_edge - lo_edge)


def collect_histograms(
    model: Any, sites: Sequence[Site], calib: torch.Tensor, progress: Progress = None
) -> dict[str, Histogram]:
    """One ``|x|`` histogram per site from a dense forward over the calibration windows."""
    hists: dict[str, Histogram] = {}
    last: list[Any] = [None, None]  # input tensor, its histogram

    def make(site: Site) -> Callable[..., None]:
        def hook(mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if last[0] is x:  # a projection sharing the previous projection's input: share its histogram
                hists.setdefault(site.name, last[1])
                return
            a = x.detach().abs()
            h = hists.get(site.name)
            if h is None:
                hi = float(nearest_rank_quantile(a, 0.99))
                h = Histogram(hi=max(hi, 1e-30), max=0.0, counts=torch.zeros(NUM_BINS, dtype=torch.float64))
                hists[site.name] = h
            h.add(a)
            last[:] = [x, h]

        return hook

    handles = [s.module.register_forward_pre_hook(make(s)) for s in sites]
    base = _base_model(model)
    try:
        with torch.no_grad():
            for w in range(calib.shape[0]):
                base(input_ids=calib[w : w + 1], use_cache=False)
                last[:] = [None, None]
                if progress:
                    progress(w + 1, calib.shape[0])
    finally:
        for hd in handles:
            hd.remove()
    return hists


def uniform_thresholds(sites: Sequence[Site], hists: dict[str, Histogram], sparsity: float) -> dict[str, float]:
    return {s.name: hists[s.name].icdf(sparsity) for s in sites}


def greedy_allocation(
    model: Any,
    sp: Sparsifier,
    hists: dict[str, Histogram],
    calib: torch.Tensor,
    target: float,
    *,
    base_step: float = GREEDY_BASE_STEP,
    progress: Progress = None,
) -> dict[str, Any]:
    """TEAL's block-wise greedy allocation (module docstring). Must run inside ``with sp:`` (a TEAL spec).

    Returns ``{"sparsity": {site: s}, "thresholds": {site: t}, "layers": {layer: {kind: s}},
    "effective": {layer: S}, "error": {layer: mse}, "uniform_error": {layer: mse}, "seconds", "base_step"}``."""
    t0 = time.perf_counter()
    stack = decoder_layers(model)
    by_layer: dict[int, list[Site]] = {}
    for s in sp.sites:
        by_layer.setdefault(s.layer, []).append(s)
    enabled, sp.enabled = sp.enabled, False  # dense inputs (TEAL does not compound calibration errors)
    try:
        inputs, kwargs = capture_block_inputs(model, calib, layers=sorted(by_layer))
    finally:
        sp.enabled = enabled
    ref = min(s.params for s in sp.sites if s.kind == "q") if any(s.kind == "q" for s in sp.sites) else None
    result: dict[str, Any] = {
        "sparsity": {},
        "thresholds": {},
        "layers": {},
        "effective": {},
        "error": {},
        "uniform_error": {},
        "base_step": base_step,
        "target": target,
    }
    stats_flag, sp.stats = sp.stats, False
    for done, (li, sites) in enumerate(sorted(by_layer.items())):
        block = stack[li]
        xs = inputs[li]
        unit = ref or min(s.params for s in sites)
        w = {s.name: s.params / unit for s in sites}
        wsum = sum(w.values())
        with torch.no_grad():
            sp.enabled = False
            ys = [run_block(block, x, kwargs) for x in xs]
            sp.enabled = True

            def err(
                sparsities: dict[str, float],
                sites: list[Site] = sites,
                xs: list = xs,
                ys: list = ys,
                block: Any = block,
            ) -> float:
                for s in sites:
                    s.threshold = hists[s.name].icdf(sparsities[s.name])
                e = 0.0
                for x, y in zip(xs, ys, strict=True):
                    sp._cache = None
                    e += float(torch.mean((run_block(block, x, kwargs) - y) ** 2))
                return e / len(xs)

            cur = {s.name: 0.0 for s in sites}
            path = [(0.0, dict(cur))]
            eff = 0.0
            while eff < target - 1e-12:
                best = None
                for s in sites:
                    if cur[s.name] >= 1.0:
                        continue
                    trial = dict(cur)
                    trial[s.name] = min(1.0, cur[s.name] + base_step / w[s.name])
                    e = err(trial)
                    if best is None or e < best[0]:
                        best = (e, trial)
                if best is None:
                    break
                cur = best[1]
                eff = sum(w[n] * cur[n] for n in cur) / wsum
                path.append((eff, dict(cur)))
            eff_best, alloc = min(path, key=lambda r: abs(r[0] - target))
            result["error"][li] = err(alloc)
            result["uniform_error"][li] = err({s.name: target for s in sites})
        for s in sites:
            result["sparsity"][s.name] = alloc[s.name]
            result["thresholds"][s.name] = hists[s.name].icdf(alloc[s.name])
            s.threshold = result["thresholds"][s.name]
        result["layers"][li] = {s.kind: alloc[s.name] for s in sites}
        result["effective"][li] = eff_best
        if progress:
            progress(done + 1, len(by_layer))
    sp.stats = stats_flag
    sp._cache = None
    result["seconds"] = time.perf_counter() - t0
    return result
