"""The one N:M selection rule of accelsim (numpy side).

Per token (row), per group of ``m`` consecutive input channels, keep the ``n`` entries with the largest
score. On equal scores the lower channel index wins. When ``K % m != 0`` the last group is padded with
entries whose score is minus infinity, so a padding entry is never kept while a real entry is left.

Unstructured per-token top-k is the same rule with one group spanning the whole row (``m = K``).

The accuracy path has a torch implementation of the same rule (``accelsim.accuracy.masks``); a test
checks that both give identical masks on the same data, ties included. This module imports numpy and numba
(the compiled kernel :func:`_nm_keep`; :func:`_nm_mask_sort` is the original stable-sort form of the rule).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
    if s.dtype == np.float16:
        s = s.astype(np.float32)  # exact: the order of the scores is unchanged
    if s.dtype not in (np.float32, np.float64):
        keep = _nm_mask_sort(s, n, m)
    else:
        keep = _keep(np.ascontiguousarray(s), n, m, s.dtype.type(-np.inf))
    return keep[0] if squeeze else keep


def abs_f16_keys(x: np.ndarray) -> np.ndarray:
    """Sort keys of ``|x|`` for float16 ``x``: the bit patterns with the sign cleared, as ``uint16``.

    For finite values (and inf) the order of these integers is the order of ``|x|``, equal values included
    (``-0.0`` and ``0.0`` both give 0), so the N:M rule on the keys keeps exactly what it keeps on ``|x|``."""
    keys = np.ascontiguousarray(x, dtype=np.float16).view(np.uint16) & np.uint16(0x7FFF)
    if (keys > 0x7C00).any():
        raise ValueError("scores contain NaN: the N:M rule is undefined for NaN")
    return keys


def nm_mask_keys(keys: np.ndarray, n: int, m: int) -> np.ndarray:
    """:func:`nm_mask` on ``[T, K]`` unsigned integer sort keys (e.g. :func:`abs_f16_keys`); same rule."""
    _check_nm(n, m)
    t, k = keys.shape
    if n == m:
        return np.ones((t, k), dtype=bool)
    return _keep(np.ascontiguousarray(keys), n, m, keys.dtype.type(0))


def _keep(s: np.ndarray, n: int, m: int, lowest) -> np.ndarray:
    """The rule on a contiguous ``[T, K]`` array whose dtype numba compiles; ``lowest``: a value no entry is below."""
    t, k = s.shape
    if m > _RANK_MAX_M and k <= m:
        return _top_n_rows(s, n)
    keep = np.empty((t, k), dtype=bool)
    if m <= _RANK_MAX_M:
        _keep_small_groups(s, n, m, lowest, keep)
    else:
        _keep_large_groups(s, n, m, keep)
    return keep


#: Groups up to this size are ranked by pairwise comparison; larger ones by the n-th largest value.
_RANK_MAX_M = 64


def _top_n_rows(s: np.ndarray, n: int) -> np.ndarray:
    """The rule for one group per row (unstructured top-k): the ``n`` largest of each row, ties to lower index.

    ``v`` = each row's n-th largest value (a partition, no sort); every entry above ``v`` is kept and, in channel
    order, the first ``n - #above`` entries equal to ``v``: exactly what the stable sort keeps."""
    t, k = s.shape
    if n >= k:
        return np.ones((t, k), dtype=bool)
    kth = np.partition(s, k - n, axis=1)[:, k - n : k - n + 1]
    above = s > kth
    ties = s == kth
    need = n - above.sum(axis=1)
    keep = above | ties
    extra = np.flatnonzero(ties.sum(axis=1) > need)  # rows with more ties at v than places left
    if len(extra):
        sub = ties[extra]
        keep[extra] = above[extra] | (sub & (np.cumsum(sub, axis=1) <= need[extra, None]))
    return keep


@njit(cache=True, nogil=True)
def _keep_small_groups(s, n, m, lowest, keep):  # pragma: no cover - compiled
    """Groups of at most 64: entry ``c`` is kept when fewer than ``n`` entries of its group beat it (an earlier
    entry beats it when at least as large, a later one when larger): the stable-sort rule.

    Row by row, the row is laid out as ``[m, groups]`` (a short last group padded with ``lowest``, which never
    beats a real entry, and is dropped), so every comparison runs over all groups of the row at once."""
    t, k = s.shape
    groups = (k + m - 1) // m
    buf = np.empty((m, groups), s.dtype)
    beaten = np.empty(groups, np.uint8)
    for r in range(t):
        for g in range(groups):
            for c in range(m):
                col = g * m + c
                buf[c, g] = s[r, col] if col < k else lowest
        for c in range(m):
            beaten[:] = 0
            vc = buf[c]
            for d in range(c):
                vd = buf[d]
                for g in range(groups):
                    beaten[g] += vd[g] >= vc[g]
            for d in range(c + 1, m):
                vd = buf[d]
                for g in range(groups):
                    beaten[g] += vd[g] > vc[g]
            for g in range(groups):
                col = g * m + c
                if col < k:
                    keep[r, col] = beaten[g] < n


@njit(cache=True, nogil=True)
def _keep_large_groups(s, n, m, keep):  # pragma: no cover - compiled
    """Groups above 64 entries, several per row: per group the n-th largest value ``v``; every entry above ``v``
    is kept and the first ``n - #above`` entries equal to ``v`` (a short last group keeps ``min(n, entries)``)."""
    t, k = s.shape
    for r in range(t):
        for g0 in range(0, k, m):
            g1 = min(g0 + m, k)
            size = g1 - g0
            if size <= n:
                for c in range(g0, g1):
                    keep[r, c] = True
                continue
            vals = np.sort(s[r, g0:g1])
            kth = vals[size - n]  # the n-th largest
            above = 0
            for c in range(g0, g1):
                if s[r, c] > kth:
                    above += 1
            ties = n - above
            for c in range(g0, g1):
                v = s[r, c]
                if v > kth:
                    keep[r, c] = True
                elif v == kth and ties > 0:
                    keep[r, c] = True
                    ties -= 1
                else:
                    keep[r, c] = False


def _nm_mask_sort(s: np.ndarray, n: int, m: int) -> np.ndarray:
    """The rule by a stable sort of the negated scores in float64 (the original implementation; any float dtype).

    An ascending stable sort puts the largest first and, among equals, the lower channel index first. Padding
    gets +inf (= score -inf): sorted last."""
    t, k = s.shape
    groups = math.ceil(k / m)
    neg = np.full((t, groups * m), np.inf, dtype=np.float64)
    neg[:, :k] = -s.astype(np.float64, copy=False)
    neg = neg.reshape(t, groups, m)
    order = np.argsort(neg, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros((t, groups, m), dtype=bool)
    np.put_along_axis(keep, order, True, axis=2)
    # A padded last group with fewer than n real entries keeps all of them: pads are never kept.
    return keep.reshape(t, groups * m)[:, :k]


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
