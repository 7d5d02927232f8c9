"""A second, deliberately simple N:M perplexity evaluator, checked against ``accelsim eval`` (slow, real SmolLM2).

The reference shares nothing with ``accelsim.accuracy`` but the loaded model and its tokenizer: it builds the
text itself, cuts 2 windows of 512 tokens, puts a plain forward pre-hook on every ``nn.Linear`` of the decoder
layers that zeroes the non-selected input entries (groups of ``m`` via ``view(-1, m)``, float32 ``|x|``), runs
both windows in one batched forward and takes ``exp`` of the mean next-token cross-entropy.

With ``torch.topk`` as the selector it disagrees with ``accelsim eval`` by up to several percent
(``topk`` breaks ties in ``|x|`` its own way, and exact ties occur, e.g. in the layer-0 inputs of the
Q4_1-dequantised model); with a stable descending sort (the lower channel index wins a tie, ``accelsim``'s
rule) it agrees to 0.1 % on every pattern. ``python tests/test_reference_evaluator.py`` prints both
comparisons (the table of ``docs/accuracy.md``, "Reproducible protocol").
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

PATTERNS = ["2:4", "4:8", "8:16", "16:32", "1:4", "8:32", "3:4", "12:16", "unstructured0.5", "unstructured0.25"]
SEQ_LEN = 512
WINDOWS = 2


def reference_windows(tokenizer) -> torch.Tensor:
    """``[2, 512]``: pydoc_data.topics values in sorted key order joined by blank lines, no special tokens."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids[: WINDOWS * SEQ_LEN]).view(WINDOWS, SEQ_LEN)


def _keep(x: torch.Tensor, pattern: str, selector: str) -> torch.Tensor:
    s = x.float().abs()
    k = s.shape[-1]
    if pattern.startswith("unstructured"):
        n, m = int(float(pattern[len("unstructured") :]) * k), k
    else:
        n, m = (int(v) for v in pattern.split(":"))
    groups = s.reshape(-1, m)
    if selector == "topk":
        idx = torch.topk(groups, n, dim=-1).indices
    else:  # lower index wins a tie
        idx = torch.sort(groups, dim=-1, descending=True, stable=True).indices[:, :n]
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True).view(x.shape)


def reference_ppl(model, windows: torch.Tensor, pattern: str | None, selector: str = "stable") -> float:
    """Perplexity of ``model`` on ``windows`` with every decoder linear's input sparsified by ``pattern``."""
    handles = []
    if pattern is not None:
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and ".layers." in name:
                handles.append(mod.register_forward_pre_hook(lambda m, a: (a[0] * _keep(a[0], pattern, selector),)))
    try:
        with torch.no_grad():
            logits = model(input_ids=windows).logits[:, :-1].float()
    finally:
        for h in handles:
            h.remove()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
    return math.exp(float(nll))


def accelsim_ppl(model, tokenizer, pattern: str | None) -> float:
    """What ``accelsim eval --windows 2`` computes for the perplexity of ``pattern`` (magnitude, no mitigation)."""
    from accelsim.accuracy.calibrate import make_windows, tokenize
    from accelsim.accuracy.metrics import perplexity
    from accelsim.accuracy.sparsify import Sparsifier
    from accelsim.accuracy.spec import RunSpec, parse_pattern
    from accelsim.hf import pydoc_text

    ev, _ = make_windows(tokenize(tokenizer, pydoc_text()[0]), WINDOWS, SEQ_LEN, 1)
    if pattern is None:
        return perplexity(model, ev)["ppl"]
    with Sparsifier(model, RunSpec(parse_pattern(pattern), "magnitude", "none")):
        return perplexity(model, ev)["ppl"]


@pytest.fixture(scope="module")
def ref_windows(smollm2):
    return reference_windows(smollm2.tokenizer)


def test_reference_windows_are_the_evaluation_windows(smollm2, ref_windows):
    from accelsim.accuracy.calibrate import make_windows, tokenize
    from accelsim.hf import pydoc_text

    ev, _ = make_windows(tokenize(smollm2.tokenizer, pydoc_text()[0]), WINDOWS, SEQ_LEN, 1)
    assert torch.equal(ev, ref_windows)


def test_dense_perplexity_agrees(smollm2, ref_windows):
    ref = reference_ppl(smollm2.model, ref_windows, None)
    ours = accelsim_ppl(smollm2.model, smollm2.tokenizer, None)
    assert abs(ref / ours - 1) < 1e-4, (ref, ours)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_reference_with_the_lower_index_tie_rule_agrees_to_0_1_percent(smollm2, ref_windows, pattern):
    ref = reference_ppl(smollm2.model, ref_windows, pattern, "stable")
    ours = accelsim_ppl(smollm2.model, smollm2.tokenizer, pattern)
    assert abs(ref / ours - 1) < 1e-3, (pattern, ref, ours)


def test_ties_are_real_in_layer0_inputs_and_the_stable_sort_is_accelsims_rule(smollm2, ref_windows):
    """Why ``torch.topk`` alone cannot reproduce the published numbers: in the input of layer 0's q/k/v some
    2:4 groups (about 0.02 %, 14 of 73,728 in this window) have their 2nd and 3rd largest |x| exactly equal,
    so the choice among them is the tie rule's; each such choice changes the mask and propagates."""
    from accelsim import nm

    got = {}
    q = smollm2.model.model.layers[0].self_attn.q_proj
    h = q.register_forward_pre_hook(lambda m, a: got.setdefault("x", a[0].detach()))
    with torch.no_grad():
        smollm2.model(input_ids=ref_windows[:1])
    h.remove()
    s = got["x"][0].float().abs()
    srt = s.reshape(-1, 4).sort(dim=-1, descending=True).values
    tied = (srt[:, 1] == srt[:, 2]).double().mean().item()
    assert tied > 0, tied
    want = torch.from_numpy(nm.nm_mask(s.double().numpy(), 2, 4))
    assert torch.equal(_keep(got["x"][0], "2:4", "stable"), want)


def main() -> None:  # pragma: no cover - a report, run by hand
    from accelsim.hf import load_model

    lm = load_model("smollm2-135m")
    w = reference_windows(lm.tokenizer)
    print("| pattern | accelsim eval | reference, torch.topk | diff | reference, stable sort | diff |")
    print("| :--- | ---: | ---: | ---: | ---: | ---: |")
    for p in [None, *PATTERNS]:
        ours = accelsim_ppl(lm.model, lm.tokenizer, p)
        a = reference_ppl(lm.model, w, p, "topk")
        b = reference_ppl(lm.model, w, p, "stable")
        print(
            f"| {p or 'dense'} | {ours:.4f} | {a:.4f} | {100 * (a / ours - 1):+.3f} % | {b:.4f} | "
            f"{100 * (b / ours - 1):+.4f} % |",
            flush=True,
        )


if __name__ == "__main__":  # pragma: no cover
    main()
