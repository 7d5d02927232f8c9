"""Synthetic traces (numpy only): the test-trace maker, the distribution fit, Llama-2-7B shapes, the stats helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.trace import synthetic as syn
from accelsim.trace.format import Trace, file_sha256, write_trace
from accelsim.trace.stats import GAUSS_Q65_Q25, LAPLACE_Q65_Q25, activation_stats, format_stats

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "traces" / "smollm2-135m_decode16.npz"  # committed, recorded from the real model


@pytest.fixture(scope="module")
def fit():
    return syn.fit_trace(REAL)


# -- make_test_trace ---------------------------------------------------------------------------------------
def test_make_test_trace_shapes_metadata_and_determinism(tmp_path):
    a = syn.make_test_trace(tmp_path / "a.npz")
    b = syn.make_test_trace(tmp_path / "b.npz")
    c = syn.make_test_trace(tmp_path / "c.npz", seed=1)
    assert file_sha256(a) == file_sha256(b) != file_sha256(c)
    with Trace(a) as tr:
        assert tr.synthetic and tr.phase == "prefill" and tr.n_tokens == 16
        assert len(tr.sites) == 14 and len(tr.input_ids()) == 8
        shapes = {s.kind: (s.K, s.O) for s in tr.sites}
        assert shapes == {
            "q": (576, 576),
            "k": (576, 192),
            "v": (576, 192),
            "o": (576, 576),
            "gate": (576, 1536),
            "up": (576, 1536),
            "down": (1536, 576),
        }
        ids = {s.kind: s.input_id for s in tr.sites if s.layer == 1}
        assert ids["q"] == ids["k"] == ids["v"] == "L1.q_k_v" and ids["gate"] == ids["up"] == "L1.gate_up"
    with Trace(syn.make_test_trace(tmp_path / "d.npz", tokens=3, phase="decode", layers=4)) as tr:
        assert tr.phase == "decode" and tr.n_tokens == 3 and max(s.layer for s in tr.sites) == 3


def test_make_test_trace_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="phase"):
        syn.make_test_trace(tmp_path / "x.npz", phase="both")
    with pytest.raises(ValueError, match="tokens"):
        syn.make_test_trace(tmp_path / "x.npz", tokens=0)
    assert not list(tmp_path.iterdir())


# -- distributions -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("beta", "kurtosis"), [(2.0, 3.0), (1.0, 6.0), (0.8, 8.565)]
)  # Gamma(5/b) Gamma(1/b) / Gamma(3/b)^2
def test_gennorm_sampling_and_fit_recover_the_shape(beta, kurtosis):
    rng = np.random.default_rng(0)
    z = syn.sample_gennorm(rng, beta, 400_000).astype(np.float64)
    assert z.mean() == pytest.approx(0.0, abs=0.01)
    assert np.mean(z**4) / np.mean(z**2) ** 2 == pytest.approx(kurtosis, rel=0.06)
    b, a = syn.fit_gennorm(3.0 * z)
    assert b == pytest.approx(beta, abs=0.03) and a == pytest.approx(3.0, rel=0.03)


def test_fit_gennorm_on_numpy_gaussian_and_laplace():
    rng = np.random.default_rng(1)
    assert syn.fit_gennorm(rng.normal(size=200_000))[0] == pytest.approx(2.0, abs=0.04)
    assert syn.fit_gennorm(rng.laplace(size=200_000))[0] == pytest.approx(1.0, abs=0.03)


def test_fit_of_the_real_trace_follows_teal(fit):
    assert fit.layers == 30 and fit.source_model == "smollm2-135m" and fit.source_phase == "decode"
    b = {name: c.beta for name, c in fit.classes.items()}
    # TEAL: Gaussian-like before attention and MLP, heavier (Laplacian-like) before o and down
    assert 1.6 <= b["attn_in"] <= 2.4 and 1.6 <= b["mlp_in"] <= 2.4
    assert b["attn_out"] < b["attn_in"] and b["mlp_mid"] < b["mlp_in"] and b["mlp_mid"] <= 1.2
    for c in fit.classes.values():
        assert len(c.layer_scale) == 30 and all(s > 0 for s in c.layer_scale)
        assert all(r.shape == (16,) for r in c.token_scales)
        assert np.mean(np.concatenate(c.channel_scales)) == pytest.approx(1.0, rel=1e-6)


def test_fit_refuses_synthetic_and_missing_traces(tmp_path):
    with pytest.raises(ValueError, match="synthetic"):
        syn.fit_trace(syn.make_test_trace(tmp_path / "s.npz"))
    with pytest.raises(Exception, match="no such trace file"):
        syn.fit_trace(tmp_path / "none.npz")


# -- Llama-2-7B shapes ---------------------------------------------------------------------------------------
def test_llama2_7b_synthetic_shapes_metadata_and_determinism(tmp_path, fit):
    data = syn.synthesize_data("llama2-7b", fit, tokens=2, phase="decode", seed=0)
    a = write_trace(tmp_path / "a.npz", data)
    b = syn.synthesize(tmp_path / "b.npz", "llama2-7b", REAL, tokens=2, phase="decode", seed=0)
    c = syn.synthesize(tmp_path / "c.npz", "llama2-7b", REAL, tokens=2, phase="decode", seed=1)
    assert file_sha256(a) == file_sha256(b) != file_sha256(c)
    with Trace(a) as tr:
        assert tr.synthetic and tr.phase == "decode" and tr.n_tokens == 2
        assert len(tr.sites) == 32 * 7 + 1 and len(tr.input_ids()) == 32 * 4 + 1
        head = tr.sites[-1]  # lm_head: the final norm's output, sampled like the last layer's gate/up input
        assert (head.kind, head.layer, head.K, head.O, head.name) == ("lm_head", 32, 4096, 32000, "lm_head")
        arch = tr.require_architecture()
        assert tr.n_sequences == 1 and tr.meta["schema_version"] == "accelsim-trace/2"
        assert (arch["n_heads"], arch["n_kv_heads"], arch["head_dim"], arch["vocab_size"]) == (32, 32, 128, 32000)
        assert (arch["n_layers"], arch["hidden"], arch["intermediate"]) == (32, 4096, 11008)
        assert arch["tie_word_embeddings"] is False and arch["lm_head"] == {"K": 4096, "O": 32000}
        assert arch["layer_types"] == ["full_attention"] * 32 and arch["sliding_window"] is None
        shapes = {s.kind: (s.K, s.O) for s in tr.sites if s.kind != "lm_head"}
        assert shapes == {
            "q": (4096, 4096),
            "k": (4096, 4096),
            "v": (4096, 4096),
            "o": (4096, 4096),
            "gate": (4096, 11008),
            "up": (4096, 11008),
            "down": (11008, 4096),
        }
        info = tr.meta["synthetic_info"]
        assert info["stats_from"] == REAL.name and info["stats_from_sha256"] == file_sha256(REAL)
        assert info["seed"] == 0 and set(info["classes"]) == {"attn_in", "attn_out", "mlp_in", "mlp_mid"}
        assert "generalized normal" in info["method"]
        assert tr.meta["model_config"]["num_key_value_heads"] == 32
        assert tr.meta["linear_weight_share"] == pytest.approx(0.961, abs=1e-3)
        for _, x in tr.iter_sites():
            assert x.dtype == np.float16 and np.isfinite(x).all()


def test_inputs_are_generated_lazily_one_at_a_time(fit):
    calls = []
    data = syn.synthesize_data("llama2-7b", fit, tokens=1, layers=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # nothing generated before the writer asks
    first = next(iter(data.inputs.values()))
    assert first.shape == (1, 4096) and first.ndim == 2
    x1, x2 = np.asarray(first), np.asarray(first)
    np.testing.assert_array_equal(x1, x2)  # regenerated from its own seed: same values
    assert x1.dtype == np.float16 and len(calls) == 2 and calls[0] == (1, 9)  # 2 layers x 4 inputs + lm_head


def test_synthetic_values_match_the_real_statistics(tmp_path, fit):
    """Sampled at SmolLM2's own shapes, the synthetic trace reproduces the real one's bulk statistics."""
    path = write_trace(tmp_path / "s.npz", syn.synthesize_data("smollm2-135m", fit, tokens=16, phase="decode"))
    real = activation_stats(REAL, nm="8:16").set_index("kind")
    fake = activation_stats(path, nm="8:16").set_index("kind")
    for kind in ("q", "o", "gate", "down"):
        assert fake.loc[kind, "median_abs"] == pytest.approx(real.loc[kind, "median_abs"], rel=0.15)
        assert fake.loc[kind, "q65_q25"] == pytest.approx(real.loc[kind, "q65_q25"], rel=0.15)
        assert fake.loc[kind, "kept_l2_8_16"] == pytest.approx(real.loc[kind, "kept_l2_8_16"], abs=0.05)
        assert abs(fake.loc[kind, "near_zero_share"] - real.loc[kind, "near_zero_share"]) < 0.01


def test_synthetic_batch_of_sequences(tmp_path, fit):
    """``sequences=B``: a v2 decode trace of B sequences (B rows per step) that the serving layer can batch;
    with B = 1 it is the one-sequence trace byte for byte."""
    one = syn.synthesize(tmp_path / "one.npz", "smollm2-135m", REAL, tokens=1, phase="decode", layers=1)
    same = syn.synthesize(tmp_path / "same.npz", "smollm2-135m", REAL, tokens=1, phase="decode", layers=1, sequences=1)
    assert file_sha256(one) == file_sha256(same)
    four = syn.synthesize(tmp_path / "b4.npz", "smollm2-135m", REAL, tokens=2, phase="decode", layers=1, sequences=4)
    with Trace(four) as tr:
        assert tr.n_sequences == 4 and tr.meta["tokens"] == 2 and tr.n_tokens == 8
        assert tr.token_ids().shape == (4, 2) and tr.sequence_token_ids().shape == (4, 2)
        x = tr.site_input(tr.sites[0])
        assert x.shape == (8, tr.sites[0].K) and len(np.unique(x, axis=0)) == 8  # every row drawn on its own
    with pytest.raises(ValueError, match="sequences"):
        syn.synthesize_data("llama2-7b", fit, tokens=1, sequences=0)


def test_synthesize_rejects_bad_arguments(fit):
    with pytest.raises(ValueError, match="unknown model shape"):
        syn.synthesize_data("gpt-5", fit, tokens=1)
    with pytest.raises(ValueError, match="phase"):
        syn.synthesize_data("llama2-7b", fit, tokens=1, phase="train")
    with pytest.raises(ValueError, match="tokens"):
        syn.synthesize_data("llama2-7b", fit, tokens=0)


def test_shape_parameter_counts():
    share, linear, total = syn.SHAPES["smollm2-135m"].linear_weight_share()
    assert total == 134_515_008 and linear == 106_168_320  # the loaded model's own counts
    share, linear, total = syn.SHAPES["llama2-7b"].linear_weight_share()
    assert total == 6_738_415_616  # Llama-2-7B's published parameter count


# -- the CLI -------------------------------------------------------------------------------------------------
def _run(args):
    from typer.testing import CliRunner

    from accelsim.cli import app

    return CliRunner().invoke(app, ["trace", "--no-progress", *args])


def test_cli_synthetic(tmp_path):
    out = tmp_path / "l.npz"
    res = _run(["--synthetic", "llama2-7b", "--stats-from", str(REAL), "--tokens", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "synthetic: true" in res.output
    with Trace(out) as tr:
        assert tr.synthetic and tr.n_tokens == 1 and tr.sites[0].K == 4096


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--synthetic", "llama2-7b"], "--stats-from"),
        (["--synthetic", "gpt-9", "--stats-from", str(REAL)], "known shapes"),
        (["--synthetic", "llama2-7b", "--stats-from", "/no/such.npz"], "no such trace file"),
        (["--synthetic", "llama2-7b", "--stats-from", str(REAL), "--with-weights"], "no weights"),
    ],
)
def test_cli_synthetic_errors(tmp_path, args, message):
    out = tmp_path / "x.npz"
    res = _run([*args, "--out", str(out)])
    assert res.exit_code == 2 and message in res.output and res.output.startswith("error:")
    assert not list(tmp_path.iterdir())


# -- activation statistics -----------------------------------------------------------------------------------
def test_activation_stats_on_known_distributions(tmp_path):
    path = syn.make_test_trace(tmp_path / "t.npz", tokens=64, layers=3)
    df = activation_stats(path).set_index("kind")
    assert list(df.index) == ["q", "k", "v", "o", "gate", "up", "down"]
    assert (df["sites"] == 3).all()
    for kind in ("q", "gate"):  # standard normal
        assert df.loc[kind, "kurtosis"] == pytest.approx(3.0, rel=0.05)
        assert df.loc[kind, "q65_q25"] == pytest.approx(GAUSS_Q65_Q25, rel=0.04)
        assert df.loc[kind, "near_zero_share"] == pytest.approx(0.0008, abs=0.0006)
    for kind in ("o", "down"):  # standard Laplace
        assert df.loc[kind, "kurtosis"] == pytest.approx(6.0, rel=0.12)
        assert df.loc[kind, "q65_q25"] == pytest.approx(LAPLACE_Q65_Q25, rel=0.04)
    assert df.loc["down", "values"] == 3 * 64 * 1536
    by_layer = activation_stats(path, by="layer")
    assert len(by_layer) == 3 * 7 and list(by_layer["layer"][:7]) == [0] * 7
    by_site = activation_stats(path, by="site", nm="2:4")
    assert len(by_site) == 21 and (by_site["union_rows_2_4"] <= 1).all()
    assert (by_site["kept_l2_2_4"] > 0.5).all()
    assert "near_zero_share" in format_stats(df.reset_index())


def test_activation_stats_hand_computed():
    from accelsim.trace.format import Site, TraceData

    x = np.array([[0.0, 2.0, -2.0, 0.0005], [1.0, -1.0, 0.0, 3.0]], dtype=np.float16)
    data = TraceData(meta={}, sites=[Site(0, "a", 0, "o", 4, 2, "i")], inputs={"i": x}, token_ids=np.zeros(2))
    row = activation_stats(data, nm="2:4").iloc[0]
    v = x.astype(np.float64).ravel()
    assert row["near_zero_share"] == pytest.approx(3 / 8)  # 0, 0.0005, 0
    assert row["kurtosis"] == pytest.approx(np.mean((v - v.mean()) ** 4) / np.var(v) ** 2)
    assert row["max_abs"] == 3.0
    # row 0 keeps the two 2s (all but 0.0005^2); row 1 keeps 3 and, on the tie of |1|, channel 0: 10 of 11
    assert row["kept_l2_2_4"] == pytest.approx((8 / (8 + float(np.float16(0.0005)) ** 2) + 10 / 11) / 2)
    assert row["union_rows_2_4"] == 1.0  # rows keep channels {1, 2} and {0, 3}: all four
