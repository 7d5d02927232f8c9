"""The compiled site kernel: the same pipeline semantics as ``engine.py``, as one numba loop over event times.

``engine.simulate_site`` (simpy) is the reference implementation. This module computes the identical
:class:`~accelsim.sim.engine.SiteTiming` without simpy: it keeps the state of the five components (activation
reader, compressor, weight reader, PE array, DRAM channel) in numpy arrays and jumps from one event time to the
next. At each event time ``t`` it first *settles* every zero-time reaction (a tile ends, its slot frees, the next
read is requested ...) until nothing changes, then lets a free DRAM channel start the pending request with the
smallest ``(request cycle, kind, index)``; this is what the simpy channel's half-cycle decision achieves.

Why the order of requests inside one cycle does not matter: requests of one kind come from one process in
program order, so the simpy sequence number orders them by index, and the channel's key ``(cycle, kind, seq)``
is the key ``(cycle, kind, index)`` used here. The arbitration key puts every older request first, so the
channel serves requests in key order: a transfer starts at ``max(request cycle, previous transfer's end)``.

All times are integer cycles (transfer occupancies are precomputed with the engine's own float formula), so
every comparison is exact. A transfer of positive bytes whose occupancy rounds to 0 cycles (bandwidth above
``1e9`` bytes per cycle but finite) is not handled here: :func:`simulate_site_fast` falls back to simpy.
``tests/test_engine_equivalence.py`` checks equality with the simpy engine on every site of the cycles baseline
and on random site work.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from accelsim.sim.work import TILE_PARTS, SiteWork

KIND_ACT, KIND_META, KIND_WEIGHT, KIND_OUT = 0, 1, 2, 3


def occupancy_cycles(nbytes: np.ndarray, bytes_per_cycle: float, extra: np.ndarray | float = 0.0) -> np.ndarray:
    """Channel cycles per transfer, with the engine's formula ``ceil(B / bpc + extra - 1e-9)`` (0 if infinite)."""
    nbytes = np.asarray(nbytes, dtype=np.int64)
    if math.isinf(bytes_per_cycle):
        return np.zeros(nbytes.shape, dtype=np.int64)
    occ = np.ceil(nbytes.astype(np.float64) / bytes_per_cycle + extra - 1e-9)
    return occ.astype(np.int64)


@njit(cache=True)
def _heap_push(heap, n, v):
    """Push ``v`` on the binary min-heap ``heap[:n]``; returns the new size."""
    i = n
    heap[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= heap[i]:
            break
        heap[p], heap[i] = heap[i], heap[p]
        i = p
    return n + 1


@njit(cache=True)
def _heap_pop(heap, n):
    """Pop the minimum of ``heap[:n]``; returns ``(value, new size)``."""
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = 0
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        b = a + 1
        c = b if (b < n and heap[b] < heap[a]) else a
        if heap[i] <= heap[c]:
            break
        heap[i], heap[c] = heap[c], heap[i]
        i = c
    return top, n


@njit(cache=True)
def _site_kernel(  # noqa: C901 - one event loop, kept in one piece so that numba compiles it as one function
    n_t,
    n_o,
    n_k,
    slots,
    act_of,
    act_last,
    mask_of,
    act_bytes,
    act_occ,
    meta_bytes,
    meta_occ,
    w_bytes,
    w_occ,
    out_bytes,
    out_occ,
    cmp_busy,
    cmp_lat,
    tile_cycles,
    gather,
    infinite,
    lat,
):
    """Returns ``[cycles, dram_stall, compressor_stall, writeback_stall, dram_busy, tail_idle]``; ``cycles = -1``
    if stuck. ``tail_idle``: channel idle cycles in ``[start of the last compute tile, cycles - lat)``."""
    never = np.int64(1) << np.int64(62)
    n_tiles = n_t * n_o * n_k
    n_out = n_t * n_o
    n_act = len(act_last)
    act_arr = np.full(n_act, never, np.int64)
    meta_arr = np.full(n_act, never, np.int64)
    cmp_done = np.full(n_act, never, np.int64)  # compressed tile ready
    w_arr = np.full(n_tiles, never, np.int64)
    tile_end = np.full(n_tiles, never, np.int64)
    wb = np.full(n_out, never, np.int64)
    # pending DRAM requests: (request cycle, kind, index), at most a few at a time
    cap = 2 * n_act + n_tiles + n_out + 4
    p_time = np.empty(cap, np.int64)
    p_kind = np.empty(cap, np.int64)
    p_idx = np.empty(cap, np.int64)
    n_pend = 0
    span_start = np.empty(cap, np.int64)  # every transfer the channel served: start cycle, occupancy
    span_occ = np.empty(cap, np.int64)
    n_span = 0
    heap = np.empty(2 * cap + 4 * n_tiles + 4 * n_act + 16, np.int64)
    n_heap = 0
    chan_free = np.int64(0)
    dram_busy = np.int64(0)
    next_act = 0
    next_cmp = 0
    cmp_free = np.int64(0)
    next_w = 0
    next_pe = 0
    pe_running = False
    prev = np.int64(0)
    dram_stall = np.int64(0)
    cmp_stall = np.int64(0)
    wb_stall = np.int64(0)
    t = np.int64(0)
    while True:
        changed = True
        while changed:
            changed = False
            # activation reader: activation tile i once activation tile i - slots is finished
            while next_act < n_act and (next_act < slots or tile_end[act_last[next_act - slots]] <= t):
                i = next_act
                for kind in (KIND_ACT, KIND_META):
                    nb = act_bytes[i] if kind == KIND_ACT else meta_bytes[i]
                    if nb <= 0:
                        arr = t
                    elif infinite:
                        arr = t + lat
                        n_heap = _heap_push(heap, n_heap, arr)
                    else:
                        arr = never
                        p_time[n_pend] = t
                        p_kind[n_pend] = kind
                        p_idx[n_pend] = i
                        n_pend += 1
                    if kind == KIND_ACT:
                        act_arr[i] = arr
                    else:
                        meta_arr[i] = arr
                next_act += 1
                changed = True
            # compressor: activation tiles in order, once the data is there and the previous tile has left
            if next_cmp < n_act and cmp_free <= t and act_arr[next_cmp] <= t and meta_arr[next_cmp] <= t:
                b = cmp_busy[next_cmp]
                cmp_done[next_cmp] = t + b + cmp_lat
                cmp_free = t + b
                n_heap = _heap_push(heap, n_heap, t + b + cmp_lat)
                if b:
                    n_heap = _heap_push(heap, n_heap, t + b)
                next_cmp += 1
                changed = True
            # weight reader: compute tile j once tile j - slots is finished (and, gathering, its mask is there)
            while next_w < n_tiles and (next_w < slots or tile_end[next_w - slots] <= t):
                j = next_w
                if gather and cmp_done[mask_of[j]] > t:
                    break
                if w_bytes[j] <= 0:
                    w_arr[j] = t
                elif infinite:
                    w_arr[j] = t + lat
                    n_heap = _heap_push(heap, n_heap, t + lat)
                else:
                    p_time[n_pend] = t
                    p_kind[n_pend] = KIND_WEIGHT
                    p_idx[n_pend] = j
                    n_pend += 1
                next_w += 1
                changed = True
            # PE: the running tile ends; its output tile's write-back is requested after the last reduction tile
            if pe_running and tile_end[next_pe - 1] <= t:
                pe_running = False
                j = next_pe - 1
                prev = t
                if j % n_k == n_k - 1:
                    q = j // n_k
                    if out_bytes[q] <= 0:
                        wb[q] = t
                    elif infinite:
                        wb[q] = t + lat
                        n_heap = _heap_push(heap, n_heap, t + lat)
                    else:
                        p_time[n_pend] = t
                        p_kind[n_pend] = KIND_OUT
                        p_idx[n_pend] = q
                        n_pend += 1
                changed = True
            if not pe_running and next_pe < n_tiles:
                j = next_pe
                i = act_of[j]
                q = j // n_k
                ready = w_arr[j] <= t and cmp_done[i] <= t
                if ready and j % n_k == 0 and q >= slots:
                    ready = wb[q - slots] <= t
                if ready:
                    if t > prev:
                        a = max(w_arr[j], act_arr[i], meta_arr[i])
                        c = max(a, cmp_done[i])
                        d_w = max(np.int64(0), min(a, t) - prev)
                        c_w = max(np.int64(0), min(c, t) - max(prev, a))
                        dram_stall += d_w
                        cmp_stall += c_w
                        wb_stall += t - prev - d_w - c_w
                    tile_end[j] = t + tile_cycles[j]
                    if tile_cycles[j]:
                        n_heap = _heap_push(heap, n_heap, t + tile_cycles[j])
                    pe_running = True
                    next_pe += 1
                    changed = True
        # DRAM channel: when free, start the pending request with the smallest (cycle, kind, index)
        if n_pend and chan_free <= t:
            best = 0
            for r in range(1, n_pend):
                if p_time[r] < p_time[best] or (
                    p_time[r] == p_time[best]
                    and (p_kind[r] < p_kind[best] or (p_kind[r] == p_kind[best] and p_idx[r] < p_idx[best]))
                ):
                    best = r
            kind = p_kind[best]
            idx = p_idx[best]
            n_pend -= 1
            p_time[best] = p_time[n_pend]
            p_kind[best] = p_kind[n_pend]
            p_idx[best] = p_idx[n_pend]
            if kind == KIND_ACT:
                occ = act_occ[idx]
                act_arr[idx] = t + occ + lat
            elif kind == KIND_META:
                occ = meta_occ[idx]
                meta_arr[idx] = t + occ + lat
            elif kind == KIND_WEIGHT:
                occ = w_occ[idx]
                w_arr[idx] = t + occ + lat
            else:
                occ = out_occ[idx]
                wb[idx] = t + occ + lat
            dram_busy += occ
            span_start[n_span] = t
            span_occ[n_span] = occ
            n_span += 1
            chan_free = t + occ
            n_heap = _heap_push(heap, n_heap, t + occ)
            n_heap = _heap_push(heap, n_heap, t + occ + lat)
        # next event time
        nxt = never
        while n_heap:
            v, n_heap = _heap_pop(heap, n_heap)
            if v > t:
                nxt = v
                break
        if nxt == never:
            break
        t = nxt
    out = np.zeros(6, np.int64)
    if next_pe < n_tiles or pe_running or n_pend:
        out[0] = -1
        return out
    pe_end = tile_end[n_tiles - 1]
    end = pe_end
    for q in range(n_out):
        if wb[q] > end:
            end = wb[q]
    wb_stall += end - pe_end
    out[0] = end
    out[1] = dram_stall
    out[2] = cmp_stall
    out[3] = wb_stall
    out[4] = dram_busy
    lo = tile_end[n_tiles - 1] - tile_cycles[n_tiles - 1]
    hi = end - lat
    idle = max(np.int64(0), hi - lo)
    for r in range(n_span):
        a = max(span_start[r], lo)
        b = min(span_start[r] + span_occ[r], hi)
        if b > a:
            idle -= b - a
    out[5] = idle
    return out


def simulate_site_fast(work: SiteWork, dram_bytes_per_cycle: float, dram_latency_cycles: int, *, buffer_slots: int = 2):
    """:func:`accelsim.sim.engine.simulate_site` computed by the compiled kernel (identical ``SiteTiming``)."""
    from accelsim.sim.engine import SiteTiming, simulate_site

    bpc = float(dram_bytes_per_cycle)
    infinite = math.isinf(bpc)
    act_b = np.asarray(work.act_read_bytes, dtype=np.int64)
    meta_b = np.asarray(work.meta_read_bytes, dtype=np.int64)
    w_b = np.asarray(work.weight_bytes, dtype=np.int64)
    out_b = np.asarray(work.out_bytes, dtype=np.int64)
    act_o = occupancy_cycles(act_b, bpc)
    meta_o = occupancy_cycles(meta_b, bpc)
    w_o = occupancy_cycles(w_b, bpc, np.asarray(work.weight_extra_cycles, dtype=np.float64))
    out_o = occupancy_cycles(out_b, bpc)
    if not infinite:
        for b, o in ((act_b, act_o), (meta_b, meta_o), (w_b, w_o), (out_b, out_o)):
            if np.any((b > 0) & (o <= 0)):  # a zero-cycle transfer: the simpy engine's own corner, use it
                return simulate_site(work, dram_bytes_per_cycle, dram_latency_cycles, buffer_slots=buffer_slots)
    tile_cycles = np.asarray(work.tile_cycles, dtype=np.int64)
    act_of, act_last, mask_of = work.act_maps()
    res = _site_kernel(
        int(work.n_t),
        int(work.n_o),
        int(work.n_k),
        int(buffer_slots),
        act_of,
        act_last,
        mask_of,
        act_b,
        act_o,
        meta_b,
        meta_o,
        w_b,
        w_o,
        out_b,
        out_o,
        np.asarray(work.compress_busy, dtype=np.int64),
        int(work.compress_latency),
        tile_cycles,
        bool(work.gather_rows),
        infinite,
        int(dram_latency_cycles),
    )
    if res[0] < 0:
        raise AssertionError("fast site kernel did not finish every tile (inconsistent SiteWork)")
    breakdown = {p: int(work.tile_parts[p].sum()) for p in TILE_PARTS}
    breakdown["dram_stall"] = int(res[1])
    breakdown["compressor_stall"] = int(res[2])
    breakdown["writeback_stall"] = int(res[3])
    cycles = int(res[0])
    total = sum(breakdown.values())
    if total != cycles:
        raise AssertionError(f"cycle breakdown {total} != cycles {cycles}: {breakdown}")
    return SiteTiming(
        cycles=cycles,
        breakdown=breakdown,
        dram_busy_cycles=int(res[4]),
        compressor_busy_cycles=int(np.asarray(work.compress_busy, dtype=np.int64).sum()),
        pe_busy_cycles=int(tile_cycles.sum()),
        tail_idle_cycles=int(res[5]),
    )
