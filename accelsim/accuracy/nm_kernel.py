"""Compiled (numba) kernels of the N:M rule for the accuracy path: one pass per row, no temporaries.

The rule is ``accelsim.nm``'s: per row, per group of ``m`` consecutive channels, keep the ``n`` largest
scores; of equal scores the lower channel index wins; a last group of ``c < m`` real entries keeps
``min(n, c)`` (padding never wins). Groups of at most 32 entries rank every entry directly (branch-free);
in a larger group the ``n``-th largest score ``t`` comes from a sorted copy (a partition above 64 entries),
entries above ``t`` are kept, then entries equal to ``t`` in channel order while room is left.

``select_apply`` writes ``x * mask`` directly, with the scores ``|x|`` computed inline (magnitude) or read
from a separate array, and returns the kept count, so the sparsifier's hot path reads ``x`` once and
allocates only its output (a mask is ``select_apply`` of ones). It reports a NaN score (the caller raises).
Serial (no numba threads): deterministic; the speed is in ``benchmarks/bench_accuracy.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["select_apply"]


@njit(cache=True)
def _kth_largest(buf: np.ndarray, cnt: int, keep_n: int) -> float:
    """The ``keep_n``-th largest of ``buf[:cnt]`` (insertion sort in place for small groups, else a partition)."""
    if cnt <= 64:
        for i in range(1, cnt):
            v = buf[i]
            j = i - 1
            while j >= 0 and buf[j] > v:
                buf[j + 1] = buf[j]
                j -= 1
            buf[j + 1] = v
        return buf[cnt - keep_n]
    return np.partition(buf[:cnt], cnt - keep_n)[cnt - keep_n]


@njit(cache=True)
def select_apply(x: np.ndarray, s: np.ndarray, use_abs_x: bool, n: int, m: int, out: np.ndarray) -> tuple:
    """``out = x * mask`` (``x, out [R, K]``) with the mask of the N:M rule on ``|x|`` (``use_abs_x``) or on the
    scores ``s [R, K]``; returns ``(nan_found, kept)``. Groups of at most 32 rank every entry directly (count
    of larger entries plus equal entries at a lower index); larger groups take the threshold from a sorted
    copy."""
    rows, k = x.shape
    vals = np.empty(m, dtype=np.float64)
    buf = np.empty(m, dtype=np.float64)
    kept = 0
    for r in range(rows):
        for g0 in range(0, k, m):
            g1 = min(g0 + m, k)
            cnt = g1 - g0
            keep_n = min(n, cnt)
            for i in range(cnt):
                v = abs(x[r, g0 + i]) if use_abs_x else s[r, g0 + i]
                if v != v:
                    return True, kept
                vals[i] = v
            if keep_n == cnt:
                for i in range(cnt):
                    out[r, g0 + i] = x[r, g0 + i]
                kept += cnt
                continue
            if cnt <= 32:
                for i in range(cnt):
                    vi = vals[i]
                    rank = 0
                    for j in range(cnt):  # branch-free: data-dependent branches mispredict on real inputs
                        vj = vals[j]
                        rank += (vj > vi) | ((vj == vi) & (j < i))
                    keep = rank < keep_n
                    out[r, g0 + i] = x[r, g0 + i] if keep else 0.0
                    kept += keep
                continue
            for i in range(cnt):
                buf[i] = vals[i]
            t = _kth_largest(buf, cnt, keep_n)
            room = keep_n
            for i in range(cnt):
                if vals[i] > t:
                    room -= 1
            for i in range(cnt):
                v = vals[i]
                if v > t or (v == t and room > 0):
                    if v == t:
                        room -= 1
                    out[r, g0 + i] = x[r, g0 + i]
                    kept += 1
                else:
                    out[r, g0 + i] = 0.0
    return False, kept
