"""The run-time N:M compressor in amaranth: top-n of m by magnitude, lower channel wins ties.

Ports (flat buses, element ``i`` at bits ``[i*k, (i+1)*k)``):

* ``x``: ``m`` operands of ``width`` bits (sign-magnitude float bit patterns, see :mod:`accelsim.rtl.params`);
* ``vals``: the ``n`` kept operands, sign included, in ascending channel order (slot ``p`` = ``p``-th kept);
* ``idx``: the index-format metadata, ``n`` entries of ``ceil(log2 m)`` bits, entry ``p`` = channel of slot ``p``;
* ``mask``: the bitmask-format metadata, bit ``c`` set when channel ``c`` is kept.

Two ways to find the kept set, one shared back end (prefix count + AND-OR compaction into channel order):

* ``compare_all``: one magnitude comparator per pair ``i < j`` (``ge = mag_i >= mag_j``: on equal magnitudes
  the lower channel ``i`` wins); channel ``c`` is kept when fewer than ``n`` channels beat it, i.e.
  ``#{j < c: mag_j >= mag_c} + #{j > c: mag_j > mag_c} < n``. ``m(m-1)/2`` comparators, no index bits compared.
* ``bitonic`` / ``oem_top_n``: a compare-exchange network (from :mod:`accelsim.cost.networks`) on the distinct
  keys ``mag * m + (m - 1 - c)`` (larger magnitude first, then lower channel); the ``n`` highest output wires
  carry the kept keys, whose channel fields are decoded into the mask.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accelsim.rtl.blocks import Pipeline, adder_tree, bits_for, one_hot_or, prefix_counts, select_kth_set
from accelsim.rtl.params import RtlParamError, check_spec
from accelsim.rtl.plan import comparator_levels, compressor_layers, network_pairs

__all__ = ["Compressor", "comparator_levels", "compressor_layers"]


class Compressor(wiring.Component):
    """Top-``n``-of-``m`` compressor of ``width``-bit operands, architecture ``arch``, ``stages`` register banks."""

    def __init__(self, n: int, m: int, width: int, arch: str = "compare_all", stages: int = 0):
        spec = check_spec((n, m), width, arch, stages)
        self.spec, self.arch, self.stages = spec, arch, stages
        self.n_layers = compressor_layers(arch, n, m)
        if stages > self.n_layers:
            raise RtlParamError(
                f"--pipeline-depth {stages}: {arch} {n}:{m} has {self.n_layers} layers; allowed 0..{self.n_layers}"
            )
        self.register_bits = 0
        super().__init__(
            {
                "x": In(m * width),
                "vals": Out(n * width),
                "idx": Out(n * spec.index_bits),
                "mask": Out(m),
            }
        )

    def elaborate(self, platform):  # noqa: ARG002 - amaranth's signature
        mod = Module()
        n, m, w, b = self.spec.n, self.spec.m, self.spec.width, self.spec.index_bits
        pipe = Pipeline(mod, self.n_layers, self.stages)
        xs = [self.x[c * w : (c + 1) * w] for c in range(m)]
        if self.arch == "compare_all":
            mask, xs = self._compare_all(mod, pipe, xs)
        else:
            mask, xs = self._network(mod, pipe, xs)
        pc = prefix_counts(mod, mask, bits_for(m))
        st = pipe.cut({"x": xs, "mask": mask, "pc": pc})
        idx, vals = select_kth_set(mod, st["mask"], st["pc"], n, st["x"], b)
        st = pipe.cut({"vals": vals, "idx": idx, "mask": st["mask"]})
        mod.d.comb += [
            self.vals.eq(Cat(*st["vals"])),
            self.idx.eq(Cat(*st["idx"])),
            self.mask.eq(Cat(*st["mask"])),
        ]
        self.register_bits = pipe.register_bits
        return mod

    def _compare_all(self, mod: Module, pipe: Pipeline, xs: list):
        n, m, w = self.spec.n, self.spec.m, self.spec.width
        mags = [x[: w - 1] for x in xs]
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        ge_list = []
        for i, j in pairs:
            s = Signal(name=f"ge{i}_{j}")
            mod.d.comb += s.eq(mags[i] >= mags[j])  # equal magnitudes: the lower channel i wins
            ge_list.append(s)
        st = pipe.cut({"x": xs, "ge": ge_list})
        ge = dict(zip(pairs, st["ge"], strict=True))
        cw = bits_for(m)
        keep = []
        for c in range(m):
            beaten_by = [ge[(j, c)] for j in range(c)] + [~ge[(c, j)] for j in range(c + 1, m)]
            cnt = Signal(cw, name=f"rank{c}")
            mod.d.comb += cnt.eq(adder_tree(mod, beaten_by, cw))
            k = Signal(name=f"keep{c}")
            mod.d.comb += k.eq(cnt < n)
            keep.append(k)
        st = pipe.cut({"x": st["x"], "mask": keep})
        return st["mask"], st["x"]

    def _network(self, mod: Module, pipe: Pipeline, xs: list):
        n, m, w, b = self.spec.n, self.spec.m, self.spec.width, self.spec.index_bits
        kw = w - 1 + b
        wires = []
        for c in range(m):  # key = mag * 2^b + (m - 1 - c): distinct, larger magnitude then lower channel wins
            k = Signal(kw, name=f"key{c}")
            mod.d.comb += k.eq(Cat(Const(m - 1 - c, b), xs[c][: w - 1]))
            wires.append(k)
        for lvl, comps in enumerate(comparator_levels(network_pairs(self.arch, n, m), m)):
            new = list(wires)
            for lo, hi in comps:
                a, c = wires[lo], wires[hi]
                swap = Signal(name=f"sw{lvl}_{lo}_{hi}")
                mod.d.comb += swap.eq(a > c)
                s_lo, s_hi = Signal(kw, name=f"k{lvl}_{lo}"), Signal(kw, name=f"k{lvl}_{hi}")
                mod.d.comb += [s_lo.eq(Mux(swap, c, a)), s_hi.eq(Mux(swap, a, c))]  # smaller key to lo
                new[lo], new[hi] = s_lo, s_hi
            st = pipe.cut({"x": xs, "keys": new})
            xs, wires = st["x"], st["keys"]
        if n < m:
            chans = [Const(m - 1, b) - wires[i][:b] for i in range(m - n, m)]  # channel of each kept key
            mask = one_hot_or(mod, [ch[:b] for ch in chans], m)
        else:
            mask = [Const(1, 1) for _ in range(m)]
        st = pipe.cut({"x": xs, "mask": mask})
        return st["mask"], st["x"]
