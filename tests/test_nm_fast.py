"""The vectorised N:M kernels (accelsim.accuracy.nm_fast, the path every model input takes) select exactly what a
stable descending sort of the float32 scores selects (the lower channel index wins a tie): on generated inputs
with many ties, signed zeros and infinities, and on the real, tie-heavy layer-0 inputs of SmolLM2-135M."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hyp = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from accelsim.accuracy import masks  # noqa: E402

PATTERNS = [(2, 4), (1, 4), (3, 4), (4, 8), (3, 8), (8, 16), (12, 16), (16, 32), (24, 32), (5, 12), (20, 64)]


def stable_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The reference rule: per group of ``m``, the first ``n`` of a stable descending sort of float32 scores."""
    s = scores.float()
    groups = s.reshape(-1, m)
    idx = torch.sort(groups, dim=-1, descending=True, stable=True).indices[:, :n]
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True).view(s.shape)


def check_apply(x: torch.Tensor, n: int, m: int, scores: torch.Tensor | None = None) -> None:
    assert masks._fast(x.shape[-1], n, m)  # the vectorised kernels, not the general one
    keep = stable_keep(x.abs() if scores is None else scores, n, m)
    xs, kept = masks.nm_apply(x, n, m, scores)
    want = torch.where(keep, x, torch.zeros((), dtype=x.dtype))  # +0.0 where dropped
    assert torch.equal(xs.view(torch.int32), want.view(torch.int32))  # bit for bit, signed zeros included
    assert kept == int(keep.sum()) == n * (x.numel() // m)


@st.composite
def tied_inputs(draw):
    n, m = draw(st.sampled_from(PATTERNS + [(0, 0)]))  # (0, 0): unstructured
    rows = draw(st.integers(1, 6))
    groups = draw(st.integers(1, 5))
    k = groups * m if m else draw(st.integers(2, 300))
    if not m:  # unstructured: one group spanning the row
        m, n = k, max(1, int(round(draw(st.sampled_from([0.25, 0.5, 0.75])) * k)))
        n = min(n, k - 1)
    levels = draw(st.sampled_from([1, 2, 3, 8, 1000]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-levels, levels + 1, size=(rows, k)).astype(np.float32) * np.float32(0.375)
    special = rng.random(x.shape)
    x[special < 0.05] = -0.0
    x[(special >= 0.05) & (special < 0.08)] = np.inf
    x[(special >= 0.08) & (special < 0.1)] = -np.inf
    return torch.from_numpy(x), n, m


@settings(max_examples=300, deadline=None)
@given(tied_inputs())
def test_fast_path_equals_the_stable_sort_rule_on_tied_inputs(case):
    x, n, m = case
    check_apply(x, n, m)
    sc = x.abs() * torch.linspace(0.5, 2.0, x.shape[-1])  # separate non-negative scores (a static factor)
    sc[sc == 0] = -0.0  # equal to +0.0
    check_apply(x, n, m, sc)
    assert torch.equal(masks.nm_mask(x.abs(), n, m), stable_keep(x.abs(), n, m))
    assert torch.equal(masks.nm_mask(-x.abs(), n, m), stable_keep(-x.abs(), n, m))  # negative: general kernel


def test_fast_path_rejects_nan_in_data_and_scores():
    x = torch.ones(4, 32)
    x[2, 7] = float("nan")
    for n, m in ((2, 4), (8, 16), (16, 32)):
        with pytest.raises(ValueError, match="NaN"):
            masks.nm_apply(x, n, m)
        with pytest.raises(ValueError, match="NaN"):
            masks.nm_apply(torch.ones(4, 32), n, m, x)
    with pytest.raises(ValueError, match="NaN"):
        masks.nm_mask(x, 10, 32)


@pytest.mark.slow
def test_fast_path_equals_the_stable_sort_rule_on_layer0_inputs(smollm2):
    """Layer-0 inputs of the Q4_1-dequantised model repeat values (ties decide many groups): every pattern of
    the accuracy tables, and unstructured top-k, select what the stable sort selects."""
    from accelsim.accuracy.calibrate import make_windows, tokenize
    from accelsim.hf import pydoc_text

    model = smollm2.model
    ev, _ = make_windows(tokenize(smollm2.tokenizer, pydoc_text()[0]), 1, 512, 1)
    layer0 = model.model.layers[0]
    seen: dict[str, torch.Tensor] = {}
    mods = {"q": layer0.self_attn.q_proj, "o": layer0.self_attn.o_proj, "down": layer0.mlp.down_proj}
    hooks = [
        mod.register_forward_pre_hook(lambda _m, a, name=name: seen.__setitem__(name, a[0].detach().clone()))
        for name, mod in mods.items()
    ]
    try:
        with torch.no_grad():
            model(input_ids=ev[:1], use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    for name, x in seen.items():
        a = x.abs().reshape(-1)
        tied = a.numel() - torch.unique(a).numel()
        if name == "q":
            assert tied > a.numel() // 4, tied  # the embedding rows: most entries share their value with another
        k = x.shape[-1]
        for n, m in PATTERNS[:9] + [(k // 2, k), (k // 4, k)]:
            check_apply(x, n, m)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 1000]), st.booleans())
def test_teal_threshold_kernel_is_torchs_threshold_bit_for_bit(seed, levels, specials):
    """``threshold_apply`` equals ``x * (x.abs() > t)`` bit for bit: the comparison in float32 (a float64
    threshold between two float32 values), signed zeros where dropped, torch's NaN where inf/NaN meet 0."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(-levels, levels + 1, size=(3, 40)) * 0.1).astype(np.float32)
    if specials:
        x[0, :4] = [-0.0, np.inf, -np.inf, np.nan]
    xt = torch.from_numpy(x)
    picks = [0.0, 0.1, float(np.float32(0.1)), float(np.nextafter(np.float32(0.1), np.float32(1))), 1e-9, 0.2999999]
    for t in picks + [float(abs(x[1, 7]))]:
        xs, kept = masks.threshold_apply(xt, t)
        mask = xt.abs() > t
        want = xt * mask
        assert torch.equal(xs.view(torch.int32), want.view(torch.int32)), t
        assert kept == int(mask.sum())
