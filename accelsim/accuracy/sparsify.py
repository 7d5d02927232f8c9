"""Sparsify the inputs of the linear layers of a Hugging Face causal LM (simulated: masks on dense tensors).

``Sparsifier(model, spec)`` picks the ``nn.Linear`` modules inside the decoder layers whose kind
(``q k v o gate up down``, transformers short names) and layer are selected, and, inside ``with
sparsifier:``, replaces their ``forward`` by: transform the input (criterion -> score -> mask, plus the
input-side mitigations), run the original linear, apply the output-side mitigation (learnable diagonal scale
and shift). Leaving the block restores the original forwards. The weights are never changed.

For the ``larosa`` criterion the input is first rotated (``x Q``) and the linear uses the folded ``W Q``
(``accelsim.accuracy.rotation``).

Projections that read the same tensor (q/k/v, gate/up) share the work: the transformed input is cached for
the tensor object last seen and reused when the next projection brings the same object with the same
input-side parameters (mask factor, shift, threshold), so the mask of an activation-only criterion is
computed once per shared input, as in hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from accelsim.accuracy import criteria as crit
from accelsim.accuracy.masks import nm_apply, threshold_apply, topk_n
from accelsim.accuracy.mitigations import apply_affine, token_median, var_factor
from accelsim.accuracy.spec import KINDS, RunSpec, SpecError

__all__ = ["Site", "Sparsifier", "select_sites", "decoder_layers"]


@dataclass(eq=False)
class Site:
    """One sparsified linear: its module and its per-site parameters."""

    name: str
    layer: int
    kind: str
    module: Any  # nn.Linear
    factor: torch.Tensor | None = None  # static score factor (amber, weight-aware)
    eta: float | None = None  # static shift
    threshold: float | None = None  # TEAL threshold on |x| (keep |x| > threshold)
    scale: torch.Tensor | None = None  # learnable a (y * (1 + a) + b)
    shift: torch.Tensor | None = None  # learnable b
    rotation: torch.Tensor | None = None  # LaRoSA: orthogonal Q [K, K]; the input is sparsified as x Q
    rot_weight: torch.Tensor | None = None  # LaRoSA: W Q, folded offline
    kept: int = 0  # statistics: kept input entries
    seen: int = 0  # statistics: input entries
    _forward: Any = field(default=None, repr=False)

    @property
    def params(self) -> int:
        return int(self.module.weight.numel())


def decoder_layers(model: Any) -> Any:
    """The decoder layers: the largest ``nn.ModuleList`` whose entries hold ``nn.Linear`` (as the tracer)."""
    from torch import nn

    stacks = [
        ml
        for _, ml in model.named_modules()
        if isinstance(ml, nn.ModuleList) and any(isinstance(m, nn.Linear) for m in ml.modules())
    ]
    if not stacks:
        raise SpecError(f"{type(model).__name__} has no nn.Linear inside a decoder-layer stack: nothing to sparsify")
    best = max(len(ml) for ml in stacks)
    return next(ml for ml in stacks if len(ml) == best)


def select_sites(model: Any, kinds: Sequence[str] = KINDS, layers: Sequence[int] | None = None) -> list[Site]:
    """The linears to sparsify, in registration order."""
    from accelsim.trace.tracer import find_decoder_linears

    found = find_decoder_linears(model)
    nlayers = 1 + max(s.layer for s in found)
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < nlayers]
        if bad:
            raise SpecError(f"layer {bad[0]} does not exist; allowed: 0-{nlayers - 1}")
    want_layers = None if layers is None else set(layers)
    sites = [
        Site(s.name, s.layer, s.kind, s.module)
        for s in found
        if s.kind in kinds and (want_layers is None or s.layer in want_layers)
    ]
    if not sites:
        raise SpecError(f"no linear of kinds {','.join(kinds)} in the selected layers: nothing to sparsify")
    return sites


class Sparsifier:
    """Context manager that sparsifies the selected linears of ``model`` according to ``spec``.

    Per-site parameters (``Site.eta`` for static shift, ``Site.threshold`` for TEAL, ``Site.scale/shift`` for
    the learnable mitigations) are set by the calibration functions before use; ``enabled = False`` makes
    every site dense without uninstalling (used to compute dense targets while fitting).
    """

    def __init__(
        self,
        model: Any,
        spec: RunSpec,
        kinds: Sequence[str] = KINDS,
        layers: Sequence[int] | None = None,
        stats: bool = True,
    ):
        self.model = model
        self.spec = spec
        self.sites = select_sites(model, kinds, layers)
        self.enabled = True
        self.stats = stats
        self._installed = False
        self._cache: tuple[Any, Any, torch.Tensor, int] | None = None
        pat = spec.pattern
        if pat.kind != "dense" and spec.criterion in ("amber", "weight-aware"):
            for s in self.sites:
                s.factor = crit.static_factor(spec.criterion, s.module.weight)
        if spec.mitigation in ("learnable", "var-learnable") and pat.kind != "dense":
            for s in self.sites:
                out = s.module.weight.shape[0]
                dt = s.module.weight.dtype
                s.scale = torch.zeros(out, dtype=dt)
                s.shift = torch.zeros(out, dtype=dt)

    # -- install / remove -----------------------------------------------------------------------------
    def __enter__(self) -> Sparsifier:
        if self._installed:
            raise RuntimeError("Sparsifier is already installed")
        for site in self.sites:
            site._forward = self._make_forward(site)
            site.module.forward = site._forward  # instance attribute shadows nn.Linear.forward
        self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        for site in self.sites:
            if site.module.__dict__.get("forward") is site._forward:
                del site.module.forward
            site._forward = None
        self._installed = False
        self._cache = None

    def _make_forward(self, site: Site) -> Any:
        mod = site.module

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not self.enabled or self.spec.pattern.kind == "dense":
                return F.linear(x, mod.weight, mod.bias)
            xs = self.transform(x, site)
            y = F.linear(xs, mod.weight if site.rotation is None else site.rot_weight, mod.bias)
            if site.scale is not None:
                y = apply_affine(y, site.scale, site.shift)
            return y

        return forward

    # -- the input transform ----------------------------------------------------------------------------
    def transform(self, x: torch.Tensor, site: Site) -> torch.Tensor:
        """The sparsified (and input-side mitigated) input of ``site`` for ``x``."""
        key = (
            id(site.factor) if site.factor is not None else None,
            site.eta,
            site.threshold,
            id(site.rotation) if site.rotation is not None else None,
        )
        c = self._cache
        if c is not None and c[0] is x and c[1] == key:
            xs, kept = c[2], c[3]
        else:
            xs, kept = self._transform(x, site)
            self._cache = (x, key, xs, kept)
        if self.stats:
            site.kept += kept
            site.seen += x.numel()
        return xs

    def _transform(self, x: torch.Tensor, site: Site) -> tuple[torch.Tensor, int]:
        spec = self.spec
        pat = spec.pattern
        mit = spec.mitigation
        if spec.criterion == "larosa":
            if site.rotation is None:
                raise RuntimeError(f"{site.name}: LaRoSA rotation is not calibrated (run rotation.collect_rotations)")
            x = x @ site.rotation.to(x.dtype)  # the rotated input; the linear then uses W Q
        if mit == "median-shift":
            eta: torch.Tensor | float | None = token_median(x.detach())
        elif mit == "static-shift":
            if site.eta is None:
                raise RuntimeError(f"{site.name}: static shift is not calibrated (run calibrate.static_shifts)")
            eta = site.eta
        else:
            eta = None
        xc = x - eta if eta is not None else x
        if pat.kind == "teal":
            if site.threshold is None:
                raise RuntimeError(f"{site.name}: TEAL threshold is not calibrated (run teal.calibrate_thresholds)")
            xs, kept = threshold_apply(xc, site.threshold)
        else:
            k = xc.shape[-1]
            n, m = (pat.n, pat.m) if pat.kind == "nm" else (topk_n(k, pat.density), k)
            s = None if spec.criterion in ("magnitude", "larosa") else crit.scores(xc, spec.criterion, site.factor)
            xs, kept = nm_apply(xc, n, m, s)  # magnitude: |x| ranked in the kernel, in x's dtype (float32)
        if eta is not None:
            xs = xs + eta
        if mit in ("var", "var-learnable"):
            xs = xs * var_factor(x, xs)
        return xs, kept

    # -- helpers ----------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        for s in self.sites:
            s.kept = s.seen = 0

    def realized_density(self) -> dict[str, float | None]:
        """Kept fraction of the sparsified inputs seen since the last reset: ``mean`` over sites and
        ``param_weighted`` (each site weighted by its weight count, i.e. the fraction of weight rows read)."""
        seen = [s for s in self.sites if s.seen]
        if not seen:
            return {"mean": None, "param_weighted": None}
        mean = sum(s.kept / s.seen for s in seen) / len(seen)
        tot = sum(s.params for s in seen)
        pw = sum(s.params * s.kept / s.seen for s in seen) / tot
        return {"mean": mean, "param_weighted": pw}

    def learnable_parameters(self, layer: int | None = None) -> list[torch.Tensor]:
        out = []
        for s in self.sites:
            if s.scale is not None and (layer is None or s.layer == layer):
                out += [s.scale, s.shift]
        return out
