"""Perplexity and generative fidelity of a (sparsified) causal LM.

Perplexity: ``exp`` of the mean next-token negative log-likelihood over every predicted position of the
evaluation windows (``seq_len - 1`` per window; windows are independent, no BOS). ``top1_agreement``: the
fraction of those positions where the sparse model's argmax equals the dense model's.

Generative fidelity: greedy continuations (``gen_tokens`` new tokens, KV cache, no early stop) of the fixed
``PROMPTS``, compared position by position with the dense model's: ``token_agreement`` is the fraction of
equal tokens, ``prefix_agreement`` the mean fraction generated before the first difference (free-running: one
early difference changes everything after it), and ``forced_agreement`` the teacher-forced fraction (the
sparse model's argmax along the dense continuation, given the dense prefix).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from accelsim.accuracy.calibrate import tokenize

__all__ = ["PROMPTS", "perplexity", "greedy_continuations", "forced_agreement", "agreement"]

PROMPTS: tuple[str, ...] = (
    "The Python programming language is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "A dictionary in Python maps",
    "To read a file line by line,",
)


def perplexity(
    model: Any, windows: torch.Tensor, progress: Callable[[int, int], None] | None = None, prefix: int = 0
) -> dict[str, Any]:
    """``{"ppl", "nll", "tokens", "top1"}`` over ``windows [W, T]`` (one window per forward); ``top1`` is the
    model's argmax next-token prediction at every scored position, ``[W, T - 1 - prefix]``. The first
    ``prefix`` tokens of a window (a BOS) are context only: the targets are tokens ``prefix + 1 .. T - 1``."""
    nll = 0.0
    count = 0
    top1 = []
    with torch.no_grad():
        for w in range(windows.shape[0]):
            ids = windows[w : w + 1]
            logits = model(input_ids=ids, use_cache=False).logits[0, prefix:-1].float()
            nll += float(torch.nn.functional.cross_entropy(logits, ids[0, prefix + 1 :], reduction="sum").double())
            count += ids.shape[1] - 1 - prefix
            top1.append(logits.argmax(-1))
            if progress:
                progress(w + 1, windows.shape[0])
    mean = nll / count
    return {"ppl": math.exp(mean), "nll": mean, "tokens": count, "top1": torch.stack(top1)}


def forced_agreement(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[int]],
    bos: int | None = None,
) -> float:
    """Teacher-forced agreement: along each reference continuation, the fraction of positions where the
    model's argmax next token equals the reference token, the prefix being the prompt plus the reference
    tokens so far (one forward per prompt; divergence does not cascade as in free-running generation)."""
    eq = tot = 0
    with torch.no_grad():
        for p, cont in zip(prompts, continuations, strict=True):
            pre = tokenize(tokenizer, p, bos)
            ids = torch.cat([pre, torch.tensor(cont[:-1], dtype=torch.long)])[None, :]
            logits = model(input_ids=ids, use_cache=False).logits[0, pre.numel() - 1 :]
            pred = logits.argmax(-1)
            eq += int((pred == torch.tensor(cont)).sum())
            tot += len(cont)
    return eq / tot


def greedy_continuations(
    model: Any, tokenizer: Any, prompts: Sequence[str], new_tokens: int, bos: int | None = None
) -> list[list[int]]:
    """Greedy continuations (token ids) of each prompt (after ``bos`` if given), ``new_tokens`` long, KV cache."""
    out: list[list[int]] = []
    with torch.no_grad():
        for p in prompts:
            ids = tokenize(tokenizer, p, bos)[None, :]
            res = model(input_ids=ids, use_cache=True)
            toks: list[int] = []
            for i in range(new_tokens):
                nxt = int(res.logits[0, -1].argmax())
                toks.append(nxt)
                if i + 1 < new_tokens:
                    res = model(input_ids=torch.tensor([[nxt]]), past_key_values=res.past_key_values, use_cache=True)
            out.append(toks)
    return out


def agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> tuple[float, float]:
    """``(token_agreement, prefix_agreement)`` of two lists of continuations (see the module docstring)."""
    if len(reference) != len(other) or not reference:
        raise ValueError("continuation lists differ in length or are empty")
    eq = tot = 0
    prefix = 0.0
    for a, b in zip(reference, other, strict=True):
        n = len(a)
        same = [x == y for x, y in zip(a, b, strict=True)]
        eq += sum(same)
        tot += n
        first = next((i for i, s in enumerate(same) if not s), n)
        prefix += first / n if n else 1.0
    return eq / tot, prefix / len(reference)
