"""The N:M selection rule of accelsim, torch side (the numpy side is ``accelsim.nm``).

Per token (row), per group of ``m`` consecutive input channels, keep the ``n`` entries with the largest score.
On equal scores the lower channel index wins. When ``K % m != 0`` the last group is padded with entries of
score minus infinity, so a padding entry is never kept while a real entry is left. Unstructured per-token
top-k is the same rule with one group spanning the row (``m = K``, ``n = round(density * K)``, at least 1).

Both implementations give identical masks on the same scores, ties included
(``tests/test_masks_equivalence.py``). This one runs compiled kernels on the CPU tensor's memory: float32
data with every group full (``K % m == 0``, every model input) and non-negative scores go to the vectorised
kernels of ``accelsim.accuracy.nm_fast`` (ranks of the float32 bit patterns; a radix select for groups
above 32), anything else to ``accelsim.accuracy.nm_kernel`` (per group the ``n``-th largest score is the
threshold; entries above it are kept, and of the entries equal to it the first ones in channel order while
room is left). ``nm_apply`` returns ``x * mask`` (``+0.0`` where dropped) and the kept count without
materialising the mask (the sparsifier's hot path).

Scores are ranked in their own dtype when it is float32 or float64; float16/bfloat16 (and integer) scores
are upcast to float32 first, which is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from accelsim.accuracy.nm_fast import abs_keys, score_keys, select_apply_keys, threshold_apply_bits
from accelsim.accuracy.nm_kernel import select_apply

__all__ = ["nm_mask", "nm_apply", "threshold_apply", "topk_mask", "topk_n"]


def _check_nm(n: int, m: int) -> None:
    if isinstance(n, bool) or isinstance(m, bool) or not (isinstance(n, int) and isinstance(m, int)):
        raise TypeError(f"n and m must be integers, got n={n!r}, m={m!r}")
    if m < 1 or n < 1 or n > m:
        raise ValueError(f"N:M needs 1 <= n <= m, got {n}:{m}")


def _as_kernel_array(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.reshape(-1, t.shape[-1]).contiguous().cpu()


def _int32_flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view(np.int32)


def _fast(k: int, n: int, m: int) -> bool:
    """The vectorised kernels apply: every group is full and some entry of a group is dropped."""
    return n < m and k % m == 0


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean keep-mask of the N:M rule for scores of shape ``[..., K]`` (groups run along the last axis).

    Args:
        scores: selection scores, e.g. ``x.abs()``; any float dtype (float16/bfloat16 are compared in float32,
            which is exact). NaN is rejected.
        n: entries kept per group.
        m: group size (consecutive input channels).

    Returns:
        ``torch.bool`` tensor of the shape of ``scores`` with exactly ``min(n, real entries)`` True per group.
    """
    _check_nm(n, m)
    if not torch.is_floating_point(scores):
        scores = scores.to(torch.float32)
    shape = scores.shape
    if len(shape) == 0:
        raise ValueError("scores must have at least one axis (channels)")
    k = shape[-1]
    if n == m or k == 0 or scores.numel() == 0:
        return torch.ones(shape, dtype=torch.bool, device=scores.device)
    s = _as_kernel_array(scores).numpy()
    ones = np.ones(s.shape, dtype=np.float32)
    out = np.empty(s.shape, dtype=np.float32)
    kb = np.empty(s.size, dtype=np.int32)
    status = score_keys(_int32_flat(s), kb) if s.dtype == np.float32 and _fast(k, n, m) else 2
    if status == 0:
        select_apply_keys(kb, _int32_flat(ones), n, m, _int32_flat(out))
        return torch.from_numpy(out != 0).reshape(shape).to(scores.device)
    nan = status == 1
    if not nan:
        nan, _ = select_apply(ones, s, False, n, m, out)
    if nan:
        raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
    return torch.from_numpy(out != 0).reshape(shape).to(scores.device)


def nm_apply(x: torch.Tensor, n: int, m: int, scores: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """``(x * mask, kept entries)`` with the N:M mask of ``scores`` (``|x|`` when None), in one pass.

    Falls back to ``x * nm_mask(...)`` when ``x`` needs a gradient (the learnable fit backpropagates through
    the kept values) or is not float32/float64."""
    _check_nm(n, m)
    k = x.shape[-1] if x.dim() else 0
    if n == m or k == 0 or x.numel() == 0:
        return x, x.numel()
    if x.requires_grad or x.dtype not in (torch.float32, torch.float64) or x.device.type != "cpu":
        mask = nm_mask(x.detach().abs() if scores is None else scores, n, m)
        return x * mask, int(mask.sum())
    x2 = x.detach().reshape(-1, k).contiguous()
    s2 = x2 if scores is None else _as_kernel_array(scores)
    out = torch.empty_like(x2)
    if x2.dtype == torch.float32 and _fast(k, n, m):
        xb = _int32_flat(x2.numpy())
        kb = np.empty(xb.size, dtype=np.int32)
        if scores is None:
            status = 1 if abs_keys(xb, kb) else 0
        else:
            status = score_keys(_int32_flat(s2.numpy()), kb) if s2.dtype == torch.float32 else 2
        if status == 1:
            raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
        if status == 0:
            select_apply_keys(kb, xb, n, m, _int32_flat(out.numpy()))
            return out.view(x.shape), n * (x2.numel() // m)
    nan, kept = select_apply(x2.numpy(), s2.numpy(), scores is None, n, m, out.numpy())
    if nan:
        raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
    return out.view(x.shape), int(kept)


def threshold_apply(x: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """TEAL's ``(x * (|x| > threshold), kept entries)``, bit for bit as torch computes it (the comparison in
    x's dtype, a dropped entry a signed zero), in one compiled pass for float32 CPU data without gradient and
    with finite entries; torch otherwise."""
    t32 = np.float32(threshold)
    if x.dtype == torch.float32 and not x.requires_grad and x.device.type == "cpu" and t32 >= 0 and x.numel():
        x2 = x.detach().contiguous()
        out = torch.empty_like(x2)
        kept = threshold_apply_bits(_int32_flat(x2.numpy()), int(t32.view(np.int32)), _int32_flat(out.numpy()))
        if kept >= 0:
            return out.view(x.shape), kept
    mask = x.detach().abs() > threshold
    return x * mask, int(mask.sum())


def topk_n(k: int, density: float) -> int:
    """Entries kept per token by unstructured top-k: ``round(density * K)``, at least 1 (``accelsim.nm`` rule)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    return min(k, max(1, int(round(density * k))))


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Unstructured per-token top-k: keep ``round(density * K)`` (at least 1) largest scores per row."""
    k = scores.shape[-1]
    return nm_mask(scores, topk_n(k, density), max(k, 1))
