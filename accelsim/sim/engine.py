"""The discrete-event pipeline of one site (simpy): DRAM reader -> buffers -> compressor -> PE array -> writer.

Events are coarse: one per tile transfer, one per compressed activation tile and one per compute tile. The
semantics, which the per-cycle reference model in ``tests/reference_model.py`` re-implements independently:

* **DRAM channel**: one server for reads and writes. A transfer of ``B`` bytes occupies it for
  ``ceil(B / bytes_per_cycle)`` cycles; its data is usable ``latency_cycles`` after that. When the channel is
  free at cycle ``c`` it starts the pending request with the smallest ``(ready cycle, kind, sequence)``, kind
  order activation < metadata < weight < output, among those ready at ``c``. Zero-byte transfers complete at
  once. With infinite bandwidth nothing is serialised: a transfer completes ``latency_cycles`` after it is ready.
* **Activation reader**: for each activation tile in order (one per token tile, ``T_tile x K``; with K-tiled
  activation tiles one per compute tile, ``T_tile x K_tile``: ``SiteWork.act_tile``), takes one of 2
  activation-buffer slots, then requests the tile (and its metadata under producer placement). The slot is freed
  when the PE finishes the last compute tile that uses the activation tile.
* **Compressor** (consumer placement): activation tiles in order; starts when a tile has arrived and the previous
  one has left its input stage; busy ``ceil(groups / groups_per_cycle)``; the compressed tile and its mask are
  ready ``latency_cycles`` after that.
* **Weight reader**: compute tiles in order; takes one of 2 weight-buffer slots; with ``gather_rows`` waits for
  the mask of its activation tile (causal; K-tiled: of the first read of its reduction span,
  ``SiteWork.mask_tile``); then requests the tile's weight bytes. The slot is freed when the PE finishes that
  compute tile.
* **PE array**: compute tiles in order; starts a tile when its weights have arrived, its activation tile is
  compressed and (first reduction tile of an output tile) one of 2 output-buffer slots is free; busy for the
  tile's cycles from ``work.py``. After an output tile's last reduction tile its write-back is requested; the
  output slot is freed when the write completes.
* The site ends when the PE is done and every write has completed. ``tail_idle_cycles``: the channel's idle
  cycles in ``[start of the last compute tile, end - latency)``, the budget of the opt-in cross-site weight
  prefetch (``run.py``, docs/timing-model.md).

The cycle breakdown: the PE's busy time split by ``work.TILE_PARTS``, plus its waits, each split into DRAM
(waiting for operands to arrive), compressor (waiting for the compressed tile after its data arrived) and
write-back (waiting for an output slot, and the drain after the last tile). The parts sum to the cycles.

This simpy engine is the reference implementation (``simulate(..., engine="simpy")``); the default engine,
``fast_engine.simulate_site_fast``, computes the identical :class:`SiteTiming` in a compiled loop
(``tests/test_engine_equivalence.py``).
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass

import simpy

from accelsim.sim.work import TILE_PARTS, SiteWork

PRIO_ACT, PRIO_META, PRIO_WEIGHT, PRIO_OUT = 0, 1, 2, 3
_HALF = 0.5

#: Stall columns added by the pipeline; with TILE_PARTS they form the full cycle breakdown.
STALL_PARTS = ("dram_stall", "compressor_stall", "writeback_stall")
BREAKDOWN = TILE_PARTS + STALL_PARTS


def _trigger_at(env: simpy.Environment, ev: simpy.Event, delay: float) -> None:
    """Schedule ``ev`` to fire ``delay`` cycles from now (one queue entry, no helper event)."""
    ev._ok = True  # noqa: SLF001 - what Event.succeed() does, with a delay
    ev._value = None  # noqa: SLF001
    env.schedule(ev, delay=max(0.0, delay))


class DramChannel:
    """One shared DRAM channel with bandwidth, latency, and deterministic arbitration (see module doc)."""

    def __init__(self, env: simpy.Environment, bytes_per_cycle: float, latency_cycles: int):
        self.env = env
        self.bpc = bytes_per_cycle
        self.latency = latency_cycles
        self.infinite = math.isinf(bytes_per_cycle)
        self._pending: list[tuple[float, int, int, int, simpy.Event, list, int, float]] = []
        self._seq = itertools.count()
        self._wake: simpy.Event | None = None
        self.busy_cycles = 0
        self.spans: list[tuple[float, int]] = []  # (start cycle, occupancy) of every transfer, in service order
        if not self.infinite:
            env.process(self._serve())

    def occupancy(self, nbytes: int, extra: float = 0.0) -> int:
        return 0 if self.infinite else math.ceil(nbytes / self.bpc + extra - 1e-9)

    def request(self, nbytes: int, prio: int, done: simpy.Event, times: list, slot: int, extra: float = 0.0) -> None:
        """Transfer ``nbytes``; ``done`` fires when it has completed and ``times[slot]`` gets that cycle.

        ``extra``: channel cycles the transfer occupies beyond its bytes (row activations of a gather)."""
        now = self.env.now
        if nbytes <= 0:
            times[slot] = now
            _trigger_at(self.env, done, 0)
        elif self.infinite:
            times[slot] = now + self.latency
            _trigger_at(self.env, done, self.latency)
        else:
            heapq.heappush(self._pending, (now, prio, next(self._seq), int(nbytes), done, times, slot, extra))
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()

    def _serve(self):
        env = self.env
        while True:
            if not self._pending:
                self._wake = env.event()
                yield self._wake
                self._wake = None
            # A request made later in this cycle sorts after every request from an earlier cycle, so the
            # channel decides at once when the best pending request is older; otherwise it decides half a
            # cycle later, when every request of this cycle is a candidate.
            now = env.now
            if self._pending[0][0] >= now:
                yield env.timeout(_HALF)
            _, _, _, nbytes, done, times, slot, extra = heapq.heappop(self._pending)
            occ = self.occupancy(nbytes, extra)
            self.busy_cycles += occ
            self.spans.append((now, occ))
            times[slot] = now + occ + self.latency
            _trigger_at(env, done, now + occ + self.latency - env.now)
            yield env.timeout(now + occ - env.now)


@dataclass
class SiteTiming:
    cycles: int
    breakdown: dict[str, int]
    dram_busy_cycles: int
    compressor_busy_cycles: int
    pe_busy_cycles: int
    #: DRAM channel idle cycles in ``[start of the last compute tile, end - latency)``: the window in which the next
    #: site's leading weight tile could be fetched into a free weight slot (``run.py``, ``dram.prefetch_next_site``).
    tail_idle_cycles: int = 0


def tail_idle_cycles(spans, window_start: float, cycles: int, latency_cycles: int) -> int:
    """Idle channel cycles in ``[window_start, cycles - latency_cycles)`` given the ``(start, occupancy)`` spans."""
    lo, hi = int(window_start), cycles - latency_cycles
    idle = max(0, hi - lo)
    for start, occ in spans:
        a, b = max(int(start), lo), min(int(start) + occ, hi)
        if b > a:
            idle -= b - a
    return idle


def simulate_site(
    work: SiteWork, dram_bytes_per_cycle: float, dram_latency_cycles: int, *, buffer_slots: int = 2
) -> SiteTiming:
    """Run the event model of one site from a cold start at cycle 0.

    Buffer slots are modelled by waiting for the event that frees them: activation tile ``i`` may be read once
    activation tile ``i - slots`` is finished, weight tile ``j`` once compute tile ``j - slots`` is finished, and
    output tile ``q`` may start accumulating once output tile ``q - slots`` has been written back.
    """
    env = simpy.Environment()
    dram = DramChannel(env, dram_bytes_per_cycle, dram_latency_cycles)
    n_t, n_o, n_k = work.n_t, work.n_o, work.n_k
    n_tiles, n_out = n_t * n_o * n_k, n_t * n_o
    act_of, act_last, mask_of = (a.tolist() for a in work.act_maps())
    n_act = len(act_last)
    tile_cycles = [int(c) for c in work.tile_cycles]
    act_bytes = [int(b) for b in work.act_read_bytes]
    meta_bytes = [int(b) for b in work.meta_read_bytes]
    w_bytes = [int(b) for b in work.weight_bytes]
    w_extra = [float(c) for c in work.weight_extra_cycles]
    out_bytes = [int(b) for b in work.out_bytes]
    cmp_busy = [int(b) for b in work.compress_busy]
    cmp_lat = int(work.compress_latency)
    gather = work.gather_rows
    ev = env.event
    act_arrived = [ev() for _ in range(n_act)]
    meta_arrived = [ev() for _ in range(n_act)]
    compressed = [ev() for _ in range(n_act)]
    a_done = [ev() for _ in range(n_act)]  # the last compute tile of the activation tile has finished
    w_ready = [ev() for _ in range(n_tiles)]
    tile_done = [False] * n_tiles  # compute tile finished (frees its weight slot)
    tile_waiter: dict[int, simpy.Event] = {}
    written = [ev() for _ in range(n_out)]
    act_time = [0.0] * n_act
    meta_time = [0.0] * n_act
    cmp_time = [0.0] * n_act
    w_time = [0.0] * n_tiles
    write_time = [0.0] * n_out
    busy = {"compressor": 0, "pe": 0}

    def act_reader():
        for i in range(n_act):
            if i >= buffer_slots and not a_done[i - buffer_slots].processed:
                yield a_done[i - buffer_slots]
            dram.request(act_bytes[i], PRIO_ACT, act_arrived[i], act_time, i)
            dram.request(meta_bytes[i], PRIO_META, meta_arrived[i], meta_time, i)

    def compressor():
        for i in range(n_act):
            for e in (act_arrived[i], meta_arrived[i]):
                if not e.processed:
                    yield e
            b = cmp_busy[i]
            busy["compressor"] += b
            cmp_time[i] = env.now + b + cmp_lat
            _trigger_at(env, compressed[i], b + cmp_lat)
            if b:
                yield env.timeout(b)

    def weight_reader():
        for j in range(n_tiles):
            if j >= buffer_slots and not tile_done[j - buffer_slots]:
                tile_waiter[j - buffer_slots] = waiter = ev()
                yield waiter
            i = mask_of[j]
            if gather and not compressed[i].processed:
                yield compressed[i]
            dram.request(w_bytes[j], PRIO_WEIGHT, w_ready[j], w_time, j, w_extra[j])

    acc = dict.fromkeys(BREAKDOWN, 0)
    for p in TILE_PARTS:
        acc[p] = int(work.tile_parts[p].sum())
    pe_end = [0.0]
    last_start = [0.0]

    def pe():
        prev = 0.0
        j = 0
        for i_t in range(n_t):
            for o in range(n_o):
                q = i_t * n_o + o
                for k in range(n_k):
                    i = act_of[j]
                    waits = [w_ready[j], compressed[i]]
                    if k == 0 and q >= buffer_slots:
                        waits.append(written[q - buffer_slots])
                    for e in waits:
                        if not e.processed:
                            yield e
                    now = env.now
                    if now > prev:
                        a = max(w_time[j], act_time[i], meta_time[i])
                        c = max(a, cmp_time[i])
                        dram_w = max(0.0, min(a, now) - prev)
                        cmp_w = max(0.0, min(c, now) - max(prev, a))
                        acc["dram_stall"] += int(dram_w)
                        acc["compressor_stall"] += int(cmp_w)
                        acc["writeback_stall"] += int(now - prev - dram_w - cmp_w)
                    last_start[0] = now
                    c_j = tile_cycles[j]
                    busy["pe"] += c_j
                    if c_j:
                        yield env.timeout(c_j)
                    tile_done[j] = True
                    if j in tile_waiter:
                        tile_waiter.pop(j).succeed()
                    if k == n_k - 1:
                        dram.request(out_bytes[q], PRIO_OUT, written[q], write_time, q)
                    prev = env.now
                    if act_last[i] == j:
                        a_done[i].succeed()
                    j += 1
        pe_end[0] = env.now

    env.process(act_reader())
    env.process(compressor())
    env.process(weight_reader())
    env.run(until=env.process(pe()))
    last_write = max(write_time) if write_time else 0.0
    for e in written:
        if not e.processed:
            env.run(until=e)
    end = max(env.now, last_write, pe_end[0])
    acc["writeback_stall"] += int(end - pe_end[0])
    cycles = int(end)
    total = sum(acc.values())
    if total != cycles:
        raise AssertionError(f"cycle breakdown {total} != cycles {cycles}: {acc}")
    return SiteTiming(
        cycles=cycles,
        breakdown=acc,
        dram_busy_cycles=dram.busy_cycles,
        compressor_busy_cycles=busy["compressor"],
        pe_busy_cycles=busy["pe"],
        tail_idle_cycles=tail_idle_cycles(dram.spans, last_start[0], cycles, dram_latency_cycles),
    )
