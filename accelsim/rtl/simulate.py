"""Drive the RTL blocks with amaranth's simulator and read their outputs back as numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from amaranth.sim import Simulator

__all__ = ["pack_bus", "unpack_bus", "simulate", "run_compressor"]


def pack_bus(rows: np.ndarray, bits: int) -> list[int]:
    """Rows of unsigned elements -> one flat bus integer per row (element ``i`` at bits ``[i*bits, ...)``)."""
    out = []
    for row in np.asarray(rows, dtype=np.uint64):
        v = 0
        for i, e in enumerate(row.tolist()):
            v |= int(e) << (i * bits)
        out.append(v)
    return out


def unpack_bus(words: Sequence[int], count: int, bits: int) -> np.ndarray:
    """Flat bus integers -> ``[len(words), count]`` uint64 elements."""
    mask = (1 << bits) - 1
    return np.array([[(w >> (i * bits)) & mask for i in range(count)] for w in words], dtype=np.uint64)


def simulate(component, inputs: Mapping[str, Sequence[int]], outputs: Sequence[str], latency: int = 0) -> dict:
    """Apply input vector ``k`` (one int per input port), read every output port; ``latency`` clock edges
    between applying and reading for a pipelined block (0: combinational, read after settling)."""
    names = list(inputs)
    count = len(inputs[names[0]])
    result: dict[str, list[int]] = {o: [] for o in outputs}
    sim = Simulator(component)
    if latency:
        sim.add_clock(1e-8)

    async def bench(ctx):
        for k in range(count):
            for name in names:
                ctx.set(getattr(component, name), int(inputs[name][k]))
            for _ in range(latency):
                await ctx.tick()
            for o in outputs:
                result[o].append(int(ctx.get(getattr(component, o))))

    sim.add_testbench(bench)
    sim.run()
    return result


def run_compressor(comp, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Simulate a :class:`~accelsim.rtl.compressor.Compressor` on ``groups[G, m]`` of bit patterns.

    Returns ``vals[G, n]``, ``idx[G, n]`` (uint64) and ``mask[G, m]`` (bool), the layout of
    :func:`accelsim.rtl.params.reference_outputs`.
    """
    s = comp.spec
    raw = simulate(comp, {"x": pack_bus(groups, s.width)}, ["vals", "idx", "mask"], latency=comp.stages)
    return {
        "vals": unpack_bus(raw["vals"], s.n, s.width),
        "idx": unpack_bus(raw["idx"], s.n, s.index_bits),
        "mask": unpack_bus(raw["mask"], s.m, 1).astype(bool),
    }
