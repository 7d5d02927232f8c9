"""Comparator networks of the run-time compressor: top-n-of-m selection built from Batcher's sorting network.

The compressor keeps, per group of ``m`` activations, the ``n`` with the largest ``|x|`` (ties: lower channel).
We build it as **Batcher's odd-even merge sort** (Batcher, "Sorting networks and their applications", AFIPS
SJCC 1968; generated for any ``m`` by Knuth's merge exchange, TAOCP Vol. 3, 5.3.4, Algorithm M) on the keys
``(|x|, -channel)``, and then **prune** every comparator that cannot influence the ``n`` largest outputs
(a backward pass from the kept output wires). The pruned network is a valid top-n selector: its n largest
output wires carry exactly the n largest keys, sorted.

Comparator counts (tests check them against the closed form and check that the networks sort, by the 0-1
principle):

====  ==============================  ====================  ==================
m     full Batcher sort                bitonic sort         pruned to top m/2
      ``(p^2-p+4) 2^(p-2) - 1``         ``(m/4) p (p+1)``
====  ==============================  ====================  ==================
4     5                                6                    see ``comparators``
8     19                               24
16    63                               80
32    191                              240
====  ==============================  ====================  ==================

(``p = log2 m``; the pruned counts are printed by ``accelsim cost`` and listed in docs/cost-model.md.)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "NETWORKS",
    "batcher_pairs",
    "bitonic_pairs",
    "comparators",
    "depth",
    "network",
    "prune_to_top",
]

NETWORKS = ("odd_even_merge_top_n", "odd_even_merge_sort", "bitonic_sort", "bisection_top_k")
"""Allowed ``compressor_network`` choices. The default is the first. ``bisection_top_k`` is no comparator network:
a radix select over the value bits (one counting pass per bit over the row, then a prefix count for the tie
rule), the selection an unstructured top-k over a whole row can afford."""


def batcher_pairs(n_in: int) -> list[tuple[int, int]]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's merge exchange on ``n_in`` wires, in order.

    After the network, wire 0 holds the smallest key and wire ``n_in - 1`` the largest (each comparator
    puts the smaller key on ``i``). Knuth, TAOCP Vol. 3, 5.3.4, Algorithm M; any ``n_in >= 1``.
    """
    if n_in < 2:
        return []
    t = math.ceil(math.log2(n_in))
    pairs: list[tuple[int, int]] = []
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            pairs.extend((i, i + d) for i in range(n_in - d) if (i & p) == r)
            if q == p:
                break
            d, q, r = q - p, q // 2, p
        p //= 2
    return pairs


def bitonic_pairs(n_in: int) -> list[tuple[int, int]]:
    """Comparators ``(lo, hi)`` of the bitonic sorter (``n_in`` a power of two): the smaller key goes to ``lo``.

    ``lo > hi`` happens inside descending half-sequences. Count ``(m/4) p (p+1)``, ``p = log2 m``.
    """
    if n_in < 2:
        return []
    if n_in & (n_in - 1):
        raise ValueError(f"the bitonic network needs a power-of-two width, got {n_in}")
    pairs: list[tuple[int, int]] = []
    k = 2
    while k <= n_in:
        j = k // 2
        while j > 0:
            for i in range(n_in):
                partner = i ^ j
                if partner > i:
                    pairs.append((i, partner) if (i & k) == 0 else (partner, i))
            j //= 2
        k *= 2
    return pairs


def prune_to_top(pairs: list[tuple[int, int]], n_in: int, n_out: int) -> list[tuple[int, int]]:
    """Keep only the comparators that can influence the ``n_out`` largest output wires.

    For a network that sorts ascending (largest key on the highest wire), the top ``n_out`` are wires
    ``n_in - n_out .. n_in - 1``. Going backwards, a comparator is needed when either output wire is needed,
    and then both its inputs are needed.
    """
    needed = np.zeros(n_in, dtype=bool)
    needed[n_in - n_out :] = True
    kept: list[tuple[int, int]] = []
    for i, j in reversed(pairs):
        if needed[i] or needed[j]:
            kept.append((i, j))
            needed[i] = needed[j] = True
    kept.reverse()
    return kept


@lru_cache(maxsize=256)
def network(m: int, n: int, kind: str = "odd_even_merge_top_n") -> tuple[tuple[int, int], ...]:
    """The comparators of the compressor's network for top-``n``-of-``m`` (``n == m``: none needed)."""
    if kind not in NETWORKS:
        raise ValueError(f"compressor network must be one of {', '.join(NETWORKS)}, got {kind!r}")
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= m, got n={n}, m={m}")
    if n == m or kind == "bisection_top_k":
        return ()
    if kind == "bitonic_sort":
        return tuple(bitonic_pairs(m))
    pairs = batcher_pairs(m)
    if kind == "odd_even_merge_top_n":
        pairs = prune_to_top(pairs, m, n)
    return tuple(pairs)


def comparators(m: int, n: int, kind: str = "odd_even_merge_top_n") -> int:
    """Number of compare-exchange elements of :func:`network`."""
    return len(network(m, n, kind))


def depth(pairs: tuple[tuple[int, int], ...] | list[tuple[int, int]], n_in: int) -> int:
    """Number of comparator stages (the longest chain through any wire)."""
    level = np.zeros(n_in, dtype=np.int64)
    for i, j in pairs:
        d = max(level[i], level[j]) + 1
        level[i] = level[j] = d
    return int(level.max()) if n_in else 0


def apply(pairs: tuple[tuple[int, int], ...] | list[tuple[int, int]], keys: np.ndarray) -> np.ndarray:
    """Run the network on ``keys[..., n_in]`` (each comparator puts the smaller key on its lower wire)."""
    out = np.array(keys, copy=True)
    for i, j in pairs:
        a, b = out[..., i].copy(), out[..., j].copy()
        out[..., i] = np.minimum(a, b)
        out[..., j] = np.maximum(a, b)
    return out
