"""Trace format v2 fields for serving: the batch of sequences and the model's attention / lm_head shapes.

numpy-free and torch-free; used by ``accelsim.trace.format`` (validation on read and write, the reader's
``Trace.n_sequences`` / ``Trace.architecture``) and by the simulator (``require_sequences``).

* ``sequences`` (int >= 1, required in v2): how many different sequences the trace holds. Every input's rows
  are the forward passes stacked, each pass flattened as torch flattens ``[B, T_pass, K]``: a prefill is one
  pass, row ``b * T + t``; a decode trace is one pass per step, row ``r * B + b``.
* ``architecture`` (object, optional in v2, written by the tracer and the synthetic shapes): what attention,
  the KV cache and ``lm_head`` need. Fields in :data:`ARCH_INT_FIELDS` plus ``tie_word_embeddings`` (bool),
  ``lm_head`` (``{"K": hidden, "O": vocab_size}``), ``layer_types`` (one of :data:`LAYER_TYPES` per layer),
  ``sliding_window`` (int or null) and the free-text ``mlp`` (activation of the gated MLP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The v2 site kind of the output projection, next to the decoder layers' linears (``format.KINDS``).
LM_HEAD_KIND = "lm_head"
ARCH_INT_FIELDS = ("n_layers", "hidden", "intermediate", "n_heads", "n_kv_heads", "head_dim", "vocab_size")
LAYER_TYPES = ("full_attention", "sliding_attention")
ROW_LAYOUT = {
    "prefill": "one pass over [B, T] tokens: row b*T + t is token t of sequence b",
    "decode": "one pass of [B, 1] per step: row r*B + b is step r of sequence b",
}


def _error(msg: str) -> Exception:
    from accelsim.trace.format import TraceError

    return TraceError(msg)


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def validate_serving_meta(meta: Mapping[str, Any], where: str) -> None:
    """Check ``sequences`` and (when present) ``architecture``; one-line :class:`TraceError` naming the key."""
    seq = meta.get("sequences")
    if not _pos_int(seq):
        raise _error(f"{where}: key 'sequences' must be an integer >= 1 (sequences in the batch), got {seq!r}")
    arch = meta.get("architecture")
    if arch is None:
        return
    if not isinstance(arch, dict):
        raise _error(f"{where}: key 'architecture' must be an object")
    for key in ARCH_INT_FIELDS:
        if not _pos_int(arch.get(key)):
            raise _error(f"{where}: key 'architecture.{key}' must be an integer >= 1, got {arch.get(key)!r}")
    if arch["n_heads"] % arch["n_kv_heads"]:
        raise _error(
            f"{where}: key 'architecture.n_kv_heads' is {arch['n_kv_heads']}; it must divide n_heads {arch['n_heads']}"
        )
    if not isinstance(arch.get("tie_word_embeddings"), bool):
        raise _error(f"{where}: key 'architecture.tie_word_embeddings' must be true or false")
    lm = arch.get("lm_head")
    if lm != {"K": arch["hidden"], "O": arch["vocab_size"]}:
        raise _error(
            f"{where}: key 'architecture.lm_head' is {lm!r}; expected "
            f"{{'K': {arch['hidden']}, 'O': {arch['vocab_size']}}} (hidden, vocab_size)"
        )
    types = arch.get("layer_types")
    if not isinstance(types, list) or len(types) != arch["n_layers"] or any(t not in LAYER_TYPES for t in types):
        raise _error(
            f"{where}: key 'architecture.layer_types' must list n_layers = {arch['n_layers']} entries, "
            f"each one of {', '.join(LAYER_TYPES)}"
        )
    window = arch.get("sliding_window")
    if "sliding_attention" in types and not _pos_int(window):
        raise _error(f"{where}: key 'architecture.sliding_window' must be an integer >= 1 (sliding layers exist)")
    if window is not None and not _pos_int(window):
        raise _error(f"{where}: key 'architecture.sliding_window' must be an integer >= 1 or null, got {window!r}")


def check_write_shapes(meta: Mapping[str, Any], data: Any, where: str) -> None:
    """Writer-side v2 checks on a ``TraceData``: every input's rows divide into ``sequences``; token ids are
    ``[L]`` (one sequence) or ``[sequences, L]``; at most one ``lm_head`` site."""
    batch = int(meta.get("sequences", 1))
    for input_id in sorted(data.inputs):
        rows = data.inputs[input_id].shape[0]
        if rows % batch:
            raise _error(f"{where}: input '{input_id}' has {rows} rows, not a multiple of sequences {batch}")
    check_token_ids_shape(meta, tuple(getattr(data.token_ids, "shape", (len(data.token_ids),))), where)
    if sum(s.kind == LM_HEAD_KIND for s in data.sites) > 1:
        raise _error(f"{where}: more than one site of kind '{LM_HEAD_KIND}'")


def check_token_ids_shape(meta: Mapping[str, Any], shape: tuple[int, ...], where: str) -> None:
    """``token_ids`` is ``[L]`` for one sequence or ``[sequences, L]``; a one-line error naming the member."""
    batch = int(meta.get("sequences", 1))
    if not (len(shape) == 2 and shape[0] == batch) and not (len(shape) == 1 and batch == 1):
        raise _error(
            f"{where}: member 'token_ids.npy' has shape {tuple(shape)}; key 'sequences' {batch} needs "
            f"[{batch}, L]" + (" (or [L])" if batch == 1 else "")
        )


def expected_rows(meta: Mapping[str, Any]) -> int | None:
    """Rows every input must hold: ``tokens * sequences`` (prefill tokens or decode steps, per sequence);
    ``None`` when the metadata has no integer ``tokens``. For a header-only reader's row check."""
    tokens = meta.get("tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        return None
    return tokens * int(meta.get("sequences", 1))


def architecture_from_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``architecture`` object from a transformers config dict (or a v1 trace's ``model_config``);
    ``None`` when it lacks the head counts."""
    need = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")
    if any(not _pos_int(cfg.get(k)) for k in need):
        return None
    n_layers, hidden, heads = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if not isinstance(types, list) or len(types) != n_layers:
        types = ["full_attention"] * n_layers
    types = [t if t in LAYER_TYPES else "full_attention" for t in types]
    return {
        "n_layers": n_layers,
        "hidden": hidden,
        "intermediate": cfg["intermediate_size"],
        "n_heads": heads,
        "n_kv_heads": kv,
        "head_dim": head_dim,
        "vocab_size": cfg["vocab_size"],
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "lm_head": {"K": hidden, "O": cfg["vocab_size"]},
        "layer_types": types,
        "sliding_window": window if "sliding_attention" in types and _pos_int(window) else None,
        "mlp": f"gated, {cfg.get('hidden_activation') or cfg.get('hidden_act') or 'unknown'}(gate) * up",
    }


def trace_architecture(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """A trace's ``architecture``: the v2 key, or derived from a v1 trace's ``model_config``."""
    arch = meta.get("architecture")
    if isinstance(arch, dict):
        return dict(arch)
    cfg = meta.get("model_config")
    return architecture_from_config(cfg) if isinstance(cfg, dict) else None


def require_sequences(meta: Mapping[str, Any], batch: int, where: str) -> int:
    """Raise a one-line :class:`TraceError` unless the trace holds at least ``batch`` sequences (a batch is
    never filled by reusing a sequence); returns the trace's ``sequences``."""
    have = int(meta.get("sequences", 1))
    if batch > have:
        raise _error(
            f"{where}: key 'sequences' is {have}, fewer than the scenario's batch {batch}; "
            f"record one with `accelsim trace --batch {batch}` (sequences are never reused)"
        )
    return have


def require_architecture(meta: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The trace's architecture, or a one-line :class:`TraceError` naming the key."""
    arch = trace_architecture(meta)
    if arch is None:
        raise _error(
            f"{where}: key 'architecture' is missing (and model_config has no head counts); "
            "re-record the trace with this accelsim"
        )
    return arch
