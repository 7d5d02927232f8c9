"""Per-tile work of one site, computed vectorised from the real activations before any event is simulated.

For each compute tile ``(t-tile, o-tile, k-tile)`` this module gives the weight bytes to fetch, the compute
cycles of the array (with their breakdown) and the action counts; for each activation tile (a token tile, or with
K-tiled activation tiles a compute tile's reduction span, read once per output tile) the activation and metadata
bytes and the compressor's busy time. The simpy pipeline (``engine.py``) only adds overlap, contention and stalls.
Timing formulas per dataflow are written out in ``docs/timing-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelsim.config.hw import HwConfig
from accelsim.nm import (
    abs_f16_keys,
    compressed_length,
    index_bits,
    metadata_bits_per_group,
    nm_mask,
    nm_mask_keys,
    static_first_n_mask,
    topk_mask,
)
from accelsim.sim.actions import Action
from accelsim.sim.operands import distinct_per_bin, nm_instruction_rows, nonzero_rc, unstructured_instruction_rows
from accelsim.sim.tiling import Tiling, choose_tiling

#: Compute-tile breakdown columns (cycles); their sum is the tile's cycles.
TILE_PARTS = (
    "compute",
    "rounding",
    "pipeline",
    "decoder",
    "weight_load",
    "operand_stall",
    "metadata_stall",
)


def site_mask(hw: HwConfig, x: np.ndarray) -> np.ndarray | None:
    """Keep-mask ``[T, K]`` of the configured pattern for activations ``x`` (``None`` for dense).

    The scores are ``|x|``; for float16 ``x`` (every trace) the rule runs on the sign-cleared bit patterns,
    whose order is that of ``|x|`` (``nm.abs_f16_keys``), so no float copy of the input is made."""
    sp = hw.sparsity
    if sp.kind == "dense":
        return None
    if sp.kind == "nm" and sp.selection == "static_first_n":
        assert sp.n is not None and sp.m is not None
        return static_first_n_mask(x.shape, sp.n, sp.m)
    if sp.kind == "unstructured":
        assert sp.density is not None
        if x.dtype != np.float16:
            return topk_mask(np.abs(x.astype(np.float32)), sp.density)
        k = x.shape[-1]
        return nm_mask_keys(abs_f16_keys(x), min(k, max(1, int(round(sp.density * k)))), k)
    assert sp.n is not None and sp.m is not None
    if x.dtype != np.float16:
        return nm_mask(np.abs(x.astype(np.float32)), sp.n, sp.m)
    return nm_mask_keys(abs_f16_keys(x), sp.n, sp.m)


def mask_key(hw: HwConfig) -> tuple:
    """What :func:`site_mask` depends on besides ``x``: configs with equal keys get the same mask of a site."""
    sp = hw.sparsity
    if sp.kind == "dense":
        return ("dense",)
    if sp.kind == "unstructured":
        return ("unstructured", sp.density)
    if sp.selection == "static_first_n":
        return ("static", sp.n, sp.m)
    return ("nm", sp.n, sp.m)


def _ceil_div(a, b):
    return -(-a // b)


@dataclass
class SiteWork:
    """Everything the event model needs for one site, in program order."""

    tiling: Tiling
    n_t: int
    n_o: int
    n_k: int
    act_read_bytes: np.ndarray  # per activation tile, DRAM activation bytes (0 when the input is reused on chip)
    meta_read_bytes: np.ndarray  # per activation tile, DRAM metadata bytes (producer placement)
    compress_busy: np.ndarray  # per activation tile, compressor busy cycles (0 without a compressor on the path)
    compress_latency: int
    weight_bytes: np.ndarray  # per compute tile
    weight_extra_cycles: np.ndarray  # per compute tile: DRAM channel cycles lost to row activations of gathers
    tile_parts: dict[str, np.ndarray]  # per compute tile, cycles by part (TILE_PARTS)
    out_bytes: np.ndarray  # per (t, o) output tile
    actions: dict[str, int]
    stats: dict[str, float] = field(default_factory=dict)
    gather_rows: bool = False  # weight reads wait for the activation tile's mask
    compat_offset: int = 0  # SCALE-Sim's -1 per site in compat mode
    #: per compute tile, the index of its activation tile (nondecreasing). ``None``: one activation tile per token
    #: tile, ``T_tile x K`` (``full_k``); K-tiled activation tiles have one per compute tile.
    act_tile: np.ndarray | None = None
    #: per compute tile, the activation tile whose compression first gives the tile's mask (what a gathered weight
    #: read waits for); ``None``: its own activation tile.
    mask_tile: np.ndarray | None = None

    @property
    def tile_cycles(self) -> np.ndarray:
        return sum(self.tile_parts[p] for p in TILE_PARTS)

    @property
    def n_act(self) -> int:
        """Activation tiles of the site (token tiles unless the activation tiles are K-tiled)."""
        return self.n_t if self.act_tile is None else (int(self.act_tile[-1]) + 1 if len(self.act_tile) else 0)

    def act_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(activation tile of each compute tile, last compute tile of each activation tile, mask source of each
        compute tile)`` as int64 arrays, filled in for the ``None`` defaults."""
        n_tiles = self.n_t * self.n_o * self.n_k
        if self.act_tile is None:
            act = np.arange(n_tiles, dtype=np.int64) // max(1, self.n_o * self.n_k)
        else:
            act = np.asarray(self.act_tile, dtype=np.int64)
        n_act = int(act[-1]) + 1 if n_tiles else 0
        last = np.searchsorted(act, np.arange(n_act, dtype=np.int64), side="right").astype(np.int64) - 1
        mask = act if self.mask_tile is None else np.asarray(self.mask_tile, dtype=np.int64)
        return act, last, mask

    def tile_index(self, i: int, o: int, k: int) -> int:
        return (i * self.n_o + o) * self.n_k + k


def _tile_any(mask: np.ndarray, t_starts: np.ndarray, t_tile: int) -> np.ndarray:
    """``[n_t, K]``: which channels some token of each token tile keeps (a reshape when all tiles are full)."""
    T, K = mask.shape  # noqa: N806
    if T % t_tile == 0 and len(t_starts) == T // t_tile:
        return mask.reshape(T // t_tile, t_tile, K).any(axis=1)
    return np.logical_or.reduceat(mask, t_starts, axis=0)


def _row_bytes(o_size: np.ndarray, w_bytes: float, burst: int) -> np.ndarray:
    """Bytes of one weight row segment of ``o_size`` elements, rounded up to whole bursts."""
    raw = np.ceil(o_size * w_bytes).astype(np.int64)
    return _ceil_div(raw, burst) * burst


@dataclass(frozen=True)
class _ShapeConsts:
    """What :func:`build_site_work` derives from ``(hw, T, K, O)`` alone (read-only; shared by sites)."""

    tiling: Tiling
    t_spans: list[tuple[int, int]]
    k_spans: list[tuple[int, int]]
    o_sizes: np.ndarray
    t_sizes: np.ndarray
    t_starts: np.ndarray
    k_real: np.ndarray
    row_bytes: np.ndarray
    bits_per_value: list[float]


#: ``(id(hw), T, K, O) -> _ShapeConsts`` and ``id(hw) -> hw`` (held, so that an id is never reused while cached).
_SHAPES: dict[tuple, _ShapeConsts] = {}
#: cross-site memo of :func:`_mma_sequence_cost`: ``(id(hw), o_sizes, _mma_key) -> result`` (read-only results)
_SEQ_COSTS: dict[tuple, tuple] = {}
_HELD: dict[int, HwConfig] = {}
_CACHE_LIMIT = 1 << 14


def _hold(hw: HwConfig) -> int:
    """``id(hw)``, with ``hw`` kept alive by the caches (cleared together when they grow too large)."""
    if len(_SHAPES) + len(_SEQ_COSTS) > _CACHE_LIMIT:
        _SHAPES.clear()
        _SEQ_COSTS.clear()
        _HELD.clear()
    _HELD[id(hw)] = hw
    return id(hw)


def _sizes(spans: list[tuple[int, int]]) -> np.ndarray:
    return np.fromiter((b - a for a, b in spans), dtype=np.int64, count=len(spans))


def _shape_consts(hw: HwConfig, T: int, K: int, O: int) -> _ShapeConsts:  # noqa: N803
    key = (_hold(hw), T, K, O)
    c = _SHAPES.get(key)
    if c is None:
        tiling = choose_tiling(hw, T, K, O)
        t_spans = tiling.spans(T, tiling.T_tile)
        k_spans = tiling.spans(K, tiling.K_tile)
        o_sizes = np.full(-(-O // tiling.O_tile), tiling.O_tile, dtype=np.int64)
        if O % tiling.O_tile:
            o_sizes[-1] = O % tiling.O_tile
        c = _ShapeConsts(
            tiling=tiling,
            t_spans=t_spans,
            k_spans=k_spans,
            o_sizes=o_sizes,
            t_sizes=_sizes(t_spans),
            t_starts=np.array([a for a, _ in t_spans], dtype=np.int64),
            k_real=_sizes(k_spans),
            row_bytes=_row_bytes(o_sizes, hw.precision.weight_bytes, hw.dram.burst_bytes),
            bits_per_value=_bits_per_kept_value(hw, k_spans),
        )
        for arr in (c.o_sizes, c.t_sizes, c.t_starts, c.k_real, c.row_bytes):
            arr.flags.writeable = False
        _SHAPES[key] = c
    return c


def build_site_work(
    hw: HwConfig,
    x: np.ndarray,
    O: int,  # noqa: N803
    *,
    mask: np.ndarray | None = None,
    reuse_input: bool = False,
    weight_scales: tuple[int, float] | None = None,
) -> SiteWork:
    """Per-tile work of ``y = x @ W`` with ``x`` of shape ``[T, K]`` and ``O`` outputs on ``hw``.

    Args:
        mask: the keep-mask if already computed (shared input); computed from ``x`` otherwise.
        reuse_input: the input (and its compressed form) is still on chip from the previous site with the same
            ``input_id``: no activation read and no compression. The caller decides: after a site of more than one
            activation tile (``SiteWork.n_act``; K-tiled activation tiles hold one reduction span) only its last
            tiles are on chip (``run.py`` then builds the work again without reuse).
        weight_scales: ``(group_size, scale_bytes)`` of group-quantised weights (int8/int4): every weight tile
            also reads the scales (one per output column) of each group of ``group_size`` input channels that
            holds a fetched row (:func:`group_scale_bytes`). ``None``: no scales (bf16).
    """
    T, K = x.shape  # noqa: N806
    sp, pr, arr = hw.sparsity, hw.precision, hw.array
    if mask is None:
        mask = site_mask(hw, x)
    dynamic = sp.kind != "dense" and sp.selection == "dynamic"
    sc = _shape_consts(hw, T, K, O)
    tiling, t_spans, k_spans = sc.tiling, sc.t_spans, sc.k_spans
    o_sizes, t_sizes, t_starts, k_real = sc.o_sizes, sc.t_sizes, sc.t_starts, sc.k_real
    n_t, n_o, n_k = len(t_spans), len(o_sizes), len(k_spans)
    burst = hw.dram.burst_bytes
    row_bytes = sc.row_bytes  # per o-tile

    # kept counts per token and k-tile; union of kept rows per t-tile (the rows gather_rows fetches)
    counts = np.empty((n_k, T), dtype=np.int64)
    union = np.empty((n_t, n_k), dtype=np.int64)
    union_all = None if mask is None else _tile_any(mask, t_starts, tiling.T_tile)
    for kk, (c0, c1) in enumerate(k_spans):
        if mask is None:
            counts[kk] = c1 - c0
            union[:, kk] = c1 - c0
        else:
            counts[kk] = mask[:, c0:c1].sum(axis=1)
            union[:, kk] = union_all[:, c0:c1].sum(axis=1)
    # compacted weight storage: only the fetched rows are in the weight buffer
    union_masks = union_all if (sp.weight_fetch == "gather_rows" and dynamic) else None

    # --- weight bytes per compute tile (program order i, o, k) --------------------------------------
    rows = union if sp.weight_fetch == "gather_rows" else np.broadcast_to(k_real, (n_t, n_k))
    weight_bytes = (rows[:, None, :] * row_bytes[None, :, None]).reshape(-1).astype(np.int64)
    if weight_scales is not None:
        fetched = union_all if sp.weight_fetch == "gather_rows" else None
        weight_bytes = weight_bytes + group_scale_bytes(weight_scales, fetched, k_spans, n_t, o_sizes, burst)
    # runs of consecutive fetched rows per (t-tile, k-tile): each opens DRAM rows the banks cannot hide
    seg_cost = hw.dram.gather_segment_overhead_cycles
    runs = np.ones((n_t, n_k), dtype=np.int64)
    if seg_cost and sp.weight_fetch == "gather_rows" and union_all is not None:
        for kk, (c0, c1) in enumerate(k_spans):
            u = union_all[:, c0:c1].astype(np.int8)
            runs[:, kk] = (np.diff(u, axis=1, prepend=0) == 1).sum(axis=1)
    weight_extra = np.broadcast_to((runs * seg_cost)[:, None, :], (n_t, n_o, n_k)).reshape(-1).astype(np.float64)

    # --- compute tiles ------------------------------------------------------------------------------
    parts = {p: np.zeros((n_t, n_o, n_k), dtype=np.int64) for p in TILE_PARTS}
    act_sram_read = weight_sram_read = out_update = meta_read_bits = issued_slots = acc_reg_update = 0
    dec_lat = sp.decoder.latency_cycles if (dynamic and sp.decoder is not None) else 0
    widen = (sp.m / sp.n) if (dynamic and sp.kind == "nm") else (1.0 / sp.density if dynamic and sp.density else 1.0)
    bits_per_value = sc.bits_per_value
    # (t, k)-tiles with the same instruction sequence, on this site and earlier ones (see _mma_tile)
    mma_memo = _SeqMemo(_hold(hw), o_sizes)
    for i, (r0, r1) in enumerate(t_spans):
        for kk in range(n_k):
            cnt = counts[kk, r0:r1]
            k_tile = int(k_real[kk])
            active_per_o = int(cnt.sum()) * o_sizes
            if arr.dataflow == "mma":
                assert arr.mma is not None
                mk = None if mask is None else mask[r0:r1, k_spans[kk][0] : k_spans[kk][1]]
                u_rows = None if union_masks is None else union_masks[i][k_spans[kk][0] : k_spans[kk][1]]
                mi = _mma_tile(hw, cnt, mk, u_rows, k_tile, bits_per_value[kk], dynamic, o_sizes, mma_memo)
                parts["compute"][i, :, kk] = mi["compute"]
                parts["rounding"][i, :, kk] = mi["rounding"]
                parts["operand_stall"][i, :, kk] = mi["operand_stall"]
                parts["metadata_stall"][i, :, kk] = mi["metadata_stall"]
                parts["pipeline"][i, :, kk] = arr.mma.latency_cycles
                issued_slots += mi["issued_slots"]
                act_sram_read += mi["act_sram_read"]
                weight_sram_read += mi["weight_sram_read"]
                out_update += mi["out_update"]
                acc_reg_update += mi["acc_reg_update"]
                meta_read_bits += mi["meta_read_bits"]
            else:
                assert arr.systolic is not None
                R, C = arr.systolic.rows, arr.systolic.cols  # noqa: N806
                t_i = r1 - r0
                f_o = _ceil_div(o_sizes, C)
                if arr.dataflow == "ws":
                    kp = compressed_length(k_tile, sp.n, sp.m) if sp.kind == "nm" else k_tile
                    f_k = _ceil_div(kp, R)
                    if dynamic and sp.kind == "nm":
                        a = np.arange(f_k) * R
                        b = np.minimum(a + R, kp)
                        loaded_rows = ((b - 1) // sp.n - a // sp.n + 1) * sp.m
                    else:
                        loaded_rows = np.full(f_k, R)
                    load = _ceil_div(loaded_rows, arr.systolic.weight_load_rows_per_cycle)
                    stream = t_i + R + C - 2
                    wl = np.empty(n_o, dtype=np.int64)
                    for oi in range(n_o):
                        seq = np.tile(load, int(f_o[oi]))
                        if arr.scalesim_compat:
                            wl[oi] = int(seq.sum())
                        else:
                            nxt = np.append(seq[1:], 0)
                            wl[oi] = int(seq[0] + np.maximum(0, nxt - stream).sum())
                    folds = f_o * f_k
                    compute = _ceil_div(active_per_o, R * C)
                    parts["compute"][i, :, kk] = compute
                    parts["rounding"][i, :, kk] = folds * t_i - compute
                    parts["pipeline"][i, :, kk] = folds * (R + C - 2)
                    parts["weight_load"][i, :, kk] = wl
                    issued_slots += int(folds.sum()) * t_i * R * C
                    act_sram_read += int(folds.sum()) * t_i * R * pr.activation_bytes
                    weight_sram_read += int((f_o * loaded_rows.sum()).sum()) * C * pr.weight_bytes
                    out_update += int(folds.sum()) * t_i * C * pr.accumulator_bytes
                    meta_read_bits += int(f_o.sum()) * int(cnt.sum()) * (bits_per_value[kk] if dynamic else 0)
                else:  # os
                    link_ok = arr.systolic.os_weight_link_factor >= widen - 1e-9
                    bmax = np.maximum.reduceat(cnt, np.arange(0, t_i, R))
                    if sp.kind == "nm":
                        kst = np.full_like(
                            bmax, compressed_length(k_tile, sp.n, sp.m) if (link_ok or not dynamic) else k_tile
                        )
                    elif sp.kind == "unstructured":
                        kst = bmax if link_ok else np.full_like(bmax, k_tile)
                    else:
                        kst = np.full_like(bmax, k_tile)
                    stream_sum = int(kst.sum())
                    compute = _ceil_div(active_per_o, R * C)
                    parts["compute"][i, :, kk] = compute
                    parts["rounding"][i, :, kk] = f_o * stream_sum - compute
                    parts["pipeline"][i, :, kk] = f_o * len(kst) * (R + C - 2)
                    issued_slots += int(f_o.sum()) * stream_sum * R * C
                    act_sram_read += int(f_o.sum()) * stream_sum * R * pr.activation_bytes
                    weight_sram_read += int(f_o.sum()) * stream_sum * C * widen * pr.weight_bytes
                    out_update += int(f_o.sum()) * len(kst) * R * C * pr.accumulator_bytes
                    meta_read_bits += int(f_o.sum()) * int(cnt.sum()) * (bits_per_value[kk] if dynamic else 0)
            parts["decoder"][i, :, kk] = dec_lat
    compat_offset = -1 if arr.scalesim_compat else 0
    if compat_offset:  # the last cycle of the drain; a 1x1 array has no fill/drain, so take it from the stream
        cands = ("pipeline", "rounding", "compute", "weight_load")
        part = next((p for p in cands if parts[p][-1, -1, -1] > 0), "pipeline")
        parts[part][-1, -1, -1] += compat_offset
    tile_parts = {p: v.reshape(-1) for p, v in parts.items()}

    # --- activations, compressor, outputs -------------------------------------------------------------
    # One activation tile per token tile (T_tile x K), or with K-tiled activation tiles one per compute tile
    # (T_tile x K_tile: the reduction span (i, k), read again for every output tile o).
    total_kept = int(counts.sum())
    producer = sp.compressor is not None and sp.compressor.placement == "producer"
    k_act = tiling.act_k_tiled and n_k > 1
    kept_t = np.add.reduceat(counts.sum(axis=0), t_starts) if T else np.zeros(n_t, dtype=np.int64)
    if k_act:
        kept_tk = np.add.reduceat(counts, t_starts, axis=1).T if T else np.zeros((n_t, n_k), dtype=np.int64)
        shape3 = (n_t, n_o, n_k)
        a_tok = np.broadcast_to(t_sizes[:, None, None], shape3).reshape(-1)
        a_ch = np.broadcast_to(k_real[None, None, :], shape3).reshape(-1)
        a_kept = np.broadcast_to(kept_tk[:, None, :], shape3).reshape(-1)
        a_bits = np.broadcast_to(
            np.array([index_bits(int(c)) for c in k_real], dtype=np.int64)[None, None, :], shape3
        ).reshape(-1)
    else:
        a_tok, a_ch, a_kept = t_sizes, np.full(n_t, K, dtype=np.int64), kept_t
        a_bits = np.full(n_t, index_bits(K), dtype=np.int64)
    n_act = len(a_tok)
    meta_bits_tile = np.zeros(n_act, dtype=np.int64)
    if dynamic:
        if sp.kind == "nm":
            meta_bits_tile = a_tok * _ceil_div(a_ch, sp.m) * metadata_bits_per_group(sp.n, sp.m, sp.metadata_format)
        elif sp.metadata_format == "bitmask":
            meta_bits_tile = a_tok * a_ch
        else:
            meta_bits_tile = a_kept * a_bits
    if producer and dynamic:
        act_bytes = np.ceil(a_kept * pr.activation_bytes).astype(np.int64)
        meta_bytes_t = _ceil_div(meta_bits_tile, 8)
    else:
        act_bytes = np.ceil(a_tok * a_ch * pr.activation_bytes).astype(np.int64)
        meta_bytes_t = np.zeros(n_act, dtype=np.int64)
    on_path = dynamic and sp.compressor is not None and not producer
    groups_a = a_tok * _ceil_div(a_ch, sp.m) if sp.kind == "nm" else a_tok  # compressor groups per activation tile
    if on_path:
        assert sp.compressor is not None
        compress_busy = _ceil_div(groups_a * sp.compressor.cycles_per_group, sp.compressor.groups_per_cycle)
        compress_latency = sp.compressor.latency_cycles
    else:
        compress_busy = np.zeros(n_act, dtype=np.int64)
        compress_latency = 0
    if reuse_input:
        act_bytes = np.zeros(n_act, dtype=np.int64)
        meta_bytes_t = np.zeros(n_act, dtype=np.int64)
        compress_busy = np.zeros(n_act, dtype=np.int64)
        compress_latency = 0
    out_bytes = np.ceil(np.outer(t_sizes, o_sizes).reshape(-1) * pr.output_bytes).astype(np.int64)

    # --- action counts ------------------------------------------------------------------------------
    mac_active = total_kept * O
    groups_compressed = 0
    if dynamic and not reuse_input:  # the consumer's compressor works on every activation tile it reads
        groups_compressed = int(groups_a.sum()) if on_path else T * (math.ceil(K / sp.m) if sp.kind == "nm" else 1)
    actions = {a.value: 0 for a in Action}
    actions.update(
        {
            Action.MAC_ACTIVE.value: mac_active,
            Action.MAC_GATED.value: issued_slots - mac_active,
            Action.MUX_SELECT.value: mac_active if (dynamic and sp.decoder_kind != "none") else 0,
            Action.COMPRESSOR_GROUP.value: groups_compressed,
            Action.METADATA_WRITE_BIT.value: int(meta_bits_tile.sum()) if (dynamic and not reuse_input) else 0,
            Action.METADATA_READ_BIT.value: int(meta_read_bits),
            Action.ACT_SRAM_WRITE_BYTE.value: int(act_bytes.sum()),
            Action.ACT_SRAM_READ_BYTE.value: int(round(act_sram_read)),
            Action.WEIGHT_SRAM_WRITE_BYTE.value: int(weight_bytes.sum()),
            Action.WEIGHT_SRAM_READ_BYTE.value: int(round(weight_sram_read)),
            Action.OUT_SRAM_UPDATE_BYTE.value: int(round(out_update)),
            Action.ACC_REGISTER_UPDATE_BYTE.value: int(round(acc_reg_update)),
            Action.OUT_SRAM_READ_BYTE.value: int(out_bytes.sum()),
            Action.DRAM_READ_BYTE_WEIGHT.value: int(weight_bytes.sum()),
            Action.DRAM_READ_BYTE_ACTIVATION.value: int(act_bytes.sum()),
            Action.DRAM_READ_BYTE_METADATA.value: int(meta_bytes_t.sum()),
            Action.DRAM_WRITE_BYTE_OUTPUT.value: int(out_bytes.sum()),
        }
    )
    actions.update(mitigation_actions(sp.mitigation, T, K, O))

    real_rows = np.broadcast_to(k_real, (n_t, n_k))
    stats = {
        "gather_runs": int(runs.sum()) if seg_cost else 0,
        "kept_density": total_kept / (T * K),
        "union_density": float(union.sum() / real_rows.sum()),
        "dense_macs": T * K * O,
    }
    return SiteWork(
        tiling=tiling,
        n_t=n_t,
        n_o=n_o,
        n_k=n_k,
        act_read_bytes=act_bytes,
        meta_read_bytes=meta_bytes_t,
        compress_busy=np.asarray(compress_busy, dtype=np.int64),
        compress_latency=compress_latency,
        weight_bytes=weight_bytes,
        weight_extra_cycles=weight_extra,
        tile_parts=tile_parts,
        out_bytes=out_bytes,
        actions=actions,
        stats=stats,
        gather_rows=sp.weight_fetch == "gather_rows",
        compat_offset=compat_offset,
        act_tile=np.arange(n_t * n_o * n_k, dtype=np.int64) if k_act else None,
        mask_tile=_first_span_reads(n_t, n_o, n_k) if k_act else None,
    )


def _first_span_reads(n_t: int, n_o: int, n_k: int) -> np.ndarray:
    """K-tiled activation tiles: per compute tile ``(i, o, k)``, the activation tile ``(i, 0, k)`` whose compression
    first gave the mask of span ``(i, k)`` (a gathered weight read needs only those rows, kept as a bitmap)."""
    idx = np.arange(n_t * n_o * n_k, dtype=np.int64).reshape(n_t, n_o, n_k)
    return np.broadcast_to(idx[:, :1, :], (n_t, n_o, n_k)).reshape(-1).copy()


def group_scale_bytes(
    weight_scales: tuple[int, float],
    fetched: np.ndarray | None,
    k_spans: list[tuple[int, int]],
    n_t: int,
    o_sizes: np.ndarray,
    burst: int,
) -> np.ndarray:
    """Scale bytes per compute tile ``(t, o, k)``: a group (``group_size`` consecutive input channels, counted
    from channel 0) costs one scale per output column of the tile, rounded to bursts, when any of its rows is
    fetched (``fetched``: the ``[n_t, K]`` union of kept rows under gather_rows; ``None``: every row)."""
    group, scale_bytes = weight_scales
    groups = np.empty((n_t, len(k_spans)), dtype=np.int64)
    for kk, (c0, c1) in enumerate(k_spans):
        ids = np.arange(c0, c1) // group
        starts = np.flatnonzero(np.diff(ids, prepend=-1))
        if fetched is None:
            groups[:, kk] = len(starts)
        else:
            groups[:, kk] = np.logical_or.reduceat(fetched[:, c0:c1], starts, axis=1).sum(axis=1)
    seg = _row_bytes(o_sizes, scale_bytes, burst)
    return (groups[:, None, :] * seg[None, :, None]).reshape(-1).astype(np.int64)


def _bits_per_kept_value(hw: HwConfig, k_spans: list[tuple[int, int]]) -> list[float]:
    """Metadata bits that travel with one kept value, per k-tile (index: ceil(log2 m); bitmask: m/n)."""
    sp = hw.sparsity
    out = []
    for a, b in k_spans:
        if sp.kind == "nm":
            assert sp.n is not None and sp.m is not None
            out.append(metadata_bits_per_group(sp.n, sp.m, sp.metadata_format) / sp.n)
        elif sp.kind == "unstructured" and sp.metadata_format == "bitmask":
            assert sp.density is not None
            out.append(1.0 / sp.density)  # the token's bitmap, spread over its kept values
        elif sp.kind == "unstructured":
            out.append(float(index_bits(b - a)))
        else:
            out.append(0.0)
    return out


def mitigation_actions(mitigation: str, T: int, K: int, O: int) -> dict[str, int]:  # noqa: N803
    """Actions of the error-mitigation hardware (design page, section 2) for ``T`` tokens of one site."""
    out = {
        Action.MITIGATION_STAT_ELEMENT.value: 0,
        Action.MITIGATION_TOKEN_OP.value: 0,
        Action.MITIGATION_OUTPUT_MULT.value: 0,
        Action.MITIGATION_OUTPUT_ADD.value: 0,
    }
    if mitigation in ("var", "var_learnable"):
        out[Action.MITIGATION_STAT_ELEMENT.value] += T * K
        out[Action.MITIGATION_TOKEN_OP.value] += T
        out[Action.MITIGATION_OUTPUT_MULT.value] += T * O
    if mitigation == "median_shift":
        out[Action.MITIGATION_TOKEN_OP.value] += T
        out[Action.MITIGATION_OUTPUT_MULT.value] += T * O
        out[Action.MITIGATION_OUTPUT_ADD.value] += T * O
    if mitigation in ("learnable", "var_learnable"):
        out[Action.MITIGATION_OUTPUT_MULT.value] += T * O
        out[Action.MITIGATION_OUTPUT_ADD.value] += T * O
    return out


def _mma_rounds(op: np.ndarray, meta: np.ndarray, units: int, iv: int, bw_op: float, bw_meta: float):
    """Instructions issue in rounds of ``units``; a round lasts ``iv`` cycles unless its operand or metadata
    bytes need longer at the buffers' read widths. Returns ``(rounds, operand_stall, metadata_stall)``."""
    n = len(op)
    r = -(-n // units)
    if r == 0:
        return 0, 0, 0
    pad = r * units - n
    need_op = np.concatenate((op, np.zeros(pad))).reshape(r, units).sum(axis=1)
    c_op = np.maximum(iv, np.ceil(need_op / bw_op - 1e-9)).astype(np.int64)
    if math.isinf(bw_meta) or not meta.any():
        c_all = c_op
    else:
        need_meta = np.concatenate((meta, np.zeros(pad))).reshape(r, units).sum(axis=1)
        c_all = np.maximum(c_op, np.ceil(need_meta / bw_meta - 1e-9)).astype(np.int64)
    return r, int((c_op - iv).sum()), int((c_all - c_op).sum())


def _mma_sequence(hw: HwConfig, cnt, mk, u_rows, k_tile: int, bits: float, dynamic: bool):
    """One output block's instruction sequence of an ``mma`` compute tile, in issue order ``(b, s)``.

    Returns ``(rows, meta_bits, chains)``: weight rows each instruction reads from the weight buffer, the
    metadata bits it reads (real tokens only: padding rows carry none), and the (token group) accumulator
    chains that receive at least one instruction.
    """
    sp, mm = hw.sparsity, hw.array.mma
    t, k = mm.tokens, mm.reduction
    t_i = len(cnt)
    n_b = -(-t_i // t)
    tok_b = np.minimum(t, t_i - np.arange(n_b) * t)
    engine = sp.decoder_kind if dynamic else "dense"
    if engine == "crossbar":  # unstructured lockstep: each instruction reads the union of its tokens' rows
        rows, kept = unstructured_instruction_rows(mk, t, k)
        per_b = -(-np.maximum.reduceat(cnt, np.arange(0, t_i, t)) // k) if t_i else np.zeros(0)
        return rows, kept * bits, int((per_b > 0).sum())
    if engine == "mux":  # N:M: the candidate rows of the groups each instruction touches
        assert sp.n is not None and sp.m is not None
        n, m = sp.n, sp.m
        groups = math.ceil(k_tile / m)
        real = np.minimum(m, k_tile - np.arange(groups) * m)
        avail = real if u_rows is None else np.add.reduceat(u_rows, np.arange(0, k_tile, m)).astype(np.int64)
        rows_s = nm_instruction_rows(avail, n, k)
        slots = compressed_length(k_tile, n, m)
        slots_s = np.minimum(k, slots - np.arange(len(rows_s)) * k)
        meta = (tok_b[:, None] * slots_s[None, :]).reshape(-1) * bits
        return np.tile(rows_s, n_b), meta, n_b if len(rows_s) else 0
    if engine == "none":  # dense array on the compacted rows (TEAL-like): no selection, dense operands
        length = int(u_rows.sum()) if u_rows is not None else k_tile
    elif sp.kind == "nm":  # static mask: K' = ceil(K/m) * n dense slots
        assert sp.n is not None and sp.m is not None
        length = compressed_length(k_tile, sp.n, sp.m)
    else:
        length = k_tile
    s_count = -(-length // k)
    rows = np.full(s_count * n_b, k, dtype=np.int64)
    return rows, np.zeros(len(rows)), n_b if s_count else 0


def _mma_key(hw: HwConfig, cnt, mk, u_rows, k_tile: int, bits: float, dynamic: bool) -> tuple:
    """Everything :func:`_mma_sequence` reads: equal keys give the same instruction sequence."""
    engine = hw.sparsity.decoder_kind if dynamic else "dense"
    key: tuple = (engine, len(cnt), k_tile, bits, dynamic)
    if engine == "crossbar":
        return (*key, mk.shape, np.packbits(mk).tobytes())
    if engine == "mux" and u_rows is not None:  # the sequence reads the kept rows per group only
        m = hw.sparsity.m
        return (*key, np.add.reduceat(u_rows, np.arange(0, k_tile, m)).astype(np.int64).tobytes())
    if engine == "none" and u_rows is not None:
        return (*key, int(u_rows.sum()))
    return key


class _SeqMemo:
    """The :func:`_mma_sequence_cost` memo of one site's tiles, backed by the cross-site ``_SEQ_COSTS``: a key
    is :func:`_mma_key` (everything the sequence reads) with the config and the site's o-tile widths."""

    def __init__(self, hw_id: int, o_sizes: np.ndarray):
        self._prefix = (
            hw_id,
            len(o_sizes),
            int(o_sizes[0]) if len(o_sizes) else 0,
            int(o_sizes[-1]) if len(o_sizes) else 0,
        )

    def get(self, key: tuple):
        return _SEQ_COSTS.get((*self._prefix, key))

    def __setitem__(self, key: tuple, value) -> None:
        _SEQ_COSTS[(*self._prefix, key)] = value


def _mma_tile(
    hw: HwConfig,
    cnt,
    mk,
    u_rows,
    k_tile: int,
    bits: float,
    dynamic: bool,
    o_sizes: np.ndarray,
    memo: dict | None = None,
):
    """Cycles by part (per o-tile) and action counts of one ``(t-tile, k-tile)`` on the ``mma`` array.

    Only the compute cycles depend on the kept count itself; the rest is a function of the instruction sequence,
    so ``memo`` (one per site: ``o_sizes`` fixed) keeps it per :func:`_mma_key`."""
    sp, mm = hw.sparsity, hw.array.mma
    t, o, k, units, iv = mm.tokens, mm.outputs, mm.reduction, mm.units, mm.issue_interval_cycles
    if dynamic and sp.decoder_kind == "benes":
        return _benes_tile(hw, mk, bits, o_sizes)
    key = _mma_key(hw, cnt, mk, u_rows, k_tile, bits, dynamic) if memo is not None else None
    seq = memo.get(key) if memo is not None else None
    if seq is None:
        seq = _mma_sequence_cost(hw, cnt, mk, u_rows, k_tile, bits, dynamic, o_sizes)
        if memo is not None:
            memo[key] = seq
    r, rest = seq
    tok = t * o * k
    compute = -(-(int(cnt.sum()) * o_sizes * iv) // (units * tok))
    return {"compute": compute, "rounding": r * iv - compute, **rest}


def _mma_sequence_cost(hw: HwConfig, cnt, mk, u_rows, k_tile: int, bits: float, dynamic: bool, o_sizes: np.ndarray):
    """``(rounds per o-tile, the other parts and counts)`` of a ``(t, k)``-tile's instruction sequence."""
    sp, pr, mm = hw.sparsity, hw.precision, hw.array.mma
    t, o, k, units, iv = mm.tokens, mm.outputs, mm.reduction, mm.units, mm.issue_interval_cycles
    rows, meta_bits, chains = _mma_sequence(hw, cnt, mk, u_rows, k_tile, bits, dynamic)
    op = t * k * pr.activation_bytes + o * rows * pr.weight_bytes
    meta = meta_bits / 8
    bw_meta = sp.metadata_buffer.read_bytes_per_cycle if (dynamic and sp.metadata_buffer is not None) else math.inf
    tok = t * o * k
    n_ob = -(-o_sizes // o)
    uniq, inv = np.unique(n_ob, return_inverse=True)
    table = np.array(
        [
            _mma_rounds(
                np.tile(op, int(v)), np.tile(meta, int(v)), units, iv, mm.operand_buffer_read_bytes_per_cycle, bw_meta
            )
            for v in uniq
        ],
        dtype=np.int64,
    ).reshape(len(uniq), 3)
    r, op_st, meta_st = table[inv, 0], table[inv, 1], table[inv, 2]
    n_instr = int(n_ob.sum()) * len(rows)
    acc_bytes = n_instr * t * o * pr.accumulator_bytes
    chain_bytes = int(n_ob.sum()) * chains * t * o * pr.accumulator_bytes
    regs = mm.accumulator_registers
    return r, {
        "operand_stall": op_st,
        "metadata_stall": meta_st,
        "issued_slots": n_instr * tok,
        "act_sram_read": n_instr * t * k * pr.activation_bytes,
        "weight_sram_read": int(n_ob.sum()) * int(rows.sum()) * o * pr.weight_bytes,
        "out_update": chain_bytes if regs else acc_bytes,
        "acc_reg_update": acc_bytes if regs else 0,
        "meta_read_bits": int(n_ob.sum()) * int(round(float(meta_bits.sum()))),
    }


def _benes_tile(hw: HwConfig, mk, bits: float, o_sizes: np.ndarray):
    """Flexible unstructured engine (SIGMA-like) on the same multipliers: the tile's kept activations are
    held stationary, ``P`` per pass (token-major), and every cycle one output column's weights reach them
    through a Benes distribution network; a forwarding adder network sums each token's products.

    A pass over an output tile of ``O_t`` columns lasts ``O_t`` cycles unless the weight rows it needs per
    column (its distinct channels) or its stationary fill exceed the operand buffer's read width.
    """
    pr, mm, sp = hw.precision, hw.array.mma, hw.sparsity
    P = hw.peak_macs_per_cycle  # noqa: N806
    tok, ch = nonzero_rc(mk)
    kept = len(ch)
    passes = -(-kept // P)
    if passes:
        p_id = np.arange(kept) // P
        rows_p = distinct_per_bin(p_id, ch, passes, mk.shape[1])
        toks_p = distinct_per_bin(p_id, tok, passes, mk.shape[0])
        vals_p = np.bincount(p_id, minlength=passes)
    else:
        rows_p = toks_p = vals_p = np.zeros(0, dtype=np.int64)
    bw = mm.operand_buffer_read_bytes_per_cycle
    bw_meta = sp.metadata_buffer.read_bytes_per_cycle if sp.metadata_buffer is not None else math.inf
    uniq, inv = np.unique(o_sizes, return_inverse=True)  # o-tiles of equal width stall alike
    op_u = np.zeros(len(uniq), dtype=np.int64)
    meta_u = np.zeros(len(uniq), dtype=np.int64)
    for j, ot in enumerate(uniq):
        need = (rows_p * int(ot) * pr.weight_bytes + vals_p * pr.activation_bytes) / bw
        c_op = np.maximum(int(ot), np.ceil(need - 1e-9)).astype(np.int64)
        c_meta = np.ceil(vals_p * bits / 8 / bw_meta - 1e-9).astype(np.int64) if not math.isinf(bw_meta) else c_op
        c_all = np.maximum(c_op, c_meta)
        op_u[j] = int((c_op - int(ot)).sum())
        meta_u[j] = int((c_all - c_op).sum())
    op_st, meta_st = op_u[inv], meta_u[inv]
    compute = -(-(kept * o_sizes) // P)
    o_total = int(o_sizes.sum())
    return {
        "compute": compute,
        "rounding": passes * o_sizes - compute,
        "operand_stall": op_st,
        "metadata_stall": meta_st,
        "issued_slots": passes * P * o_total,
        "act_sram_read": kept * len(o_sizes) * pr.activation_bytes,
        "weight_sram_read": int(rows_p.sum()) * o_total * pr.weight_bytes,
        "out_update": int(toks_p.sum()) * o_total * pr.accumulator_bytes,
        "acc_reg_update": 0,
        "meta_read_bits": int(round(kept * bits)) * len(o_sizes),
    }
