"""Weight operand rows of a sparse ``mma`` instruction: the one source of truth for timing and area.

A sparse instruction has ``k`` compressed reduction slots. Under N:M a group of ``m`` input channels
contributes ``n`` consecutive slots, so the instruction starting at slot ``s`` holds slots ``s .. s+k-1`` of
the groups ``floor(s/n) .. floor((s+k-1)/n)``. Each of its multipliers may select any row of those groups
(``m:1`` per group), so the operand buffer must deliver **every real row of every group the instruction
touches** (its *candidate rows*). ``m/n`` times ``k`` is right only when ``n`` divides ``k``:

* 32:64 on ``k = 16``: the 16 slots lie in one group of 64 candidate rows (``m/n`` would say 32);
* 6:8 on ``k = 16``: the instruction at slot 16 touches groups 2, 3, 4 and 5: 32 rows (``m/n`` says 21.3).

With compacted ``gather_rows`` storage only the rows some token of the tile keeps are in the weight buffer,
so the instruction reads the kept rows of its groups instead (:func:`nm_instruction_rows` with ``avail``).
Unstructured selection (``unstructured_instruction_rows``) reads the union of the rows its tokens use.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "nm_instruction_groups",
    "nm_instruction_rows",
    "candidate_rows",
    "unstructured_instruction_rows",
    "distinct_per_bin",
    "nonzero_rc",
]


def nm_instruction_groups(slots: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last group index (inclusive) of each instruction covering ``slots`` compressed slots.

    Instructions tile the compressed row from slot 0 in steps of ``k``; the last one may be short.
    """
    if slots <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.arange(0, slots, k, dtype=np.int64)
    ends = np.minimum(starts + k, slots) - 1
    return starts // n, ends // n


def nm_instruction_rows(avail: np.ndarray, n: int, k: int) -> np.ndarray:
    """Weight rows each instruction of one reduction tile must read, per instruction.

    Args:
        avail: rows present per group of the tile, ``[groups]``: ``min(m, real rows)`` for dense storage, the
            union of the tile's kept rows in that group for compacted ``gather_rows`` storage.
        n: slots per group.
        k: instruction depth (slots).
    """
    g0, g1 = nm_instruction_groups(len(avail) * n, n, k)
    csum = np.concatenate(([0], np.cumsum(avail, dtype=np.int64)))
    return csum[g1 + 1] - csum[g0]


def candidate_rows(k: int, n: int, m: int) -> int:
    """Worst-case candidate rows of one instruction (full groups): what its operand registers must hold.

    The maximum over every instruction position of ``m x groups touched``; instruction positions repeat
    with period ``lcm(k, n)`` slots. Dense (``n == m``) and ``n`` dividing ``k`` give ``k * m / n``.
    """
    if not 1 <= n <= m or k < 1:
        raise ValueError(f"need 1 <= n <= m and k >= 1, got n={n}, m={m}, k={k}")
    period = math.lcm(k, n)
    g0, g1 = nm_instruction_groups(period, n, k)
    return int((g1 - g0 + 1).max()) * m


def unstructured_instruction_rows(mask: np.ndarray, tokens: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per instruction of one tile: the distinct weight rows its tokens' slots use, and its kept values.

    Token ``t``'s kept channels, in channel order, fill its slots; instruction ``(b, s)`` takes tokens
    ``b*tokens ..`` and slots ``s*k .. s*k+k-1``; group ``b`` runs ``ceil(max kept / k)`` instructions
    (lockstep: the busiest token decides). Returns ``(rows, kept)`` flattened in ``(b, s)`` order.
    """
    t_i, kt = mask.shape
    n_b = -(-t_i // tokens)
    counts = mask.sum(axis=1)
    pad = n_b * tokens - t_i
    per_b = np.concatenate((counts, np.zeros(pad, dtype=counts.dtype))).reshape(n_b, tokens).max(axis=1)
    n_s = -(-per_b // k)
    offs = np.concatenate(([0], np.cumsum(n_s)))
    total = int(offs[-1])
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    tok, ch = nonzero_rc(mask)  # row-major: channel order within each token
    slot = np.arange(len(tok)) - np.concatenate(([0], np.cumsum(counts)))[tok]
    instr = offs[tok // tokens] + slot // k
    kept = np.bincount(instr, minlength=total)
    rows = distinct_per_bin(instr, ch, total, kt)
    return rows.astype(np.int64), kept.astype(np.int64)


def distinct_per_bin(bins: np.ndarray, values: np.ndarray, n_bins: int, n_values: int) -> np.ndarray:
    """Per bin, the number of distinct ``values`` (each in ``[0, n_values)``) among its entries, ``[n_bins]``."""
    flat = bins.astype(np.int64) * n_values + values
    if n_bins * n_values <= min(1 << 26, 64 * len(flat) + 4096):  # a presence table (no sort) unless mostly empty
        seen = np.zeros(n_bins * n_values, dtype=bool)
        seen[flat] = True
        return seen.reshape(n_bins, n_values).sum(axis=1)
    return np.bincount(np.unique(flat) // n_values, minlength=n_bins)


def nonzero_rc(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask (row-major order), from the flat indices (a few times faster)."""
    idx = np.flatnonzero(mask)
    rows = idx // mask.shape[1]
    return rows, idx - rows * mask.shape[1]
