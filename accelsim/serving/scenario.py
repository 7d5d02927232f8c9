"""Serving scenario: batch, request shape (or a steady-state decode step), prefill chunk and datatypes.

A scenario YAML is validated like a hardware config (strict types, unknown keys are errors, one-line messages
naming the file, the key and what is allowed). :func:`check_scenario` then checks it against the hardware (a
datatype its operands cannot hold) and the traces (a batch, chunk or context they do not hold) before any
simulation. Keys are described in ``docs/serving.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accelsim.config.hw import HwConfig
from accelsim.config.yaml_io import ConfigError, format_validation_error, read_yaml

#: Bits per element of each datatype name.
DTYPE_BITS = {"bf16": 16, "int8": 8, "int4": 4}
WeightDtype = Literal["bf16", "int8", "int4"]
ActDtype = Literal["bf16", "int8"]
MAX_TOKENS = 1 << 20


class ScenarioError(ConfigError):
    """A scenario is invalid or does not fit the hardware or the traces (one line naming the key)."""


class Scenario(BaseModel):
    """One serving point. Either ``prompt_tokens`` + ``generated_tokens`` (a request: time to first token and
    time per output token) or ``context_tokens`` (one steady-state decode step at that KV-cache length)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)

    schema_version: Literal[1] = 1
    """Version of this scenario schema."""
    name: str = Field(min_length=1, max_length=200)
    """Name shown in reports."""
    batch: int = Field(ge=1, le=4096)
    """Sequences decoded together: a decode step holds one token of each."""
    prompt_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Request: prompt length (prefilled in chunks of ``prefill_chunk_tokens``)."""
    generated_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Request: output tokens per sequence (decode steps)."""
    context_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Steady-state decode: KV-cache length every sequence of the batch attends to (instead of a request)."""
    prefill_chunk_tokens: int = Field(default=32, ge=1, le=MAX_TOKENS)
    """Prompt tokens of one prefill pass (chunked prefill); at most the prefill trace's tokens."""
    weight_datatype: WeightDtype = "bf16"
    """Weights in DRAM and SRAM: ``bf16``, ``int8`` or ``int4`` (group-scaled, dequantised before the array)."""
    weight_group_size: int | None = Field(default=None, ge=16, le=8192, multiple_of=16)
    """``int8``/``int4``: input channels sharing one scale per output column (default 128)."""
    scale_datatype: Literal["bf16"] = "bf16"
    """Datatype of the group scales."""
    activation_datatype: ActDtype = "bf16"
    """Activations (and linear-site outputs) in DRAM and SRAM."""
    kv_cache_datatype: ActDtype = "bf16"
    """K and V entries of the cache."""

    @model_validator(mode="after")
    def _shape(self) -> Scenario:
        request = (self.prompt_tokens, self.generated_tokens)
        if self.context_tokens is not None:
            if any(v is not None for v in request):
                raise ValueError("give either context_tokens (a decode step) or prompt_tokens + generated_tokens")
        elif any(v is None for v in request):
            raise ValueError("give prompt_tokens and generated_tokens (a request), or context_tokens (a decode step)")
        if self.weight_datatype == "bf16" and self.weight_group_size is not None:
            raise ValueError("weight_group_size is for int8/int4 weights; bf16 has no scales: remove it")
        return self

    @property
    def mode(self) -> str:
        return "decode_step" if self.context_tokens is not None else "request"

    @property
    def group_size(self) -> int | None:
        """Input channels per scale group (``None`` for bf16)."""
        if self.weight_datatype == "bf16":
            return None
        return self.weight_group_size or 128

    def bytes_of(self, key: str) -> float:
        """Bytes per element of the datatype under ``key`` (e.g. ``weight_datatype``)."""
        return DTYPE_BITS[getattr(self, key)] / 8


_KEYS = tuple(Scenario.model_fields)


def _format(path: str | Path, exc: ValidationError) -> str:
    return format_validation_error(path, exc, unknown_key=f"unknown key (allowed: {', '.join(_KEYS)})")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML; :class:`ScenarioError` (one line) if it is invalid."""
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_format(path, exc)) from None


def check_datatypes(sc: Scenario, hw: HwConfig, where: str, hw_where: str) -> None:
    """A scenario datatype wider than the hardware's operand width cannot be held: one line naming the key."""
    pairs = (
        ("weight_datatype", hw.precision.weight_bytes, "precision.weight_bytes"),
        ("activation_datatype", hw.precision.activation_bytes, "precision.activation_bytes"),
        ("kv_cache_datatype", hw.precision.weight_bytes, "precision.weight_bytes"),
    )
    for key, hw_bytes, hw_key in pairs:
        bits = DTYPE_BITS[getattr(sc, key)]
        if bits > hw_bytes * 8:
            fits = [d for d, b in DTYPE_BITS.items() if b <= hw_bytes * 8 and (key == "weight_datatype" or b >= 8)]
            raise ScenarioError(
                f"{where}: {key}: {getattr(sc, key)} ({bits} bits) is wider than the {hw_bytes * 8:g}-bit operands "
                f"of {hw_where} ({hw_key} {hw_bytes:g}); allowed: {', '.join(fits) or 'none'}"
            )


def check_traces(sc: Scenario, where: str, decode: Any, prefill: Any | None) -> None:
    """Batch, chunk and context against what the traces hold (``decode``/``prefill`` are open ``Trace``s)."""
    if decode.phase != "decode":
        raise ScenarioError(f"{where}: the scenario needs a decode trace as --trace; {decode.path} is {decode.phase}")
    have = decode.n_sequences
    if sc.batch > have:
        raise ScenarioError(
            f"{where}: batch: {sc.batch} is more than the {have} sequences {decode.path} holds (allowed: 1..{have}; "
            f"record more with `accelsim trace --phase decode --batch {sc.batch}`)"
        )
    decode.require_architecture()
    limit = _max_positions(decode.meta)
    if sc.mode == "decode_step":
        assert sc.context_tokens is not None
        if limit is not None and sc.context_tokens > limit:
            raise ScenarioError(
                f"{where}: context_tokens: {sc.context_tokens} is more than the model holds "
                f"(allowed: 1..{limit}, max_position_embeddings of {decode.path})"
            )
        return
    assert sc.prompt_tokens is not None and sc.generated_tokens is not None
    total = sc.prompt_tokens + sc.generated_tokens
    if limit is not None and total > limit:
        raise ScenarioError(
            f"{where}: prompt_tokens: {sc.prompt_tokens} + generated_tokens {sc.generated_tokens} = {total} is more "
            f"than the model holds (allowed total: 1..{limit}, max_position_embeddings of {decode.path})"
        )
    if prefill is None:
        raise ScenarioError(
            f"{where}: prompt_tokens needs a prefill trace: add --prefill-trace (or use context_tokens)"
        )
    if prefill.phase != "prefill":
        raise ScenarioError(f"{where}: --prefill-trace {prefill.path} is a {prefill.phase} trace, not prefill")
    rows = prefill.n_tokens // prefill.n_sequences
    chunk = min(sc.prefill_chunk_tokens, sc.prompt_tokens)
    if chunk > rows:
        raise ScenarioError(
            f"{where}: prefill_chunk_tokens: {sc.prefill_chunk_tokens} is more than the {rows} tokens per sequence "
            f"{prefill.path} holds (allowed: 1..{rows}; record more with `accelsim trace --tokens N`)"
        )
    if prefill.meta.get("model") != decode.meta.get("model"):
        raise ScenarioError(
            f"{where}: --prefill-trace is of model {prefill.meta.get('model')!r}, --trace of "
            f"{decode.meta.get('model')!r}: give traces of one model"
        )


def _max_positions(meta: dict[str, Any]) -> int | None:
    cfg = meta.get("model_config")
    v = cfg.get("max_position_embeddings") if isinstance(cfg, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None
