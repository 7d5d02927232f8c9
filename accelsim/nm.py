"""The one N:M selection rule of accelsim (numpy side).

Per token (row), per group of ``m`` consecutive input channels, keep the ``n`` entries with the largest
score. On equal scores the lower channel index wins. When ``K % m != 0`` the last group is padded with
entries whose score is minus infinity, so a padding entry is never kept while a real entry is left.

Unstructured per-token top-k is the same rule with one group spanning the whole row (``m = K``).

The accuracy path has a torch implementation of the same rule (``accelsim.accuracy.masks``); a test
checks that both give identical masks on the same data, ties included. This module imports numpy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "nm_mask",
    "topk_mask",
    "static_first_n_mask",
    "metadata_bits_per_group",
    "index_bits",
    "compressed_length",
    "parse_pattern",
]


def _check_nm(n: int, m: int) -> None:
    if not (isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer))):
        raise TypeError(f"n and m must be integers, got n={n!r}, m={m!r}")
    if m < 1 or n < 1 or n > m:
        raise ValueError(f"N:M needs 1 <= n <= m, got {n}:{m}")


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Boolean keep-mask of the N:M rule for a ``[T, K]`` (or ``[K]``) array of scores.

    Args:
        scores: selection scores, e.g. ``np.abs(x)``; any float dtype. NaN is rejected.
        n: entries kept per group.
        m: group size (consecutive input channels).

    Returns:
        ``bool`` array of the same shape as ``scores`` with exactly ``min(n, real entries)`` True per group.
    """
    _check_nm(n, m)
    s = np.asarray(scores)
    squeeze = s.ndim == 1
    if squeeze:
        s = s[None, :]
    if s.ndim != 2:
        raise ValueError(f"scores must be [T, K] or [K], got shape {s.shape}")
    if s.dtype.kind != "f":
        s = s.astype(np.float32)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
    t, k = s.shape
    if n == m:
        out = np.ones((t, k), dtype=bool)
        return out[0] if squeeze else out
    groups = math.ceil(k / m)
    # Work in float64 on the negated score so that an ascending stable sort puts the largest first and,
    # among equals, the lower channel index first. Padding gets +inf (= score -inf): sorted last.
    neg = np.full((t, groups * m), np.inf, dtype=np.float64)
    neg[:, :k] = -s.astype(np.float64, copy=False)
    neg = neg.reshape(t, groups, m)
    order = np.argsort(neg, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros((t, groups, m), dtype=bool)
    np.put_along_axis(keep, order, True, axis=2)
    # A padded last group with fewer than n real entries keeps all of them: pads are never kept.
    keep = keep.reshape(t, groups * m)[:, :k]
    return keep[0] if squeeze else keep


def topk_mask(scores: np.ndarray, density: float) -> np.ndarray:
    """Unstructured per-token top-k: keep ``round(density * K)`` (at least 1) largest scores per row."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    s = np.asarray(scores)
    k = s.shape[-1]
    n = min(k, max(1, int(round(density * k))))
    return nm_mask(s, n, k)


def static_first_n_mask(shape: tuple[int, int], n: int, m: int) -> np.ndarray:
    """SCALE-Sim's static weight mask: the first ``n`` of every ``m`` channels, the same for every token."""
    _check_nm(n, m)
    t, k = shape
    row = (np.arange(k) % m) < n
    return np.broadcast_to(row, (t, k)).copy()


def index_bits(m: int) -> int:
    """Bits of one ``index``-format metadata entry: ``ceil(log2 m)`` (at least 1)."""
    return max(1, math.ceil(math.log2(m)))


def metadata_bits_per_group(n: int, m: int, fmt: str) -> int:
    """Metadata bits per group: ``index`` = ``n * ceil(log2 m)``; ``bitmask`` = ``m``."""
    _check_nm(n, m)
    if fmt == "index":
        return n * index_bits(m)
    if fmt == "bitmask":
        return m
    raise ValueError(f"metadata format must be 'index' or 'bitmask', got {fmt!r}")


def compressed_length(k: int, n: int, m: int) -> int:
    """Compressed reduction length ``K' = ceil(K/m) * n`` (the padding rule of the design page)."""
    _check_nm(n, m)
    return math.ceil(k / m) * n


def parse_pattern(text: str) -> tuple[int, int]:
    """Parse ``"8:16"`` into ``(8, 16)`` with a clear error."""
    parts = str(text).strip().split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"pattern must look like 'n:m' (e.g. 8:16), got {text!r}")
    n, m = int(parts[0]), int(parts[1])
    _check_nm(n, m)
    return n, m
