"""The PyTorch tracer.

Fast tests: hook mechanics on tiny ``nn.Module`` stacks (sharing by storage identity, steps, errors) and the
CLI's error paths. Slow tests (``-m slow``): the real SmolLM2-135M through the ``smollm2`` session fixture.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim.trace.format import Site, Trace, TraceData, file_sha256, write_trace

REPO = Path(__file__).resolve().parents[1]
PREFILL = REPO / "traces" / "smollm2-135m_prefill32.npz"
DECODE = REPO / "traces" / "smollm2-135m_decode16.npz"

torch = pytest.importorskip("torch")
nn = torch.nn


# --------------------------------------------------------------------------------------------------------
# tiny modules for the hook mechanics
# --------------------------------------------------------------------------------------------------------
class ToyBlock(nn.Module):
    """Llama-like wiring: q/k/v read one tensor, gate/up another; o and down their own."""

    def __init__(self, d: int = 8, f: int = 12):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, 4), nn.Linear(d, 4)
        self.o_proj = nn.Linear(4, d)
        self.gate_proj, self.up_proj = nn.Linear(d, f), nn.Linear(d, f)
        self.down_proj = nn.Linear(f, d)

    def forward(self, x):
        h = torch.tanh(x)
        a = self.q_proj(h)[..., :4] * self.k_proj(h) + self.v_proj(h)
        x = x + self.o_proj(a)
        h = torch.sigmoid(x)
        return x + self.down_proj(torch.relu(self.gate_proj(h)) * self.up_proj(h))


class ToyModel(nn.Module):
    def __init__(self, layers: int = 3, d: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(ToyBlock(d) for _ in range(layers))
        self.lm_head = nn.Linear(d, 5)  # outside the decoder layers: never traced

    def forward(self, x):
        for block in self.layers:
            x = block(x)
        return self.lm_head(x)


class CopiesBlock(nn.Module):
    """Two linears fed equal values in distinct temporaries: equal values are not a shared tensor."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 6)

    def forward(self, x):
        return self.a(x * 1.0) + self.b(x * 1.0)


class ViewBlock(nn.Module):
    """Two linears given the same tensor under other names (not q/k/v): shared, found by identity."""

    def __init__(self):
        super().__init__()
        self.left, self.right, self.third = nn.Linear(6, 3), nn.Linear(6, 3), nn.Linear(6, 6)

    def forward(self, x):
        y = torch.relu(x)
        z = y
        return self.third(torch.cat([self.left(y), self.right(z)], dim=-1))


def _record(model, xs):
    from accelsim.trace.tracer import LinearInputRecorder, find_decoder_linears

    sites = find_decoder_linears(model)
    seen: dict[str, list[np.ndarray]] = {s.name: [] for s in sites}
    handles = [
        s.module.register_forward_pre_hook(lambda m, a, n=s.name: seen[n].append(a[0].detach().numpy().copy()))
        for s in sites
    ]
    try:
        with LinearInputRecorder(sites) as rec, torch.no_grad():
            for x in xs:
                with rec.step():
                    model(x)
    finally:
        for h in handles:
            h.remove()
    return sites, rec, seen


def test_find_decoder_linears_kinds_and_scope():
    from accelsim.trace.tracer import find_decoder_linears

    sites = find_decoder_linears(ToyModel(layers=2))
    assert [s.kind for s in sites[:7]] == ["q", "k", "v", "o", "gate", "up", "down"]
    assert [s.layer for s in sites] == [0] * 7 + [1] * 7
    assert sites[0].name == "layers.0.q_proj"
    assert all("lm_head" not in s.name for s in sites)


def test_recorder_groups_shared_inputs_and_stores_float16_copies():
    model = ToyModel(layers=3)
    x = torch.randn(1, 5, 8)
    sites, rec, seen = _record(model, [x])
    kinds = [[sites[i].kind for i in g] for g in rec.groups]
    assert kinds == [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]] * 3
    arrays = rec.inputs()
    for g, arr in zip(rec.groups, arrays, strict=True):
        assert arr.dtype == np.float16 and arr.shape[0] == 5
        for i in g:  # every member's real input, rounded to float16, is the stored array
            np.testing.assert_array_equal(arr, seen[sites[i].name][0].reshape(5, -1).astype(np.float16))
    assert rec.rows_per_step == [5]


def test_equal_values_in_distinct_tensors_are_not_shared_and_identity_is():
    m1 = nn.Module()
    m1.layers = nn.ModuleList([CopiesBlock(), CopiesBlock()])
    m1.forward = lambda x: [blk(x) for blk in m1.layers]
    _, rec, _ = _record(m1, [torch.randn(3, 6)])
    assert [len(g) for g in rec.groups] == [1, 1, 1, 1]

    m2 = nn.Module()
    m2.layers = nn.ModuleList([ViewBlock()])
    m2.forward = lambda x: m2.layers[0](x)
    sites, rec, _ = _record(m2, [torch.randn(3, 6)])
    assert [[sites[i].name.split(".")[-1] for i in g] for g in rec.groups] == [["left", "right"], ["third"]]


def test_steps_stack_rows_and_decode_like_steps_have_one_row_each():
    model = ToyModel(layers=2)
    xs = [torch.randn(1, 1, 8) for _ in range(4)]
    sites, rec, seen = _record(model, xs)
    assert rec.rows_per_step == [1, 1, 1, 1]
    for g, arr in zip(rec.groups, rec.inputs(), strict=True):
        assert arr.shape[0] == 4
        want = np.concatenate([v.reshape(1, -1) for v in seen[sites[g[0]].name]]).astype(np.float16)
        np.testing.assert_array_equal(arr, want)


def test_recorder_errors():
    from accelsim.trace.tracer import LinearInputRecorder, TraceInputError, find_decoder_linears

    plain = nn.Module()
    plain.layers = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    with pytest.raises(TraceInputError, match="no nn.Linear"):
        find_decoder_linears(plain)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4)])

        def forward(self, x):
            return self.layers[0](self.layers[0](x))

    m = Twice()
    with pytest.raises(TraceInputError, match="ran twice"):
        with LinearInputRecorder(find_decoder_linears(m)) as rec, torch.no_grad(), rec.step():
            m(torch.randn(2, 4))

    big = Twice()
    big.forward = lambda x: big.layers[0](x)
    with pytest.raises(TraceInputError, match="outside float16"):
        with LinearInputRecorder(find_decoder_linears(big)) as rec, torch.no_grad(), rec.step():
            big(torch.full((2, 4), 1e6))

    toy = ToyModel(layers=1)
    sites = find_decoder_linears(toy)
    with pytest.raises(TraceInputError, match="did not run"):
        with LinearInputRecorder(sites) as rec, torch.no_grad(), rec.step():
            toy.layers[0].q_proj(torch.randn(2, 8))


def test_hooks_are_removed_after_recording():
    model = ToyModel(layers=1)
    _record(model, [torch.randn(1, 2, 8)])
    assert all(not m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------------------------------------
# CLI error paths (no model loaded)
# --------------------------------------------------------------------------------------------------------
class _ToyTokenizer:
    def __call__(self, text):
        return {"input_ids": [len(w) * 7 % 50 for w in text.split()]}

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


class _ToyLM(nn.Module):
    """HF-like call signature around ToyModel (embedding of ids)."""

    def __init__(self, with_linears: bool = True):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.layers = ToyModel(layers=2).layers if with_linears else nn.ModuleList([nn.ReLU()])

    def forward(self, input_ids, use_cache=False, past_key_values=None):
        x = self.emb(input_ids)
        for blk in self.layers:
            x = blk(x)
        return x


def _patch_loader(monkeypatch, lm_module):
    import accelsim.hf as hf

    loaded = hf.LoadedModel(model=lm_module, tokenizer=_ToyTokenizer(), name="toy", source="/x/toy.gguf", sha256="0")
    monkeypatch.setattr(hf, "resolve_model", lambda name: (Path("/x"), "toy.gguf"))
    monkeypatch.setattr(hf, "load_model", lambda name, dtype="float32": loaded)


def _run_cli(args):
    from typer.testing import CliRunner

    from accelsim.cli import app

    return CliRunner().invoke(app, ["trace", "--no-progress", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phase", "middle"], "--phase"),
        (["--tokens", "0"], "--tokens"),
        (["--layers", "0,1"], "--with-weights"),
        (["--with-weights", "--layers", "one"], "--layers"),
        (["--model", "/no/such/model"], "not found"),
        (["--text", "/no/such/text.txt"], "no such file"),
        (["--stats-from", "x.npz"], "--synthetic"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_no_file(tmp_path, args, message):
    out = tmp_path / "t.npz"
    res = _run_cli([*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_model_without_linears_and_too_few_tokens(tmp_path, monkeypatch):
    text = tmp_path / "words.txt"
    text.write_text("one two three four five six")
    out = tmp_path / "t.npz"
    _patch_loader(monkeypatch, _ToyLM(with_linears=False))
    res = _run_cli(["--text", str(text), "--tokens", "4", "--out", str(out)])
    assert res.exit_code == 2 and "no nn.Linear" in res.output and not out.exists()

    _patch_loader(monkeypatch, _ToyLM())
    res = _run_cli(["--text", str(text), "--tokens", "7", "--out", str(out)])
    assert res.exit_code == 2 and "has 6 tokens" in res.output and not out.exists()
    res = _run_cli(["--text", str(text), "--phase", "decode", "--prompt-tokens", "9", "--out", str(out)])
    assert res.exit_code == 2 and "9-token prompt" in res.output and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["words.txt"]


def test_cli_writes_a_trace_from_a_loaded_model(tmp_path, monkeypatch):
    text = tmp_path / "words.txt"
    text.write_text("one two three four five six")
    out = tmp_path / "t.npz"
    _patch_loader(monkeypatch, _ToyLM())
    res = _run_cli(["--text", str(text), "--tokens", "5", "--out", str(out), "--with-weights", "--layers", "1"])
    assert res.exit_code == 0, res.output
    with Trace(out) as tr:
        assert tr.n_tokens == 5 and not tr.synthetic and len(tr.sites) == 14 and len(tr.input_ids()) == 8
        assert [s.has_weight for s in tr.sites] == [False] * 7 + [True] * 7
        assert tr.meta["text_source"] == str(text) and tr.meta["weight_layers"] == [1]
        assert tr.site_weight(7).shape == (8, 8) and tr.site_bias(7).shape == (8,)


def test_torch_is_not_imported_by_numpy_modules():
    code = (
        "import sys, accelsim.trace.format, accelsim.trace.synthetic, accelsim.trace.stats, "
        "accelsim.trace.tracer, accelsim.cli.trace; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --------------------------------------------------------------------------------------------------------
# the real SmolLM2-135M
# --------------------------------------------------------------------------------------------------------
def _capture_io(model, sites):
    """Pre- and post-hooks of the test itself: each module's own input pointer and output, per call."""
    got: dict[str, dict[str, list]] = {s.name: {"ptr": [], "y": []} for s in sites}
    handles = []
    for s in sites:
        handles.append(s.module.register_forward_pre_hook(lambda m, a, n=s.name: got[n]["ptr"].append(a[0].data_ptr())))
        handles.append(s.module.register_forward_hook(lambda m, a, y, n=s.name: got[n]["y"].append(y.detach().clone())))
    return got, handles


@pytest.fixture(scope="module")
def prefill(smollm2):
    from accelsim.trace.tracer import find_decoder_linears, find_lm_head, trace_model

    sites = find_decoder_linears(smollm2.model) + [find_lm_head(smollm2.model)]
    got, handles = _capture_io(smollm2.model, sites)
    try:
        res = trace_model(smollm2, tokens=32, phase="prefill", weight_layers=(0, 1))
    finally:
        for h in handles:
            h.remove()
    return res, got


@pytest.mark.slow
def test_outputs_recompute_from_recorded_inputs_within_float16_tolerance(smollm2, prefill):
    res, got = prefill
    data = res.data
    modules = dict(smollm2.model.named_modules())
    assert len(data.sites) == 211 and data.sites[-1].kind == "lm_head" and data.sites[-1].name == "lm_head"
    worst = 0.0
    for s in data.sites:
        mod = modules[s.name]
        w = mod.weight.detach().double().numpy()
        b = mod.bias.detach().double().numpy() if mod.bias is not None else 0.0
        x = data.inputs[s.input_id].astype(np.float64)
        y_rec = x @ w.T + b
        y = got[s.name]["y"][0].double().numpy().reshape(y_rec.shape)
        # float16 rounding of x moves each product by <= 2^-11 |x||w|; float32 accumulation adds <= K 2^-24
        bound = (2.0**-11 + s.K * 2.0**-24) * (np.abs(x) @ np.abs(w).T) + 1e-6
        err = np.abs(y_rec - y)
        assert (err <= bound).all(), f"{s.name}: max err {err.max():.3g}"
        worst = max(worst, float((err / bound).max()))
        if s.layer in (0, 1):
            np.testing.assert_array_equal(data.weights[s.index], mod.weight.detach().numpy())
    assert worst > 0.0  # the check compares real numbers


@pytest.mark.slow
def test_token_ids_decode_back_to_the_text(smollm2, prefill):
    from accelsim.hf import read_text

    data = prefill[0].data
    text, sha, label = read_text("pydoc")
    decoded = smollm2.tokenizer.decode(data.token_ids.tolist())
    assert len(data.token_ids) == 32 and len(decoded) > 32
    assert text.startswith(decoded) and data.meta["text"] == decoded
    assert data.meta["text_sha256"] == sha and data.meta["text_source"] == label
    assert data.meta["model_sha256"] == smollm2.sha256 and data.meta["synthetic"] is False


@pytest.mark.slow
def test_shared_inputs_are_really_shared(prefill):
    data, got = prefill[0].data, prefill[1]
    by_input: dict[str, list[Site]] = {}
    for s in data.sites:
        by_input.setdefault(s.input_id, []).append(s)
    assert len(by_input) == 4 * 30 + 1
    assert sorted({tuple(x.kind for x in ss) for ss in by_input.values()}) == [
        ("down",),
        ("gate", "up"),
        ("lm_head",),
        ("o",),
        ("q", "k", "v"),
    ]
    for ss in by_input.values():  # one tensor object fed every member; different inputs are other tensors
        assert len({got[s.name]["ptr"][0] for s in ss}) == 1
    for layer in range(30):
        ptrs = [got[ss[0].name]["ptr"][0] for ss in by_input.values() if ss[0].layer == layer]
        assert len(set(ptrs)) == 4
    arch = data.meta["architecture"]  # the real config, checked against the q/k/v shapes by the tracer
    assert (arch["n_heads"], arch["n_kv_heads"], arch["head_dim"], arch["hidden"]) == (9, 3, 64, 576)
    assert (arch["vocab_size"], arch["tie_word_embeddings"], arch["n_layers"]) == (49152, True, 30)
    assert arch["layer_types"] == ["full_attention"] * 30 and data.meta["lm_head_site"]["tied_to_embedding"]


@pytest.mark.slow
def test_linear_weight_share_and_size_criterion(tmp_path, prefill):
    data = prefill[0].data
    assert data.meta["linear_weight_share"] == pytest.approx(0.7893, abs=1e-4)
    shared = write_trace(tmp_path / "shared.npz", TraceData(data.meta, data.sites, data.inputs, data.token_ids))
    sep_sites = [Site(s.index, s.name, s.layer, s.kind, s.K, s.O, f"s{s.index:03d}") for s in data.sites]
    sep_inputs = {f"s{s.index:03d}": data.inputs[s.input_id] for s in data.sites}
    separate = write_trace(tmp_path / "sep.npz", TraceData(data.meta, sep_sites, sep_inputs, data.token_ids))
    assert shared.stat().st_size <= 0.66 * separate.stat().st_size


@pytest.mark.slow
def test_decode_records_one_token_per_step_matching_a_full_forward(smollm2):
    from accelsim.trace.tracer import find_decoder_linears, trace_model

    sites = find_decoder_linears(smollm2.model)
    rows: list[int] = []
    h = sites[0].module.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[1]))
    try:
        res = trace_model(smollm2, tokens=6, phase="decode", prompt_tokens=10)
    finally:
        h.remove()
    data = res.data
    assert rows == [10] + [1] * 6  # the prompt pass, then one token per step
    assert all(a.shape[0] == 6 for a in data.inputs.values())
    assert len(data.token_ids) == 16 and data.meta["prompt_tokens"] == 10

    # the same tokens in one full forward: greedy choices agree, and row r is position 10 + r
    full = trace_model_on_ids(smollm2, data.token_ids.tolist())
    ids = data.token_ids.tolist()
    for r in range(5):
        assert ids[10 + r + 1] == int(full["logits"][10 + r].argmax())
    assert data.meta["next_token"] == int(full["logits"][15].argmax())
    for s in data.sites:
        a = data.inputs[s.input_id].astype(np.float32)
        b = full["inputs"][s.name][10:16]
        scale = np.abs(b).max() + 1e-3
        assert np.abs(a - b).max() <= 0.02 * scale, s.name


def trace_model_on_ids(lm, ids):
    """Inputs of every site and the logits of one plain full forward over ``ids``."""
    from accelsim.trace.tracer import find_decoder_linears, find_lm_head

    sites = find_decoder_linears(lm.model)
    head = find_lm_head(lm.model)
    sites = sites + ([head] if head is not None else [])
    inputs = {}
    handles = [
        s.module.register_forward_pre_hook(lambda m, a, n=s.name: inputs.__setitem__(n, a[0][0].float().numpy().copy()))
        for s in sites
    ]
    try:
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].numpy()
    finally:
        for h in handles:
            h.remove()
    return {"inputs": inputs, "logits": logits}


@pytest.mark.slow
def test_too_few_tokens_in_the_text(smollm2, tmp_path):
    from accelsim.trace.tracer import TraceInputError, trace_model

    short = tmp_path / "short.txt"
    short.write_text("def f(x):\n    return x\n")
    with pytest.raises(TraceInputError, match="needs 64"):
        trace_model(smollm2, tokens=64, text=str(short))


@pytest.mark.slow
def test_same_input_same_bytes(smollm2, tmp_path):
    from accelsim.trace.tracer import trace_model

    a = write_trace(tmp_path / "a.npz", trace_model(smollm2, tokens=8).data)
    b = write_trace(tmp_path / "b.npz", trace_model(smollm2, tokens=8).data)
    assert file_sha256(a) == file_sha256(b)


@pytest.mark.slow
def test_committed_traces_are_what_the_command_makes(smollm2, prefill):
    for path, phase, rows in ((PREFILL, "prefill", 32), (DECODE, "decode", 16)):
        assert path.stat().st_size < 8_000_000
        with Trace(path) as tr:
            assert tr.phase == phase and tr.n_tokens == rows and not tr.synthetic
            assert tr.meta["model_sha256"] == smollm2.sha256 and len(tr.sites) == 210
            decoded = smollm2.tokenizer.decode(tr.token_ids().tolist())
            assert decoded == (
                tr.meta["text"] if phase == "prefill" else tr.meta["prompt_text"] + tr.meta["generated_text"]
            )
    with Trace(PREFILL) as tr:  # recorded values equal a fresh trace of the same tokens (float16 tolerance)
        fresh = prefill[0].data
        for s in tr.sites:
            a, b = tr.site_input(s).astype(np.float32), fresh.inputs[s.input_id].astype(np.float32)
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3 * (np.abs(b).max() + 1e-3))
