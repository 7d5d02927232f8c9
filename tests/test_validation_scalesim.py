"""Validation group 1: SCALE-Sim compatibility (design page, "Validation the simulator must pass", item 1).

Setting: ``array.scalesim_compat: true`` (no overlap of weight loading, SCALE-Sim's -1 per site), ``ws`` with
one weight row loaded per cycle, infinite DRAM bandwidth, zero latency, and buffers so large that a site is a
single compute tile. Then a site's cycles must equal SCALE-Sim's closed forms
(``/work/shared/reference/scalesim-cycle-model.md`` sections 4.2 and 5), in SCALE-Sim's names
(``M`` = tokens, ``N`` = outputs, ``K`` = reduction):

* WS: ``ceil(K/R) * ceil(N/C) * (2R + C + M - 2) - 1``
* OS: ``ceil(M/R) * ceil(N/C) * (R + C + K - 2) - 1``
* static N:M (SCALE-Sim's layer-wise weight sparsity): the same with ``K -> ceil(K/m) * n``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.config.compat import scalesim_compat_hw
from accelsim.config.hw import HwConfig
from accelsim.sim.engine import simulate_site
from accelsim.sim.work import build_site_work


def compat_hw(dataflow: str, rows: int, cols: int, sparsity: dict | None = None, *, wbytes: float = 2) -> HwConfig:
    return scalesim_compat_hw(dataflow, rows, cols, sparsity, weight_bytes=wbytes)


def static_nm(n: int, m: int) -> dict:
    return {
        "kind": "nm",
        "n": n,
        "m": m,
        "selection": "static_first_n",
        "weight_fetch": "dense",
        # present because kind nm requires them; a static mask uses none of them (no decoder, no metadata)
        "compressor": {"groups_per_cycle": 1, "latency_cycles": 7},
        "decoder": {"latency_cycles": 5},
        "metadata_buffer": {"capacity_bytes": 1, "read_bytes_per_cycle": 1},
    }


def scalesim_ws(M: int, K: int, N: int, R: int, C: int) -> int:  # noqa: N803
    return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M - 2) - 1


def scalesim_os(M: int, K: int, N: int, R: int, C: int) -> int:  # noqa: N803
    return math.ceil(M / R) * math.ceil(N / C) * (R + C + K - 2) - 1


def site_cycles(hw: HwConfig, M: int, K: int, N: int, seed: int = 0) -> int:  # noqa: N803
    x = np.random.default_rng(seed).normal(size=(M, K)).astype(np.float16)
    work = build_site_work(hw, x, N)
    assert (work.n_t, work.n_o, work.n_k) == (1, 1, 1), "the compat setting must make a site one tile"
    return simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles).cycles


FORMULA = {"ws": scalesim_ws, "os": scalesim_os}

# (dataflow, R, C, M, K, N, pattern or None, SCALE-Sim's published Total Cycles)
PUBLISHED = [
    ("ws", 32, 32, 128, 576, 1536, None, 191_807),
    ("os", 32, 32, 128, 576, 1536, None, 122_495),
    ("ws", 128, 128, 128, 576, 1536, None, 30_599),
    ("os", 128, 128, 128, 576, 1536, None, 9_959),
    ("ws", 32, 32, 512, 576, 1536, None, 523_583),
    ("ws", 128, 128, 128, 576, 1536, (2, 4), 18_359),
    ("ws", 128, 128, 128, 576, 1536, (4, 8), 18_359),  # only n/m matters in SCALE-Sim
    ("ws", 32, 32, 128, 576, 1536, (2, 4), 95_903),
    ("os", 128, 128, 128, 576, 1536, (2, 4), 6_503),
]


@pytest.mark.parametrize(("dataflow", "R", "C", "M", "K", "N", "pattern", "published"), PUBLISHED)
def test_published_scalesim_points(dataflow, R, C, M, K, N, pattern, published):  # noqa: N803
    sp = static_nm(*pattern) if pattern else None
    hw = compat_hw(dataflow, R, C, sp)
    assert site_cycles(hw, M, K, N) == published
    k_eff = K if pattern is None else math.ceil(K / pattern[1]) * pattern[0]
    assert FORMULA[dataflow](M, k_eff, N, R, C) == published


def _random_shapes(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        R, C = (int(v) for v in rng.integers(1, 70, size=2))  # noqa: N806
        # mix of T < R, T = 1 (decode), K < R, non-multiples
        M = int(rng.choice([1, 2, int(rng.integers(1, 300))]))  # noqa: N806
        K = int(rng.integers(1, 700))  # noqa: N806
        N = int(rng.integers(1, 700))  # noqa: N806
        yield R, C, M, K, N


N_RANDOM = 150


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_dense_equals_closed_form_on_random_shapes(dataflow):
    checked = 0
    for R, C, M, K, N in _random_shapes(1 if dataflow == "ws" else 2, N_RANDOM):  # noqa: N806
        hw = compat_hw(dataflow, R, C)
        got = site_cycles(hw, M, K, N, seed=checked)
        assert got == FORMULA[dataflow](M, K, N, R, C), (dataflow, R, C, M, K, N)
        checked += 1
    assert checked == N_RANDOM


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_static_nm_equals_scalesim_weight_nm_on_random_shapes(dataflow):
    """SCALE-Sim's layer-wise N:M: a shared first-n-of-m mask, so a dense GEMM with ``K' = ceil(K/m)*n``."""
    rng = np.random.default_rng(3 if dataflow == "ws" else 4)
    patterns = [(1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (3, 4), (1, 4), (3, 7), (5, 8)]
    for idx, (R, C, M, K, N) in enumerate(_random_shapes(5 if dataflow == "ws" else 6, N_RANDOM)):  # noqa: N806
        n, m = patterns[int(rng.integers(len(patterns)))]
        hw = compat_hw(dataflow, R, C, static_nm(n, m))
        k_eff = math.ceil(K / m) * n
        got = site_cycles(hw, M, K, N, seed=idx)
        assert got == FORMULA[dataflow](M, k_eff, N, R, C), (dataflow, R, C, M, K, N, n, m)


def test_static_nm_cycles_depend_only_on_n_over_m_when_m_divides_k():
    for dataflow in ("ws", "os"):
        c = {
            (n, m): site_cycles(compat_hw(dataflow, 16, 16, static_nm(n, m)), 64, 512, 96)
            for n, m in [(1, 2), (2, 4), (4, 8), (8, 16)]
        }
        assert len(set(c.values())) == 1, c


def test_compat_cycles_do_not_depend_on_values_or_precision():
    for dataflow in ("ws", "os"):
        a = site_cycles(compat_hw(dataflow, 8, 8), 33, 100, 50, seed=1)
        b = site_cycles(compat_hw(dataflow, 8, 8, wbytes=0.5), 33, 100, 50, seed=2)
        assert a == b == FORMULA[dataflow](33, 100, 50, 8, 8)


def test_compat_breakdown_has_no_negative_column_on_a_1x1_array():
    """SCALE-Sim's -1 comes off the fill/drain, which a 1x1 array does not have (regression)."""
    for dataflow in ("ws", "os"):
        hw = compat_hw(dataflow, 1, 1)
        work = build_site_work(hw, np.ones((3, 4), dtype=np.float16), 2)
        t = simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles)
        assert t.cycles == FORMULA[dataflow](3, 4, 2, 1, 1)
        assert min(t.breakdown.values()) >= 0, t.breakdown
        assert sum(t.breakdown.values()) == t.cycles
