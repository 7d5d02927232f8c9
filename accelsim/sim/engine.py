"""The discrete-event pipeline of one site (simpy): DRAM reader -> buffers -> compressor -> PE array -> writer.

Events are coarse: one per tile transfer, one per compressed token tile and one per compute tile. The
semantics, which the per-cycle reference model in ``tests/reference_model.py`` re-implements independently:

* **DRAM channel**: one server for reads and writes. A transfer of ``B`` bytes occupies it for
  ``ceil(B / bytes_per_cycle)`` cycles; its data is usable ``latency_cycles`` after that. When the channel is
  free at cycle ``c`` it starts the pending request with the smallest ``(ready cycle, kind, sequence)``, kind
  order activation < metadata < weight < output, among those ready at ``c``. Zero-byte transfers complete at
  once. With infinite bandwidth nothing is serialised: a transfer completes ``latency_cycles`` after it is ready.
* **Activation reader**: for each token tile in order, takes one of 2 activation-buffer slots, then requests
  the tile (and its metadata under producer placement). The slot is freed when the PE finishes the token
  tile's last compute tile.
* **Compressor** (consumer placement): token tiles in order; starts when a tile has arrived and the previous
  one has left its input stage; busy ``ceil(groups / groups_per_cycle)``; the compressed tile and its mask are
  ready ``latency_cycles`` after that.
* **Weight reader**: compute tiles in order; takes one of 2 weight-buffer slots; with ``gather_rows`` waits for
  the token tile's mask (causal); then requests the tile's weight bytes. The slot is freed when the PE finishes
  that compute tile.
* **PE array**: compute tiles in order; starts a tile when its weights have arrived, its token tile is
  compressed and (first reduction tile of an output tile) one of 2 output-buffer slots is free; busy for the
  tile's cycles from ``work.py``. After an output tile's last reduction tile its write-back is requested; the
  output slot is freed when the write completes.
* The site ends when the PE is done and every write has completed.

The cycle breakdown: the PE's busy time split by ``work.TILE_PARTS``, plus its waits, each split into DRAM
(waiting for operands to arrive), compressor (waiting for the compressed tile after its data arrived) and
write-back (waiting for an output slot, and the drain after the last tile). The parts sum to the cycles.
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


class DramChannel:
    """One shared DRAM channel with bandwidth, latency, and deterministic arbitration (see module doc)."""

    def __init__(self, env: simpy.Environment, bytes_per_cycle: float, latency_cycles: int):
        self.env = env
        self.bpc = bytes_per_cycle
        self.latency = latency_cycles
        self.infinite = math.isinf(bytes_per_cycle)
        self._pending: list[tuple[float, int, int, int, simpy.Event]] = []
        self._seq = itertools.count()
        self._wake: simpy.Event | None = None
        self.busy_cycles = 0
        self.bytes_by_prio = [0, 0, 0, 0]
        if not self.infinite:
            env.process(self._serve())

    def occupancy(self, nbytes: int) -> int:
        return 0 if self.infinite else math.ceil(nbytes / self.bpc - 1e-9)

    def request(self, nbytes: int, prio: int) -> simpy.Event:
        """An event that fires when the ``nbytes`` transfer has completed (data usable / write done)."""
        done = self.env.event()
        self.bytes_by_prio[prio] += int(nbytes)
        if nbytes <= 0:
            done.succeed()
        elif self.infinite:
            _fire_later(self.env, done, self.latency)
        else:
            heapq.heappush(self._pending, (self.env.now, prio, next(self._seq), int(nbytes), done))
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
        return done


    def _serve(self):
        env = self.env
        while True:
            if not self._pending:
                self._wake = env.event()
                yield self._wake
                self._wake = None
            # Decide half a cycle later, so that every request made at this cycle is a candidate.
            yield env.timeout(_HALF)
            _, _, _, nbytes, done = heapq.heappop(self._pending)
            occ = self.occupancy(nbytes)
            self.busy_cycles += occ
            _fire_later(self.env, done, occ - _HALF + self.latency)
            yield env.timeout(occ - _HALF)


@dataclass
class SiteTiming:
    cycles: int
    breakdown: dict[str, int]
    dram_busy_cycles: int
    compressor_busy_cycles: int
    pe_busy_cycles: int


def _fire_later(env: simpy.Environment, ev: simpy.Event, delay: float) -> None:
    """Trigger ``ev`` after ``delay`` cycles (at once when ``delay <= 0``)."""
    if delay <= 0:
        ev.succeed()
        return
    env.timeout(delay).callbacks.append(lambda _e: ev.succeed())


def _chain(src: simpy.Event, dst: simpy.Event) -> None:
    """Trigger ``dst`` when ``src`` fires (cheaper than a process per transfer)."""
    src.callbacks.append(lambda _e: dst.succeed())


def _stamp(ev: simpy.Event, store: dict, key, env: simpy.Environment) -> None:
    ev.callbacks.append(lambda _e: store.__setitem__(key, env.now))


def simulate_site(work: SiteWork, dram_bytes_per_cycle: float, dram_latency_cycles: int, *, buffer_slots: int = 2) -> SiteTiming:
    """Run the event model of one site from a cold start at cycle 0."""
    env = simpy.Environment()
    dram = DramChannel(env, dram_bytes_per_cycle, dram_latency_cycles)
    act_slots = simpy.Resource(env, capacity=buffer_slots)
    w_slots = simpy.Resource(env, capacity=buffer_slots)
    out_slots = simpy.Resource(env, capacity=buffer_slots)
    n_t, n_o, n_k = work.n_t, work.n_o, work.n_k
    tile_cycles = work.tile_cycles
    times: dict = {}
    act_arrived = [env.event() for _ in range(n_t)]
    compressed = [env.event() for _ in range(n_t)]
    act_req: list = [None] * n_t
    w_req: list = [None] * (n_t * n_o * n_k)
    for i in range(n_t):
        _stamp(act_arrived[i], times, ("act", i), env)
        _stamp(compressed[i], times, ("cmp", i), env)
    w_ready = [env.event() for _ in range(n_t * n_o * n_k)]
    for j, ev in enumerate(w_ready):
        _stamp(ev, times, ("w", j), env)
    busy = {"compressor": 0, "pe": 0}
    writes: list[simpy.Event] = []

    def act_reader():
        for i in range(n_t):
            req = act_slots.request()
            yield req
            act_req[i] = req
            ev = dram.request(int(work.act_read_bytes[i]), PRIO_ACT)
            if work.meta_read_bytes[i]:
                ev = simpy.AllOf(env, [ev, dram.request(int(work.meta_read_bytes[i]), PRIO_META)])
            _chain(ev, act_arrived[i])

    def compressor():
        for i in range(n_t):
            yield act_arrived[i]
            b = int(work.compress_busy[i])
            busy["compressor"] += b
            if b == 0 and work.compress_latency == 0:
                compressed[i].succeed()
                continue
            _fire_later(env, compressed[i], b + work.compress_latency)
            if b:
                yield env.timeout(b)

    gather = work.gather_rows

    def weight_reader():
        for i in range(n_t):
            for o in range(n_o):
                for k in range(n_k):
                    j = work.tile_index(i, o, k)
                    req = w_slots.request()
                    yield req
                    w_req[j] = req
                    if gather:
                        yield compressed[i]
                    _chain(dram.request(int(work.weight_bytes[j]), PRIO_WEIGHT), w_ready[j])

    acc = dict.fromkeys(BREAKDOWN, 0)
    for p in TILE_PARTS:
        acc[p] = int(work.tile_parts[p].sum())

    def pe():
        prev = 0.0
        for i in range(n_t):
            for o in range(n_o):
                out_req = None
                for k in range(n_k):
                    j = work.tile_index(i, o, k)
                    waits = [w_ready[j], compressed[i]]
                    if k == 0:
                        out_req = out_slots.request()
                        _stamp(out_req, times, ("out", j), env)
                        waits.append(out_req)
                    yield simpy.AllOf(env, waits)
                    now = env.now
                    if now > prev:
                        a = max(times[("w", j)], times[("act", i)])
                        c = max(a, times[("cmp", i)])
                        dram_w = max(0.0, min(a, now) - prev)
                        cmp_w = max(0.0, min(c, now) - max(prev, a))
                        acc["dram_stall"] += int(dram_w)
                        acc["compressor_stall"] += int(cmp_w)
                        acc["writeback_stall"] += int(now - prev - dram_w - cmp_w)
                    c_j = int(tile_cycles[j])
                    busy["pe"] += c_j
                    if c_j:
                        yield env.timeout(c_j)
                    w_slots.release(w_req[j])
                    if k == n_k - 1:
                        wr = dram.request(int(work.out_bytes[i * n_o + o]), PRIO_OUT)
                        req = out_req
                        wr.callbacks.append(lambda _e, r=req: out_slots.release(r))
                        writes.append(wr)
                    prev = env.now
            act_slots.release(act_req[i])
        pe_end[0] = env.now

    pe_end = [0.0]
    env.process(act_reader())
    env.process(compressor())
    env.process(weight_reader())
    done = env.process(pe())
    env.run(until=done)
    if writes:
        env.run(until=simpy.AllOf(env, writes))
    end = env.now
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
    )
