"""Evaluation and calibration windows, dense block inputs, static shifts, and the learnable-mitigation fit.

Windows: the text is tokenised once, without special tokens. Evaluation windows are the first ``windows``
non-overlapping ``seq_len``-token windows from the start; calibration windows are non-overlapping windows
starting at the second half of the token stream (or after the last evaluation window if that is later), so
the two sets never overlap. A model whose tokenizer adds a BOS token by default (``add_bos_token``: Gemma-3
yes, SmolLM2 no) gets that BOS prepended to every window (``with_bos``): Gemma-3 without it is far off its
trained regime (dense perplexity 41.4 instead of 14.8 on the same 2 x 511 targets).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from accelsim.accuracy.mitigations import token_median
from accelsim.accuracy.sparsify import Site, Sparsifier, decoder_layers

__all__ = [
    "WindowError",
    "tokenize",
    "bos_id",
    "with_bos",
    "make_windows",
    "capture_block_inputs",
    "run_block",
    "static_shifts",
    "fit_learnable",
    "FitReport",
]

Progress = Callable[[int, int], None] | None


class WindowError(ValueError):
    """Not enough text for the requested windows (one line, names the counts)."""


def tokenize(tokenizer: Any, text: str, bos: int | None = None) -> torch.Tensor:
    """Token ids of ``text`` as a 1-D long tensor, without special tokens except ``bos`` first if given."""
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return torch.tensor(([bos] if bos is not None else []) + list(ids), dtype=torch.long)


def bos_id(tokenizer: Any) -> int | None:
    """The BOS id when the tokenizer adds one by default (``add_bos_token``), else None."""
    if getattr(tokenizer, "add_bos_token", False) and getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id)
    return None


def with_bos(windows: torch.Tensor, bos: int | None) -> torch.Tensor:
    """``windows [W, T]`` with a BOS column in front (``[W, T + 1]``), or unchanged when ``bos`` is None."""
    if bos is None:
        return windows
    return torch.cat([torch.full((windows.shape[0], 1), bos, dtype=windows.dtype), windows], dim=1)


def make_windows(
    ids: torch.Tensor, windows: int, seq_len: int, calib_windows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eval [windows, seq_len], calib [calib_windows, seq_len])`` as described in the module docstring."""
    if windows < 1 or seq_len < 2 or calib_windows < 0:
        raise WindowError(
            f"need windows >= 1, seq_len >= 2, calib_windows >= 0; got {windows}, {seq_len}, {calib_windows}"
        )
    n = ids.numel()
    eval_end = windows * seq_len
    start = max(n // 2, eval_end)
    if eval_end > n // 2:
        raise WindowError(
            f"{windows} evaluation windows of {seq_len} tokens need {eval_end} tokens but the first half of the "
            f"text has {n // 2}; allowed: --windows <= {(n // 2) // seq_len}"
        )
    if start + calib_windows * seq_len > n:
        raise WindowError(
            f"{calib_windows} calibration windows of {seq_len} tokens do not fit in the second half of the text "
            f"({n - start} tokens); allowed: <= {(n - start) // seq_len}"
        )
    ev = ids[:eval_end].view(windows, seq_len)
    ca = ids[start : start + calib_windows * seq_len].view(calib_windows, seq_len)
    return ev, ca


class _Stop(Exception):
    pass


def _base_model(model: Any) -> Any:
    """The model without its LM head (``LlamaModel`` for ``LlamaForCausalLM``), or the model itself."""
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def capture_block_inputs(
    model: Any, windows: torch.Tensor, layers: Sequence[int] | None = (0,), progress: Progress = None
) -> tuple[dict[int, list[torch.Tensor]], dict[str, Any]]:
    """Dense inputs of the decoder layers for each window (batch 1 each): ``({layer: [x_w ...]}, kwargs)``.

    ``layers=(0,)`` stops each forward at the first layer (cheap); ``None`` records every layer. ``kwargs`` are
    the keyword arguments the model passes to a layer (rotary embeddings, mask, positions), recorded from the
    first window, with the cache switched off, so ``run_block`` can call a layer on its own."""
    stack = decoder_layers(model)
    want = set(range(len(stack))) if layers is None else set(layers)
    last = max(want)
    out: dict[int, list[torch.Tensor]] = {i: [] for i in sorted(want)}
    kw: dict[str, Any] = {}
    handles = []

    def make(i: int) -> Callable[..., None]:
        def hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            h = args[0] if args else kwargs["hidden_states"]
            if i in want:
                out[i].append(h.detach().clone())
            if not kw:
                kw.update({k: v for k, v in kwargs.items() if k != "hidden_states"})
            if i == last:
                raise _Stop

        return hook

    for i, blk in enumerate(stack):
        if i <= last:
            handles.append(blk.register_forward_pre_hook(make(i), with_kwargs=True))
    base = _base_model(model)
    try:
        with torch.no_grad():
            for w in range(windows.shape[0]):
                try:
                    base(input_ids=windows[w : w + 1], use_cache=False)
                except _Stop:
                    pass
                if progress:
                    progress(w + 1, windows.shape[0])
    finally:
        for h in handles:
            h.remove()
    kw["use_cache"] = False
    for name in ("cache", "past_key_values", "past_key_value"):  # no KV cache; all default to None (5.25 renamed it)
        kw.pop(name, None)
    return out, kw


def run_block(block: Any, x: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
    """One decoder layer on its own (transformers 5 returns a tensor, older versions a tuple)."""
    y = block(x, **kwargs)
    return y[0] if isinstance(y, tuple) else y


@contextlib.contextmanager
def _frozen(model: Any) -> Iterator[None]:
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def static_shifts(
    model: Any, sites: Sequence[Site], calib: torch.Tensor, progress: Progress = None
) -> dict[str, float]:
    """Static shift ``eta`` per site: the mean over the calibration tokens of the per-token lower median of
    the site's *dense* input (one dense forward over the calibration windows; inputs shared by several
    projections are measured once)."""
    sums: dict[str, float] = {s.name: 0.0 for s in sites}
    counts: dict[str, int] = {s.name: 0 for s in sites}
    last: list[Any] = [None, None, 0]  # tensor, sum of medians, count

    def make(site: Site) -> Callable[..., None]:
        def hook(mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if last[0] is not x:
                med = token_median(x.detach()).double()
                last[:] = [x, float(med.sum()), med.numel()]
            sums[site.name] += last[1]
            counts[site.name] += last[2]

        return hook

    handles = [s.module.register_forward_pre_hook(make(s)) for s in sites]
    base = _base_model(model)
    try:
        with torch.no_grad():
            for w in range(calib.shape[0]):
                base(input_ids=calib[w : w + 1], use_cache=False)
                last[0] = None
                if progress:
                    progress(w + 1, calib.shape[0])
    finally:
        for h in handles:
            h.remove()
    return {k: sums[k] / max(counts[k], 1) for k in sums}


class FitReport(dict):
    """Per-layer block-output MSE before and after the learnable fit, and timings: ``{"mse_before": [...],
    "mse_after": [...], "layers": [...], "reverted": [...], "seconds": float, "steps": int}``."""


def fit_learnable(
    model: Any,
    sp: Sparsifier,
    calib: torch.Tensor,
    *,
    epochs: int = 2,
    lr: float = 2e-3,
    progress: Progress = None,
) -> FitReport:
    """Fit the learnable scale ``a`` and shift ``b`` of every sparsified linear, block by block (GPTQ-style
    sequential pass, as the reference code): for decoder layer ``l`` with inputs ``X_l`` (the outputs of the
    already fitted sparse layers before it; the embeddings for layer 0), the targets are the dense layer's
    outputs on the same inputs, ``Y_l = dense_l(X_l)``; ``a`` and ``b`` of the layer's linears are trained
    with Adam on ``MSE(sparse_l(X_l), Y_l)``, one calibration window per step, ``epochs`` passes in window
    order (deterministic); then ``X_{l+1} = sparse_l(X_l)``. The weights stay frozen. A layer whose fitted
    MSE is above its plain-pruning MSE gets its parameters reset to zero (listed in ``reverted``).

    Must run inside ``with sp:``. Returns a :class:`FitReport`; MSE values are averaged over the windows.
    """
    if not sp.learnable_parameters():
        raise ValueError("the sparsifier has no learnable parameters (mitigation must be learnable or var-learnable)")
    t0 = time.perf_counter()
    stack = decoder_layers(model)
    inputs, kwargs = capture_block_inputs(model, calib, layers=(0,))
    xs = inputs[0]
    report = FitReport(mse_before=[], mse_after=[], layers=[], reverted=[], steps=0)
    stats_flag, sp.stats = sp.stats, False
    nl = len(stack)
    try:
        with _frozen(model):
            for li, block in enumerate(stack):
                params = sp.learnable_parameters(li)
                if not params:
                    with torch.no_grad():
                        xs = [run_block(block, x, kwargs) for x in xs]
                    if progress:
                        progress(li + 1, nl)
                    continue
                with torch.no_grad():
                    sp.enabled = False
                    ys = [run_block(block, x, kwargs) for x in xs]
                    sp.enabled = True
                    before = [
                        float(torch.mean((run_block(block, x, kwargs) - y) ** 2)) for x, y in zip(xs, ys, strict=True)
                    ]
                for p in params:
                    p.requires_grad_(True)
                opt = torch.optim.Adam(params, lr=lr)
                for _ in range(epochs):
                    for x, y in zip(xs, ys, strict=True):
                        opt.zero_grad(set_to_none=True)
                        loss = torch.mean((run_block(block, x, kwargs) - y) ** 2)
                        loss.backward()
                        opt.step()
                        report["steps"] += 1
                        sp._cache = None
                for p in params:
                    p.requires_grad_(False)
                with torch.no_grad():
                    outs = [run_block(block, x, kwargs) for x in xs]
                    after = [float(torch.mean((o - y) ** 2)) for o, y in zip(outs, ys, strict=True)]
                    if sum(after) > sum(before):  # never leave a block worse than plain pruning
                        for p in params:
                            p.zero_()
                        outs = [run_block(block, x, kwargs) for x in xs]
                        after = list(before)
                        report["reverted"].append(li)
                    xs = outs
                report["layers"].append(li)
                report["mse_before"].append(sum(before) / len(before))
                report["mse_after"].append(sum(after) / len(after))
                if progress:
                    progress(li + 1, nl)
    finally:
        sp.stats = stats_flag
        sp.enabled = True
        sp._cache = None
    report["seconds"] = time.perf_counter() - t0
    report["windows"] = int(calib.shape[0])
    report["epochs"] = epochs
    report["lr"] = lr
    if not math.isfinite(sum(report["mse_after"])):
        raise FloatingPointError("learnable fit diverged (non-finite block MSE)")
    return report
