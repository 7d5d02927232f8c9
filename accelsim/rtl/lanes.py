"""The decoder lane and the metadata packer / unpacker (amaranth).

* :class:`DecoderLane`: the ``m:1`` selection in front of one multiplier. Inputs: the group's ``m`` weight
  operands ``w`` and one index-format entry ``sel``; output ``out = w[sel]``: the weight that compressed slot
  ``p`` meets (row ``g*m + meta[p]`` of the design page).
* :class:`MetadataPacker`: the kept-channel mask -> the stored metadata word: ``index`` format packs the ``n``
  kept channels in ascending order, entry ``p`` at bits ``[p*b, (p+1)*b)``; ``bitmask`` format is the mask.
* :class:`MetadataUnpacker`: the stored word -> both the ``n`` selects (``idx``) the decoder lanes need and the
  mask. From ``index`` the selects are wires and the mask is ``n`` one-hot decoders OR-ed; from ``bitmask`` the
  selects come from a prefix count and a k-th-set-bit select (the cost model's bitmask-to-index converter).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accelsim.rtl.blocks import bits_for, one_hot_or, prefix_counts, select_kth_set
from accelsim.rtl.params import FORMATS, RtlParamError, check_spec

__all__ = ["DecoderLane", "MetadataPacker", "MetadataUnpacker", "metadata_word_bits"]


def metadata_word_bits(n: int, m: int, fmt: str) -> int:
    b = max(1, (m - 1).bit_length())
    return n * b if fmt == "index" else m


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise RtlParamError(f"--format {fmt!r}: allowed values are {', '.join(FORMATS)}")


class DecoderLane(wiring.Component):
    """``out = w[sel]``: an ``m:1`` mux of ``width``-bit operands."""

    def __init__(self, m: int, width: int):
        spec = check_spec((1, m), width)
        self.spec = spec
        super().__init__({"w": In(m * width), "sel": In(spec.index_bits), "out": Out(width)})

    def elaborate(self, platform):  # noqa: ARG002
        """A binary tree of 2:1 muxes, level ``k`` steered by select bit ``k`` (``m - 1`` muxes of ``width`` bits,
        ``ceil(log2 m)`` levels); a select past ``m - 1`` (not produced by the packer) yields the last operand."""
        mod = Module()
        w, m = self.spec.width, self.spec.m
        level = [self.w[c * w : (c + 1) * w] for c in range(m)]
        k = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                s = Signal(w, name=f"mux{k}_{i // 2}")
                mod.d.comb += s.eq(Mux(self.sel[k], level[i + 1], level[i]))
                nxt.append(s)
            if len(level) % 2:
                nxt.append(level[-1])
            level, k = nxt, k + 1
        mod.d.comb += self.out.eq(level[0])
        return mod


class MetadataPacker(wiring.Component):
    """Kept-channel ``mask`` (exactly ``n`` bits set) -> metadata ``word`` in ``fmt``."""

    def __init__(self, n: int, m: int, fmt: str = "index"):
        _check_fmt(fmt)
        self.spec = check_spec((n, m), 2)
        self.fmt = fmt
        super().__init__({"mask": In(m), "word": Out(metadata_word_bits(n, m, fmt))})

    def elaborate(self, platform):  # noqa: ARG002
        mod = Module()
        n, m, b = self.spec.n, self.spec.m, self.spec.index_bits
        if self.fmt == "bitmask":
            mod.d.comb += self.word.eq(self.mask)
            return mod
        bits = [self.mask[c] for c in range(m)]
        idx, _ = select_kth_set(mod, bits, prefix_counts(mod, bits, bits_for(m)), n, None, b)
        mod.d.comb += self.word.eq(Cat(*idx))
        return mod


class MetadataUnpacker(wiring.Component):
    """Metadata ``word`` in ``fmt`` -> ``idx`` (``n`` selects, ascending channels) and ``mask``."""

    def __init__(self, n: int, m: int, fmt: str = "index"):
        _check_fmt(fmt)
        self.spec = check_spec((n, m), 2)
        self.fmt = fmt
        super().__init__(
            {
                "word": In(metadata_word_bits(n, m, fmt)),
                "idx": Out(n * self.spec.index_bits),
                "mask": Out(m),
            }
        )

    def elaborate(self, platform):  # noqa: ARG002
        mod = Module()
        n, m, b = self.spec.n, self.spec.m, self.spec.index_bits
        if self.fmt == "index":
            mod.d.comb += self.idx.eq(self.word)
            entries = [self.word[p * b : (p + 1) * b] for p in range(n)]
            mod.d.comb += self.mask.eq(Cat(*one_hot_or(mod, entries, m)))
            return mod
        bits = [self.word[c] for c in range(m)]
        idx, _ = select_kth_set(mod, bits, prefix_counts(mod, bits, bits_for(m)), n, None, b)
        mod.d.comb += [self.idx.eq(Cat(*idx)), self.mask.eq(self.word)]
        return mod
