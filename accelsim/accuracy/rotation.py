"""LaRoSA-style layerwise rotations (Liu et al., "La RoSA: Enhancing LLM Efficiency via Layerwise Rotated Sparse
Activation", ICML 2025, arXiv 2507.01299): sparsify a linear's input in a rotated basis.

For every input tensor of a decoder layer (the attention input read by q/k/v, the input of o, the MLP input
read by gate/up, the input of down) the rotation ``Q`` is the matrix of eigenvectors of ``C = X^T X`` (the
uncentred second moment of the *dense* input on the calibration windows, all tokens, BOS included), columns
sorted by decreasing eigenvalue. Since ``Q`` is orthogonal, ``y = x W^T = (x Q) (W Q)^T``: the sparsified
linear computes ``y = P(x Q) (W Q)^T`` with ``P`` the usual top-k / N:M rule on ``|x Q|``. ``W Q`` is folded
offline (``Site.rot_weight``); ``x Q`` is a dense ``K x K`` product per rotated input at run time (this module
does not fold ``Q`` into the previous layer, so hardware would pay one extra dense GEMM per shared input).
Projections that read one tensor share one ``Q`` and therefore one mask.

For N:M patterns the PCA order is the worst possible grouping (the first group would hold the ``m``
strongest directions and have to drop most of them), so the columns of ``Q`` are dealt round-robin over the
groups (``interleave``): each group of ``m`` holds one direction of each energy tier. This is our adaptation
of LaRoSA (a per-token top-k method) to N:M; a column permutation costs nothing in hardware (it is part of
``Q`` and ``W Q``) and does not change a per-token top-k mask.

``C`` is accumulated in float64 and decomposed with ``torch.linalg.eigh`` (deterministic on one machine);
eigenvector signs do not change ``|x Q|`` masks or ``y``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["collect_rotations", "install_rotations"]

Progress = Callable[[int, int], None] | None


def collect_rotations(
    model: Any, sites: Sequence[Any], calib: torch.Tensor, progress: Progress = None
) -> dict[str, Any]:
    """``{"rotations": {site name: Q [K, K] float32}, "seconds": float, "tokens": int}`` from one dense forward
    per calibration window. Sites that read the same tensor object get the same ``Q`` object."""
    from accelsim.accuracy.calibrate import _base_model

    t0 = time.perf_counter()
    group_of: dict[str, int] = {}
    moments: list[torch.Tensor] = []
    last: list[Any] = [None, -1]  # tensor object last seen, its group

    def make(name: str) -> Callable[..., None]:
        def hook(mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if last[0] is x:
                g = last[1]
            else:
                g = group_of.get(name)
                flat = x.detach().reshape(-1, x.shape[-1]).double()
                if g is None:
                    g = len(moments)
                    moments.append(torch.zeros(x.shape[-1], x.shape[-1], dtype=torch.float64))
                moments[g] += flat.T @ flat
                last[:] = [x, g]
            group_of.setdefault(name, g)

        return hook

    handles = [s.module.register_forward_pre_hook(make(s.name)) for s in sites]
    base = _base_model(model)
    try:
        with torch.no_grad():
            for w in range(calib.shape[0]):
                base(input_ids=calib[w : w + 1], use_cache=False)
                last[:] = [None, -1]
                if progress:
                    progress(w + 1, calib.shape[0])
    finally:
        for h in handles:
            h.remove()
    qs = []
    for c in moments:
        _, vec = torch.linalg.eigh(c)  # ascending eigenvalues
        qs.append(vec.flip(-1).float().contiguous())
    rot = {name: qs[g] for name, g in group_of.items()}
    return {"rotations": rot, "seconds": time.perf_counter() - t0, "tokens": int(calib.numel())}


def interleave(k: int, m: int | None) -> torch.Tensor | None:
    """Column order dealing the principal directions round-robin over the groups of ``m`` channels: position
    ``g m + j`` holds direction ``j G + g`` (``G = k / m`` groups), so every group gets one direction of each
    energy tier. None (keep the PCA order) for per-token top-k (``m`` None or ``k``) or when ``m`` does not
    divide ``k``."""
    if m is None or m >= k or k % m:
        return None
    p = torch.arange(k)
    return (p % m) * (k // m) + p // m


def install_rotations(sites: Sequence[Any], rotations: dict[str, torch.Tensor], m: int | None = None) -> None:
    """Give every site its ``Q`` (columns interleaved for N:M groups of ``m``, see ``interleave``) and the
    folded weight ``W Q``. Sites sharing a ``Q`` keep sharing one object."""
    done: dict[int, torch.Tensor] = {}
    for s in sites:
        q0 = rotations[s.name]
        if id(q0) not in done:
            perm = interleave(q0.shape[0], m)
            done[id(q0)] = q0 if perm is None else q0[:, perm].contiguous()
        q = done[id(q0)]
        s.rotation = q
        s.rot_weight = (s.module.weight.detach().float() @ q).to(s.module.weight.dtype)
