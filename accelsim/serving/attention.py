"""Attention as dense sites: ``QK^T`` and ``PV`` per KV head, reading the KV cache from DRAM.

For one sequence, one layer and one KV head, the ``g = n_heads / n_kv_heads`` query heads that share it form
``T = queries x g`` rows (grouped-query attention), and

* ``attn_qk``: ``S[T, L] = Q[T, d] @ K^T[d, L]`` reads the layer's K cache (``d x L`` elements) as its weights;
* ``attn_pv``: ``O[T, d] = P[T, L] @ V[L, d]`` reads the V cache (``L x d``) as its weights,

with ``L`` the keys attended (the context; ``min(context, sliding_window)`` on sliding layers). The
``batch x n_kv_heads`` instances of one layer run as ONE site with their caches side by side as weight columns
(``attn_qk``: ``O = L x instances``; ``attn_pv``: ``O = d x instances``): MACs, KV bytes and output bytes are
exactly the instances' sums, and the weight tiles of consecutive instances stream back to back as a kernel
looping over heads would (the per-instance query tile, ``T x d`` values, is not re-read). The scores stay on chip
(a fused kernel: ``attn_qk`` writes no output to DRAM and ``attn_pv`` reads no activations from it); softmax,
RoPE and the norms are not modelled. Activation sparsity does not apply: the sites run on the same array,
buffers and DRAM with ``sparsity: dense``, weights in the KV-cache datatype. Layers of one shape are simulated
once and counted per layer. The K/V written back for new tokens are the outputs of the ``k`` and ``v`` sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from accelsim.config.hw import HwConfig
from accelsim.sim.actions import ACTIONS, Action
from accelsim.sim.engine import simulate_site
from accelsim.sim.work import build_site_work

ATTENTION_KINDS = ("attn_qk", "attn_pv")
TOTAL_KEYS = ("cycles", "dram_weight_bytes", "dram_activation_bytes", "dram_output_bytes", "dense_macs")


@dataclass(frozen=True)
class AttentionShape:
    kind: str
    T: int  # noqa: N815
    K: int  # noqa: N815
    O: int  # noqa: E741, N815
    count: int  # layers with this shape


def attention_hw(hw: HwConfig, kv_bytes: float, act_bytes: float) -> HwConfig:
    """``hw`` without its sparsity (dense sites), weights in the KV-cache datatype."""
    data = hw.model_dump()
    data["sparsity"] = {"kind": "dense"}
    data["precision"]["weight_bytes"] = kv_bytes
    data["precision"]["activation_bytes"] = act_bytes
    data["precision"]["output_bytes"] = act_bytes
    data["cost"] = None
    return HwConfig.model_validate(data)


def keys_attended(arch: dict[str, Any], layer: int, past: int, queries: int) -> int:
    """Keys the ``queries`` new tokens after ``past`` cached tokens attend to in ``layer`` (sliding window)."""
    keys = past + queries
    if arch["layer_types"][layer] == "sliding_attention" and arch.get("sliding_window"):
        keys = min(keys, arch["sliding_window"] + queries - 1)
    return keys


def attention_shapes(arch: dict[str, Any], *, batch: int, past: int, queries: int) -> list[AttentionShape]:
    """The distinct ``attn_qk`` / ``attn_pv`` site shapes of one pass (``queries`` new tokens per sequence after
    ``past`` cached ones, for ``batch`` sequences), each with the number of layers that have it."""
    g = arch["n_heads"] // arch["n_kv_heads"]
    d = arch["head_dim"]
    inst = batch * arch["n_kv_heads"]
    counts: dict[tuple[str, int, int, int], int] = {}
    for layer in range(arch["n_layers"]):
        keys = keys_attended(arch, layer, past, queries)
        for shape in (("attn_qk", queries * g, d, keys * inst), ("attn_pv", queries * g, keys, d * inst)):
            counts[shape] = counts.get(shape, 0) + 1
    return [AttentionShape(k, t, kk, o, c) for (k, t, kk, o), c in sorted(counts.items())]


def simulate_shape(hw_att: HwConfig, shape: AttentionShape) -> dict[str, Any]:
    """Totals of ONE instance of ``shape`` on ``hw_att`` (cycles, DRAM bytes, action counts)."""
    x = np.broadcast_to(np.zeros(1, dtype=np.float16), (shape.T, shape.K))  # dense: only the shape is used
    work = build_site_work(hw_att, x, shape.O, reuse_input=shape.kind == "attn_pv")
    if shape.kind == "attn_qk":  # the scores stay on chip for attn_pv
        work.out_bytes = np.zeros_like(work.out_bytes)
        work.actions[Action.DRAM_WRITE_BYTE_OUTPUT.value] = 0
        work.actions[Action.OUT_SRAM_READ_BYTE.value] = 0
    timing = simulate_site(work, hw_att.dram_bytes_per_cycle, hw_att.dram.latency_cycles)
    out: dict[str, Any] = {
        "cycles": timing.cycles,
        "dram_weight_bytes": work.actions[Action.DRAM_READ_BYTE_WEIGHT.value],
        "dram_activation_bytes": work.actions[Action.DRAM_READ_BYTE_ACTIVATION.value],
        "dram_output_bytes": work.actions[Action.DRAM_WRITE_BYTE_OUTPUT.value],
        "dense_macs": int(work.stats["dense_macs"]),
    }
    counts = {a: int(work.actions[a]) for a in ACTIONS}
    counts[Action.STATIC_CYCLE.value] = int(timing.cycles)
    out["counts"] = counts
    return out


def simulate_attention(hw_att: HwConfig, shapes: list[AttentionShape], memo: dict | None = None) -> dict[str, Any]:
    """Totals of all instances of ``shapes``, by kind: ``{kind: {cycles, dram_*_bytes, dense_macs, counts}}``."""
    memo = {} if memo is None else memo
    out = {k: {**dict.fromkeys(TOTAL_KEYS, 0), "counts": dict.fromkeys(ACTIONS, 0)} for k in ATTENTION_KINDS}
    for s in shapes:
        key = (s.kind, s.T, s.K, s.O)
        if key not in memo:
            memo[key] = simulate_shape(hw_att, s)
        one, acc = memo[key], out[s.kind]
        for k in TOTAL_KEYS:
            acc[k] += one[k] * s.count
        for a, v in one["counts"].items():
            acc["counts"][a] += v * s.count
    return out


def kv_cache_bytes(arch: dict[str, Any], context: int, kv_bytes: float, batch: int = 1) -> int:
    """Closed form of the KV cache one decode step reads: ``2 * layers * kv_heads * head_dim * context * bytes``
    per sequence (sliding layers read at most their window)."""
    keys = sum(keys_attended(arch, la, context - 1, 1) for la in range(arch["n_layers"]))
    return int(round(2 * arch["n_kv_heads"] * arch["head_dim"] * keys * kv_bytes * batch))
