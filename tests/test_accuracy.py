"""Fast tests of the accuracy side without the real model: spec parsing, mitigation math on tensors, criteria,
the Sparsifier on a tiny random Llama (masks are the simulator's masks), learnable fit, TEAL histograms and
greedy allocation, windows, results file, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from accelsim import nm  # noqa: E402
from accelsim.accuracy import criteria, masks, mitigations, spec  # noqa: E402
from accelsim.accuracy.calibrate import WindowError, fit_learnable, make_windows, static_shifts  # noqa: E402
from accelsim.accuracy.metrics import agreement  # noqa: E402
from accelsim.accuracy.records import load_records, write_records  # noqa: E402
from accelsim.accuracy.sparsify import Sparsifier  # noqa: E402
from accelsim.accuracy.spec import RunSpec, SpecError, expand, parse_criterion, parse_pattern  # noqa: E402
from accelsim.accuracy.teal import Histogram, collect_histograms, greedy_allocation, uniform_thresholds  # noqa: E402

torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------- spec
def test_pattern_labels_and_join_fields():
    assert parse_pattern("8:16").label == "8:16"
    assert parse_pattern("8:16").hw_config == "nm8_16"
    assert parse_pattern("unstructured50%").label == "unstructured0.5"
    assert parse_pattern("UNSTRUCTURED0.5").hw_config == "unstructured"
    assert parse_pattern("teal0.5-greedy").label == "teal0.5-greedy"
    assert parse_pattern("teal50%").label == "teal0.5"
    assert parse_pattern("teal0.5").hw_config is None
    assert parse_pattern("4:4").label == "dense"
    assert parse_pattern("3:7").density == pytest.approx(3 / 7)


@pytest.mark.parametrize("bad", ["5:4", "0:4", "2-4", "unstructured1.5", "teal1.0", "sparse", ""])
def test_bad_pattern_names_value_and_allowed(bad):
    with pytest.raises(SpecError) as exc:
        parse_pattern(bad)
    msg = str(exc.value)
    assert repr(bad) in msg and "allowed" in msg and "\n" not in msg


def test_criterion_mitigation_kinds_layers_parsing():
    assert spec.parse_criterion("weight_aware") == "weight-aware"
    assert spec.parse_mitigation("VAR") == "var"
    with pytest.raises(SpecError, match="allowed: none, var"):
        spec.parse_mitigation("dropout")
    with pytest.raises(SpecError, match="allowed: magnitude, amber"):
        spec.parse_criterion("random")
    assert spec.parse_kinds("down_proj,q") == ("q", "down")
    assert spec.parse_kinds("all") == spec.KINDS
    with pytest.raises(SpecError, match="'lm_head'"):
        spec.parse_kinds("lm_head")
    assert spec.parse_layers("0-2,5") == (0, 1, 2, 5)
    assert spec.parse_layers("all") is None
    with pytest.raises(SpecError, match="layer 30 does not exist; allowed: 0-29"):
        spec.parse_layers("29-30", 30)
    assert spec.split_list(["2:4,8:16", "16:32", "2:4"]) == ["2:4", "8:16", "16:32"]


def test_expand_cross_product_dense_once_teal_only_magnitude():
    specs, skipped = expand(["dense", "2:4", "teal0.5"], ["magnitude", "amber"], ["none", "var", "median-shift"])
    keys = [s.key("m") for s in specs]
    assert keys.count("m|dense|none|none") == 1
    assert "m|2:4|amber|median-shift" in keys
    assert "m|teal0.5|magnitude|var" in keys
    assert not any("teal0.5|amber" in k for k in keys)
    assert not any("teal0.5|magnitude|median-shift" in k for k in keys)
    assert skipped and all("allowed" in s for s in skipped)
    assert len(specs) == 1 + 2 * 3 + 2


# ------------------------------------------------------------------------------------ mitigation math
def test_var_restores_each_tokens_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 64, generator=g) * torch.linspace(0.1, 3, 64)
    xs = x * nm_keep(x.abs(), 2, 4)
    v = mitigations.var_factor(x, xs)
    assert v.shape == (5, 7, 1)
    assert (v > 1).all()  # dropping half of the entries lowers the variance
    fixed = mitigations.apply_var(x, xs)
    torch.testing.assert_close(fixed.var(-1, unbiased=False), x.var(-1, unbiased=False), rtol=1e-5, atol=0)
    # an all-zero sparse row does not divide by zero
    assert torch.isfinite(mitigations.var_factor(torch.ones(1, 4), torch.zeros(1, 4))).all()


def test_token_median_is_lower_median_and_shift_reconstructs():
    x = torch.tensor([[4.0, 1.0, 3.0, 2.0], [5.0, -1.0, 0.0, 7.0]])
    assert mitigations.token_median(x).flatten().tolist() == [2.0, 0.0]
    eta = mitigations.token_median(x)
    keep = nm_keep((x - eta).abs(), 2, 4)
    xt = (x - eta) * keep + eta
    assert torch.equal(xt[keep], x[keep])  # kept entries are exact
    assert torch.equal(xt[~keep], eta.expand_as(x)[~keep])  # dropped entries become the median


def test_affine_epilogue():
    y = torch.tensor([[1.0, 2.0]])
    out = mitigations.apply_affine(y, torch.tensor([0.5, -1.0]), torch.tensor([0.1, 0.2]))
    torch.testing.assert_close(out, torch.tensor([[1.6, 0.2]]))


# ------------------------------------------------------------------------------------------- criteria
def test_amber_factor_formula_by_hand():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(300, 20, generator=g)
    w[0, 0] = 50.0  # an outlier outside the [0.5, 99.5] % quantiles does not move mu and sigma
    flat = np.sort(w.flatten().numpy())
    n = flat.size
    lo, hi = flat[int(round(0.005 * (n - 1)))], flat[int(round(0.995 * (n - 1)))]
    inside = flat[(flat >= lo) & (flat <= hi)]
    mu, sd = inside.mean(), inside.std(ddof=1)
    norms = np.linalg.norm((w.numpy() - mu) / sd, axis=0)
    np.testing.assert_allclose(criteria.amber_factor(w).numpy(), norms / norms.min(), rtol=1e-4)
    assert criteria.amber_factor(w).min().item() == pytest.approx(1.0)


def test_weight_aware_and_clact_scores():
    w = torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 4.0]])
    torch.testing.assert_close(criteria.weight_norm_factor(w), torch.tensor([1.0, 2.0, 5.0]))
    x = torch.tensor([[[1.0, -1.0, 1.0]]])
    s = criteria.scores(x, "weight-aware", criteria.weight_norm_factor(w))
    assert s.flatten().tolist() == [1.0, 2.0, 5.0]
    # clact: |x_ij| * column norm over the tokens of the same sequence (not across sequences) / row norm
    x = torch.tensor([[[1.0, 2.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    s = criteria.scores(x, "clact")
    r5 = 5.0**0.5
    torch.testing.assert_close(s[0], torch.tensor([[2.0**0.5 / r5, 4.0 / r5], [2.0**0.5, 0.0]]))
    torch.testing.assert_close(s[1], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # a zero row scores 0, not NaN
    assert s.dtype == torch.float32 and criteria.scores(x.half(), "clact").dtype == torch.float32
    # one token (a decode step): clact ranks like magnitude
    x1 = torch.tensor([[[0.3, -2.0, 1.0, 0.5]]])
    assert torch.equal(nm_keep(criteria.scores(x1, "clact"), 2, 4), nm_keep(x1.abs(), 2, 4))


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The numpy rule (the reference) as a torch bool tensor."""
    flat = scores.reshape(-1, scores.shape[-1]).double().numpy()
    return torch.from_numpy(nm.nm_mask(flat, n, m)).reshape(scores.shape)


# ------------------------------------------------------------------------------ a tiny random Llama
@pytest.fixture(scope="module")
def tiny():
    cfg = transformers.LlamaConfig(
        vocab_size=101,
        hidden_size=64,
        intermediate_size=100,  # 100 % 8 != 0: down_proj exercises the padding rule
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 101, (6, 24), generator=torch.Generator().manual_seed(1))
    return model, ids


def _record_io(sites):
    """Pre/post hooks recording (input, output) of each site's module."""
    seen: dict[str, list] = {}
    handles = []
    for s in sites:

        def pre(mod, args, name=s.name):
            seen.setdefault(name, []).append([args[0].detach().clone(), None])

        def post(mod, args, out, name=s.name):
            seen[name][-1][1] = out.detach().clone()

        handles += [s.module.register_forward_pre_hook(pre), s.module.register_forward_hook(post)]
    return seen, handles


@pytest.mark.parametrize(
    ("pattern", "criterion"),
    [("2:4", "magnitude"), ("8:16", "amber"), ("4:8", "weight-aware"), ("unstructured0.5", "clact")],
)
def test_sparsified_linears_compute_on_the_simulators_mask(tiny, pattern, criterion):
    """Each sparsified linear's output equals ``linear(x * mask)`` with the mask of ``accelsim.nm``."""
    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern(pattern), criterion, "none"))
    assert len(sp.sites) == 2 * 7
    seen, handles = _record_io(sp.sites)
    try:
        with sp, torch.no_grad():
            model(input_ids=ids[:2])
    finally:
        for h in handles:
            h.remove()
    pat = parse_pattern(pattern)
    for s in sp.sites:
        x, y = seen[s.name][0]
        w = s.module.weight.detach()
        sc = x.abs()
        if criterion in ("amber", "weight-aware"):
            sc = sc * s.factor
        elif criterion == "clact":
            sc = sc * x.abs().norm(dim=1, keepdim=True) / x.abs().norm(dim=2, keepdim=True)
        flat = sc.reshape(-1, x.shape[-1]).double().numpy()
        keep = nm.topk_mask(flat, pat.density) if pat.kind == "unstructured" else nm.nm_mask(flat, pat.n, pat.m)
        keep = torch.from_numpy(keep).reshape(x.shape)
        torch.testing.assert_close(y, F.linear(x * keep, w), rtol=1e-5, atol=1e-6)
        assert s.kept == int(keep.sum()) and s.seen == x.numel()


def test_shared_inputs_share_masks_only_for_activation_criteria(tiny):
    model, ids = tiny
    for criterion, shared in (("magnitude", True), ("amber", False)):
        sp = Sparsifier(model, RunSpec(parse_pattern("2:4"), criterion, "none"))
        calls = []
        orig = sp._transform
        sp._transform = lambda x, site, orig=orig, calls=calls: (calls.append(site.kind), orig(x, site))[1]
        with sp, torch.no_grad():
            model(input_ids=ids[:1])
        per_layer = calls[: len(calls) // 2]
        assert per_layer == (["q", "o", "gate", "down"] if shared else ["q", "k", "v", "o", "gate", "up", "down"])


def test_leaving_the_context_restores_the_dense_model(tiny):
    model, ids = tiny
    with torch.no_grad():
        dense = model(input_ids=ids[:2]).logits
        with Sparsifier(model, RunSpec(parse_pattern("2:4"))):
            sparse = model(input_ids=ids[:2]).logits
        again = model(input_ids=ids[:2]).logits
    assert not torch.allclose(dense, sparse)
    assert torch.equal(dense, again)
    assert all("forward" not in s.module.__dict__ for s in Sparsifier(model, RunSpec(parse_pattern("2:4"))).sites)


def test_kinds_and_layers_select_sites(tiny):
    model, _ = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("2:4")), kinds=("o", "down"), layers=(1,))
    assert [(s.layer, s.kind) for s in sp.sites] == [(1, "o"), (1, "down")]
    with pytest.raises(SpecError, match="layer 5 does not exist; allowed: 0-1"):
        Sparsifier(model, RunSpec(parse_pattern("2:4")), layers=(5,))


def test_median_and_static_shift_and_var_inputs(tiny):
    model, ids = tiny
    for mit in ("median-shift", "static-shift", "var"):
        sp = Sparsifier(model, RunSpec(parse_pattern("2:4"), "magnitude", mit))
        if mit == "static-shift":
            eta = static_shifts(model, sp.sites, ids[:3])
            assert set(eta) == {s.name for s in sp.sites}
            for s in sp.sites:
                s.eta = eta[s.name]
        seen, handles = _record_io(sp.sites[:1])
        with sp, torch.no_grad():
            model(input_ids=ids[:1])
            x = seen[sp.sites[0].name][0][0]
            xt = sp.transform(x, sp.sites[0])
        for h in handles:
            h.remove()
        if mit == "var":
            torch.testing.assert_close(xt.var(-1, unbiased=False), x.var(-1, unbiased=False), rtol=1e-5, atol=1e-7)
            assert ((xt != 0).sum(-1) == x.shape[-1] // 2).all()
        else:
            eta = x.median(-1, keepdim=True).values if mit == "median-shift" else sp.sites[0].eta
            keep = nm_keep((x - eta).abs(), 2, 4)
            torch.testing.assert_close(xt, (x - eta) * keep + eta)


def test_static_shift_is_mean_of_token_medians(tiny):
    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("2:4"), "magnitude", "static-shift"))
    site = sp.sites[3]  # o_proj of layer 0
    got = []
    h = site.module.register_forward_pre_hook(lambda m, a: got.append(a[0].median(-1).values.flatten()))
    eta = static_shifts(model, sp.sites, ids[:3])
    h.remove()
    assert eta[site.name] == pytest.approx(float(torch.cat(got).double().mean()), rel=1e-6)


def test_uncalibrated_static_shift_is_an_error(tiny):
    model, ids = tiny
    with (
        Sparsifier(model, RunSpec(parse_pattern("2:4"), "magnitude", "static-shift")),
        pytest.raises(RuntimeError, match="not calibrated"),
    ):
        model(input_ids=ids[:1])


@pytest.mark.parametrize("mitigation", ["learnable", "var-learnable"])
def test_learnable_fit_lowers_block_mse_and_changes_only_its_parameters(tiny, mitigation):
    model, ids = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sp = Sparsifier(model, RunSpec(parse_pattern("2:4"), "magnitude", mitigation))
    with sp:
        rep = fit_learnable(model, sp, ids[:4], epochs=3, lr=1e-3)
    assert rep["layers"] == [0, 1] and rep["reverted"] == []
    assert all(a < b for a, b in zip(rep["mse_after"], rep["mse_before"], strict=True))
    assert any(float(s.scale.abs().max()) > 0 for s in sp.sites)
    assert all(not s.scale.requires_grad for s in sp.sites)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights frozen
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_learnable_fit_is_deterministic(tiny):
    model, ids = tiny
    outs = []
    for _ in range(2):
        sp = Sparsifier(model, RunSpec(parse_pattern("4:8"), "magnitude", "learnable"))
        with sp:
            fit_learnable(model, sp, ids[:2], epochs=1, lr=1e-3)
            with torch.no_grad():
                outs.append(model(input_ids=ids[4:5]).logits)
    assert torch.equal(outs[0], outs[1])


# ----------------------------------------------------------------------------------------------- TEAL
def test_histogram_icdf_matches_exact_quantiles():
    g = torch.Generator().manual_seed(2)
    a = torch.distributions.Laplace(0.0, 1.0).sample((200_000,)).abs()
    h = Histogram(hi=float(a.quantile(0.99)), max=0.0, counts=torch.zeros(10_000, dtype=torch.float64))
    h.add(a[:100_000])
    h.add(a[100_000:])
    assert h.counts.sum() == a.numel()
    for q in (0.1, 0.25, 0.5, 0.65, 0.9):
        assert h.icdf(q) == pytest.approx(float(a.quantile(q)), rel=2e-3)
    assert h.icdf(0.0) == 0.0
    assert h.icdf(1.0) == pytest.approx(float(a.max()))
    del g


def test_teal_uniform_thresholds_hit_the_target_on_calibration_data(tiny):
    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("teal0.4")))
    hists = collect_histograms(model, sp.sites, ids[:4])
    for name, t in uniform_thresholds(sp.sites, hists, 0.4).items():
        next(s for s in sp.sites if s.name == name).threshold = t
    with sp, torch.no_grad():
        for w in range(4):
            model(input_ids=ids[w : w + 1])
    dens = sp.realized_density()["mean"]
    assert dens == pytest.approx(0.6, abs=0.01)
    assert hists[sp.sites[0].name] is hists[sp.sites[1].name]  # q and k read one tensor: one histogram


def test_teal_greedy_reaches_the_target_and_beats_uniform(tiny):
    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("teal0.5-greedy")))
    hists = collect_histograms(model, sp.sites, ids[:4])
    with sp:
        res = greedy_allocation(model, sp, hists, ids[:2], 0.5, base_step=0.05)
    for layer, eff in res["effective"].items():
        assert eff == pytest.approx(0.5, abs=0.01)
        assert res["error"][layer] <= res["uniform_error"][layer] * 1.0001
        s = res["layers"][layer]
        w = {"q": 1, "k": 0.5, "v": 0.5, "o": 1, "gate": 100 / 64, "up": 100 / 64, "down": 100 / 64}
        assert sum(w[k] * s[k] for k in w) / sum(w.values()) == pytest.approx(eff)
    assert all(s.threshold == res["thresholds"][s.name] for s in sp.sites)


# ------------------------------------------------------------------------------- windows and results
def test_windows_do_not_overlap_and_errors_name_the_limits():
    ids = torch.arange(10_000)
    ev, ca = make_windows(ids, 4, 512, 3)
    assert ev.shape == (4, 512) and ca.shape == (3, 512)
    assert ev[0, 0] == 0 and ev[-1, -1] == 4 * 512 - 1
    assert ca[0, 0] == 5000  # calibration starts in the second half
    with pytest.raises(WindowError, match="allowed: --windows <= 9"):
        make_windows(ids, 10, 512, 1)
    with pytest.raises(WindowError, match="allowed: <= 9"):
        make_windows(ids, 1, 512, 10)


def test_agreement_metrics():
    assert agreement([[1, 2, 3, 4]], [[1, 2, 3, 4]]) == (1.0, 1.0)
    tok, pre = agreement([[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 9, 3, 4], [0, 6, 7, 8]])
    assert tok == pytest.approx(6 / 8)
    assert pre == pytest.approx((1 / 4 + 0) / 2)


def test_results_file_merges_by_key(tmp_path):
    p = tmp_path / "r.json"
    write_records(p, [{"key": "a|2:4|magnitude|none", "ppl": 1.0}, {"key": "a|dense|none|none", "ppl": 0.5}])
    write_records(p, [{"key": "a|2:4|magnitude|none", "ppl": 2.0}])
    data = json.loads(p.read_text())
    assert data["schema"] == "accelsim-accuracy/1"
    assert data["records"]["a|2:4|magnitude|none"]["ppl"] == 2.0
    assert data["records"]["a|dense|none|none"]["ppl"] == 0.5
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="not an accelsim accuracy results file"):
        load_records(tmp_path / "bad.json")
    assert load_records(tmp_path / "missing.json") == {}


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def app():
    import typer

    from accelsim.cli.eval import eval_cmd

    a = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    a.command("eval")(eval_cmd)
    a.command("other")(lambda: None)
    return a


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--pattern", "2:4,9:8"], "'9:8'"),
        (["--criterion", "random"], "'random'"),
        (["--mitigation", "none", "--mitigation", "dropout"], "'dropout'"),
        (["--pattern", "teal0.5", "--criterion", "amber"], "TEAL thresholds"),
        (["--windows", "0"], "--windows 0"),
        (["--kinds", "q,lm_head"], "'lm_head'"),
        (["--layers", "3-1"], "runs backwards"),
        (["--model", "/nonexistent/model"], "not found"),
        (["--text", "/nonexistent.txt"], "/nonexistent.txt"),
        (["--pattern", "unstructured1.5"], "density must be in (0, 1]"),
        (["--pattern", "unstructured0"], "density must be in (0, 1]"),
        (["--pattern", "teal1.2"], "sparsity must be in (0, 1)"),
        (["--pattern", "0:4"], "'0:4'"),
        (["--pattern", "5:4"], "'5:4'"),
        (["--pattern", "8:16", "--criterion", "larosa", "--mitigation", "static-shift"], "criterion 'larosa'"),
        (["--gen-tokens", "-1"], "--gen-tokens -1"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(app, args, needle, tmp_path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["eval", *args, "--out", str(tmp_path / "o.json")])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
    assert not (tmp_path / "o.json").exists()


def test_cli_refuses_a_foreign_results_file(app, tmp_path):
    from typer.testing import CliRunner

    p = tmp_path / "o.json"
    p.write_text("[1, 2]")
    res = CliRunner().invoke(app, ["eval", "--pattern", "2:4", "--out", str(p)])
    assert res.exit_code == 2 and "not an accelsim accuracy results file" in res.stderr
    assert p.read_text() == "[1, 2]"


def test_learnable_fit_never_leaves_a_block_worse(tiny):
    """A step size far too large for this tiny model makes Adam overshoot: the block is reset to plain pruning."""
    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("2:4"), "magnitude", "learnable"))
    with sp:
        rep = fit_learnable(model, sp, ids[:4], epochs=1, lr=1e-2)
    assert rep["reverted"]  # this fails if the overshoot does not happen
    for li in rep["reverted"]:
        i = rep["layers"].index(li)
        assert rep["mse_after"][i] == rep["mse_before"][i]
        assert all(float(s.scale.abs().max()) == 0.0 for s in sp.sites if s.layer == li)
    assert all(a <= b for a, b in zip(rep["mse_after"], rep["mse_before"], strict=True))


def test_report_tables_from_records():
    from accelsim.accuracy.report import tables

    def rec(p, c, mi, ppl):
        return {
            "model": "m",
            "pattern": p,
            "criterion": c,
            "mitigation": mi,
            "ppl": ppl,
            "dense_ppl": 10.0,
            "top1_agreement": 0.5,
            "forced_agreement": 0.5,
            "token_agreement": 0.25,
            "windows": 2,
            "seq_len": 8,
            "calib_windows": 1,
            "text": "t",
            "text_sha256": "ab" * 32,
            "model_sha256": "cd" * 32,
            "realized_density": {"mean": 0.48, "param_weighted": 0.47},
            "timings_s": {"ppl": 1.0, "total": 2.0},
        }

    recs = {
        f"m|{p}|{c}|{mi}": rec(p, c, mi, v)
        for p, c, mi, v in [
            ("dense", "none", "none", 10.0),
            ("2:4", "magnitude", "var", 31.5),
            ("8:16", "amber", "none", 22.25),
            ("teal0.5", "magnitude", "none", 17.0),
        ]
    }
    md = tables(recs)
    assert "**Dense perplexity 10.000.**" in md
    assert "| 2:4 | – | 31.50 | – |" in md
    assert "| amber | – | – | – | 22.25 | 0.500 | 0.25 |" in md
    assert "| teal0.5 | 17.00 | 0.500 | 0.25 | 0.520 | 0.530 | all 0.50 |" in md


def test_cli_module_and_spec_import_no_torch_and_simulator_never_imports_accuracy():
    import subprocess
    import sys

    code = (
        "import sys; import accelsim.cli.eval, accelsim.accuracy.spec, accelsim.accuracy.report, accelsim.accuracy; "
        "import accelsim.sim.run, accelsim.cli; "
        "assert 'torch' not in sys.modules, 'torch'; "
        "assert not any(m.startswith('accelsim.accuracy.') and m.split('.')[-1] not in ('spec', 'report') "
        "for m in sys.modules), sorted(sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_cli_model_that_is_not_a_causal_lm_exits_2(app, tmp_path):
    """A Hugging Face directory holding a non-causal model (BERT config) and a .gguf file of junk bytes."""
    from typer.testing import CliRunner

    bert = tmp_path / "bert"
    transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    ).save_pretrained(bert)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    for model in (bert, junk):
        res = CliRunner().invoke(app, ["eval", "--model", str(model), "--out", str(tmp_path / "o.json")])
        assert res.exit_code == 2, res.output
        err = res.stderr.strip()
        assert err.startswith("error:") and str(model) in err and "cannot load model" in err and "\n" not in err
        assert not (tmp_path / "o.json").exists()


def test_cli_too_few_tokens_for_the_windows_names_the_option(app, tiny, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import accelsim.hf

    model, _ = tiny

    class Tok:
        def __call__(self, text, **kw):
            return {"input_ids": [len(w) % 100 for w in text.split()]}

    lm = accelsim.hf.LoadedModel(model=model, tokenizer=Tok(), name="tiny", source="/x/tiny", sha256="0")
    monkeypatch.setattr(accelsim.hf, "load_model", lambda *a, **k: lm)
    monkeypatch.setattr(accelsim.hf, "resolve_model", lambda *a, **k: (tmp_path, None))
    text = tmp_path / "short.txt"
    text.write_text("word " * 300)
    res = CliRunner().invoke(app, ["eval", "--text", str(text), "--windows", "2", "--out", str(tmp_path / "o.json")])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error:") and "--windows <= 0" in err and "\n" not in err
    assert not (tmp_path / "o.json").exists()


# ------------------------------------------------------------------------------------ WINA and LaRoSA
def test_wina_is_the_weight_aware_gate():
    assert parse_criterion("wina") == parse_criterion("WINA") == "weight-aware"


def test_larosa_rotations_are_orthogonal_shared_and_the_linear_runs_on_the_rotated_mask(tiny):
    from accelsim.accuracy.rotation import collect_rotations, install_rotations

    model, ids = tiny
    sp = Sparsifier(model, RunSpec(parse_pattern("4:8"), "larosa", "none"))
    rot = collect_rotations(model, sp.sites, ids[:3])
    assert rot["tokens"] == 3 * ids.shape[1]
    by = {(s.layer, s.kind): rot["rotations"][s.name] for s in sp.sites}
    for layer in (0, 1):
        assert by[(layer, "q")] is by[(layer, "k")] is by[(layer, "v")]
        assert by[(layer, "gate")] is by[(layer, "up")] and by[(layer, "gate")] is not by[(layer, "q")]
    for q in rot["rotations"].values():
        torch.testing.assert_close(q.T @ q, torch.eye(q.shape[0]), atol=1e-5, rtol=0)
    install_rotations(sp.sites, rot["rotations"])
    seen, handles = _record_io(sp.sites)
    try:
        with sp, torch.no_grad():
            model(input_ids=ids[:2])
    finally:
        for h in handles:
            h.remove()
    for s in sp.sites:
        x, y = seen[s.name][0]
        w, q = s.module.weight.detach(), s.rotation
        torch.testing.assert_close(F.linear(x @ q, w @ q), F.linear(x, w), rtol=1e-4, atol=1e-5)  # Q Q^T = I
        xr = x @ q
        keep = torch.from_numpy(nm.nm_mask(xr.abs().reshape(-1, x.shape[-1]).double().numpy(), 4, 8)).reshape(x.shape)
        torch.testing.assert_close(y, F.linear(xr * keep, w @ q), rtol=1e-4, atol=1e-5)
    # the first principal direction carries the largest second moment of the calibration inputs
    s0 = sp.sites[0]
    calib_x = []
    h = s0.module.register_forward_pre_hook(lambda m, a: calib_x.append(a[0].detach().reshape(-1, a[0].shape[-1])))
    with torch.no_grad():
        for w in range(3):
            model(input_ids=ids[w : w + 1])
    h.remove()
    energy = (torch.cat(calib_x) @ s0.rotation).pow(2).sum(0)
    assert torch.all(energy[:-1] >= energy[1:] - 1e-5 * energy[0])  # (rank-deficient tail: rounding noise)


def test_uncalibrated_larosa_is_an_error(tiny):
    model, ids = tiny
    with pytest.raises(RuntimeError, match="LaRoSA rotation is not calibrated"):
        with Sparsifier(model, RunSpec(parse_pattern("2:4"), "larosa")), torch.no_grad():
            model(input_ids=ids[:1])


# ---------------------------------------------------------------------------------- the compiled kernel
@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 4), (8, 16), (16, 32), (3, 7), (24, 32), (5, 100)])
def test_nm_apply_is_x_times_the_numpy_rules_mask(n, m):
    rng = np.random.default_rng(n * 100 + m)
    for levels in (3, 0):  # few levels: ties decide most groups; 0: continuous data
        x = rng.integers(-levels, levels + 1, size=(2, 17, 100)) if levels else rng.standard_normal((2, 17, 100))
        x = torch.from_numpy(x.astype(np.float32))
        keep = torch.from_numpy(nm.nm_mask(x.abs().reshape(-1, 100).double().numpy(), n, m)).reshape(x.shape)
        xs, kept = masks.nm_apply(x, n, m)
        assert torch.equal(xs, x * keep) and kept == int(keep.sum())
        sc = x.abs() * torch.linspace(0.5, 2.0, 100)  # separate scores (a static factor)
        keep = torch.from_numpy(nm.nm_mask(sc.reshape(-1, 100).double().numpy(), n, m)).reshape(x.shape)
        xs, kept = masks.nm_apply(x, n, m, sc)
        assert torch.equal(xs, x * keep) and kept == int(keep.sum())


def test_nm_apply_keeps_the_gradient_path_and_rejects_nan():
    x = torch.randn(3, 16, requires_grad=True)
    xs, _ = masks.nm_apply(x, 2, 4)
    xs.sum().backward()
    assert torch.equal(x.grad, masks.nm_mask(x.detach().abs(), 2, 4).float())
    bad = torch.randn(2, 8)
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        masks.nm_apply(bad, 2, 4)
    with pytest.raises(ValueError, match="NaN"):
        masks.nm_mask(bad, 2, 4)


def test_larosa_interleave_deals_the_principal_directions_over_the_groups():
    from accelsim.accuracy.rotation import interleave

    perm = interleave(8, 4)  # 2 groups of 4: ranks 0, 2, 4, 6 and 1, 3, 5, 7
    assert perm.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert sorted(interleave(576, 16).tolist()) == list(range(576))
    assert set(interleave(576, 16)[:16].tolist()) == {36 * j for j in range(16)}  # one of each tier of 36
    assert interleave(576, None) is None and interleave(576, 576) is None and interleave(100, 8) is None
