"""The DRAM channel alone (``accelsim.sim.engine.DramChannel``): scripted request sequences.

Spec (engine docstring): one server for reads and writes; ``B`` bytes occupy it ``ceil(B / W)`` cycles and
the data is usable ``latency`` cycles after that; a free channel at cycle ``c`` starts the pending request
with the smallest ``(ready cycle, kind, sequence)`` among those ready at ``c`` (activation < metadata < weight
< output); zero-byte transfers complete at once; with infinite bandwidth nothing is serialised.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from accelsim.sim.engine import PRIO_ACT, PRIO_META, PRIO_OUT, PRIO_WEIGHT, DramChannel

KINDS = {"act": PRIO_ACT, "meta": PRIO_META, "weight": PRIO_WEIGHT, "out": PRIO_OUT}


def run_script(script, bytes_per_cycle: float, latency: int):
    """``script``: ``(cycle, nbytes, kind)`` in the order issued. Returns (completion cycles, channel busy cycles)."""
    env = simpy.Environment()
    ch = DramChannel(env, bytes_per_cycle, latency)
    times = [None] * len(script)
    done = [env.event() for _ in script]

    def issuer():
        for idx, (cyc, nbytes, kind) in enumerate(script):
            if cyc > env.now:
                yield env.timeout(cyc - env.now)
            ch.request(nbytes, KINDS[kind], done[idx], times, idx)

    env.process(issuer())
    env.run(until=simpy.AllOf(env, done) if script else None)
    assert all(env.now >= t for t in times)
    return [int(t) for t in times], ch.busy_cycles


def reference_channel(script, bytes_per_cycle: float, latency: int):
    """A per-cycle channel written from the spec: step cycles, pick the best ready request when free."""
    pending = []
    done = [None] * len(script)
    busy = 0
    free_at = 0
    c = 0
    order = sorted(range(len(script)), key=lambda i: script[i][0])
    nxt = 0
    while any(d is None for d in done):
        while nxt < len(order) and script[order[nxt]][0] <= c:
            i = order[nxt]
            cyc, nbytes, kind = script[i]
            if nbytes <= 0:
                done[i] = c
            elif math.isinf(bytes_per_cycle):
                done[i] = c + latency
            else:
                pending.append((cyc, KINDS[kind], i))
            nxt += 1
        if c >= free_at and pending:
            best = min(pending)
            pending.remove(best)
            i = best[2]
            moved, occ = 0.0, 0
            while moved < script[i][1] - 1e-9 * bytes_per_cycle:  # one cycle at a time
                moved += bytes_per_cycle
                occ += 1
            busy += occ
            free_at = c + occ
            done[i] = c + occ + latency
        c += 1
    return done, busy


@pytest.mark.parametrize(
    ("nbytes", "bpc", "lat"),
    [(1, 1.0, 0), (64, 16.0, 0), (65, 16.0, 0), (100, 3.0, 7), (1000, 256.0, 100), (7, 0.5, 2), (10, 2.5, 1)],
)
def test_one_transfer_takes_ceil_bytes_over_width_plus_latency(nbytes, bpc, lat):
    times, busy = run_script([(0, nbytes, "weight")], bpc, lat)
    assert times == [math.ceil(nbytes / bpc) + lat]
    assert busy == math.ceil(nbytes / bpc)


def test_latency_overlaps_the_next_transfer():
    times, busy = run_script([(0, 40, "weight"), (0, 20, "weight")], 10.0, 50)
    assert times == [4 + 50, 4 + 2 + 50]
    assert busy == 6


def test_same_cycle_requests_are_served_by_kind_then_order():
    script = [(0, 10, "out"), (0, 10, "weight"), (0, 10, "weight"), (0, 10, "meta"), (0, 10, "act")]
    times, _ = run_script(script, 10.0, 0)
    # served act, meta, weight (first), weight (second), out: one cycle each
    assert times == [5, 3, 4, 2, 1]


def test_an_older_request_wins_over_a_higher_kind():
    # channel busy [0, 5) with an output write; a weight read waits from cycle 2, an activation from cycle 4
    script = [(0, 50, "out"), (2, 10, "weight"), (4, 10, "act")]
    times, _ = run_script(script, 10.0, 1)
    assert times == [5 + 1, 6 + 1, 7 + 1]


def test_requests_made_in_the_cycle_the_channel_frees_compete_by_kind():
    # the channel frees at 5; an output and an activation are both requested at 5 (output first): act wins
    script = [(0, 50, "weight"), (5, 10, "out"), (5, 10, "act")]
    times, _ = run_script(script, 10.0, 0)
    assert times == [5, 7, 6]


def test_idle_channel_starts_a_late_request_at_once():
    times, busy = run_script([(0, 10, "act"), (10, 10, "act")], 10.0, 3)
    assert times == [4, 14]
    assert busy == 2


def test_zero_bytes_complete_at_once_without_latency_or_channel_time():
    script = [(0, 100, "weight"), (1, 0, "act"), (2, 10, "act")]
    times, busy = run_script(script, 10.0, 5)
    assert times == [15, 1, 10 + 1 + 5]
    assert busy == 11


def test_infinite_bandwidth_serialises_nothing():
    script = [(0, 10**9, "weight"), (0, 10**9, "out"), (3, 5, "act")]
    times, busy = run_script(script, math.inf, 7)
    assert times == [7, 7, 10]
    assert busy == 0


def test_random_scripts_match_a_per_cycle_channel():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        t = np.sort(rng.integers(0, 30, size=n))
        script = [(int(t[i]), int(rng.choice([0, 1, 5, 17, 64, 100])), str(rng.choice(list(KINDS)))) for i in range(n)]
        bpc = float(rng.choice([0.5, 1.0, 2.5, 3.0, 16.0, math.inf]))
        lat = int(rng.choice([0, 1, 9]))
        got = run_script(script, bpc, lat)
        assert got == reference_channel(script, bpc, lat), (script, bpc, lat)
