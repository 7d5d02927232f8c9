"""The N:M selection rule of accelsim, torch side (the numpy side is ``accelsim.nm``).

Per token (row), per group of ``m`` consecutive input channels, keep the ``n`` entries with the largest score.
On equal scores the lower channel index wins. When ``K % m != 0`` the last group is padded with entries of
score minus infinity, so a padding entry is never kept while a real entry is left. Unstructured per-token
top-k is the same rule with one group spanning the row (``m = K``, ``n = round(density * K)``, at least 1).

Both implementations give identical masks on the same scores, ties included
(``tests/test_masks_equivalence.py``). This one is vectorised: the ``n``-th largest score of every group
(``kthvalue``) is the threshold; entries above it are kept, and of the entries equal to it only the first
``n - (#above)`` in channel order (a cumulative count), so no Python loop runs over groups or tokens. When no
group has more than ``n`` entries at or above its threshold (the usual case on real activations) the mask is
simply ``score >= threshold``.
"""

from __future__ import annotations

import torch

__all__ = ["nm_mask", "topk_mask", "topk_n"]


def _check_nm(n: int, m: int) -> None:
    if isinstance(n, bool) or isinstance(m, bool) or not (isinstance(n, int) and isinstance(m, int)):
        raise TypeError(f"n and m must be integers, got n={n!r}, m={m!r}")
    if m < 1 or n < 1 or n > m:
        raise ValueError(f"N:M needs 1 <= n <= m, got {n}:{m}")


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
    if n == m or k == 0:
        return torch.ones(shape, dtype=torch.bool, device=scores.device)
    s = scores.detach()
    if s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    if torch.isnan(s).any():
        raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
    s = s.reshape(-1, k)
    groups = -(-k // m)
    if groups * m != k:  # pad the last group with -inf scores (sorted after every real entry, even -inf)
        s = torch.nn.functional.pad(s, (0, groups * m - k), value=float("-inf"))
    g = s.view(s.shape[0], groups, m)
    thr = g.kthvalue(m - n + 1, dim=-1, keepdim=True).values  # the n-th largest score of each group
    if groups * m == k:  # fast path: no group has a tie at its threshold -> keep = score >= threshold
        keep = g >= thr
        if bool((keep.sum(-1, dtype=torch.int32) == n).all()):
            return keep.view(shape)
    above = g > thr
    tie = g == thr
    room = n - above.sum(-1, keepdim=True, dtype=torch.int32)  # how many threshold-equal entries fit
    keep = above | (tie & (tie.cumsum(-1, dtype=torch.int32) <= room))
    keep = keep.view(s.shape[0], groups * m)
    if groups * m != k:
        keep = keep[:, :k]
    return keep.reshape(shape)


def topk_n(k: int, density: float) -> int:
    """Entries kept per token by unstructured top-k: ``round(density * K)``, at least 1 (``accelsim.nm`` rule)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    return min(k, max(1, int(round(density * k))))


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Unstructured per-token top-k: keep ``round(density * K)`` (at least 1) largest scores per row."""
    k = scores.shape[-1]
    return nm_mask(scores, topk_n(k, density), max(k, 1))
