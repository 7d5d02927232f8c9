"""Batch traces: sequences from text windows or a prompt file, the [B, T] row layout, decode with B tokens per
step, the reader's batch API, the CLI's errors, and the union of N:M masks over a batch on the committed
SmolLM2 batch trace (checked against a direct row-by-row numpy computation)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from accelsim.nm import nm_mask
from accelsim.trace.batch import BatchInputError, prompt_sequences, read_prompts, text_windows
from accelsim.trace.format import Trace, TraceError
from accelsim.trace.stats import batch_union_density

REPO = Path(__file__).resolve().parents[1]
BATCH4 = REPO / "traces" / "smollm2-135m_decode8_b4.npz"


# -- sequences -------------------------------------------------------------------------------------------
def test_text_windows_offsets_specials_and_stride():
    ids = [2] + list(range(100, 160))  # a tokenizer that adds <bos> = 2
    s = text_windows(ids, [2], batch=3, length=5, offset=1, stride=None, text_label="t")
    assert s.offsets == [1, 5, 9] and s.stride == 4
    assert s.ids == [[2, 101, 102, 103, 104], [2, 105, 106, 107, 108], [2, 109, 110, 111, 112]]
    s = text_windows(list(range(10)), [], batch=2, length=3, offset=0, stride=7, text_label="t")
    assert s.ids == [[0, 1, 2], [7, 8, 9]]
    one = text_windows([2, 5, 6, 7], [2], batch=1, length=3, offset=0, stride=None, text_label="t")
    assert one.ids == [[2, 5, 6]]  # batch 1 at offset 0 is the start of the tokenized text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch": 0}, "--batch 0: must be >= 1"),
        ({"batch": -2}, "--batch -2: must be >= 1"),
        ({"batch": 4}, "--batch 4: text 't' has 10 tokens; 4 windows of 3 tokens from offset 0, stride 3 need 12 "
                       "(at most 3 fit)"),
        ({"batch": 2, "stride": 0}, "--stride 0"),
    ],
)  # fmt: skip
def test_text_windows_errors_name_the_option(kw, message):
    args = {"batch": 1, "length": 3, "offset": 0, "stride": None, "text_label": "t"} | kw
    with pytest.raises(BatchInputError) as exc:
        text_windows(list(range(10)), [], **args)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_prompt_file_sequences_and_errors(tmp_path):
    def tok(text):
        return [1] + [len(w) for w in text.split()]  # a <bos> and one token per word

    f = tmp_path / "p.txt"
    f.write_text("one two three four\n\n  \nfive six seven eight nine\nshort\n")
    assert read_prompts(f) == ["one two three four", "five six seven eight nine", "short"]
    s = prompt_sequences(f, tok, batch=2, length=4)
    assert s.ids == [[1, 3, 3, 5], [1, 4, 3, 5]] and s.offsets == [1, 4] and s.specials == [1]
    with pytest.raises(BatchInputError, match="prompt on line 5 has 2 tokens; every sequence needs 4"):
        prompt_sequences(f, tok, batch=None, length=4)
    with pytest.raises(BatchInputError, match="--batch 4: --prompt-file .* holds only 3 prompt"):
        prompt_sequences(f, tok, batch=4, length=2)
    with pytest.raises(BatchInputError, match="no such file"):
        read_prompts(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(BatchInputError, match="holds no prompt"):
        read_prompts(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(BatchInputError, match="not UTF-8"):
        read_prompts(tmp_path / "bin.txt")


# -- the tracer on a toy model: row layout and per-sequence decode ------------------------------------------
torch = pytest.importorskip("torch")
nn = torch.nn


class _WordTokenizer:
    def __call__(self, text):
        return {"input_ids": [len(w) * 7 % 50 for w in text.split()]}

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


class _ToyDecoder(nn.Module):
    """An HF-like causal LM: embedding, two Llama-wired blocks, a final norm and an lm_head; ``.logits``.

    The toy has no attention, so a step's output depends on its own token only (enough for the row layout)."""

    def __init__(self):
        super().__init__()
        from tests.test_tracer import ToyModel

        torch.manual_seed(1)
        self.emb = nn.Embedding(50, 8)
        self.layers = ToyModel(layers=2).layers
        self.norm = nn.LayerNorm(8)
        self.lm_head = nn.Linear(8, 50, bias=False)
        self.seen: list[torch.Tensor] = []  # the token ids of every call

    def get_output_embeddings(self):
        return self.lm_head

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids, use_cache=False, past_key_values=None):
        self.seen.append(input_ids.clone())
        x = self.emb(input_ids)
        for blk in self.layers:
            x = blk(x)
        return SimpleNamespace(logits=self.lm_head(self.norm(x)), past_key_values=None)


def _toy_lm():
    import accelsim.hf as hf

    return hf.LoadedModel(model=_ToyDecoder(), tokenizer=_WordTokenizer(), name="toy", source="/x/t.gguf", sha256="0")


def _words(tmp_path, n=40):
    f = tmp_path / "words.txt"
    f.write_text(" ".join("w" * (1 + i % 6) for i in range(n)))
    return f


def test_batch_decode_rows_are_step_major_and_each_sequence_decodes_itself(tmp_path):
    from accelsim.trace.tracer import trace_model

    lm = _toy_lm()
    res = trace_model(lm, phase="decode", tokens=3, prompt_tokens=4, batch=3, text=str(_words(tmp_path)))
    data, model = res.data, lm.model
    assert [tuple(t.shape) for t in model.seen] == [(3, 4), (3, 1), (3, 1), (3, 1)]
    ids = data.token_ids
    assert ids.shape == (3, 7) and data.meta["sequences"] == 3 and data.meta["sequence_offsets"] == [0, 4, 8]
    for r in range(3):  # step r fed token_ids[:, 4 + r], chosen by each sequence's own last logits
        assert model.seen[r + 1][:, 0].tolist() == ids[:, 4 + r].tolist()
    head = data.sites[-1]
    assert head.kind == "lm_head" and head.layer == 2 and (head.K, head.O) == (8, 50)
    emb = model.emb.weight.detach()
    for r in range(3):
        for b in range(3):  # row r*B + b of the first input is the embedding of sequence b's step-r token
            x0 = torch.tanh(emb[ids[b, 4 + r]]).numpy().astype(np.float16)
            np.testing.assert_array_equal(data.inputs["L0.q_k_v"][r * 3 + b], x0)
    greedy = model.lm_head(model.norm(model.layers[1](model.layers[0](model.emb(torch.tensor(ids[:, 6]))))))
    assert data.meta["next_token"] == greedy.argmax(-1).tolist()


def test_batch_prefill_rows_are_sequence_major(tmp_path):
    from accelsim.trace.tracer import trace_model

    lm = _toy_lm()
    data = trace_model(lm, tokens=5, batch=2, stride=3, offset=1, text=str(_words(tmp_path))).data
    assert data.token_ids.shape == (2, 5) and data.meta["sequence_offsets"] == [1, 4]
    emb = lm.model.emb.weight.detach()
    x = data.inputs["L0.q_k_v"]
    assert x.shape == (10, 8)
    for b in range(2):
        for t in range(5):
            np.testing.assert_array_equal(
                x[b * 5 + t], torch.tanh(emb[data.token_ids[b, t]]).numpy().astype(np.float16)
            )


def _run_cli(args):
    from typer.testing import CliRunner

    from accelsim.cli import app

    return CliRunner().invoke(app, ["trace", "--no-progress", *args])


def _patch(monkeypatch):
    import accelsim.hf as hf

    lm = _toy_lm()
    monkeypatch.setattr(hf, "resolve_model", lambda name: (Path("/x"), "t.gguf"))
    monkeypatch.setattr(hf, "load_model", lambda name, dtype="float32": lm)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch 0: must be >= 1"),
        (["--batch", "-3"], "--batch -3: must be >= 1"),
        (["--batch", "100"], "--batch 100: text"),
        (["--prompt-file", "NOFILE"], "--prompt-file"),
        (["--prompt-file", "EMPTY"], "holds no prompt"),
        (["--prompt-file", "SHORT"], "every sequence needs 32"),
        (["--prompt-file", "SHORT", "--batch", "5"], "holds only 1 prompt"),
        (["--prompt-file", "SHORT", "--stride", "4"], "--stride"),
        (["--synthetic", "llama2-7b", "--batch", "2"], "--batch"),
    ],
)
def test_cli_bad_batch_or_prompt_file_exits_2_one_line_no_file(tmp_path, monkeypatch, args, message):
    _patch(monkeypatch)
    words = _words(tmp_path)
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "short.txt").write_text("a b c\n")
    paths = {
        "NOFILE": str(tmp_path / "none.txt"),
        "EMPTY": str(tmp_path / "empty.txt"),
        "SHORT": str(tmp_path / "short.txt"),
    }
    args = [paths.get(a, a) for a in args]
    if "--prompt-file" not in args and "--synthetic" not in args:
        args += ["--text", str(words)]
    out = tmp_path / "out.npz"
    before = sorted(p.name for p in tmp_path.iterdir())
    res = _run_cli([*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_prompt_file_batch_trace(tmp_path, monkeypatch):
    _patch(monkeypatch)
    f = tmp_path / "prompts.txt"
    f.write_text("a bb ccc dddd\neeeee f gg hhh\nii jjj kkkk l\n")
    out = tmp_path / "t.npz"
    res = _run_cli(["--prompt-file", str(f), "--tokens", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with Trace(out) as tr:
        assert tr.n_sequences == 3 and tr.n_tokens == 12 and tr.meta["sequence_source"] == "prompt file"
        assert tr.sequence_token_ids().tolist() == [[7, 14, 21, 28], [35, 7, 14, 21], [14, 21, 28, 7]]
        assert tr.meta["text_source"] == str(f) and tr.meta["sequence_offsets"] == [1, 2, 3]
        assert tr.require_sequences(3) == 3
        with pytest.raises(TraceError) as exc:
            tr.require_sequences(4)
        msg = str(exc.value)
        assert "key 'sequences' is 3" in msg and "batch 4" in msg and str(out) in msg and "\n" not in msg


# -- the union of masks over a batch on the committed real trace ------------------------------------------
def test_union_over_batch_matches_a_direct_numpy_computation():
    with Trace(BATCH4) as tr:
        assert tr.n_sequences == 4 and tr.phase == "decode" and not tr.synthetic
        steps = tr.n_tokens // 4
        got = batch_union_density(tr, nm="8:16", batches=(1, 2, 3, 4)).set_index("kind")
        want: dict[str, list[list[float]]] = {}
        for s in tr.sites:
            x = tr.site_input(s)
            per_b = []
            for b in (1, 2, 3, 4):
                dens = []
                for r in range(steps):  # step r of sequences 0..b-1: rows r*4 .. r*4 + b - 1, one mask per row
                    union = np.zeros(s.K, dtype=bool)
                    for j in range(b):
                        union |= nm_mask(np.abs(x[r * 4 + j]), 8, 16)
                    dens.append(union.sum() / s.K)
                per_b.append(float(np.mean(dens)))
            want.setdefault(s.kind, []).append(per_b)
    for kind, rows in want.items():
        mean = np.mean(np.asarray(rows), axis=0)
        np.testing.assert_allclose(got.loc[kind, [f"union_density_b{b}" for b in (1, 2, 3, 4)]], mean, rtol=1e-12)
        assert mean[0] == 0.5  # one token keeps exactly 8 of every 16 channels
        assert all(np.diff(mean) > 0.03)  # and the union grows with the batch
    with pytest.raises(TraceError, match="key 'sequences' is 4"):
        batch_union_density(BATCH4, batches=(8,))


# -- the real SmolLM2-135M (slow) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol_batch4(smollm2):
    from accelsim.trace.tracer import trace_model

    return trace_model(smollm2, phase="decode", tokens=8, batch=4).data


@pytest.mark.slow
def test_each_sequence_of_a_real_batch_decodes_as_it_would_alone(smollm2, smol_batch4):
    from accelsim.trace.tracer import trace_model

    data = smol_batch4
    assert data.meta["sequence_offsets"] == [0, 32, 64, 96] and data.token_ids.shape == (4, 40)
    for b in (1, 3):  # the window of sequence b traced alone (batch 1 at offset 32 b)
        alone = trace_model(smollm2, phase="decode", tokens=8, offset=32 * b).data
        assert alone.token_ids.tolist() == data.token_ids[b].tolist()  # same greedy tokens
        for s in data.sites:
            a = data.inputs[s.input_id].astype(np.float32)[b::4]  # rows r*4 + b
            ref = alone.inputs[s.input_id].astype(np.float32)
            assert np.abs(a - ref).max() <= 0.02 * (np.abs(ref).max() + 1e-3), s.name


@pytest.mark.slow
def test_committed_smollm2_batch_trace_is_what_the_command_makes(smollm2, smol_batch4):
    assert BATCH4.stat().st_size < 8_000_000
    with Trace(BATCH4) as tr:
        assert tr.meta["model_sha256"] == smollm2.sha256 and tr.n_sequences == 4 and tr.n_tokens == 32
        assert len(tr.sites) == 211 and tr.sites[-1].kind == "lm_head"
        assert tr.sequence_token_ids().tolist() == smol_batch4.token_ids.tolist()
        for b in range(4):
            ids = tr.sequence_token_ids()[b].tolist()
            assert smollm2.tokenizer.decode(ids) == tr.meta["prompt_text"][b] + tr.meta["generated_text"][b]
        for s in tr.sites:
            a, ref = tr.site_input(s).astype(np.float32), smol_batch4.inputs[s.input_id].astype(np.float32)
            np.testing.assert_allclose(a, ref, rtol=2e-3, atol=1e-3 * (np.abs(ref).max() + 1e-3))


@pytest.mark.slow
def test_lm_head_logits_recompute_from_the_recorded_input(smollm2):
    from accelsim.trace.tracer import trace_model

    logits = []
    h = smollm2.model.lm_head.register_forward_hook(lambda m, a, y: logits.append(y.detach().double().numpy()))
    try:
        data = trace_model(smollm2, tokens=8, batch=2).data
    finally:
        h.remove()
    head = data.sites[-1]
    x = data.inputs[head.input_id].astype(np.float64)  # [B*T, hidden], row b*T + t
    w = smollm2.model.lm_head.weight.detach().double().numpy()
    assert w is not None and smollm2.model.lm_head.weight is smollm2.model.model.embed_tokens.weight  # tied
    y = logits[0].reshape(16, -1)
    bound = (2.0**-11 + head.K * 2.0**-24) * (np.abs(x) @ np.abs(w).T) + 1e-6
    assert (np.abs(x @ w.T - y) <= bound).all()


def test_committed_batch_trace_rows_and_token_ids_match_the_header_helpers():
    """The header-only helpers a reader uses (``expected_rows``, ``check_token_ids_shape``) agree with the data."""
    from accelsim.trace import serving_meta

    with Trace(BATCH4) as tr:
        assert serving_meta.expected_rows(tr.meta) == tr.n_tokens == tr.meta["tokens"] * 4
        serving_meta.check_token_ids_shape(tr.meta, tr.token_ids().shape, str(BATCH4))
        with pytest.raises(TraceError, match=r"key 'sequences' 4 needs \[4, L\]"):
            serving_meta.check_token_ids_shape(tr.meta, tr.token_ids().reshape(-1).shape, str(BATCH4))
    assert serving_meta.expected_rows({"tokens": 8}) == 8 and serving_meta.expected_rows({}) is None
