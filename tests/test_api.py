"""The Python API: evaluate one point, sweep many (sequentially or through an executor), override keys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from accelsim.api import evaluate, sweep, with_overrides
from accelsim.config import load_hw
from tests.helpers import smollm2_shaped_trace

HW = Path(__file__).resolve().parents[1] / "hw_configs"


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("t") / "dec2.npz", tokens=2, phase="decode")


def test_with_overrides_validates_and_names_bad_keys():
    hw = load_hw(HW / "nm8_16.yaml")
    fast = with_overrides(hw, {"dram.bandwidth_gb_per_s": 512.0})
    assert fast.dram_bytes_per_cycle == 2 * hw.dram_bytes_per_cycle
    with pytest.raises(KeyError, match="unknown key 'bandwidth'"):
        with_overrides(hw, {"dram.bandwidth": 1})
    with pytest.raises(ValueError, match="n must be <= m"):
        with_overrides(hw, {"sparsity.n": 17})


def test_more_bandwidth_helps_a_dram_bound_decode(trace):
    hw = load_hw(HW / "nm8_16.yaml")
    slow = evaluate(hw, trace)["cycles"]
    fast = evaluate(with_overrides(hw, {"dram.bandwidth_gb_per_s": 1024.0}), trace)["cycles"]
    assert fast < 0.7 * slow  # 4x the bandwidth; the padded single-token instructions then bound it


def test_sweep_sequential_equals_executor(trace):
    cfgs = [HW / "dense.yaml", HW / "nm2_4.yaml"]
    a = sweep(cfgs, [trace], baseline=HW / "dense.yaml")
    with ThreadPoolExecutor(2) as ex:
        b = sweep(cfgs, [trace], baseline=HW / "dense.yaml", executor=ex)
    assert a.equals(b)
    assert list(a["pattern"]) == ["dense", "2:4"]
    assert a.loc[0, "speedup_vs_dense"] == 1.0 and a.loc[1, "speedup_vs_dense"] > 1.6
