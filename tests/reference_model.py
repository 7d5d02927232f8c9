"""A per-cycle reference model of one site, written independently of the event model.

It steps **every cycle** of a small machine and moves real data: activations and weights cross a DRAM
channel into buffer slots, the compressor selects and packs activations group by group, the weight reader
fetches (for ``gather_rows``: only the rows the compressed tile's metadata names), the PE array multiplies
and accumulates fold by fold (``ws``/``os``: registers shift through an ``R x C`` grid every cycle) or
instruction by instruction (``mma``), and finished output tiles are written back to a DRAM image of ``y``.
So it yields both the cycle count and ``y = prune(x) @ w``.

Independence: this module imports no timing code of the simulator (not ``accelsim.sim.engine`` nor
``accelsim.sim.work``). It uses ``accelsim.nm`` for the selection rule and metadata sizes,
``accelsim.config`` for the config model and ``accelsim.sim.tiling`` for the tile sizes. Every cycle count
below comes out of stepping, not from a formula.

The semantics it implements, from the engine's module docstring and the design page (``ref:`` notes mark the
readings chosen where the text leaves room; they are listed in the validation report):

* Cycle ``c`` has two phases. In the *settle* phase every component reacts to the state at the start of ``c``
  (data that has arrived, slots that are free, tiles that ended), repeatedly until nothing changes, so a
  chain of zero-time reactions (a tile ends, its weight slot frees, the next weight read is requested) all
  happens at ``c``. Then the DRAM channel, if free, picks the next transfer among the requests made at or
  before ``c``, and in the *work* phase each busy component does one cycle of work.
* DRAM channel: one transfer at a time, ``bytes_per_cycle`` bytes per cycle; data is usable
  ``latency`` cycles after the transfer's last cycle. Arbitration: smallest (request cycle, kind, order),
  kinds activation < metadata < weight < output. Zero-byte transfers are complete at once; with infinite
  bandwidth a transfer takes no channel time and is usable ``latency`` cycles after its request.
* Buffers have 2 slots each. Activation slot of activation tile ``i`` (``i % 2``) is taken by the read and freed
  when the PE finishes the last compute tile that reads it (an activation tile is a token tile's rows, or with
  ``sram.activation_tiling`` K-tiled one span ``(token tile, k-tile)`` per compute tile, read again for every
  output tile; a gathered weight tile then takes its rows from the span's first compression); weight slot of
  compute tile ``j`` is freed when that tile finishes; output slot of output tile ``q`` is taken at its first
  reduction tile and freed when its write-back completes.
* Compressor (consumer placement, dynamic selection): one activation tile at a time, ``groups_per_cycle`` groups
  per cycle (a group is ``m`` channels of a token; unstructured: a token row), then ``latency`` cycles of
  pipeline. Without a compressor on the path (dense, static mask, producer placement, input reused on chip)
  a tile is "compressed" when its data is there.
* PE: compute tiles in program order (token tile, output tile, reduction tile). A dynamic sparse tile first
  spends the decoder latency (ref: once per compute tile, as its first cycles). ``scalesim_compat``
  (ref): SCALE-Sim reports the index of the last cycle, so the site's last two PE cycles are done in one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelsim.config.hw import HwConfig
from accelsim.nm import index_bits, metadata_bits_per_group, nm_mask, static_first_n_mask, topk_mask
from accelsim.sim.tiling import choose_tiling

KIND_RANK = {"act": 0, "meta": 1, "weight": 2, "out": 3}
EPS = 1e-9


@dataclass
class RefResult:
    cycles: int
    y: np.ndarray
    dram_busy_cycles: int
    compressor_busy_cycles: int
    pe_busy_cycles: int
    dram_bytes: dict[str, int]
    stalls: dict[str, int] = field(default_factory=dict)  # PE idle cycles by cause
    tile_start: list[int] = field(default_factory=list)
    tile_end: list[int] = field(default_factory=list)


def spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, total)) for a in range(0, total, size)]


# ---------------------------------------------------------------------------------------------------------
# Compressed activations
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Packed:
    """A token tile's activations as the PE sees them, for one reduction tile.

    ``val[t, s]`` is the value in slot ``s`` of token ``t``, ``row[t, s]`` the weight row (within the k-tile)
    it meets, ``-1`` for an empty slot; ``sel[t, s]`` the index the decoder applies to the PE's candidates
    (N:M: the in-group offset, the metadata; otherwise 0).
    """

    val: np.ndarray
    row: np.ndarray
    sel: np.ndarray


class Compressed:
    """Per token tile: the kept (channel, value) lists per token, produced group by group."""

    def __init__(self, t_size: int, K: int):  # noqa: N803
        self.t_size, self.K = t_size, K
        self.keep = np.zeros((t_size, K), dtype=bool)
        self.values = np.zeros((t_size, K), dtype=np.float64)


def compress_unit(hw: HwConfig, xt: np.ndarray, comp: Compressed, unit: int, rows: tuple | None = None) -> None:
    """The compressor's work on one group (``unit`` counts groups token-major).

    ``rows``: ``(full rows, c0)`` when ``xt`` is the span ``[c0, c0 + K)`` of those rows (K-tiled activation
    tiles); ref: unstructured selection then keeps the span's part of each full row's top-k (the threshold of the
    row is known)."""
    sp = hw.sparsity
    K = comp.K  # noqa: N806
    if sp.kind == "unstructured":
        t = unit
        if rows is None:
            kept = topk_mask(np.abs(xt[t])[None, :], sp.density)[0]
        else:
            full, c0 = rows
            kept = topk_mask(np.abs(full[t])[None, :], sp.density)[0][c0 : c0 + K]
        comp.keep[t] = kept
        comp.values[t] = np.where(kept, xt[t], 0.0)
        return
    g_per_t = math.ceil(K / sp.m)
    t, g = divmod(unit, g_per_t)
    a, b = g * sp.m, min(g * sp.m + sp.m, K)
    # a short last group is padded with -inf scores: nm_mask on the short row does exactly that
    kept = nm_mask(np.abs(xt[t, a:b])[None, :], sp.n, sp.m)[0]
    comp.keep[t, a:b] = kept
    comp.values[t, a:b] = np.where(kept, xt[t, a:b], 0.0)


def n_units(hw: HwConfig, t_size: int, K: int) -> int:  # noqa: N803
    sp = hw.sparsity
    return t_size if sp.kind == "unstructured" else t_size * math.ceil(K / sp.m)


def compress_all(hw: HwConfig, xt: np.ndarray, rows: tuple | None = None) -> Compressed:
    """What a compressor produces for a whole activation tile (used for producer placement and the static mask);
    ``rows`` as in :func:`compress_unit`."""
    sp = hw.sparsity
    comp = Compressed(*xt.shape)
    if sp.kind == "dense":
        comp.keep[:] = True
        comp.values[:] = xt
    elif sp.kind == "nm" and sp.selection == "static_first_n":
        comp.keep[:] = static_first_n_mask(xt.shape, sp.n, sp.m)  # spans start on a group boundary
        comp.values[:] = np.where(comp.keep, xt, 0.0)
    else:
        for u in range(n_units(hw, *xt.shape)):
            compress_unit(hw, xt, comp, u, rows)
    return comp


def pack(hw: HwConfig, comp: Compressed, c0: int, c1: int) -> Packed:
    """Lay the compressed tile out in PE slots for the k-tile ``[c0, c1)``."""
    sp = hw.sparsity
    t_size = comp.t_size
    kt = c1 - c0
    if sp.kind == "dense":
        row = np.broadcast_to(np.arange(kt), (t_size, kt)).copy()
        return Packed(comp.values[:, c0:c1].copy(), row, np.zeros_like(row))
    if sp.kind == "nm":
        n, m = sp.n, sp.m
        assert c0 % m == 0, "k-tiles must start on a group boundary"
        groups = math.ceil(kt / m)
        L = groups * n  # noqa: N806
        val = np.zeros((t_size, L))
        row = np.full((t_size, L), -1, dtype=np.int64)
        sel = np.zeros((t_size, L), dtype=np.int64)
        for t in range(t_size):
            for g in range(groups):
                a, b = c0 + g * m, min(c0 + g * m + m, c1)
                offs = np.flatnonzero(comp.keep[t, a:b])  # ascending channel order in the group
                for s, off in enumerate(offs):
                    val[t, g * n + s] = comp.values[t, a + off]
                    row[t, g * n + s] = g * m + off
                    sel[t, g * n + s] = off
        return Packed(val, row, sel)
    # unstructured: each token's kept values of the k-tile, packed in channel order
    lists = [np.flatnonzero(comp.keep[t, c0:c1]) for t in range(t_size)]
    L = max((len(v) for v in lists), default=0)  # noqa: N806
    val = np.zeros((t_size, L))
    row = np.full((t_size, L), -1, dtype=np.int64)
    for t, idx in enumerate(lists):
        val[t, : len(idx)] = comp.values[t, c0 + idx]
        row[t, : len(idx)] = idx
    return Packed(val, row, row.copy())


def dynamic(hw: HwConfig) -> bool:
    return hw.sparsity.kind != "dense" and hw.sparsity.selection == "dynamic"


def widen(hw: HwConfig) -> float:
    """Weight operand width relative to dense that a dynamic sparse PE must see (m/n, 1/density)."""
    sp = hw.sparsity
    if not dynamic(hw):
        return 1.0
    return sp.m / sp.n if sp.kind == "nm" else 1.0 / sp.density


# ---------------------------------------------------------------------------------------------------------
# PE array: one compute tile, cycle by cycle.  Generator protocol: code before the first ``yield`` is set-up
# (no time); each ``yield`` asks for one cycle and the code after it is that cycle's work. Returning ends the
# tile at the end of the cycle whose work ran last.
# ---------------------------------------------------------------------------------------------------------


def ws_tile(hw: HwConfig, pk: Packed, wt: np.ndarray, acc: np.ndarray):
    """Weight-stationary ``R x C``: weights held in the PEs, tokens streamed left to right, sums top to bottom."""
    sy = hw.array.systolic
    R, C, rpc = sy.rows, sy.cols, sy.weight_load_rows_per_cycle  # noqa: N806
    compat = hw.array.scalesim_compat
    sp = hw.sparsity
    t_i, L = pk.val.shape  # noqa: N806
    kt, o_size = wt.shape
    dyn_nm = dynamic(hw) and sp.kind == "nm"
    static_nm = sp.kind == "nm" and not dyn_nm
    f_k = math.ceil(L / R)
    f_o = math.ceil(o_size / C)
    mc = sp.m if dyn_nm else 1

    def candidate_rows(f: int) -> tuple[np.ndarray, list[list[tuple[int, int, int]]]]:
        """Candidate weight rows per PE row of row-fold ``f`` and the load steps (rows moved)."""
        cand = np.full((R, mc), -1, dtype=np.int64)
        loads: list[list[tuple[int, int, int]]] = []  # each load step: the (PE row, candidate, weight row) it fills
        if dyn_nm:
            n, m = sp.n, sp.m
            groups: dict[int, list[int]] = {}
            for r in range(R):
                p = f * R + r
                if p < L:
                    groups.setdefault(p // n, []).append(r)
            for g, prs in groups.items():  # each touched group moves its m candidate rows once
                for off in range(m):
                    wr = g * m + off
                    loads.append([(r, off, wr if wr < kt else -1) for r in prs])
                    for r in prs:
                        cand[r, off] = wr if wr < kt else -1
        else:
            for r in range(R):  # a fold writes all R PE rows (rows past the end are loaded with zeros)
                p = f * R + r
                wr = -1
                if p < L:
                    wr = (p // sp.n) * sp.m + p % sp.n if static_nm else p
                    wr = wr if wr < kt else -1
                cand[r, 0] = wr
                loads.append([(r, 0, wr)])
        return cand, loads

    folds = [(cf, f) for cf in range(f_o) for f in range(f_k)]  # column folds outer
    fold_rows = [candidate_rows(f) for f in range(f_k)]
    S = t_i + R + C - 2  # noqa: N806

    # weight registers: "shadow" (being loaded) and "active" (streaming); compat has one set only
    shadow_fold = 0  # index into folds of the fold being loaded
    shadow_w = np.zeros((R, C, mc))
    shadow_steps_done = 0
    shadow_ready = False
    active = None  # (fold index, weights R x C x mc)
    s = 0
    streamed = 0
    a_val = np.zeros((R, C))
    a_sel = np.zeros((R, C), dtype=np.int64)
    a_ok = np.zeros((R, C), dtype=bool)
    psum = np.zeros((R, C))
    rr = np.arange(R)
    cc = np.arange(C)

    def load_value(cf: int, wr: int) -> np.ndarray:
        c0 = cf * C
        seg = np.zeros(C)
        if wr >= 0:
            width = min(C, o_size - c0)
            seg[:width] = wt[wr, c0 : c0 + width]  # NaN where gather_rows did not fetch the row
        return seg

    while streamed < len(folds):
        yield
        # 1. the loaded fold becomes active when the array is free
        if active is None and shadow_ready:
            active = (shadow_fold, shadow_w)
            shadow_fold += 1
            shadow_w = np.zeros((R, C, mc))
            shadow_steps_done = 0
            shadow_ready = False
            s = 0
            a_val[:] = 0.0
            a_ok[:] = False
            psum[:] = 0.0
        # 2. the loader moves weight_load_rows_per_cycle rows into the shadow registers
        may_load = shadow_fold < len(folds) and not shadow_ready and (not compat or active is None)
        if may_load:
            cf, f = folds[shadow_fold]
            _, loads = fold_rows[f]
            for _ in range(rpc):
                if shadow_steps_done == len(loads):
                    break
                for r, off, wr in loads[shadow_steps_done]:
                    shadow_w[r, :, off] = load_value(cf, wr)
                shadow_steps_done += 1
            if shadow_steps_done == len(loads):
                shadow_ready = True
        # 3. the array streams one cycle of the active fold
        if active is not None:
            idx, w_act = active
            cf, f = folds[idx]
            a_val[:, 1:] = a_val[:, :-1]
            a_sel[:, 1:] = a_sel[:, :-1]
            a_ok[:, 1:] = a_ok[:, :-1]
            t_in = s - rr  # token entering row r at the left edge (skewed)
            p_in = f * R + rr
            ok = (t_in >= 0) & (t_in < t_i) & (p_in < L)
            tt, pp = np.clip(t_in, 0, t_i - 1), np.clip(p_in, 0, L - 1)
            ok &= pk.row[tt, pp] >= 0
            a_val[:, 0] = np.where(ok, pk.val[tt, pp], 0.0)
            a_sel[:, 0] = np.where(ok, pk.sel[tt, pp] if dyn_nm else 0, 0)
            a_ok[:, 0] = ok
            w_sel = np.take_along_axis(w_act, a_sel[:, :, None], axis=2)[:, :, 0]
            prod = np.where(a_ok, a_val * w_sel, 0.0)  # gated where no activation (empty slot, bubble)
            psum[1:] = psum[:-1] + prod[1:]
            psum[0] = prod[0]
            t_out = s - (R - 1) - cc  # token whose sum leaves the bottom of column c
            c_glob = cf * C + cc
            m_out = (t_out >= 0) & (t_out < t_i) & (c_glob < o_size)
            if m_out.any():
                acc[t_out[m_out], c_glob[m_out]] += psum[R - 1, m_out]
            s += 1
            if s == S:
                active = None
                streamed += 1


def os_tile(hw: HwConfig, pk: Packed, dense_pk: Packed, wt: np.ndarray, acc: np.ndarray):
    """Output-stationary ``R x C``: sums held in the PEs, activations from the left, weights from the top."""
    sy = hw.array.systolic
    R, C = sy.rows, sy.cols  # noqa: N806
    sp = hw.sparsity
    t_i = pk.val.shape[0]
    kt, o_size = wt.shape
    link_ok = sy.os_weight_link_factor >= widen(hw) - EPS
    dyn = dynamic(hw)
    crossbar = False
    if sp.kind == "dense":
        stream, mode = dense_pk, "direct"
    elif sp.kind == "nm" and not dyn:
        stream, mode = pk, "static"
    elif sp.kind == "nm" and link_ok:
        stream, mode = pk, "candidates"  # links m/n wider: each PE sees its group's m candidates
    elif sp.kind == "unstructured" and link_ok:
        stream, mode, crossbar = pk, "crossbar", True
    else:
        stream, mode = dense_pk, "direct"  # narrow links: the dense stream with pruned activations (gated)
    mc = sp.m if mode == "candidates" else 1
    rr, cc = np.arange(R), np.arange(C)
    for cf in range(math.ceil(o_size / C)):
        c0 = cf * C
        for tf in range(math.ceil(t_i / R)):
            t0 = tf * R
            rows_here = min(R, t_i - t0)
            if crossbar:
                Kst = int((stream.row[t0 : t0 + rows_here] >= 0).sum(axis=1).max()) if stream.row.size else 0  # noqa: N806
            else:
                Kst = stream.val.shape[1]  # noqa: N806
            S = Kst + R + C - 2  # noqa: N806
            a_val = np.zeros((R, C))
            a_sel = np.zeros((R, C), dtype=np.int64)
            a_ok = np.zeros((R, C), dtype=bool)
            w_reg = np.zeros((R, C, mc))
            accum = np.zeros((R, C))
            for s in range(S):
                yield
                # activations: row r gets step p = s - r of its token
                a_val[:, 1:] = a_val[:, :-1]
                a_sel[:, 1:] = a_sel[:, :-1]
                a_ok[:, 1:] = a_ok[:, :-1]
                p_in = s - rr
                t_in = t0 + rr
                ok = (p_in >= 0) & (p_in < Kst) & (rr < rows_here)
                tt = np.clip(t_in, 0, t_i - 1)
                pp = np.clip(p_in, 0, max(0, stream.val.shape[1] - 1))
                if stream.val.shape[1]:
                    ok &= stream.row[tt, pp] >= 0
                    a_val[:, 0] = np.where(ok, stream.val[tt, pp], 0.0)
                    sel = stream.row[tt, pp] if crossbar else (stream.sel[tt, pp] if mode == "candidates" else 0)
                    a_sel[:, 0] = np.where(ok, sel, 0)
                else:
                    a_val[:, 0] = 0.0
                a_ok[:, 0] = ok
                if crossbar:  # every multiplier selects its weight through a K_tile:1 crossbar
                    cols = np.clip(c0 + cc, 0, o_size - 1)
                    w_sel = np.where(a_ok, wt[np.clip(a_sel, 0, kt - 1), cols[None, :]], 0.0)
                else:
                    # weights: column c gets step p = s - c from the top
                    w_reg[1:] = w_reg[:-1]
                    p_top = s - cc
                    top = np.zeros((C, mc))
                    for c in range(C):
                        p = p_top[c]
                        if 0 <= p < Kst and c0 + c < o_size:
                            if mode == "candidates":
                                g = p // sp.n
                                for off in range(mc):
                                    wr = g * sp.m + off
                                    top[c, off] = wt[wr, c0 + c] if wr < kt else np.nan
                            elif mode == "static":
                                wr = (p // sp.n) * sp.m + p % sp.n
                                top[c, 0] = wt[wr, c0 + c] if wr < kt else np.nan
                            else:
                                top[c, 0] = wt[p, c0 + c]
                    w_reg[0] = top
                    w_sel = np.take_along_axis(w_reg, a_sel[:, :, None], axis=2)[:, :, 0]
                accum += np.where(a_ok, a_val * w_sel, 0.0)
            # fold done: the accumulators go to the output buffer (drain not timed, as SCALE-Sim)
            w_cols = min(C, o_size - c0)
            acc[t0 : t0 + rows_here, c0 : c0 + w_cols] += accum[:rows_here, :w_cols]


def mma_tile(hw: HwConfig, pk: Packed, wt: np.ndarray, acc: np.ndarray, k_tile: int):
    """Tensor-core-like units: instructions of ``t x o x k`` issued in rounds, one per unit per round."""
    mm = hw.array.mma
    sp = hw.sparsity
    pr = hw.precision
    t_i, L = pk.val.shape  # noqa: N806
    kt, o_size = wt.shape
    dyn = dynamic(hw)
    instrs = []
    for ob in range(math.ceil(o_size / mm.outputs)):
        for b0 in range(0, t_i, mm.tokens):
            blk = pk.row[b0 : b0 + mm.tokens]
            if sp.kind == "unstructured":
                length = int((blk >= 0).sum(axis=1).max()) if blk.size else 0
            else:
                length = L  # ref: N:M slots per group, including a short last group's empty slots
            for s0 in range(0, length, mm.reduction):
                instrs.append((ob, b0, s0))
    # operand traffic of each instruction (bytes) and its metadata, from the slots it actually holds
    kept_rows = set(int(r) for r in pk.row[pk.row >= 0].ravel())  # what a compacted (gather_rows) tile stores
    gather = sp.weight_fetch == "gather_rows"
    if dyn:
        bits = metadata_bits_per_group(sp.n, sp.m, sp.metadata_format) / sp.n if sp.kind == "nm" else index_bits(k_tile)
    else:
        bits = 0.0

    def weight_rows(b0: int, s0: int) -> int:
        if not dyn:
            return mm.reduction
        if sp.kind == "nm":  # every present row of every group whose slots the instruction holds
            n_rows = 0
            for g in sorted({s // sp.n for s in range(s0, min(s0 + mm.reduction, L))}):
                group = range(g * sp.m, min(g * sp.m + sp.m, kt))
                n_rows += sum(1 for r in group if r in kept_rows) if gather else len(group)
            return n_rows
        r = pk.row[b0 : b0 + mm.tokens, s0 : s0 + mm.reduction]
        return len(set(int(v) for v in r[r >= 0].ravel()))  # crossbar: the rows its tokens use

    def meta_bytes_of(b0: int, s0: int) -> float:
        if not dyn:
            return 0.0
        if sp.kind == "nm":  # real tokens only; every slot of theirs carries an index
            real_tok = min(mm.tokens, t_i - b0)
            return real_tok * (min(s0 + mm.reduction, L) - s0) * bits / 8
        r = pk.row[b0 : b0 + mm.tokens, s0 : s0 + mm.reduction]
        return int((r >= 0).sum()) * bits / 8

    cost = {
        (ob, b0, s0): (
            mm.tokens * mm.reduction * pr.activation_bytes + mm.outputs * weight_rows(b0, s0) * pr.weight_bytes,
            meta_bytes_of(b0, s0),
        )
        for ob, b0, s0 in instrs
    }
    bw_op = mm.operand_buffer_read_bytes_per_cycle
    bw_meta = sp.metadata_buffer.read_bytes_per_cycle if sp.metadata_buffer is not None else math.inf
    rounds = [instrs[a : a + mm.units] for a in range(0, len(instrs), mm.units)]
    for rnd in rounds:
        need_op = sum(cost[x][0] for x in rnd)
        need_meta = sum(cost[x][1] for x in rnd)
        got_op = got_meta = 0.0
        cyc = 0
        while True:
            yield
            cyc += 1
            got_op += bw_op
            got_meta += bw_meta
            if cyc >= mm.issue_interval_cycles and got_op >= need_op - EPS and got_meta >= need_meta - EPS:
                break
        for ob, b0, s0 in rnd:  # the round's instructions compute (results land after the pipeline latency)
            o0, o1 = ob * mm.outputs, min(o_size, ob * mm.outputs + mm.outputs)
            v = pk.val[b0 : b0 + mm.tokens, s0 : s0 + mm.reduction]
            r = pk.row[b0 : b0 + mm.tokens, s0 : s0 + mm.reduction]
            ok = r >= 0
            wsel = wt[np.clip(r, 0, kt - 1)][:, :, o0:o1]  # decoder: slot -> weight row (m:1 / crossbar)
            acc[b0 : b0 + mm.tokens, o0:o1] += np.where(ok[:, :, None], v[:, :, None] * wsel, 0.0).sum(axis=1)
    for _ in range(mm.latency_cycles):
        yield


def with_decoder(gen, dec_lat: int):
    for _ in range(dec_lat):
        yield
    yield from gen


def minus_one_cycle(gen):
    """SCALE-Sim's count: the index of the last cycle, i.e. the last two cycles are done in one."""
    try:
        next(gen)
    except StopIteration:
        return
    yield
    try:
        next(gen)
    except StopIteration:
        return
    while True:
        try:
            next(gen)
        except StopIteration:
            return
        yield


def _start(gen) -> bool:
    """Run a tile's set-up; False when the tile takes no cycle at all."""
    try:
        next(gen)
    except StopIteration:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------------------------------------


def run_reference(hw: HwConfig, x: np.ndarray, w: np.ndarray, *, reuse_input: bool = False) -> RefResult:
    """Step the site ``y = prune(x) @ w`` (``x`` ``[T, K]``, ``w`` ``[K, O]``) cycle by cycle from a cold start.

    ``reuse_input``: the input (already compressed) is still on chip from the previous site.
    """
    sp, pr, arr = hw.sparsity, hw.precision, hw.array
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    T, K = x.shape  # noqa: N806
    O = w.shape[1]  # noqa: N806
    tiling = choose_tiling(hw, T, K, O)
    t_sp, o_sp, k_sp = spans(T, tiling.T_tile), spans(O, tiling.O_tile), spans(K, tiling.K_tile)
    n_t, n_o, n_k = len(t_sp), len(o_sp), len(k_sp)
    n_tiles = n_t * n_o * n_k
    # Activation tiles in read order: one per token tile (the whole row), or, K-tiled (sram.activation_tiling),
    # one per compute tile (i, o, k) holding span k of token tile i: the two slots cannot hold a token tile's spans,
    # so every output tile reads them again.
    k_act = tiling.act_k_tiled and n_k > 1
    act_tiles = [(i, kk) for i in range(n_t) for _ in range(n_o) for kk in range(n_k)] if k_act else []
    act_tiles = act_tiles or [(i, None) for i in range(n_t)]
    n_a = len(act_tiles)
    dyn = dynamic(hw)
    producer = dyn and sp.compressor is not None and sp.compressor.placement == "producer"
    on_path = dyn and not producer and not reuse_input
    gather = sp.weight_fetch == "gather_rows"
    bpc = hw.dram_bytes_per_cycle
    infinite = math.isinf(bpc)
    lat = hw.dram.latency_cycles
    burst = hw.dram.burst_bytes
    dec_lat = sp.decoder.latency_cycles if (dyn and sp.decoder is not None) else 0

    # DRAM image: what the producer left there (producer placement: compressed values and metadata)
    y = np.full((T, O), np.nan)

    def act_rows(ai: int) -> tuple[np.ndarray, tuple | None]:
        """The activation tile's data and, K-tiled, ``(its token tile's full rows, span start)``."""
        i, kk = act_tiles[ai]
        a, b = t_sp[i]
        if kk is None:
            return x[a:b], None
        c0, c1 = k_sp[kk]
        return x[a:b, c0:c1], (x[a:b], c0)

    def act_payload(ai: int):
        xt, ctx = act_rows(ai)
        t_size, kw = xt.shape
        if reuse_input:  # on chip already, and already compressed
            return 0, 0, compress_all(hw, xt, ctx)
        if producer:
            comp = compress_all(hw, xt, ctx)
            kept = int(comp.keep.sum())
            if sp.kind == "nm":
                meta_bits = t_size * math.ceil(kw / sp.m) * metadata_bits_per_group(sp.n, sp.m, sp.metadata_format)
            else:
                meta_bits = kept * index_bits(kw)
            return math.ceil(kept * pr.activation_bytes - EPS), math.ceil(meta_bits / 8 - EPS), comp
        return math.ceil(t_size * kw * pr.activation_bytes - EPS), 0, xt

    # --- state --------------------------------------------------------------------------------------------
    pending: list[tuple[int, int, int, float, tuple]] = []  # (request cycle, kind rank, order, bytes, tag)
    order = [0]
    current: list = [None]  # [tag, bytes, moved]
    in_flight: list[tuple[int, tuple]] = []  # (usable at cycle, tag)
    dram_bytes = dict.fromkeys(("act", "meta", "weight", "out"), 0)
    busy = {"dram": 0, "cmp": 0, "pe": 0}
    stalls = {"dram_stall": 0, "compressor_stall": 0, "writeback_stall": 0}

    act_slot: dict[int, dict] = {}  # slot index -> contents of the activation tile in it
    w_slot: dict[int, np.ndarray] = {}
    out_slot: dict[int, np.ndarray] = {}
    act_arrived = [False] * n_a
    meta_arrived = [False] * n_a
    compressed = [False] * n_a
    act_done = [False] * n_a  # the last compute tile that reads the activation tile has finished
    kept_rows: dict[int, np.ndarray] = {}  # activation tile -> its compressed keep-mask (kept for gather_rows)
    w_arrived = [False] * n_tiles
    tile_done = [False] * n_tiles
    written = [False] * (n_t * n_o)
    payload_cache: dict[int, tuple] = {}

    nxt = {"act": 0, "cmp": 0, "wr": 0, "pe": 0}
    cmp_cur: list = [None]  # [i, units done, units total, Compressed]
    cmp_pipe: list[tuple[int, int]] = []  # (ready cycle, activation tile)
    pe: dict = {"gen": None, "j": None, "ends": False}
    tile_start: list[int] = [0] * n_tiles
    tile_end: list[int] = [0] * n_tiles

    def request(c: int, kind: str, nbytes: float, tag: tuple) -> None:
        dram_bytes[kind] += int(nbytes)
        if nbytes <= 0:
            in_flight.append((c, tag))
        elif infinite:
            in_flight.append((c + lat, tag))
        else:
            pending.append((c, KIND_RANK[kind], order[0], nbytes, tag))
            order[0] += 1

    def deliver(tag: tuple) -> None:
        kind, idx = tag[0], tag[1]
        if kind == "act":
            act_slot[idx % 2] = {"data": tag[2], "comp": None, "i": idx, "rows": act_rows(idx)[1]}
            act_arrived[idx] = True
        elif kind == "meta":
            meta_arrived[idx] = True
        elif kind == "weight":
            w_slot[idx % 2] = tag[2]
            w_arrived[idx] = True
        else:
            a, b, o0, o1, data = tag[2]
            y[a:b, o0:o1] = data
            written[idx] = True

    def tile_ijk(j: int) -> tuple[int, int, int]:
        i, rest = divmod(j, n_o * n_k)
        o, k = divmod(rest, n_k)
        return i, o, k

    def act_of(j: int) -> int:
        return j if k_act else j // (n_o * n_k)

    def is_last_use(j: int) -> bool:
        _, o, kk = tile_ijk(j)
        return k_act or (o == n_o - 1 and kk == n_k - 1)

    def mask_source(j: int) -> int:
        """ref: the activation tile whose compression first names the rows of tile j: K-tiled, the read of its
        span by output tile 0 (the controller keeps that span's row mask); otherwise its own."""
        i, _, kk = tile_ijk(j)
        return i * n_o * n_k + kk if k_act else act_of(j)

    def packed_for(j: int, kk: int) -> tuple[Packed, Packed]:
        ai = act_of(j)
        slot = act_slot[ai % 2]
        assert slot["i"] == ai, "activation slot overwritten before use"
        comp = slot["comp"]
        c0, c1 = (0, comp.K) if k_act else k_sp[kk]
        # the dense stream of pruned activations (os with narrow weight links): dropped entries are gated
        dpk = Packed(
            comp.values[:, c0:c1].copy(),
            np.where(comp.keep[:, c0:c1], np.arange(c1 - c0)[None, :], -1),
            np.zeros((comp.t_size, c1 - c0), dtype=np.int64),
        )
        return pack(hw, comp, c0, c1), dpk

    def make_tile(j: int):
        i, o, kk = tile_ijk(j)
        pk, dpk = packed_for(j, kk)
        wt = w_slot[j % 2]
        q = i * n_o + o
        acc = out_slot[q % 2]
        c0, c1 = k_sp[kk]
        if arr.dataflow == "ws":
            gen = ws_tile(hw, pk, wt, acc)
        elif arr.dataflow == "os":
            gen = os_tile(hw, pk, dpk, wt, acc)
        else:
            gen = mma_tile(hw, pk, wt, acc, c1 - c0)
        gen = with_decoder(gen, dec_lat)
        if arr.scalesim_compat and j == n_tiles - 1:
            gen = minus_one_cycle(gen)
        return gen

    def finish_tile(c: int) -> None:
        j = pe["j"]
        i, o, kk = tile_ijk(j)
        tile_done[j] = True
        tile_end[j] = c
        pe["gen"], pe["j"], pe["ends"] = None, None, False
        nxt["pe"] += 1
        if kk == n_k - 1:
            q = i * n_o + o
            (a, b), (o0, o1) = t_sp[i], o_sp[o]
            data = out_slot[q % 2][: b - a, : o1 - o0].copy()
            request(c, "out", math.ceil((b - a) * (o1 - o0) * pr.output_bytes - EPS), ("out", q, (a, b, o0, o1, data)))
        if is_last_use(j):
            act_done[act_of(j)] = True

    c = 0
    while True:
        # ---------------- settle phase ----------------
        if pe["ends"]:
            finish_tile(c)
        changed = True
        while changed:
            changed = False
            for item in [f for f in in_flight if f[0] <= c]:
                in_flight.remove(item)
                deliver(item[1])
                changed = True
            for item in [p for p in cmp_pipe if p[0] <= c]:
                cmp_pipe.remove(item)
                compressed[item[1]] = True
                changed = True
            # activation reader
            i = nxt["act"]
            if i < n_a and (i < 2 or act_done[i - 2]):
                ab, mb, data = payload_cache.setdefault(i, act_payload(i))
                request(c, "act", ab, ("act", i, data))
                request(c, "meta", mb, ("meta", i))
                nxt["act"] += 1
                changed = True
            # compressor (or the pass-through when none is on the path)
            i = nxt["cmp"]
            if i < n_a and cmp_cur[0] is None and act_arrived[i] and meta_arrived[i]:
                slot = act_slot[i % 2]
                if on_path:
                    comp = Compressed(*slot["data"].shape)
                    cmp_cur[0] = [i, 0, n_units(hw, comp.t_size, comp.K), comp]
                else:
                    data = slot["data"]
                    slot["comp"] = data if isinstance(data, Compressed) else compress_all(hw, data, slot["rows"])
                    kept_rows[i] = slot["comp"].keep
                    compressed[i] = True
                nxt["cmp"] += 1
                changed = True
            # weight reader
            j = nxt["wr"]
            if j < n_tiles and (j < 2 or tile_done[j - 2]):
                i, o, kk = tile_ijk(j)
                src = mask_source(j)
                if not gather or compressed[src]:
                    (c0, c1), (o0, o1) = k_sp[kk], o_sp[o]
                    seg = math.ceil(math.ceil((o1 - o0) * pr.weight_bytes - EPS) / burst) * burst
                    if gather:  # the rows some token of the tile keeps, read from the compressed tile's metadata
                        keep = kept_rows[src] if k_act else kept_rows[src][:, c0:c1]
                        rows = np.flatnonzero(keep.any(axis=0))
                    else:
                        rows = np.arange(c1 - c0)
                    tile = np.full((c1 - c0, o1 - o0), np.nan)
                    tile[rows] = w[c0 + rows, o0:o1]
                    request(c, "weight", len(rows) * seg, ("weight", j, tile))
                    nxt["wr"] += 1
                    changed = True
            # PE
            j = nxt["pe"]
            if pe["gen"] is None and j < n_tiles:
                i, o, kk = tile_ijk(j)
                q = i * n_o + o
                ready = w_arrived[j] and compressed[act_of(j)]
                if kk == 0:
                    ready = ready and (q < 2 or written[q - 2])
                if ready:
                    if kk == 0:
                        (a, b), (o0, o1) = t_sp[i], o_sp[o]
                        out_slot[q % 2] = np.zeros((b - a, o1 - o0))
                    gen = make_tile(j)
                    pe["j"] = j
                    tile_start[j] = c
                    if _start(gen):
                        pe["gen"] = gen
                    else:
                        finish_tile(c)
                    changed = True
        if nxt["pe"] == n_tiles and all(written) and not in_flight:
            break
        # ---------------- channel arbitration ----------------
        if current[0] is None and pending:
            best = min(pending)
            pending.remove(best)
            current[0] = [best[4], best[3], 0.0]
        # ---------------- work phase ----------------
        if current[0] is not None:
            cur = current[0]
            cur[2] += bpc
            busy["dram"] += 1
            if cur[2] >= cur[1] - EPS * bpc:
                in_flight.append((c + 1 + lat, cur[0]))
                current[0] = None
        if cmp_cur[0] is not None:
            i, done, total, comp = cmp_cur[0]
            xt = act_slot[i % 2]["data"]
            for u in range(done, min(total, done + sp.compressor.groups_per_cycle)):
                compress_unit(hw, xt, comp, u, act_slot[i % 2]["rows"])
            done = min(total, done + sp.compressor.groups_per_cycle)
            busy["cmp"] += 1
            if done == total:
                act_slot[i % 2]["comp"] = comp
                kept_rows[i] = comp.keep
                cmp_pipe.append((c + 1 + sp.compressor.latency_cycles, i))
                cmp_cur[0] = None
            else:
                cmp_cur[0][1] = done
        if pe["gen"] is not None:
            busy["pe"] += 1
            try:
                next(pe["gen"])
            except StopIteration:
                pe["ends"] = True
        elif nxt["pe"] == n_tiles:
            stalls["writeback_stall"] += 1  # the drain: outputs still being written
        else:  # the PE waits for the next tile: operands not arrived, not compressed, or no output slot
            i = act_of(nxt["pe"])
            if not (w_arrived[nxt["pe"]] and act_arrived[i] and meta_arrived[i]):
                stalls["dram_stall"] += 1
            elif not compressed[i]:
                stalls["compressor_stall"] += 1
            else:
                stalls["writeback_stall"] += 1
        c += 1
        if c > 50_000_000:
            raise RuntimeError("reference model does not terminate")
    return RefResult(
        cycles=c,
        y=y,
        dram_busy_cycles=busy["dram"],
        compressor_busy_cycles=busy["cmp"],
        pe_busy_cycles=busy["pe"],
        dram_bytes=dram_bytes,
        stalls=stalls,
        tile_start=tile_start,
        tile_end=tile_end,
    )


def pruned(hw: HwConfig, x: np.ndarray) -> np.ndarray:
    """``prune(x)`` with the design page's selection rule (the expected input of the PE)."""
    sp = hw.sparsity
    x = np.asarray(x, dtype=np.float64)
    if sp.kind == "dense":
        return x
    if sp.kind == "unstructured":
        return np.where(topk_mask(np.abs(x), sp.density), x, 0.0)
    if sp.selection == "static_first_n":
        return np.where(static_first_n_mask(x.shape, sp.n, sp.m), x, 0.0)
    return np.where(nm_mask(np.abs(x), sp.n, sp.m), x, 0.0)


__all__ = ["RefResult", "run_reference", "pruned"]
