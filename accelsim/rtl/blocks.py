"""Shared combinational building blocks (amaranth) and the pipeline-register helper.

Every block is a function that adds logic to an amaranth ``Module`` and returns the new values. Buses are flat
vectors, element ``i`` of ``k`` bits at bits ``[i*k, (i+1)*k)``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal, Value

__all__ = ["Pipeline", "adder_tree", "prefix_counts", "select_kth_set", "one_hot_or", "bits_for"]


def bits_for(v: int) -> int:
    """Bits of an unsigned integer up to ``v`` (at least 1)."""
    return max(1, int(v).bit_length())


class Pipeline:
    """Places register banks after chosen layers of a block made of ``n_layers`` layers.

    ``stages = p`` registers after the layers ``round(i * L / p)``, ``i = 1..p`` (the last after the final
    layer: registered outputs), so the block's latency is ``p`` cycles; ``p = 0`` is combinational. Every value
    still needed downstream passes through each cut, so carried operands are registered as real hardware is.
    """

    def __init__(self, module: Module, n_layers: int, stages: int):
        if stages > n_layers:
            raise ValueError(f"stages {stages} > {n_layers} layers of this block")
        self.m = module
        self.cuts = {round(i * n_layers / stages) for i in range(1, stages + 1)} if stages else set()
        self.register_bits = 0
        self.layer = 0

    def cut(self, values: dict[str, list[Value]]) -> dict[str, list[Value]]:
        """End a layer: return the value lists, each element registered when a cut follows this layer."""
        self.layer += 1
        if self.layer not in self.cuts:
            return values
        out: dict[str, list[Value]] = {}
        for name, elems in values.items():
            regs = []
            for k, v in enumerate(elems):
                r = Signal(len(v), name=f"p{self.layer}_{name}{k}", reset_less=True)
                self.m.d.sync += r.eq(v)
                self.register_bits += len(v)
                regs.append(r)
            out[name] = regs
        return out


def adder_tree(m: Module, bits: list[Value], width: int) -> Value:
    """Balanced-tree popcount of one-bit values (partial sums held in signals, capped at ``width`` bits)."""
    if not bits:
        return Const(0, width)
    level: list[Value] = [b.as_unsigned() for b in bits]
    while len(level) > 1:
        nxt: list[Value] = []
        for i in range(0, len(level) - 1, 2):
            s = Signal(min(width, max(len(level[i]), len(level[i + 1])) + 1))
            m.d.comb += s.eq(level[i] + level[i + 1])
            nxt.append(s)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def prefix_counts(m: Module, mask: list[Value], width: int) -> list[Value]:
    """Exclusive prefix popcounts ``pc[c] = popcount(mask[0:c])`` by a Kogge-Stone scan (log2 levels)."""
    k = len(mask)
    cur: list[Value] = [Const(0, width)] + [mask[c].as_unsigned() for c in range(k - 1)]
    d, lvl = 1, 0
    while d < k:
        nxt = []
        for c in range(k):
            if c >= d:
                s = Signal(width, name=f"pc{lvl}_{c}")
                m.d.comb += s.eq(cur[c] + cur[c - d])
                nxt.append(s)
            else:
                nxt.append(cur[c])
        cur, d, lvl = nxt, d * 2, lvl + 1
    return cur


def select_kth_set(
    m: Module, mask: list[Value], pc: list[Value], n: int, payload: list[Value] | None, idx_bits: int
) -> tuple[list[Value], list[Value]]:
    """For slots ``p = 0..n-1``: the channel of the ``p``-th set bit of ``mask`` and, if given, its payload.

    With exactly ``n`` bits set, slot ``p`` can only come from channels ``p .. p + m - n``: an AND-OR mux over
    those. Returns ``(indices, payloads)`` (``payloads`` empty when ``payload`` is None).
    """
    k = len(mask)
    idx_out, val_out = [], []
    for p in range(n):
        sel = []
        for c in range(p, p + k - n + 1):
            s = Signal(name=f"sel{p}_{c}")
            m.d.comb += s.eq(mask[c] & (pc[c] == p))
            sel.append((c, s))
        idx = Signal(idx_bits, name=f"slot_idx{p}")
        m.d.comb += idx.eq(_or_all(m, [Const(c, idx_bits) & s.replicate(idx_bits) for c, s in sel], idx_bits))
        idx_out.append(idx)
        if payload is not None:
            w = len(payload[0])
            v = Signal(w, name=f"slot_val{p}")
            m.d.comb += v.eq(_or_all(m, [payload[c] & s.replicate(w) for c, s in sel], w))
            val_out.append(v)
    return idx_out, val_out


def one_hot_or(m: Module, indices: list[Value], k: int) -> list[Value]:
    """Bits ``c = 0..k-1``, set when some index equals ``c`` (one-hot decoders OR-ed)."""
    out = []
    for c in range(k):
        s = Signal(name=f"hit{c}")
        m.d.comb += s.eq(_or_all(m, [(i == c) for i in indices], 1))
        out.append(s)
    return out


def _or_all(m: Module, values: list[Value], width: int) -> Value:
    """OR of ``values`` as a balanced tree of signals."""
    if not values:
        return Const(0, width)
    level = list(values)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            s = Signal(width)
            m.d.comb += s.eq(level[i] | level[i + 1])
            nxt.append(s)
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]
