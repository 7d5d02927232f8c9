"""The compressor's comparator plan (numpy only, no amaranth): which compare-exchanges, grouped in levels, and
how many layers a pipeline can cut between. Shared by the RTL and the parameter checks."""

from __future__ import annotations

from accelsim.cost.networks import bitonic_pairs, network

__all__ = ["comparator_levels", "network_pairs", "compressor_layers"]


def comparator_levels(pairs: list[tuple[int, int]] | tuple[tuple[int, int], ...], n_in: int) -> list[list]:
    """Comparators grouped by ASAP level (the earliest stage at which both input wires are ready)."""
    level = [0] * n_in
    out: list[list] = []
    for i, j in pairs:
        d = max(level[i], level[j]) + 1
        level[i] = level[j] = d
        while len(out) < d:
            out.append([])
        out[d - 1].append((i, j))
    return out


def network_pairs(arch: str, n: int, m: int) -> list[tuple[int, int]]:
    """The compare-exchanges of ``bitonic`` (the full sorter) or ``oem_top_n`` (pruned to the top n)."""
    if arch == "bitonic":
        return [] if n == m else bitonic_pairs(m)
    return list(network(m, n, "odd_even_merge_top_n"))


def compressor_layers(arch: str, n: int, m: int) -> int:
    """Layers a pipeline can cut between: compare, count, prefix, select (compare_all) or the comparator
    levels, mask decode, prefix, select (the networks). ``--pipeline-depth`` may be at most this."""
    if arch == "compare_all":
        return 4
    return len(comparator_levels(network_pairs(arch, n, m), m)) + 3
