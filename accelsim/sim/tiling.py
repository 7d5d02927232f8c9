"""The tiling rule: SRAM capacities (double buffered) -> ``(T_tile, K_tile, O_tile)``.

Loop order: token tiles outermost, then output tiles, then reduction tiles innermost, so an output tile's
accumulators stay in the output buffer across all its reduction tiles (partial sums stay on chip, never spill).
``sram.activation_tiling`` says what an activation tile holds:

* ``full_k`` (the default): ``T_tile x K``, every reduction tile of its tokens, read once per token tile;
* ``k_tiled``: ``T_tile x K_tile``, one reduction span, read again for every output tile (a compute tile
  ``(i, o, k)`` needs span ``(i, k)`` and the spans of one token tile do not all fit), so ``T_tile`` is no longer
  bounded by ``K`` and the weights are streamed once per (larger) token tile;
* ``auto``: per site, ``k_tiled`` when :func:`dram_bytes_estimate` of its tiling is strictly lower than the
  ``full_k`` one (or when only ``k_tiled`` fits), otherwise ``full_k``.

``full_k``:

1. ``T_tile`` = the most tokens (at most ``max_tokens_per_tile``, a multiple of the array's token granule when
   that leaves at least one granule) whose dense activations ``T_tile x K`` fit in half the activation buffer
   and whose metadata fits in half the metadata buffer.
2. If a full-``K`` weight tile of one output granule fits in half the weight buffer: ``K_tile = K`` and
   ``O_tile`` = the most output granules that fit (at most ``O``). Otherwise ``O_tile`` = one granule and
   ``K_tile`` = the most reduction granules that fit (if not even one fits: the most whole N:M groups).
3. ``O_tile`` shrinks (by granules) until two output tiles of ``T_tile x O_tile`` accumulators fit.

``k_tiled`` replaces rule 1 by: ``T_tile`` = the most tokens (same bound and rounding) whose activations and
metadata of one reduction granule (of one N:M group if a granule does not fit) fit; then the span = the most
such units (at most ``K``) whose ``T_tile x span`` activations and metadata fit; rules 2 and 3 follow with
``K`` replaced by that span (so a smaller ``K_tile`` lets ``O_tile`` widen). When ``K_tile = K`` the activation
tile is the whole row and the site is tiled exactly as ``full_k``.

``auto``'s estimate, per site: ``token tiles x K x (row bytes of every output tile, rounded to bursts) + reads x
T x K x activation bytes`` with ``reads`` = the number of output tiles for K-tiled activation tiles, else 1. It is
the modelled DRAM read bytes for ``weight_fetch: dense`` with dense activations in DRAM; ``gather_rows``, producer
compression and weight scales read fewer or more bytes than it says, and the rule ignores them (deterministic, from
the shapes and the buffers alone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from accelsim.config.hw import HwConfig
from accelsim.nm import index_bits, metadata_bits_per_group


class TilingError(ValueError):
    """The buffers cannot hold even the smallest tile of a site."""


@dataclass(frozen=True)
class Tiling:
    T_tile: int  # noqa: N815
    K_tile: int  # noqa: N815
    O_tile: int  # noqa: N815
    #: activation tiles are ``T_tile x K_tile`` (one reduction span, re-read per output tile) when ``K_tile < K``
    act_k_tiled: bool = False

    def spans(self, total: int, size: int) -> list[tuple[int, int]]:
        return [(a, min(a + size, total)) for a in range(0, total, size)]


def granules(hw: HwConfig) -> tuple[int, int, int]:
    """Token, reduction (dense channels) and output granules of the array."""
    a, sp = hw.array, hw.sparsity
    m = sp.m if sp.kind == "nm" and sp.m else 1
    if a.dataflow == "mma":
        assert a.mma is not None
        burst_elems = max(1, int(hw.dram.burst_bytes / hw.precision.weight_bytes))
        g_o = math.lcm(a.mma.outputs, burst_elems) if burst_elems <= 4 * a.mma.outputs else a.mma.outputs
        return a.mma.tokens, math.lcm(a.mma.reduction, m), g_o
    assert a.systolic is not None
    g_t = a.systolic.rows if a.dataflow == "os" else 1
    g_k = math.lcm(a.systolic.rows, m) if a.dataflow == "ws" else m
    return g_t, g_k, a.systolic.cols


def metadata_bytes_per_token(hw: HwConfig, k: int) -> float:
    """Metadata bytes of one token's compressed row of ``k`` channels (0 for dense and static masks)."""
    sp = hw.sparsity
    if sp.kind == "dense" or sp.selection == "static_first_n":
        return 0.0
    if sp.kind == "unstructured":
        assert sp.density is not None
        if sp.metadata_format == "bitmask":
            return k / 8
        kept = min(k, max(1, round(sp.density * k)))
        return kept * index_bits(k) / 8
    assert sp.n is not None and sp.m is not None
    return math.ceil(k / sp.m) * metadata_bits_per_group(sp.n, sp.m, sp.metadata_format) / 8


def _check_density(hw: HwConfig, k: int) -> None:
    sp = hw.sparsity
    if sp.kind == "unstructured" and sp.density is not None and round(sp.density * k) < 1:
        raise TilingError(
            f"sparsity.density={sp.density:g} keeps round({sp.density:g} x {k}) = 0 of K={k} channels: "
            f"minimum more than 0.5/K = {0.5 / k:.3g}"
        )


def check_sites(hw: HwConfig, shapes: Iterable[tuple[int, int]]) -> None:
    """Raise before any simulation if some site ``(K, O)`` cannot be tiled. The narrowest site is checked for
    the density and then the widest first for the buffers, so the minimum an error names works for every site."""
    shapes = sorted(set(shapes), key=lambda s: (-s[0], -s[1]))
    if not shapes:
        return
    _check_density(hw, min(k for k, _ in shapes))
    for k, o in shapes:
        choose_tiling(hw, 1, k, o)


def choose_tiling(hw: HwConfig, T: int, K: int, O: int) -> Tiling:  # noqa: N803
    """Apply the tiling rule of this module's docstring to one site (``sram.activation_tiling`` picks the mode)."""
    mode = hw.sram.activation_tiling
    if mode == "full_k":
        return _full_k_tiling(hw, T, K, O)
    k_tiled = _k_tiled_tiling(hw, T, K, O)
    if mode == "k_tiled":
        return k_tiled
    try:
        full = _full_k_tiling(hw, T, K, O)
    except TilingError:
        return k_tiled  # only K-tiled activation tiles fit this site
    return k_tiled if dram_bytes_estimate(hw, T, K, O, k_tiled) < dram_bytes_estimate(hw, T, K, O, full) else full


def dram_bytes_estimate(hw: HwConfig, T: int, K: int, O: int, tiling: Tiling) -> int:  # noqa: N803
    """The closed-form DRAM read bytes ``auto`` compares: every token tile streams the whole dense weight matrix
    (each row segment of an output tile rounded up to bursts) and the dense activations are read once, or once per
    output tile when the activation tiles are one reduction span. Exact for ``weight_fetch: dense`` with dense
    activations in DRAM (no producer compression, no weight scales); ``gather_rows`` reads fewer weight bytes."""
    n_t = -(-T // tiling.T_tile)
    o_sizes = [min(tiling.O_tile, O - a) for a in range(0, O, tiling.O_tile)]
    burst, w_b = hw.dram.burst_bytes, hw.precision.weight_bytes
    weight = K * sum(-(-math.ceil(o * w_b) // burst) * burst for o in o_sizes)
    act = math.ceil(T * K * hw.precision.activation_bytes)
    reads = len(o_sizes) if tiling.act_k_tiled and tiling.K_tile < K else 1
    return n_t * weight + reads * act


def _token_granule_round(t_tile: int, T: int, g_t: int) -> int:  # noqa: N803
    return t_tile - t_tile % g_t if (t_tile < T and t_tile >= g_t) else t_tile


def _weight_tile(hw: HwConfig, k_span: int, O: int, g_k: int, g_o: int) -> tuple[int, int]:  # noqa: N803
    """``(K_tile, O_tile)`` of rule 2 for reduction tiles of at most ``k_span`` channels."""
    w_b = hw.precision.weight_bytes
    half_w = hw.sram.weight_buffer_bytes / 2
    o_gran = min(O, g_o)
    if k_span * o_gran * w_b <= half_w:
        o_fit = math.floor(half_w / (k_span * w_b))
        return k_span, min(O, max(o_gran, o_fit // g_o * g_o))
    k_fit = math.floor(half_w / (o_gran * w_b))
    m_g = hw.sparsity.m if hw.sparsity.kind == "nm" and hw.sparsity.m else 1  # never split an N:M group
    k_tile = min(k_span, k_fit // g_k * g_k if k_fit >= g_k else k_fit // m_g * m_g)
    if k_tile < 1:
        raise TilingError(f"no weight tile fits in half of sram.weight_buffer_bytes={hw.sram.weight_buffer_bytes}")
    return k_tile, o_gran


def _fit_outputs(hw: HwConfig, t_tile: int, o_tile: int, g_o: int) -> tuple[int, int]:
    """Rule 3: shrink ``O_tile`` (then ``T_tile``) until two output tiles of accumulators fit."""
    half_out = hw.sram.output_buffer_bytes / 2
    acc_b = hw.precision.accumulator_bytes
    while t_tile * o_tile * acc_b > half_out:
        if o_tile > g_o:
            o_tile = max(g_o, (o_tile - 1) // g_o * g_o)
        elif o_tile > 1 and o_tile <= g_o:
            o_tile = max(1, o_tile // 2)
        elif t_tile > 1:
            t_tile = max(1, t_tile // 2)
        else:
            raise TilingError(f"one accumulator does not fit in sram.output_buffer_bytes={hw.sram.output_buffer_bytes}")
    return t_tile, o_tile


def _full_k_tiling(hw: HwConfig, T: int, K: int, O: int) -> Tiling:  # noqa: N803
    g_t, g_k, g_o = granules(hw)
    act_b = hw.precision.activation_bytes
    half_act = hw.sram.activation_buffer_bytes / 2
    t_fit = math.floor(half_act / (K * act_b))
    _check_density(hw, K)
    meta_tok = metadata_bytes_per_token(hw, K)
    if meta_tok > 0:
        assert hw.sparsity.metadata_buffer is not None
        t_fit = min(t_fit, math.floor(hw.sparsity.metadata_buffer.capacity_bytes / 2 / meta_tok))
    if K * act_b > half_act:
        raise TilingError(
            f"sram.activation_buffer_bytes={hw.sram.activation_buffer_bytes} cannot hold two tokens of K={K} "
            f"channels: minimum {math.ceil(2 * K * act_b)}"
        )
    if t_fit < 1:
        assert hw.sparsity.metadata_buffer is not None
        raise TilingError(
            f"sparsity.metadata_buffer.capacity_bytes={hw.sparsity.metadata_buffer.capacity_bytes} cannot hold "
            f"two tokens' metadata of K={K} channels: minimum {math.ceil(2 * meta_tok)}"
        )
    t_tile = _token_granule_round(min(T, hw.sram.max_tokens_per_tile, t_fit), T, g_t)
    k_tile, o_tile = _weight_tile(hw, K, O, g_k, g_o)
    t_tile, o_tile = _fit_outputs(hw, t_tile, o_tile, g_o)
    return Tiling(T_tile=t_tile, K_tile=k_tile, O_tile=o_tile)


def _k_tiled_tiling(hw: HwConfig, T: int, K: int, O: int) -> Tiling:  # noqa: N803
    """Rule 1' (``k_tiled``): the most tokens whose activation tile of one reduction span fits, then the widest span
    (whole reduction granules, or whole N:M groups) that these tokens' activations and metadata fit, then rules 2-3
    with reduction tiles of at most that span."""
    g_t, g_k, g_o = granules(hw)
    act_b = hw.precision.activation_bytes
    half_act = hw.sram.activation_buffer_bytes / 2
    _check_density(hw, K)
    m_g = hw.sparsity.m if hw.sparsity.kind == "nm" and hw.sparsity.m else 1
    half_meta = hw.sparsity.metadata_buffer.capacity_bytes / 2 if hw.sparsity.metadata_buffer is not None else 0.0
    step = min(K, g_k) if min(K, g_k) * act_b <= half_act else min(K, m_g)  # the smallest span worth a tile

    def tokens_fit(span: int) -> int:
        t = math.floor(half_act / (span * act_b))
        meta = metadata_bytes_per_token(hw, span)
        return min(t, math.floor(half_meta / meta)) if meta > 0 else t

    if tokens_fit(step) < 1:
        meta = metadata_bytes_per_token(hw, step)
        if step * act_b > half_act:
            raise TilingError(
                f"sram.activation_buffer_bytes={hw.sram.activation_buffer_bytes} cannot hold two tokens of one "
                f"reduction span of {step} channels: minimum {math.ceil(2 * step * act_b)}"
            )
        assert hw.sparsity.metadata_buffer is not None
        raise TilingError(
            f"sparsity.metadata_buffer.capacity_bytes={hw.sparsity.metadata_buffer.capacity_bytes} cannot hold "
            f"two tokens' metadata of {step} channels: minimum {math.ceil(2 * meta)}"
        )
    t_tile = _token_granule_round(min(T, hw.sram.max_tokens_per_tile, tokens_fit(step)), T, g_t)
    # the widest span (a multiple of step, at most K) whose T_tile x span activations and metadata fit
    lo, hi = 1, max(1, -(-K // step))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tokens_fit(min(K, mid * step)) >= t_tile:
            lo = mid
        else:
            hi = mid - 1
    span = min(K, lo * step)
    k_tile, o_tile = _weight_tile(hw, span, O, g_k, g_o)
    t_tile, o_tile = _fit_outputs(hw, t_tile, o_tile, g_o)
    return Tiling(T_tile=t_tile, K_tile=k_tile, O_tile=o_tile, act_k_tiled=True)
