"""Batch-B decode in the simulator: a step holds one token of every sequence, the compute uses each token's
own N:M mask, and compacted ``gather_rows`` fetches the union of the kept rows over the step's tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelsim.config import load_hw
from accelsim.nm import nm_mask
from accelsim.sim.run import simulate
from accelsim.trace.format import Site, Trace, TraceData, write_trace

REPO = Path(__file__).resolve().parents[1]
STEPS, K, O = 3, 576, 576  # SmolLM2-135M q_proj


def _decode_trace(path: Path, x: np.ndarray, batch: int) -> Path:
    """A decode trace of one q site whose rows are ``STEPS`` steps of ``batch`` sequences (row r*B + b)."""
    meta = {
        "model": "test",
        "model_sha256": "",
        "phase": "decode",
        "text_source": "t",
        "text_sha256": "",
        "tool_version": "t",
        "synthetic": True,
        "sequences": batch,
        "tokens": STEPS,
    }
    site = Site(0, "l0.q", 0, "q", K, O, "a")
    ids = np.arange(batch * (STEPS + 1)).reshape(batch, STEPS + 1)
    return write_trace(path, TraceData(meta, [site], {"a": x}, ids if batch > 1 else ids[0]))


def _run(hw_name: str, path: Path):
    with Trace(path) as tr:
        return simulate(load_hw(REPO / "hw_configs" / f"{hw_name}.yaml"), tr)


def test_batch_decode_union_matches_numpy_and_speedup_falls_with_batch(tmp_path):
    rng = np.random.default_rng(7)
    batch = 4
    x = rng.standard_normal((STEPS * batch, K)).astype(np.float16)
    # direct numpy: per step, the union of the 8:16 kept rows of its B tokens
    keep = nm_mask(np.abs(x.astype(np.float32)), 8, 16).reshape(STEPS, batch, K)
    union_direct = keep.any(axis=1).sum() / (STEPS * K)
    assert 0.8 < union_direct < 1.0  # 1 - 2^-4 for independent tokens; far above one token's 0.5

    res = _run("nm8_16", _decode_trace(tmp_path / "b4.npz", x, batch))
    (row,) = res.sites
    assert row["steps"] == STEPS and row["tokens"] == STEPS * batch
    assert row["union_density"] == union_direct
    assert row["kept_density"] == keep.mean() == 0.5  # the compute keeps each token's own 8 of 16

    # the same first sequence alone: union = its own mask; the sparse speedup is larger than at batch 4
    one = _decode_trace(tmp_path / "b1.npz", np.ascontiguousarray(x.reshape(STEPS, batch, K)[:, 0]), 1)
    res1 = _run("nm8_16", one)
    assert res1.sites[0]["union_density"] == 0.5 and res1.sites[0]["steps"] == STEPS
    speedup = {
        b: _run("dense", p).totals["cycles"] / r.totals["cycles"]
        for b, p, r in ((1, one, res1), (batch, tmp_path / "b4.npz", res))
    }
    assert speedup[1] > 1.5 and 1.0 < speedup[batch] < 1.2, speedup  # measured 1.64 and 1.05
