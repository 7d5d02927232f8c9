"""Small seeded SmolLM2-shaped synthetic traces for fast simulator tests (they say synthetic: true)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelsim.trace.format import Site, TraceData, write_trace

HIDDEN, INTER, KV = 576, 1536, 192
SMOLLM2_SITES = (
    ("q", HIDDEN, HIDDEN, "attn_in"),
    ("k", HIDDEN, KV, "attn_in"),
    ("v", HIDDEN, KV, "attn_in"),
    ("o", HIDDEN, HIDDEN, "o_in"),
    ("gate", HIDDEN, INTER, "mlp_in"),
    ("up", HIDDEN, INTER, "mlp_in"),
    ("down", INTER, HIDDEN, "down_in"),
)


def smollm2_shaped_trace(path: Path, *, tokens: int, phase: str = "prefill", layers: int = 1, seed: int = 0) -> Path:
    """Gaussian inputs before q/k/v and gate/up, Laplacian before o and down (TEAL's shapes of distribution)."""
    rng = np.random.default_rng(seed)
    sites, inputs = [], {}
    for layer in range(layers):
        for kind, k, o, inp in SMOLLM2_SITES:
            iid = f"L{layer}.{inp}"
            sites.append(Site(len(sites), f"model.layers.{layer}.{kind}_proj", layer, kind, k, o, iid))
            if iid not in inputs:
                draw = rng.laplace if kind in ("o", "down") else rng.normal
                inputs[iid] = draw(size=(tokens, k)).astype(np.float16)
    meta = {
        "model": "synthetic (SmolLM2-135M shapes)",
        "model_sha256": "",
        "phase": phase,
        "text_source": "none",
        "text_sha256": "",
        "tool_version": "tests",
        "synthetic": True,
        "synthetic_info": {"generator": "tests/helpers.py", "seed": seed},
    }
    return write_trace(path, TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=np.arange(tokens)))


class _LazyGaussian:
    """A ``[T, K]`` float16 input drawn only when the writer converts it (one input in memory at a time)."""

    def __init__(self, tokens: int, k: int, seed: int):
        self.shape, self.ndim, self.size, self.seed = (tokens, k), 2, tokens * k, seed

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        a = np.random.default_rng(self.seed).standard_normal(self.shape, dtype=np.float32).astype(np.float16)
        return a if dtype is None else a.astype(dtype, copy=False)


def big_smollm2_trace(path: Path | str, *, tokens: int, layers: int = 30) -> Path:
    """A large uncompressed SmolLM2-shaped prefill trace written without holding it in memory (memory-bound
    checks of docs/robustness.md: tokens=15360, layers=30 is 3.0 GB)."""
    sites, inputs = [], {}
    for layer in range(layers):
        for kind, k, o, inp in SMOLLM2_SITES:
            iid = f"L{layer}.{inp}"
            sites.append(Site(len(sites), f"model.layers.{layer}.{kind}_proj", layer, kind, k, o, iid))
            inputs.setdefault(iid, _LazyGaussian(tokens, k, len(inputs)))
    meta = {
        "model": "synthetic (SmolLM2-135M shapes)",
        "model_sha256": "",
        "phase": "prefill",
        "text_source": "none",
        "text_sha256": "",
        "tool_version": "tests",
        "synthetic": True,
        "synthetic_info": {"generator": "tests/helpers.py big_smollm2_trace"},
    }
    data = TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=np.arange(tokens))
    return write_trace(Path(path), data, compress=False)  # type: ignore[arg-type]
