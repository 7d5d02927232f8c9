"""Vectorisable (numba) kernels of the N:M rule on float32 bit patterns: the sparsifier's hot path.

The rule is ``accelsim.nm``'s (per row, per group of ``m`` consecutive channels keep the ``n`` largest scores;
of equal scores the lower channel index wins). These kernels cover the case that every model input hits:
float32 data, ``K % m == 0`` (every group full) and ``n < m``; everything else goes to
``accelsim.accuracy.nm_kernel.select_apply``.

Order keys: the score of an entry is ``|x|`` (magnitude) or a separate non-negative float32 score array. The
bit pattern of a non-negative float32, read as an int32, orders exactly like the float, and two such floats
are equal exactly when their patterns are equal; ``pattern & 0x7FFFFFFF`` is therefore the key of ``|x|``
(and maps ``-0.0`` to the key of ``+0.0``). Ranking these keys is ranking the float32 scores, ties included.
A NaN has a key above ``0x7F800000`` (infinity) and is rejected before any selection. The keys are written
to their own int32 array first (one vectorised pass): the selection loops then read nothing else.

Output: ``out = x`` where kept, ``+0.0`` elsewhere, written as ``bits(x) & -keep`` (no branch on the data).
Every full group keeps exactly ``n`` entries, so the kept count is ``n * groups``.

Selection, by group size:

* ``m <= 32``: the rank of entry ``i`` is the number of entries of its group with a larger key, plus the
  entries with an equal key at a lower index; entry ``i`` is kept when its rank is below ``n``. The group size
  is a compile-time constant for ``m`` in 4, 8, 16, 32 (the inner loops unroll and vectorise; ``m = 8`` runs
  as two groups in a 16-wide block), a run-time value otherwise.
* ``m > 32`` (unstructured top-k, ``m = K``): a radix select per group. A histogram of the top 11 key bits
  finds the bucket holding the ``n``-th largest key, a histogram of the next 9 bits of that bucket's keys the
  sub-bucket; its keys are sorted to give the threshold key ``t``; the entries above ``t`` are kept, and of
  the entries equal to ``t`` the first ones in channel order while room is left.

``threshold_apply_bits`` is TEAL's threshold rule (keep ``|x| > t``) on the same keys, bit for bit what
``x * (x.abs() > t)`` gives in torch (which compares in float32 and keeps the sign of a dropped entry).

Serial (no numba threads): deterministic, and the benchmark measures one thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["abs_keys", "score_keys", "select_apply_keys", "threshold_apply_bits"]

_INF = 0x7F800000  # bit pattern of +inf: a larger key (sign bit cleared) is a NaN


@njit(cache=True)
def abs_keys(xb: np.ndarray, kb: np.ndarray) -> bool:
    """``kb = xb & 0x7FFFFFFF`` (flat int32 patterns of float32 data -> keys of ``|x|``); True on a NaN."""
    mx = 0
    for i in range(xb.size):
        k = xb[i] & 0x7FFFFFFF
        kb[i] = k
        mx = max(mx, k)
    return mx > _INF


@njit(cache=True)
def score_keys(sb: np.ndarray, kb: np.ndarray) -> int:
    """Keys of float32 scores (int32 patterns ``sb``, flat): 0 when every score is a non-negative number
    (``-0.0`` included, keyed as ``+0.0``), 1 when one is NaN, 2 when one is negative (the caller then uses
    the general kernel: a negative score's pattern does not order like the float)."""
    mx = 0
    neg = 0
    for i in range(sb.size):
        b = sb[i]
        k = b & 0x7FFFFFFF
        kb[i] = k
        mx = max(mx, k)
        neg |= np.int32(b < 0) & np.int32(k != 0)  # sign bit set on a non-zero
    if mx > _INF:
        return 1
    return 2 if neg else 0


@njit(cache=True, inline="always")
def _rank_groups(kb: np.ndarray, xb: np.ndarray, n: int, m: int, ob: np.ndarray) -> None:
    """``m <= 32``: keep entry ``i`` of a group when fewer than ``n`` entries beat it (larger key, or equal key
    at a lower index). Inlined with a literal ``m`` where the dispatcher has one."""
    for q in range(kb.size // m):
        g = q * m
        for i in range(m):
            ki = kb[g + i]
            beaten = 0
            for j in range(m):
                kj = kb[g + j]
                beaten += (kj > ki) | ((kj == ki) & (j < i))
            ob[g + i] = xb[g + i] & (-np.int32(beaten < n))


@njit(cache=True, inline="always")
def _rank_groups_8x2(kb: np.ndarray, xb: np.ndarray, n: int, ob: np.ndarray) -> None:
    """``m = 8`` on blocks of two groups: the 16-wide form of ``_rank_groups`` with the comparisons across
    the two halves masked out (it vectorises where the 8-wide form does not)."""
    for q in range(kb.size // 16):
        g = q * 16
        for i in range(16):
            ki = kb[g + i]
            beaten = 0
            for j in range(16):
                kj = kb[g + j]
                beaten += ((kj > ki) | ((kj == ki) & (j < i))) & ((i ^ j) < 8)
            ob[g + i] = xb[g + i] & (-np.int32(beaten < n))


@njit(cache=True)
def _radix_groups(kb: np.ndarray, xb: np.ndarray, n: int, m: int, ob: np.ndarray) -> None:
    """``m > 32``: per group, the bucket of the ``n``-th largest key by a histogram of the top 11 key bits, then
    the sub-bucket by a histogram of the next 9 bits over that bucket's keys, then a sort of the sub-bucket's
    keys gives the threshold key; ties at the threshold are kept in channel order."""
    hist = np.zeros(2048, dtype=np.int32)  # key >> 20 <= 0x7F8 for a non-NaN key
    hist2 = np.zeros(512, dtype=np.int32)
    cand = np.empty(m, dtype=np.int32)
    for q in range(kb.size // m):
        g = q * m
        lo = 2047
        hi = 0
        for i in range(m):
            b = kb[g + i] >> 20
            hist[b] += 1
            lo = min(lo, b)
            hi = max(hi, b)
        need = n  # keys still to take, from the current bucket downwards
        bucket = hi
        while hist[bucket] < need:
            need -= hist[bucket]
            bucket -= 1
        for b in range(lo, hi + 1):  # leave the histogram zeroed for the next group
            hist[b] = 0
        nc = 0
        for i in range(m):  # the keys of the bucket, in channel order (branch-free append)
            v = kb[g + i]
            cand[nc] = v
            nc += (v >> 20) == bucket
        lo = 511
        hi = 0
        for i in range(nc):
            b = (cand[i] >> 11) & 511
            hist2[b] += 1
            lo = min(lo, b)
            hi = max(hi, b)
        bucket = hi
        while hist2[bucket] < need:
            need -= hist2[bucket]
            bucket -= 1
        for b in range(lo, hi + 1):
            hist2[b] = 0
        nsub = 0
        for i in range(nc):
            v = cand[i]
            cand[nsub] = v
            nsub += ((v >> 11) & 511) == bucket
        c = cand[:nsub]
        c.sort()
        t = c[nsub - need]  # the n-th largest key of the group
        above = 0
        equal = 0
        for i in range(nsub):
            above += c[i] > t
            equal += c[i] == t
        room = need - above  # entries equal to t that are kept (the first ones in channel order)
        if room == equal:
            for i in range(m):
                ob[g + i] = xb[g + i] & (-np.int32(kb[g + i] >= t))
        else:
            for i in range(m):
                v = kb[g + i]
                keep = np.int32(v > t) | (np.int32(v == t) & np.int32(room > 0))
                room -= np.int32(v == t) & keep
                ob[g + i] = xb[g + i] & (-keep)


@njit(cache=True)
def select_apply_keys(kb: np.ndarray, xb: np.ndarray, n: int, m: int, ob: np.ndarray) -> None:
    """``ob = xb & -keep`` (flat int32 arrays of ``q * m`` entries: groups of ``m`` consecutive entries,
    ``n < m``) with the mask of the keys ``kb`` (from ``abs_keys`` or ``score_keys``); ``xb`` and ``ob`` are
    the patterns of the float32 data and of its output."""
    if m == 4:
        _rank_groups(kb, xb, n, 4, ob)
    elif m == 8:
        if kb.size % 16 == 0:
            _rank_groups_8x2(kb, xb, n, ob)
        else:
            _rank_groups(kb, xb, n, 8, ob)
    elif m == 16:
        _rank_groups(kb, xb, n, 16, ob)
    elif m == 32:
        _rank_groups(kb, xb, n, 32, ob)
    elif m < 32:
        _rank_groups(kb, xb, n, m, ob)
    else:
        _radix_groups(kb, xb, n, m, ob)


@njit(cache=True)
def threshold_apply_bits(xb: np.ndarray, tkey: int, ob: np.ndarray) -> int:
    """TEAL's ``x * (|x| > t)`` on flat int32 patterns: ``ob = xb`` where the key of ``|x|`` exceeds ``tkey``
    (the pattern of the float32 threshold ``t >= 0``), else the signed zero ``x * 0.0`` gives (the sign bit of
    ``x``). Returns the kept count, or -1 when an entry is infinite or NaN (``x * 0.0`` is then NaN, not a
    zero: the caller uses torch)."""
    kept = 0
    mx = 0
    for i in range(xb.size):
        b = xb[i]
        k = b & 0x7FFFFFFF
        mx = max(mx, k)
        keep = np.int32(k > tkey)
        ob[i] = b & ((-keep) | np.int32(-0x80000000))
        kept += keep
    return -1 if mx >= _INF else kept
