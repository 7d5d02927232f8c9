"""Synthetic traces: real model shapes, sampled activation values (numpy only; ``synthetic: true``).

Two uses:

* :func:`make_test_trace` writes a small seeded trace with SmolLM2-135M's shapes for fast simulator tests;
* :func:`synthesize` writes a trace with another model's shapes (Llama-2-7B) whose values are sampled per
  site kind from distributions fitted to a real trace (see ``docs/tracing.md``).

Every input array is generated from its own seed (derived from the run seed and the input's position), so
the same arguments give the same bytes, and inputs are generated one at a time while the file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.trace.format import PHASES, Site, TraceData, write_trace

# Input groups of a Llama-style decoder layer: which kinds read one tensor, in forward order.
GROUPS: tuple[tuple[str, ...], ...] = (("q", "k", "v"), ("o",), ("gate", "up"), ("down",))


@dataclass(frozen=True)
class ModelShape:
    """The linear-site shapes of a Llama-style decoder (``nn.Linear`` names as in transformers)."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def site_shapes(self) -> dict[str, tuple[int, int]]:
        """``kind -> (K, O)`` of one decoder layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return {"q": (h, h), "k": (h, kv), "v": (h, kv), "o": (h, h), "gate": (h, i), "up": (h, i), "down": (i, h)}

    def to_json(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "num_hidden_layers": self.layers,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
        }


SHAPES: dict[str, ModelShape] = {
    "smollm2-135m": ModelShape("smollm2-135m", layers=30, hidden=576, intermediate=1536, heads=9, kv_heads=3),
    # Llama-2-7B: multi-head attention (k/v are 4096 -> 4096)
    "llama2-7b": ModelShape("llama2-7b", layers=32, hidden=4096, intermediate=11008, heads=32, kv_heads=32),
}

_MODULE = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
           "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}  # fmt: skip


def input_id(layer: int, kinds: tuple[str, ...] | list[str]) -> str:
    """Name of a (possibly shared) input: ``L<layer>.<kinds joined by '_'>``, e.g. ``L3.q_k_v``, ``L3.down``.

    The tracer uses the same rule, with the kinds it found reading one tensor."""
    return f"L{layer}.{'_'.join(kinds)}"


def shape_sites(shape: ModelShape, layers: int | None = None) -> list[Site]:
    """The ordered site table of ``layers`` (default: all) decoder layers of ``shape``."""
    n = shape.layers if layers is None else layers
    ks = shape.site_shapes()
    sites: list[Site] = []
    for layer in range(n):
        for group in GROUPS:
            iid = input_id(layer, group)
            for kind in group:
                K, O = ks[kind]
                sites.append(Site(len(sites), f"model.layers.{layer}.{_MODULE[kind]}", layer, kind, K, O, iid))
    return sites


def _tool_version() -> str:
    from accelsim import __version__

    return str(__version__)


def make_test_trace(
    path: str | Path, *, tokens: int = 16, phase: str = "prefill", layers: int = 2, seed: int = 0
) -> Path:
    """Write a small SmolLM2-135M-shaped synthetic trace for fast tests and return its path.

    Values: standard Gaussian before q/k/v and gate/up, standard Laplacian before o and down (TEAL's shapes),
    seeded and deterministic (same arguments -> same bytes). Metadata says ``synthetic: true``.
    """
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: allowed {', '.join(PHASES)}")
    if tokens < 1 or layers < 1:
        raise ValueError(f"tokens and layers must be >= 1 (got tokens={tokens}, layers={layers})")
    shape = SHAPES["smollm2-135m"]
    sites = shape_sites(shape, layers)
    inputs: dict[str, np.ndarray] = {}
    for s in sites:
        if s.input_id in inputs:
            continue
        rng = np.random.default_rng([seed, len(inputs)])
        draw = rng.laplace if s.kind in ("o", "down") else rng.normal
        inputs[s.input_id] = draw(size=(tokens, s.K)).astype(np.float16)
    meta = {
        "model": "smollm2-135m",
        "model_sha256": "",
        "phase": phase,
        "text_source": "none (synthetic)",
        "text_sha256": "",
        "tool_version": _tool_version(),
        "synthetic": True,
        "synthetic_info": {
            "generator": "accelsim.trace.synthetic.make_test_trace",
            "seed": seed,
            "distributions": {"q_k_v": "normal(0, 1)", "o": "laplace(0, 1)", "gate_up": "normal(0, 1)",
                              "down": "laplace(0, 1)"},  # fmt: skip
        },
        "tokens": tokens,
        "model_config": shape.to_json() | {"num_hidden_layers": layers},
    }
    token_ids = np.zeros(tokens, dtype=np.int64)
    return write_trace(path, TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=token_ids))
