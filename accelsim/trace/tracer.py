"""Record real activation traces from PyTorch forward passes (prefill, or greedy decode with the KV cache).

A forward pre-hook on every ``nn.Linear`` inside the model's decoder layers copies the linear's input as
float16. Sites that read the same tensor (q/k/v read the attention norm's output, gate/up the MLP norm's
output) are found by storage identity (same data pointer, shape, strides and dtype) among the inputs of one
decoder layer, and the tensor is stored once. Nothing about the architecture is hard-coded beyond "the
decoder layers are the largest ``nn.ModuleList`` holding linears"; kinds are the transformers short names
(``q_proj -> q`` ...) or the module's own short name.

torch and transformers are imported lazily, inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.trace.format import PHASES, Site, TraceData, write_trace
from accelsim.trace.synthetic import input_id

KIND_ALIASES = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
}
_FP16_MAX = 65504.0
_CONFIG_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "rope_theta",
    "tie_word_embeddings",
    "rope_parameters",
    "hidden_act",
    "rms_norm_eps",
)

Progress = Callable[[int, int], None]


class TraceInputError(ValueError):
    """Bad input to the tracer (no linears, too few tokens, bad layer list ...); one line, names the input."""


@dataclass(frozen=True)
class LinearSite:
    """One ``nn.Linear`` inside decoder layer ``layer`` (``module`` is the live torch module)."""

    name: str
    layer: int
    kind: str
    module: Any


def find_decoder_linears(model: Any) -> list[LinearSite]:
    """The ``nn.Linear`` modules inside the decoder layers, in registration order (``lm_head`` is outside).

    The decoder layers are the largest ``nn.ModuleList`` whose entries hold ``nn.Linear`` modules."""
    from torch import nn

    stacks = [
        (name, ml)
        for name, ml in model.named_modules()
        if isinstance(ml, nn.ModuleList) and any(isinstance(m, nn.Linear) for m in ml.modules())
    ]
    if not stacks:
        raise TraceInputError(
            f"{type(model).__name__} has no nn.Linear inside a decoder-layer stack (an nn.ModuleList): "
            "nothing to trace (GPT-2-style Conv1D projections are not supported)"
        )
    best = max(len(ml) for _, ml in stacks)
    stack_name, stack = next((n, ml) for n, ml in stacks if len(ml) == best)
    sites = []
    for i, block in enumerate(stack):
        for sub, mod in block.named_modules():
            if isinstance(mod, nn.Linear):
                short = sub.rsplit(".", 1)[-1]
                prefix = f"{stack_name}.{i}" if stack_name else str(i)
                sites.append(LinearSite(f"{prefix}.{sub}", i, KIND_ALIASES.get(short, short), mod))
    return sites


class LinearInputRecorder:
    """Forward pre-hooks that record the inputs of ``sites``, one ``step()`` (forward pass) at a time.

    Inside a step every site must run exactly once. The first recorded step fixes the site order (order of
    first call) and the input groups (sites reading one tensor); later steps must repeat both. Each group's
    rows are appended per step: ``inputs()`` gives ``{group_index: [rows_total, K] float16}``.

    Sharing is detected among the inputs seen since the current decoder layer began; references to them are
    held only until the next layer starts, so a freed tensor's address cannot be mistaken for a shared one.
    """

    def __init__(self, sites: Sequence[LinearSite], progress: Progress | None = None, steps: int = 1):
        self.sites = list(sites)
        self.progress = progress
        self.total_steps = steps  # for the progress callback only
        self.order: list[int] | None = None  # site indices in call order (fixed by the first step)
        self.groups: list[tuple[int, ...]] | None = None  # input groups in call order
        self.rows_per_step: list[int] = []
        self._chunks: list[list[np.ndarray]] = []
        self._handles: list[Any] = []
        self._active = False
        self._steps = 0

    # -- hooks --------------------------------------------------------------------------------------
    def __enter__(self) -> LinearInputRecorder:
        for idx, s in enumerate(self.sites):
            self._handles.append(s.module.register_forward_pre_hook(self._make_hook(idx), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_hook(self, idx: int) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self._active:
                x = args[0] if args else kwargs.get("input")
                self._record(idx, x)

        return hook

    # -- steps --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Record one forward pass."""
        self._calls: list[int] = []
        self._step_groups: list[list[int]] = []
        self._step_rows: list[np.ndarray] = []
        self._held: list[tuple[Any, int]] = []
        self._layer: int | None = None
        self._active = True
        try:
            yield
        finally:
            self._active = False
            self._held = []
        self._finish_step()

    def _record(self, idx: int, x: Any) -> None:
        import torch

        site = self.sites[idx]
        if idx in self._calls:
            raise TraceInputError(f"{site.name} ran twice in one forward pass; a reused linear cannot be traced")
        self._calls.append(idx)
        if site.layer != self._layer:
            self._held, self._layer = [], site.layer
        for t, gid in self._held:
            if (
                t.data_ptr() == x.data_ptr()
                and t.shape == x.shape
                and t.stride() == x.stride()
                and t.dtype == x.dtype
                and t.device == x.device
            ):
                self._step_groups[gid].append(idx)
                break
        else:
            gid = len(self._step_groups)
            self._step_groups.append([idx])
            self._held.append((x, gid))
            flat = x.detach().reshape(-1, x.shape[-1])
            peak = float(flat.abs().max()) if flat.numel() else 0.0
            if not np.isfinite(peak) or peak > _FP16_MAX:
                raise TraceInputError(
                    f"{site.name}: input reaches |x| = {peak:.4g}, outside float16 (max {_FP16_MAX:g})"
                )
            self._step_rows.append(flat.to(device="cpu", dtype=torch.float16).numpy().copy())
        if self.progress is not None:
            n = len(self.sites)
            self.progress(self._steps * n + len(self._calls), max(self.total_steps, self._steps + 1) * n)

    def _finish_step(self) -> None:
        missing = [self.sites[i].name for i in range(len(self.sites)) if i not in self._calls]
        if missing:
            raise TraceInputError(f"{len(missing)} linear site(s) did not run in the forward pass, e.g. {missing[0]}")
        groups = [tuple(g) for g in self._step_groups]
        if self.groups is None:
            self.order, self.groups = list(self._calls), groups
            self._chunks = [[] for _ in groups]
        elif groups != self.groups or self._calls != self.order:
            raise TraceInputError(f"step {self._steps}: the sites ran in another order or shared other inputs")
        rows = {r.shape[0] for r in self._step_rows}
        if len(rows) != 1:
            raise TraceInputError(f"step {self._steps}: sites saw different token counts {sorted(rows)}")
        for gid, r in enumerate(self._step_rows):
            self._chunks[gid].append(r)
        self.rows_per_step.append(rows.pop())
        self._steps += 1

    def inputs(self) -> list[np.ndarray]:
        """One ``[rows, K]`` float16 array per input group (in ``groups`` order), all steps stacked."""
        return [np.concatenate(c, axis=0) if len(c) > 1 else c[0] for c in self._chunks]


@dataclass
class TraceResult:
    """A trace and how long its parts took (timings are not written into the file: same input, same bytes)."""

    data: TraceData
    seconds: dict[str, float] = field(default_factory=dict)


def _model_config(model: Any) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return {}
    cfg = config.to_dict()
    return {k: cfg[k] for k in _CONFIG_KEYS if k in cfg and cfg[k] is not None}


def linear_weight_share(model: Any, sites: Sequence[LinearSite]) -> tuple[float, int, int]:
    """``(share, linear_params, model_params)``: the traced linears' weights and biases over all distinct
    parameters of the model (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel()
    lin = sum(s.module.weight.numel() + (s.module.bias.numel() if s.module.bias is not None else 0) for s in sites)
    return lin / total, lin, total


def _tokenize(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def find_lm_head(model: Any) -> LinearSite | None:
    """The output projection (``model.get_output_embeddings()``) as a site of kind ``lm_head``, if it is an
    ``nn.Linear``; its ``layer`` is set by the caller to one past the last decoder layer."""
    from torch import nn

    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Linear):
        return None
    name = next((n for n, m in model.named_modules() if m is head), "lm_head")
    return LinearSite(name, -1, "lm_head", head)


def model_architecture(model: Any, sites: Sequence[LinearSite], n_layers: int) -> dict[str, Any] | None:
    """The trace's ``architecture`` (``serving_meta``) from the model config, checked against the traced
    q/k projections' shapes (``n_heads * head_dim`` and ``n_kv_heads * head_dim`` outputs)."""
    from accelsim.trace.serving_meta import architecture_from_config

    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return None
    arch = architecture_from_config(config.to_dict())
    if arch is None:
        return None
    if arch["n_layers"] != n_layers:
        raise TraceInputError(f"the config says {arch['n_layers']} layers, the model has {n_layers} decoder layers")
    for s in sites:
        want = {"q": arch["n_heads"], "k": arch["n_kv_heads"], "v": arch["n_kv_heads"]}.get(s.kind)
        if want is not None and s.module.weight.shape[0] != want * arch["head_dim"]:
            raise TraceInputError(
                f"{s.name}: {s.module.weight.shape[0]} outputs, but the config says {want} heads x head_dim "
                f"{arch['head_dim']}"
            )
    return arch


def _parse_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise TraceInputError(f"--layers {','.join(map(str, bad))}: the model has layers 0..{n_layers - 1}")
    return sorted(set(layers))


def _sequences(
    tokenizer: Any, body: str, text_label: str, *, phase: str, tokens: int, prompt_tokens: int, offset: int,
    batch: int | None, stride: int | None, prompt_file: str | Path | None, bos: int | None,
) -> Any:  # fmt: skip
    from accelsim.trace.batch import BatchInputError, prompt_sequences, special_prefix, text_windows

    tok = lambda t: _tokenize(tokenizer, t)  # noqa: E731
    length = tokens if phase == "prefill" else prompt_tokens
    try:
        if prompt_file is not None:
            return prompt_sequences(prompt_file, tok, batch=batch, length=length, bos=bos)
        own, ids = tok(""), tok(body)
        specials = special_prefix(tok, bos)
        ids = specials + (ids[len(own) :] if ids[: len(own)] == own else ids)  # every window starts with specials
        if (batch or 1) == 1 and len(ids) < offset + length:  # the batch-1 message of earlier versions
            what = f"{tokens} tokens" if phase == "prefill" else f"a {prompt_tokens}-token prompt"
            raise TraceInputError(
                f"text {text_label!r} has {len(ids)} tokens; {phase} of {what} from offset {offset} needs "
                f"{offset + length}"
            )
        return text_windows(
            ids, specials, batch=batch or 1, length=length, offset=offset, stride=stride, text_label=text_label
        )
    except BatchInputError as exc:
        raise TraceInputError(str(exc)) from None


def trace_model(
    lm: Any,
    *,
    tokens: int = 64,
    phase: str = "prefill",
    text: str = "pydoc",
    offset: int = 0,
    prompt_tokens: int = 32,
    weight_layers: Sequence[int] | None = (),
    progress: Progress | None = None,
    measure_plain: bool = False,
    batch: int | None = None,
    stride: int | None = None,
    prompt_file: str | Path | None = None,
    lm_head: bool = True,
) -> TraceResult:
    """Trace a loaded model (``accelsim.hf.LoadedModel``) on ``batch`` sequences (default 1; with
    ``prompt_file``, one per prompt), see ``accelsim.trace.batch``.

    ``prefill``: one forward pass over ``[B, tokens]`` (row ``b * tokens + t``).
    ``decode``: a ``[B, prompt_tokens]`` prompt pass, then ``tokens`` greedy steps with the KV cache, each
    feeding one token per sequence (row ``r * B + b`` is step ``r`` of sequence ``b``, which feeds
    ``token_ids[b, prompt_tokens + r]``).
    ``weight_layers``: decoder layers whose weights and biases are stored too (``None``: all layers).
    ``lm_head``: also record the input of the output projection (the final norm's output) as the last site.
    ``measure_plain``: also time the same forward passes without hooks (``seconds['plain']``).
    """
    import torch

    from accelsim import __version__
    from accelsim.hf import read_text
    from accelsim.trace.serving_meta import ROW_LAYOUT

    if phase not in PHASES:
        raise TraceInputError(f"--phase {phase!r}: allowed {', '.join(PHASES)}")
    if tokens < 1:
        raise TraceInputError(f"--tokens {tokens}: must be >= 1")
    if offset < 0 or prompt_tokens < 1:
        raise TraceInputError(f"--offset {offset} / --prompt-tokens {prompt_tokens}: need offset >= 0, prompt >= 1")
    if batch is not None and batch < 1:
        raise TraceInputError(f"--batch {batch}: must be >= 1")
    model, tokenizer = lm.model, lm.tokenizer
    sites = find_decoder_linears(model)
    n_layers = max(s.layer for s in sites) + 1
    wlayers = _parse_layers(weight_layers, n_layers)
    arch = model_architecture(model, sites, n_layers)
    head = find_lm_head(model) if lm_head else None
    rec_sites = sites + ([LinearSite(head.name, n_layers, "lm_head", head.module)] if head is not None else [])
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    body, text_sha, text_label = read_text(text)
    seqs = _sequences(
        tokenizer, body, text_label, phase=phase, tokens=tokens, prompt_tokens=prompt_tokens, offset=offset,
        batch=batch, stride=stride, prompt_file=prompt_file, bos=getattr(lm, "bos_token_id", None),
    )  # fmt: skip
    if prompt_file is not None:
        text_sha, text_label = _file_sha256(prompt_file), str(prompt_file)
    seconds["tokenize"] = time.perf_counter() - t0
    windows = seqs.ids
    n_seq = len(windows)

    def run(rec: LinearInputRecorder | None) -> tuple[list[list[int]], list[int] | None]:
        """The forward pass(es); records into ``rec`` when given. Returns (fed tokens, next tokens)."""
        step = rec.step if rec is not None else contextlib.nullcontext
        with torch.inference_mode(), warnings.catch_warnings():
            # transformers >= 5.25 renames the forward argument past_key_values to cache; both still work
            warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
            if phase == "prefill":
                with step():
                    model(input_ids=torch.tensor(windows), use_cache=False)
                return [list(w) for w in windows], None
            out = model(input_ids=torch.tensor(windows), use_cache=True)
            fed = [list(w) for w in windows]
            nxt = out.logits[:, -1].argmax(dim=-1).tolist()
            for _ in range(tokens):
                for b in range(n_seq):
                    fed[b].append(int(nxt[b]))
                with step():
                    out = model(
                        input_ids=torch.tensor(nxt)[:, None], past_key_values=out.past_key_values, use_cache=True
                    )
                nxt = out.logits[:, -1].argmax(dim=-1).tolist()
            return fed, [int(t) for t in nxt]

    if measure_plain:
        t0 = time.perf_counter()
        run(None)
        seconds["plain"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with LinearInputRecorder(rec_sites, progress=progress, steps=1 if phase == "prefill" else tokens) as rec:
        fed, next_tokens = run(rec)
    seconds["traced"] = time.perf_counter() - t0
    assert rec.order is not None and rec.groups is not None

    expect_rows = [n_seq * tokens] if phase == "prefill" else [n_seq] * tokens
    if rec.rows_per_step != expect_rows:
        raise TraceInputError(f"recorded {rec.rows_per_step} rows per step, expected {expect_rows}")

    # sites in call order; one input per group, named after its layer and the kinds that read it
    group_of = {idx: gid for gid, g in enumerate(rec.groups) for idx in g}
    ids_of_group: list[str] = []
    used: set[str] = set()
    for g in rec.groups:
        base = input_id(rec_sites[g[0]].layer, [rec_sites[i].kind for i in g])
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}.{n}"
        used.add(name)
        ids_of_group.append(name)
    arrays = rec.inputs()
    out_sites: list[Site] = []
    weights: dict[int, np.ndarray] = {}
    biases: dict[int, np.ndarray] = {}
    for idx in rec.order:
        s = rec_sites[idx]
        w = s.module.weight
        k = len(out_sites)
        keep = s.layer in wlayers and s.kind != "lm_head"
        out_sites.append(
            Site(k, s.name, s.layer, s.kind, int(w.shape[1]), int(w.shape[0]), ids_of_group[group_of[idx]], keep)
        )
        if keep:
            weights[k] = w.detach().cpu().numpy().copy()
            if s.module.bias is not None:
                biases[k] = s.module.bias.detach().cpu().numpy().copy()
    inputs = {ids_of_group[gid]: arr for gid, arr in enumerate(arrays)}

    share, lin_params, all_params = linear_weight_share(model, sites)
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:  # a plain torch module
        tf_version = None

    meta: dict[str, Any] = {
        "model": lm.name,
        "model_file": Path(lm.source).name,
        "model_sha256": lm.sha256,
        "model_config": _model_config(model),
        "phase": phase,
        "dtype": "float16",
        "text_source": text_label,
        "text_sha256": text_sha,
        "token_offset": offset,
        "tokens": tokens,
        "sequences": n_seq,
        "sequence_source": seqs.source,
        "sequence_offsets": seqs.offsets,
        "row_layout": ROW_LAYOUT[phase],
        "tool_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": tf_version,
        "synthetic": False,
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "linear_weight_share": round(share, 6),
        "linear_params": lin_params,
        "model_params": all_params,
        "hook": "forward pre-hook on every nn.Linear in the decoder layers (and lm_head); shared inputs stored once",
    }
    if seqs.stride is not None:
        meta["sequence_stride"] = seqs.stride
    if seqs.specials:
        meta["sequence_specials"] = seqs.specials
    if arch is not None:
        meta["architecture"] = arch
    if head is not None:
        meta["lm_head_site"] = {
            "index": next(s.index for s in out_sites if s.kind == "lm_head"),
            "input": "the final norm's output, all rows (a serving prefill needs only each sequence's last row)",
            "tied_to_embedding": bool(head.module.weight is getattr(model.get_input_embeddings(), "weight", None)),
        }
    if weights:
        meta["weight_layers"] = wlayers
        meta["weights_dtype"] = str(next(iter(weights.values())).dtype) + " (as loaded)"

    def per_seq(values: list[Any]) -> Any:
        return values[0] if n_seq == 1 else values

    if phase == "prefill":
        meta["text"] = per_seq([tokenizer.decode(f) for f in fed])
    else:
        meta["prompt_tokens"] = prompt_tokens
        meta["decode"] = (
            "greedy, KV cache; row r*B + b of every input = step r of sequence b, which feeds "
            "token_ids[b, prompt_tokens + r]"
        )
        meta["prompt_text"] = per_seq([tokenizer.decode(f[:prompt_tokens]) for f in fed])
        meta["generated_text"] = per_seq([tokenizer.decode(f[prompt_tokens:]) for f in fed])
        meta["next_token"] = per_seq(next_tokens)
    token_ids = np.asarray(fed, dtype=np.int64)
    data = TraceData(
        meta=meta,
        sites=out_sites,
        inputs=inputs,
        token_ids=token_ids[0] if n_seq == 1 else token_ids,
        weights=weights,
        biases=biases,
    )
    return TraceResult(data=data, seconds=seconds)


def _file_sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def separate_input_bytes(data: TraceData) -> tuple[int, int]:
    """``(bytes stored, bytes if every site stored its own input)``, uncompressed float16."""
    stored = sum(int(a.size) * 2 for a in data.inputs.values())
    separate = sum(int(data.inputs[s.input_id].size) * 2 for s in data.sites)
    return stored, separate


def trace_to_file(
    out: str | Path,
    *,
    model: str = "smollm2-135m",
    tokens: int = 64,
    phase: str = "prefill",
    text: str = "pydoc",
    offset: int = 0,
    prompt_tokens: int = 32,
    weight_layers: Sequence[int] | None = (),
    progress: Progress | None = None,
    measure_plain: bool = False,
    dtype: str = "float32",
    batch: int | None = None,
    stride: int | None = None,
    prompt_file: str | Path | None = None,
    lm_head: bool = True,
) -> TraceResult:
    """Load ``model`` (``accelsim.hf.load_model`` in ``dtype``), trace it and write ``out``; nothing is written
    on error."""
    from accelsim.hf import load_model

    if text != "pydoc" and not Path(text).is_file():
        raise TraceInputError(f"--text {text!r}: no such file (use 'pydoc' or a UTF-8 text file)")
    t0 = time.perf_counter()
    lm = load_model(model, dtype=dtype)
    load_s = time.perf_counter() - t0
    res = trace_model(
        lm,
        tokens=tokens,
        phase=phase,
        text=text,
        offset=offset,
        prompt_tokens=prompt_tokens,
        weight_layers=weight_layers,
        progress=progress,
        measure_plain=measure_plain,
        batch=batch,
        stride=stride,
        prompt_file=prompt_file,
        lm_head=lm_head,
    )
    t0 = time.perf_counter()
    write_trace(out, res.data)
    res.seconds["load"] = load_s
    res.seconds["write"] = time.perf_counter() - t0
    return res
