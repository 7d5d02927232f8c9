"""Per-tile work of one site, computed vectorised from the real activations before any event is simulated.

For each compute tile ``(t-tile, o-tile, k-tile)`` this module gives the weight bytes to fetch, the compute
cycles of the array (with their breakdown) and the action counts; for each token tile the activation bytes and
the compressor's busy time. The simpy pipeline (``engine.py``) only adds overlap, contention and stalls.
Timing formulas per dataflow are written out in ``docs/timing-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelsim.config.hw import HwConfig
from accelsim.nm import compressed_length, index_bits, metadata_bits_per_group, nm_mask, static_first_n_mask, topk_mask
from accelsim.sim.actions import Action
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
    """Keep-mask ``[T, K]`` of the configured pattern for activations ``x`` (``None`` for dense)."""
    sp = hw.sparsity
    if sp.kind == "dense":
        return None
    if sp.kind == "unstructured":
        assert sp.density is not None
        return topk_mask(np.abs(x.astype(np.float32)), sp.density)
    assert sp.n is not None and sp.m is not None
    if sp.selection == "static_first_n":
        return static_first_n_mask(x.shape, sp.n, sp.m)
    return nm_mask(np.abs(x.astype(np.float32)), sp.n, sp.m)


def _ceil_div(a, b):
    return -(-a // b)


@dataclass
class SiteWork:
    """Everything the event model needs for one site, in program order."""

    tiling: Tiling
    n_t: int
    n_o: int
    n_k: int
    act_read_bytes: np.ndarray  # per t-tile, DRAM activation bytes (0 when the input is reused on chip)
    meta_read_bytes: np.ndarray  # per t-tile, DRAM metadata bytes (producer placement)
    compress_busy: np.ndarray  # per t-tile, compressor busy cycles (0 without a compressor on the path)
    compress_latency: int
    weight_bytes: np.ndarray  # per compute tile
    tile_parts: dict[str, np.ndarray]  # per compute tile, cycles by part (TILE_PARTS)
    out_bytes: np.ndarray  # per (t, o) output tile
    actions: dict[str, int]
    stats: dict[str, float] = field(default_factory=dict)
    gather_rows: bool = False  # weight reads wait for the token tile's mask
    compat_offset: int = 0  # SCALE-Sim's -1 per site in compat mode

    @property
    def tile_cycles(self) -> np.ndarray:
        return sum(self.tile_parts[p] for p in TILE_PARTS)

    def tile_index(self, i: int, o: int, k: int) -> int:
        return (i * self.n_o + o) * self.n_k + k


def _row_bytes(o_size: np.ndarray, w_bytes: float, burst: int) -> np.ndarray:
    """Bytes of one weight row segment of ``o_size`` elements, rounded up to whole bursts."""
    raw = np.ceil(o_size * w_bytes).astype(np.int64)
    return _ceil_div(raw, burst) * burst


def build_site_work(
    hw: HwConfig,
    x: np.ndarray,
    O: int,  # noqa: N803
    *,
    mask: np.ndarray | None = None,
    reuse_input: bool = False,
) -> SiteWork:
    """Per-tile work of ``y = x @ W`` with ``x`` of shape ``[T, K]`` and ``O`` outputs on ``hw``.

    Args:
        mask: the keep-mask if already computed (shared input); computed from ``x`` otherwise.
        reuse_input: the input (and its compressed form) is still on chip from the previous site with the same
            ``input_id``: no activation read and no compression.
    """
    T, K = x.shape  # noqa: N806
    sp, pr, arr = hw.sparsity, hw.precision, hw.array
    if mask is None:
        mask = site_mask(hw, x)
    dynamic = sp.kind != "dense" and sp.selection == "dynamic"
    tiling = choose_tiling(hw, T, K, O)
    t_spans = tiling.spans(T, tiling.T_tile)
    o_spans = tiling.spans(O, tiling.O_tile)
    k_spans = tiling.spans(K, tiling.K_tile)
    n_t, n_o, n_k = len(t_spans), len(o_spans), len(k_spans)
    o_sizes = np.array([b - a for a, b in o_spans], dtype=np.int64)
    t_sizes = np.array([b - a for a, b in t_spans], dtype=np.int64)
    t_starts = np.array([a for a, _ in t_spans], dtype=np.int64)
    burst = hw.dram.burst_bytes
    row_bytes = _row_bytes(o_sizes, pr.weight_bytes, burst)  # per o-tile

    # kept counts per token and k-tile; union of kept rows per t-tile and k-tile
    counts = np.empty((n_k, T), dtype=np.int64)
    union = np.empty((n_t, n_k), dtype=np.int64)
    k_real = np.array([b - a for a, b in k_spans], dtype=np.int64)
    for kk, (c0, c1) in enumerate(k_spans):
        if mask is None:
            counts[kk] = c1 - c0
            union[:, kk] = c1 - c0
        else:
            mk = mask[:, c0:c1]
            counts[kk] = mk.sum(axis=1)
            union[:, kk] = np.logical_or.reduceat(mk, t_starts, axis=0).sum(axis=1)

    # --- weight bytes per compute tile (program order i, o, k) --------------------------------------
    rows = union if sp.weight_fetch == "gather_rows" else np.broadcast_to(k_real, (n_t, n_k))
    weight_bytes = (rows[:, None, :] * row_bytes[None, :, None]).reshape(-1).astype(np.int64)

    # --- compute tiles ------------------------------------------------------------------------------
    parts = {p: np.zeros((n_t, n_o, n_k), dtype=np.int64) for p in TILE_PARTS}
    act_sram_read = weight_sram_read = out_update = meta_read_bits = issued_slots = 0
    dec_lat = sp.decoder.latency_cycles if (dynamic and sp.decoder is not None) else 0
    widen = (sp.m / sp.n) if (dynamic and sp.kind == "nm") else (1.0 / sp.density if dynamic and sp.density else 1.0)
    bits_per_value = _bits_per_kept_value(hw, k_spans)
    for i, (r0, r1) in enumerate(t_spans):
        for kk in range(n_k):
            cnt = counts[kk, r0:r1]
            k_tile = int(k_real[kk])
            active_per_o = int(cnt.sum()) * o_sizes
            if arr.dataflow == "mma":
                assert arr.mma is not None
                mm = arr.mma
                bmax = np.maximum.reduceat(cnt, np.arange(0, r1 - r0, mm.tokens)) if r1 > r0 else cnt
                if sp.kind == "nm":  # n slots per group, static or dynamic: K' = ceil(K_tile/m)*n (as ws, os)
                    bmax = np.full_like(bmax, compressed_length(k_tile, sp.n, sp.m))
                instr_red = int(_ceil_div(bmax, mm.reduction).sum())
                n_instr = _ceil_div(o_sizes, mm.outputs) * instr_red
                per_unit = _ceil_div(n_instr, mm.units)
                op_bytes = (
                    mm.tokens * mm.reduction * pr.activation_bytes + mm.outputs * mm.reduction * widen * pr.weight_bytes
                )
                meta_bytes = mm.tokens * mm.reduction * bits_per_value[kk] / 8 if dynamic else 0.0
                iv = mm.issue_interval_cycles
                iv_op = max(iv, math.ceil(mm.units * op_bytes / mm.operand_buffer_read_bytes_per_cycle - 1e-9))
                iv_meta = iv_op
                if meta_bytes and sp.metadata_buffer is not None:
                    iv_meta = max(
                        iv_op, math.ceil(mm.units * meta_bytes / sp.metadata_buffer.read_bytes_per_cycle - 1e-9)
                    )
                tok = mm.tokens * mm.outputs * mm.reduction
                compute = _ceil_div(active_per_o * iv, mm.units * tok)
                parts["compute"][i, :, kk] = compute
                parts["rounding"][i, :, kk] = per_unit * iv - compute
                parts["operand_stall"][i, :, kk] = per_unit * (iv_op - iv)
                parts["metadata_stall"][i, :, kk] = per_unit * (iv_meta - iv_op)
                parts["pipeline"][i, :, kk] = mm.latency_cycles
                issued_slots += int(n_instr.sum()) * tok
                act_sram_read += int(n_instr.sum()) * mm.tokens * mm.reduction * pr.activation_bytes
                weight_sram_read += int(n_instr.sum()) * mm.outputs * mm.reduction * widen * pr.weight_bytes
                out_update += int(n_instr.sum()) * mm.tokens * mm.outputs * pr.accumulator_bytes
                meta_read_bits += int(n_instr.sum()) * mm.tokens * mm.reduction * (bits_per_value[kk] if dynamic else 0)
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
    total_kept = int(counts.sum())
    producer = sp.compressor is not None and sp.compressor.placement == "producer"
    meta_bits_tile = np.zeros(n_t, dtype=np.int64)
    if dynamic:
        kept_t = np.add.reduceat(counts.sum(axis=0), t_starts) if T else np.zeros(n_t, dtype=np.int64)
        if sp.kind == "nm":
            per_tok_bits = math.ceil(K / sp.m) * metadata_bits_per_group(sp.n, sp.m, sp.metadata_format)
            meta_bits_tile = t_sizes * per_tok_bits
        else:
            meta_bits_tile = kept_t * index_bits(K)
    if producer and dynamic:
        act_bytes = np.ceil(kept_t * pr.activation_bytes).astype(np.int64)
        meta_bytes_t = _ceil_div(meta_bits_tile, 8)
    else:
        act_bytes = np.ceil(t_sizes * K * pr.activation_bytes).astype(np.int64)
        meta_bytes_t = np.zeros(n_t, dtype=np.int64)
    on_path = dynamic and sp.compressor is not None and not producer
    if on_path:
        assert sp.compressor is not None
        groups_t = t_sizes * math.ceil(K / sp.m) if sp.kind == "nm" else t_sizes
        compress_busy = _ceil_div(groups_t, sp.compressor.groups_per_cycle)
        compress_latency = sp.compressor.latency_cycles
    else:
        compress_busy = np.zeros(n_t, dtype=np.int64)
        compress_latency = 0
    if reuse_input:
        act_bytes = np.zeros(n_t, dtype=np.int64)
        meta_bytes_t = np.zeros(n_t, dtype=np.int64)
        compress_busy = np.zeros(n_t, dtype=np.int64)
        compress_latency = 0
    out_bytes = np.ceil(np.outer(t_sizes, o_sizes).reshape(-1) * pr.output_bytes).astype(np.int64)

    # --- action counts ------------------------------------------------------------------------------
    mac_active = total_kept * O
    groups_compressed = 0
    if dynamic and not reuse_input:
        groups_compressed = T * (math.ceil(K / sp.m) if sp.kind == "nm" else 1)
    actions = {a.value: 0 for a in Action}
    actions.update(
        {
            Action.MAC_ACTIVE.value: mac_active,
            Action.MAC_GATED.value: issued_slots - mac_active,
            Action.MUX_SELECT.value: mac_active if dynamic else 0,
            Action.COMPRESSOR_GROUP.value: groups_compressed,
            Action.METADATA_WRITE_BIT.value: int(meta_bits_tile.sum()) if (dynamic and not reuse_input) else 0,
            Action.METADATA_READ_BIT.value: int(meta_read_bits),
            Action.ACT_SRAM_WRITE_BYTE.value: int(act_bytes.sum()),
            Action.ACT_SRAM_READ_BYTE.value: int(round(act_sram_read)),
            Action.WEIGHT_SRAM_WRITE_BYTE.value: int(weight_bytes.sum()),
            Action.WEIGHT_SRAM_READ_BYTE.value: int(round(weight_sram_read)),
            Action.OUT_SRAM_UPDATE_BYTE.value: int(round(out_update)),
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
        tile_parts=tile_parts,
        out_bytes=out_bytes,
        actions=actions,
        stats=stats,
        gather_rows=sp.weight_fetch == "gather_rows",
        compat_offset=compat_offset,
    )


def _bits_per_kept_value(hw: HwConfig, k_spans: list[tuple[int, int]]) -> list[float]:
    """Metadata bits that travel with one kept value, per k-tile (index: ceil(log2 m); bitmask: m/n)."""
    sp = hw.sparsity
    out = []
    for a, b in k_spans:
        if sp.kind == "nm":
            assert sp.n is not None and sp.m is not None
            out.append(metadata_bits_per_group(sp.n, sp.m, sp.metadata_format) / sp.n)
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
