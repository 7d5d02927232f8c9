"""The caches of ``accelsim.sim.work`` (per-shape constants, cross-site instruction-sequence costs) and the
sparse path of ``operands.distinct_per_bin`` change no number: a warm build equals a cold one field by field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_hw
from accelsim.sim import work as W
from accelsim.sim.operands import distinct_per_bin

HW = Path(__file__).resolve().parents[1] / "hw_configs"


def _fields(w: W.SiteWork) -> dict:
    out = {k: getattr(w, k) for k in ("n_t", "n_o", "n_k", "compress_latency", "compat_offset", "gather_rows")}
    for k in ("act_read_bytes", "meta_read_bytes", "compress_busy", "weight_bytes", "weight_extra_cycles", "out_bytes"):
        out[k] = np.asarray(getattr(w, k)).tolist()
    out["parts"] = {p: v.tolist() for p, v in w.tile_parts.items()}
    out["actions"], out["stats"], out["tiling"] = dict(w.actions), dict(w.stats), w.tiling
    return out


@pytest.mark.parametrize("cfg", ["dense", "nm8_16", "nm4_8", "unstructured", "unstructured_flex", "dense_topk_gather"])
def test_warm_caches_give_the_cold_result(cfg):
    hw = load_hw(HW / f"{cfg}.yaml")
    rng = np.random.default_rng(3)
    shapes = [(1, 576, 1536), (8, 576, 1536), (1, 576, 1500), (40, 1536, 576), (1, 576, 1536)]
    xs = [rng.standard_normal((t, k)).astype(np.float16) for t, k, _ in shapes]
    xs[-1] = xs[0].copy()  # a later site with an earlier one's shape and values: served from the caches
    cold = []
    for x, (_, _, o) in zip(xs, shapes, strict=True):
        W._SHAPES.clear()
        W._SEQ_COSTS.clear()
        cold.append(_fields(W.build_site_work(hw, x, o)))
    warm = [_fields(W.build_site_work(hw, x, o)) for x, (_, _, o) in zip(xs, shapes, strict=True)]
    assert warm == cold
    assert cold[-1] == cold[0]
    assert W._SHAPES and all(not c.o_sizes.flags.writeable for c in W._SHAPES.values())


@pytest.mark.parametrize("seed", range(6))
def test_distinct_per_bin_table_and_sort_paths_agree(seed):
    rng = np.random.default_rng(seed)
    n_bins, n_values = int(rng.integers(1, 60)), int(rng.integers(1, 5000))
    n = int(rng.integers(0, 300))
    bins, values = rng.integers(0, n_bins, n), rng.integers(0, n_values, n)
    want = np.array([len(set(values[bins == b].tolist())) for b in range(n_bins)], dtype=np.int64)
    assert distinct_per_bin(bins, values, n_bins, n_values).tolist() == want.tolist()
