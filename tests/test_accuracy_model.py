"""Accuracy side on the real SmolLM2-135M (slow: `pytest -m slow`). A few windows each, so the whole file
runs in a few minutes on 2 cores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from accelsim import nm  # noqa: E402
from accelsim.accuracy import masks  # noqa: E402
from accelsim.accuracy.calibrate import fit_learnable, make_windows, tokenize  # noqa: E402
from accelsim.accuracy.metrics import perplexity  # noqa: E402
from accelsim.accuracy.sparsify import Sparsifier  # noqa: E402
from accelsim.accuracy.spec import RunSpec, parse_pattern  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def windows(smollm2):
    from accelsim.hf import pydoc_text

    ids = tokenize(smollm2.tokenizer, pydoc_text()[0])
    return make_windows(ids, 2, 512, 2)


def _ppl(model, ev, pattern: str | None, mitigation: str = "none") -> float:
    if pattern is None:
        return perplexity(model, ev)["ppl"]
    with Sparsifier(model, RunSpec(parse_pattern(pattern), "magnitude", mitigation)):
        return perplexity(model, ev)["ppl"]


def test_dense_perplexity_finite_and_identical_across_runs(smollm2, windows):
    ev, _ = windows
    a = _ppl(smollm2.model, ev, None)
    b = _ppl(smollm2.model, ev, None)
    assert math.isfinite(a) and 3.0 < a < 60.0
    assert a == b


def test_perplexity_orders_with_the_group_size(smollm2, windows):
    """Magnitude, no mitigation: unstructured 50% <= 16:32 <= 8:16 <= 4:8 <= 2:4 (all 50% dense)."""
    ev, _ = windows
    order = ["unstructured0.5", "16:32", "8:16", "4:8", "2:4"]
    ppl = [_ppl(smollm2.model, ev, p) for p in order]
    dense = _ppl(smollm2.model, ev, None)
    assert dense < ppl[0]
    assert all(a <= b for a, b in zip(ppl, ppl[1:], strict=False)), dict(zip(order, ppl, strict=True))


def _linear_inputs(model, window, names):
    got = {}
    handles = [
        model.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: got.setdefault(n, a[0].detach().clone()))
        for n in names
    ]
    with torch.no_grad():
        model(input_ids=window)
    for h in handles:
        h.remove()
    return got


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (8, 16), (16, 32), (3, 7)])
def test_nm_masks_on_real_activations_keep_n_per_group_with_tie_and_padding_rule(smollm2, windows, n, m):
    ev, _ = windows
    names = ["model.layers.3.self_attn.q_proj", "model.layers.3.mlp.down_proj"]
    xs = _linear_inputs(smollm2.model, ev[:1, :64], names)
    for x in xs.values():
        for s in (x.abs()[0], x.abs()[0].half(), x.abs()[0].half().round()):  # half and rounding make ties
            keep_t = masks.nm_mask(s, n, m)
            keep_n = nm.nm_mask(s.double().numpy(), n, m)
            assert np.array_equal(keep_t.numpy(), keep_n)
            k = s.shape[-1]
            for g0 in range(0, k, m):  # 576 % 7 != 0: the last group of 3:7 is padded
                assert (keep_t[:, g0 : g0 + m].sum(1) == min(n, k - g0)).all()
            # ties: within a group, a dropped entry never has a higher score than a kept one, and an equal
            # score is kept only at a lower channel index
            sv = s.float()
            for g0 in range(0, k - m + 1, m):
                grp, kp = sv[:, g0 : g0 + m], keep_t[:, g0 : g0 + m]
                lo_kept = torch.where(kp, grp, torch.full_like(grp, float("inf"))).min(1).values
                hi_drop = torch.where(~kp, grp, torch.full_like(grp, float("-inf"))).max(1).values
                assert (lo_kept >= hi_drop).all()


def test_sparsified_model_uses_exactly_the_masks(smollm2, windows):
    ev, _ = windows
    model = smollm2.model
    sp = Sparsifier(model, RunSpec(parse_pattern("8:16")), layers=(5,))
    seen = {}
    site = next(s for s in sp.sites if s.kind == "down")
    h1 = site.module.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].detach().clone()))
    h2 = site.module.register_forward_hook(lambda m, a, o: seen.setdefault("y", o.detach().clone()))
    with sp, torch.no_grad():
        model(input_ids=ev[:1, :128])
    h1.remove()
    h2.remove()
    x = seen["x"]
    keep = torch.from_numpy(nm.nm_mask(x.abs().reshape(-1, x.shape[-1]).double().numpy(), 8, 16)).reshape(x.shape)
    torch.testing.assert_close(seen["y"], F.linear(x * keep, site.module.weight), rtol=1e-5, atol=1e-5)


def test_var_restores_each_tokens_variance(smollm2, windows):
    ev, _ = windows
    sp = Sparsifier(smollm2.model, RunSpec(parse_pattern("2:4"), "magnitude", "var"))
    pairs = []
    orig = sp._transform

    def spy(x, site):
        out = orig(x, site)
        pairs.append((site.name, x.detach(), out[0].detach()))
        return out

    sp._transform = spy
    with sp, torch.no_grad():
        smollm2.model(input_ids=ev[:1, :128])
    assert len(pairs) == 30 * 4  # one transform per shared input: q/k/v, o, gate/up, down
    for name, x, xs in pairs:
        vx, vs = x.var(-1, unbiased=False), xs.var(-1, unbiased=False)
        torch.testing.assert_close(vs, vx, rtol=1e-4, atol=1e-6, msg=name)
        assert ((xs != 0).sum(-1) <= x.shape[-1] // 2).all()


def test_learnable_fit_lowers_the_block_mse_it_was_fitted_on(smollm2, windows):
    _, ca = windows
    sp = Sparsifier(smollm2.model, RunSpec(parse_pattern("8:16"), "magnitude", "learnable"), layers=(0, 1, 2, 3))
    with sp:
        rep = fit_learnable(smollm2.model, sp, ca[:1], epochs=2, lr=2e-3)
    assert rep["layers"] == [0, 1, 2, 3] and rep["reverted"] == []
    for before, after in zip(rep["mse_before"], rep["mse_after"], strict=True):
        assert after < before


def test_eval_command_writes_joinable_records(smollm2, monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    import accelsim.hf
    from accelsim.cli.eval import eval_cmd

    monkeypatch.setattr(accelsim.hf, "load_model", lambda *a, **k: smollm2)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("eval")(eval_cmd)
    app.command("other")(lambda: None)
    out = tmp_path / "acc.json"
    args = ["eval", "--windows", "1", "--calib-windows", "1", "--gen-tokens", "4", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--pattern", "dense,2:4", "--pattern", "unstructured0.5"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*args, "--pattern", "2:4", "--mitigation", "var"])
    assert res.exit_code == 0, res.output
    recs = json.loads(out.read_text())["records"]
    assert sorted(recs) == [
        "smollm2-135m|2:4|magnitude|none",
        "smollm2-135m|2:4|magnitude|var",
        "smollm2-135m|dense|none|none",
        "smollm2-135m|unstructured0.5|magnitude|none",
    ]
    r = recs["smollm2-135m|2:4|magnitude|none"]
    for f in (
        "ppl",
        "dense_ppl",
        "delta_ppl",
        "token_agreement",
        "windows",
        "text_sha256",
        "model_sha256",
        "timings_s",
    ):
        assert f in r
    assert r["hw_config"] == "nm2_4" and (r["n"], r["m"]) == (2, 4) and r["windows"] == 1
    assert r["delta_ppl"] == pytest.approx(r["ppl"] - r["dense_ppl"]) and r["delta_ppl"] > 0
    assert r["model_sha256"] == smollm2.sha256
    assert recs["smollm2-135m|dense|none|none"]["ppl"] == r["dense_ppl"]
    assert recs["smollm2-135m|dense|none|none"]["token_agreement"] == 1.0
    assert r["realized_density"]["mean"] == 0.5


def _site_masks(model, window, spec, names):
    """The keep-masks the Sparsifier applies to the inputs of ``names`` (its own transform on the real inputs)."""
    sp = Sparsifier(model, spec)
    xs = _linear_inputs(model, window, names)
    out = {}
    for n in names:
        site = next(s for s in sp.sites if s.name == n)
        x = xs[n]
        out[n] = (sp._transform(x, site)[0] != 0) | (x == 0)
    return xs, out


def test_clact_is_not_amber_on_real_activations(smollm2, windows):
    """The paper's public code routes CLACT through its Amber pruner; accelsim's ``clact`` is the published
    score |X_ij| * ||X[:, j]|| / ||X[i, :]|| (float64 by hand here, lower-index ties) and differs from Amber's mask."""
    ev, _ = windows
    names = ["model.layers.3.self_attn.q_proj", "model.layers.3.mlp.down_proj", "model.layers.20.mlp.up_proj"]
    model = smollm2.model
    xs, clact = _site_masks(model, ev[:1, :256], RunSpec(parse_pattern("8:16"), "clact"), names)
    _, amber = _site_masks(model, ev[:1, :256], RunSpec(parse_pattern("8:16"), "amber"), names)
    _, mag = _site_masks(model, ev[:1, :256], RunSpec(parse_pattern("8:16"), "magnitude"), names)
    for n in names:
        x = xs[n][0].double()
        score = x.abs() * x.norm(dim=0, keepdim=True) / x.norm(dim=1, keepdim=True)
        want = torch.from_numpy(nm.nm_mask(score.numpy(), 8, 16))
        assert torch.equal(clact[n][0], want), n
        frac_amber = (clact[n] != amber[n]).double().mean().item()
        frac_mag = (clact[n] != mag[n]).double().mean().item()
        assert frac_amber > 0.02, (n, frac_amber)  # a few % of the entries of a real input flip
        assert frac_mag > 0.02, (n, frac_mag)  # and it is not magnitude either (prefill, 256 tokens)
