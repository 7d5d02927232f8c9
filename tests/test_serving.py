"""Serving scenarios: the scenario file, the metrics, attention and the KV cache, bad input through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config import load_hw
from accelsim.serving import Scenario, ScenarioError, load_scenario, serve
from accelsim.serving.attention import attention_hw, attention_shapes, simulate_attention
from accelsim.serving.metrics import Server
from accelsim.serving.view import DecodeBatchView
from accelsim.sim.run import simulate
from accelsim.trace.format import Trace
from accelsim.trace.synthetic import SHAPES

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hw_configs"
SCEN = HW / "scenarios"
DEC32 = ROOT / "traces/smollm2-135m_decode1_b32.npz"
DEC_B4 = ROOT / "traces/smollm2-135m_decode8_b4.npz"
PRE = ROOT / "traces/smollm2-135m_prefill32.npz"
runner = CliRunner()


def _yaml(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text("schema_version: 1\nname: t\n" + text)
    return p


def _one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- the scenario file -------------------------------------------------------------------------------------
def test_shipped_scenarios_load():
    names = sorted(p.name for p in SCEN.glob("*.yaml"))
    assert len(names) >= 3
    modes = {load_scenario(p).mode for p in SCEN.glob("*.yaml")}
    assert modes == {"request", "decode_step"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("batch: 4\ncontext_tokens: 64\nbatchsize: 2\n", "batchsize"),
        ("batch: 4\ncontext_tokens: 64\nprompt_tokens: 8\ngenerated_tokens: 4\n", "context_tokens"),
        ("batch: 4\nprompt_tokens: 8\n", "generated_tokens"),
        ("batch: '4'\ncontext_tokens: 64\n", "batch"),
        ("batch: 4\ncontext_tokens: 64\nweight_datatype: fp8\n", "weight_datatype"),
        ("batch: 4\ncontext_tokens: 64\nweight_group_size: 128\n", "weight_group_size"),
    ],
)
def test_invalid_scenarios_name_the_key(tmp_path, text, key):
    with pytest.raises(ScenarioError) as exc:
        load_scenario(_yaml(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg and "s.yaml" in msg and key in msg


def test_unknown_key_lists_the_allowed_keys(tmp_path):
    with pytest.raises(ScenarioError, match="allowed: schema_version, name, batch"):
        load_scenario(_yaml(tmp_path, "batch: 1\ncontext_tokens: 8\ncontext: 8\n"))


# -- metrics -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hw():
    return load_hw(HW / "nm8_16.yaml")


@pytest.fixture(scope="module")
def dense():
    return load_hw(HW / "dense.yaml")


def test_bf16_scenario_linear_sites_are_todays_simulation(hw):
    """A bf16 scenario at the trace's own batch runs exactly today's decode simulation (per step)."""
    sc = Scenario(name="x", batch=4, context_tokens=40)
    with Trace(DEC_B4) as tr:
        plain = simulate(hw, tr)
        parts = Server(hw, sc, tr).decode_linear()
    steps = 8
    assert sum(p["cycles"] for p in parts.values()) * steps == pytest.approx(plain.totals["cycles"])
    by_kind = {}
    for r in plain.sites:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["dram_weight_bytes"]
    for k, v in by_kind.items():
        assert parts[k]["dram_weight_bytes"] * steps == pytest.approx(v)


def test_decode_batch_view_groups_distinct_sequences():
    with Trace(DEC_B4) as tr:
        view = DecodeBatchView(tr, 2)
        assert view.groups == 16
        site, x = next(view.iter_sites())
        full = tr.site_input(site)
    # step r holds rows r*4 .. r*4+3; groups of 2 keep that order, so the view is the same rows
    assert np.array_equal(x, full)
    with Trace(DEC_B4) as tr:
        _, x3 = next(DecodeBatchView(tr, 3).iter_sites())
        full = tr.site_input(tr.sites[0])
    assert np.array_equal(x3, full.reshape(8, 4, -1)[:, :3].reshape(-1, full.shape[1]))


def test_decode_step_record_is_consistent(hw, dense):
    sc = load_scenario(SCEN / "decode_b1_ctx4k.yaml")
    rec = serve(hw, sc, DEC32, baseline=dense)
    step = rec["decode_step"]
    kinds = set(step["by_kind"])
    assert {"q", "k", "v", "o", "gate", "up", "down", "attention", "lm_head"} <= kinds
    assert sum(v["cycles"] for v in step["by_kind"].values()) == pytest.approx(step["cycles"])
    assert sum(v["share"] for v in step["by_kind"].values()) == pytest.approx(1.0)
    assert rec["tpot_ms"] == pytest.approx(step["cycles"] / hw.clock_hz * 1e3)
    assert rec["tokens_per_s"] == pytest.approx(1 / (rec["tpot_ms"] / 1e3))
    assert rec["uj_per_token"] == pytest.approx(step["energy_pj"] / 1e6)
    assert rec["ttft_ms"] is None
    assert rec["speedup_tpot_vs_dense"] > 1.0  # batch 1: N:M pays on the linear sites
    # SmolLM2 at 4096 context: 2 * 30 layers * 3 KV heads * 64 * 4096 * 2 bytes
    assert rec["kv_cache_read_bytes_per_step"] == 2 * 30 * 3 * 64 * 4096 * 2


def test_request_record(hw, dense):
    sc = load_scenario(SCEN / "chat_b8.yaml")
    rec = serve(hw, sc, DEC32, prefill_trace=PRE, baseline=dense)
    pre, step = rec["prefill"], rec["decode_step"]
    assert rec["ttft_ms"] == pytest.approx(pre["cycles"] / hw.clock_hz * 1e3)
    assert rec["ttft_last_ms"] == pytest.approx(8 * rec["ttft_ms"])
    total_s = (8 * pre["cycles"] + 128 * step["cycles"]) / hw.clock_hz
    assert rec["tokens_per_s"] == pytest.approx(8 * 128 / total_s)
    assert rec["uj_per_token"] == pytest.approx((8 * pre["energy_pj"] + 128 * step["energy_pj"]) / (8 * 128) / 1e6)
    assert 0 < rec["prefill_time_share"] < 1
    assert rec["decode_context_tokens"] == 256 + 64
    # prefill is compute bound: N:M shortens it more than the batch-8 decode step
    assert rec["speedup_ttft_vs_dense"] > rec["speedup_tpot_vs_dense"]


def test_speedup_falls_with_batch_until_compute_bound(hw, dense):
    """While the step is DRAM bound the decode speedup falls with the batch (the union of kept rows grows);
    past the machine balance (16 tokens of bf16 weights per byte) dense turns compute bound and N:M pays again."""
    speed = {}
    with Trace(DEC32) as tr:
        for b in (1, 2, 4, 8, 32):
            sc = Scenario(name="b", batch=b, context_tokens=64)
            speed[b] = Server(dense, sc, tr).run()["tpot_ms"] / Server(hw, sc, tr).run()["tpot_ms"]
    assert speed[1] > speed[2] > speed[4]
    assert speed[1] > 1.5 and speed[4] < 1.15 and speed[8] < 1.1
    assert speed[32] > 1.3


# -- attention and the KV cache on the 7B shapes --------------------------------------------------------------
def test_kv_bytes_closed_form_7b_4k(hw):
    arch = SHAPES["llama2-7b"].architecture()
    hw_att = attention_hw(hw, 2, 2)
    parts = simulate_attention(hw_att, attention_shapes(arch, batch=1, past=4095, queries=1))
    kv = parts["attn_qk"]["dram_weight_bytes"] + parts["attn_pv"]["dram_weight_bytes"]
    assert kv == 2 * 32 * 32 * 128 * 4096 * 2  # 2 * layers * kv_heads * head_dim * context * bytes
    macs = parts["attn_qk"]["dense_macs"] + parts["attn_pv"]["dense_macs"]
    assert macs == 2 * 32 * 32 * 128 * 4096  # QK^T + PV MACs of one query token
    assert parts["attn_qk"]["cycles"] > 0 and parts["attn_pv"]["cycles"] > 0
    int8 = simulate_attention(attention_hw(hw, 1, 2), attention_shapes(arch, batch=2, past=4095, queries=1))
    assert int8["attn_qk"]["dram_weight_bytes"] + int8["attn_pv"]["dram_weight_bytes"] == 2 * 32 * 32 * 128 * 4096 * 2


def test_gqa_and_sliding_window_shapes():
    arch = {"n_layers": 2, "n_heads": 8, "n_kv_heads": 2, "head_dim": 16, "sliding_window": 100,
            "layer_types": ["sliding_attention", "full_attention"]}  # fmt: skip
    shapes = {(s.kind, s.T, s.K, s.O): s.count for s in attention_shapes(arch, batch=3, past=999, queries=1)}
    # 4 query heads share a KV head; 3 sequences x 2 KV heads side by side; the sliding layer sees 100 keys
    assert shapes == {
        ("attn_qk", 4, 16, 100 * 6): 1,
        ("attn_qk", 4, 16, 1000 * 6): 1,
        ("attn_pv", 4, 100, 16 * 6): 1,
        ("attn_pv", 4, 1000, 16 * 6): 1,
    }


@pytest.fixture(scope="module")
def trace7b(tmp_path_factory):
    from accelsim.trace.synthetic import synthesize

    out = tmp_path_factory.mktemp("t7b") / "llama2-7b_decode2_l2.npz"
    return synthesize(out, "llama2-7b", PRE, tokens=2, phase="decode", layers=2)


def test_attention_share_grows_with_context_7b(hw, trace7b):
    shares, kv = [], []
    with Trace(trace7b) as tr:
        for ctx in (512, 4096, 32768):
            rec = Server(hw, Scenario(name="c", batch=1, context_tokens=ctx), tr).run()
            shares.append(rec["decode_step"]["by_kind"]["attention"]["share"])
            kv.append(rec["kv_cache_read_bytes_per_step"])
    assert shares[0] < shares[1] < shares[2]
    assert kv[1] == 2 * 2 * 32 * 128 * 4096 * 2  # the 2-layer trace


# -- weight datatypes -----------------------------------------------------------------------------------------
def _int4(path: Path):
    from accelsim.config.hw import HwConfig

    data = load_hw(path).model_dump()
    data["precision"]["weight_bytes"] = 0.5
    return HwConfig.model_validate(data)


def _expected_scale_bytes(fetched_rows: np.ndarray, tiling, O: int, group: int) -> int:  # noqa: N803
    """Direct count: groups of ``group`` channels holding a fetched row, times bf16 scales of every o-tile."""
    groups = int(fetched_rows.reshape(-1, group).any(axis=1).sum())
    n_o = math.ceil(O / tiling.O_tile)
    o_sizes = [min(tiling.O_tile, O - i * tiling.O_tile) for i in range(n_o)]
    return sum(groups * math.ceil(o * 2 / 64) * 64 for o in o_sizes)


@pytest.mark.parametrize("config", ["nm8_16.yaml", "unstructured.yaml"])
def test_int4_group_scales_follow_the_gathered_rows(config):
    from accelsim.sim.work import build_site_work, site_mask

    hw4 = _int4(HW / config)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 512)).astype(np.float16)
    x[:, 256:384] *= np.float16(1e-3)  # unstructured top-k drops this whole scale group
    mask = site_mask(hw4, x)
    plain = build_site_work(hw4, x, 256, mask=mask)
    scaled = build_site_work(hw4, x, 256, mask=mask, weight_scales=(128, 2.0))
    assert plain.n_t == 1 and plain.n_k == 1  # one token tile, one reduction tile
    union = mask.any(axis=0)
    assert scaled.weight_bytes.sum() - plain.weight_bytes.sum() == _expected_scale_bytes(union, plain.tiling, 256, 128)
    if config == "unstructured.yaml":
        assert not union[256:384].any()  # so only 3 of the 4 groups' scales are read
    else:
        assert union.reshape(-1, 128).any(axis=1).all()  # N:M keeps n of every m: every group is touched
    # dense fetch reads every group's scales
    dense_fetch = build_site_work(_int4(HW / "dense.yaml"), x, 256, weight_scales=(128, 2.0))
    base = build_site_work(_int4(HW / "dense.yaml"), x, 256)
    full = np.ones(512, dtype=bool)
    assert dense_fetch.weight_bytes.sum() - base.weight_bytes.sum() == _expected_scale_bytes(
        full, base.tiling, 256, 128
    )


def test_int4_weights_cut_weight_bytes_and_cost_dequantisation(hw):
    with Trace(DEC32) as tr:
        b16 = Server(hw, Scenario(name="a", batch=32, context_tokens=64), tr).run()
        i8 = Server(hw, Scenario(name="b", batch=32, context_tokens=64, weight_datatype="int8"), tr).run()
        i4 = Server(hw, Scenario(name="c", batch=32, context_tokens=64, weight_datatype="int4"), tr).run()
    w16, w8, w4 = (r["weight_bytes_per_step"] for r in (b16, i8, i4))
    assert w16 > w8 > w4
    assert 0.25 < w4 / w16 < 0.35  # a quarter of the rows' bytes, plus one bf16 scale per 128 rows, plus bursts
    assert i4["tpot_ms"] < i8["tpot_ms"] < b16["tpot_ms"]  # decode is DRAM bound
    assert b16["dequant_area_um2"] == 0 and b16["decode_step"]["dequant_energy_pj"] == 0
    assert i4["dequant_area_um2"] > 0 and i4["decode_step"]["dequant_energy_pj"] > 0
    assert i4["weight_storage_bits"] == 4 and i4["weight_operand_bits"] == 16


# -- bad input through the CLI ----------------------------------------------------------------------------------
def _run(*args: str):
    return runner.invoke(app, ["run", "--hw", str(HW / "nm8_16.yaml"), *args])


@pytest.mark.parametrize(
    ("text", "extra", "key"),
    [
        ("batch: 0\ncontext_tokens: 64\n", [], "batch"),
        ("batch: -2\ncontext_tokens: 64\n", [], "batch"),
        ("batch: 33\ncontext_tokens: 64\n", [], "batch"),
        ("batch: 1\ncontext_tokens: 0\n", [], "context_tokens"),
        ("batch: 1\ncontext_tokens: -5\n", [], "context_tokens"),
        ("batch: 1\ncontext_tokens: 9000\n", [], "context_tokens"),
        ("batch: 1\nprompt_tokens: 64\ngenerated_tokens: 8\nprefill_chunk_tokens: 0\n", ["--prefill-trace", PRE],
         "prefill_chunk_tokens"),
        ("batch: 1\nprompt_tokens: 64\ngenerated_tokens: 8\nprefill_chunk_tokens: -1\n", ["--prefill-trace", PRE],
         "prefill_chunk_tokens"),
        ("batch: 1\nprompt_tokens: 64\ngenerated_tokens: 8\nprefill_chunk_tokens: 64\n", ["--prefill-trace", PRE],
         "prefill_chunk_tokens"),
        ("batch: 1\nprompt_tokens: 8000\ngenerated_tokens: 500\n", ["--prefill-trace", PRE], "prompt_tokens"),
        ("batch: 1\nprompt_tokens: 64\ngenerated_tokens: 8\n", [], "prompt_tokens"),
    ],
)  # fmt: skip
def test_bad_scenarios_fail_in_one_line_without_output(tmp_path, text, extra, key):
    sc = _yaml(tmp_path, text)
    out = tmp_path / "out"
    r = _run("--trace", str(DEC32), "--scenario", str(sc), "--out", str(out), *map(str, extra))
    _one_line_error(r, key)
    assert not out.exists()


def test_datatype_the_hardware_cannot_hold(tmp_path):
    text = (
        (HW / "nm8_16.yaml")
        .read_text()
        .replace(
            "precision: {activation_bytes: 2, weight_bytes: 2,", "precision: {activation_bytes: 1, weight_bytes: 1,"
        )
    )  # an int8 machine
    hw8 = tmp_path / "int8_hw.yaml"
    hw8.write_text(text)
    sc = _yaml(tmp_path, "batch: 1\ncontext_tokens: 64\nweight_datatype: bf16\n")
    r = runner.invoke(app, ["run", "--hw", str(hw8), "--trace", str(DEC32), "--scenario", str(sc)])
    line = _one_line_error(r, "weight_datatype", "int8_hw.yaml", "allowed: int8, int4")
    assert "bf16" in line
    sc = _yaml(tmp_path, "batch: 1\ncontext_tokens: 64\nweight_datatype: int8\n", "a.yaml")
    r = runner.invoke(app, ["run", "--hw", str(hw8), "--trace", str(DEC32), "--scenario", str(sc)])
    _one_line_error(r, "activation_datatype", "allowed: int8")
    text = "batch: 1\ncontext_tokens: 64\nweight_datatype: int4\nactivation_datatype: int8\nkv_cache_datatype: int8\n"
    ok = _yaml(tmp_path, text, "ok.yaml")
    r = runner.invoke(app, ["run", "--hw", str(hw8), "--trace", str(DEC32), "--scenario", str(ok), "--json"])
    assert r.exit_code == 0, r.output


def test_prefill_trace_as_decode_trace_is_refused(tmp_path):
    sc = _yaml(tmp_path, "batch: 1\ncontext_tokens: 64\n")
    _one_line_error(_run("--trace", str(PRE), "--scenario", str(sc)), "decode trace")


def test_run_and_compare_with_scenario(tmp_path):
    out = tmp_path / "o"
    r = _run("--trace", str(DEC32), "--prefill-trace", str(PRE), "--scenario", str(SCEN / "chat_b8.yaml"),
             "--out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    for word in ("ttft_ms", "tpot_ms", "tokens_per_s", "uj_per_token", "attention", "lm_head"):
        assert word in r.output
    rec = json.loads((out / "serving.json").read_text())
    assert rec["batch"] == 8 and rec["ttft_ms"] > 0
    csv = (out / "serving_breakdown.csv").read_text().splitlines()
    assert csv[0].startswith("config,phase,kind,cycles")
    hw_dir = tmp_path / "hw"
    hw_dir.mkdir()
    for name in ("dense.yaml", "nm8_16.yaml", "nm2_4.yaml"):
        (hw_dir / name).write_text((HW / name).read_text())
    out2 = tmp_path / "c"
    r = runner.invoke(app, ["compare", "--trace", str(DEC32), "--hw-dir", str(hw_dir), "--scenario",
                            str(SCEN / "decode_b16_int4.yaml"), "--out", str(out2)])  # fmt: skip
    assert r.exit_code == 0, r.output
    recs = json.loads((out2 / "compare_serving.json").read_text())
    assert [r["config"] for r in recs][0] == "dense"
    assert all(r["weight_datatype"] == "int4" for r in recs)
    assert {r["config"] for r in recs} == {"dense", "nm8_16", "nm2_4"}


# -- chunked prefill, docs, the curves ------------------------------------------------------------------------
def test_chunk_interpolation_is_exact_for_affine_costs():
    from accelsim.serving.metrics import _interp_weights

    idx = np.array([0, 3, 7, 12, 19])
    w = _interp_weights(idx, 20)
    assert w.sum() == pytest.approx(20)
    f = 5.0 + 2.5 * idx  # affine in the chunk index: interpolation is exact
    assert (w * f).sum() == pytest.approx(sum(5.0 + 2.5 * i for i in range(20)))


def test_long_prompt_attention_grows_with_the_prompt(hw):
    with Trace(DEC32) as tr, Trace(PRE) as pt:
        recs = [
            Server(hw, Scenario(name="p", batch=32, prompt_tokens=p, generated_tokens=1, prefill_chunk_tokens=32),
                   tr, pt).run()
            for p in (256, 512, 1024)
        ]  # fmt: skip
    att = [r["prefill"]["by_kind"]["attention"]["cycles"] for r in recs]
    lin = [r["prefill"]["by_kind"]["q"]["cycles"] for r in recs]
    assert lin[1] == pytest.approx(2 * lin[0])  # the same chunk, 16 of them instead of 8
    assert att[0] < att[1] < att[2]
    assert att[2] / att[1] > 3  # ~quadratic in the prompt (each chunk reads the cache so far); 32 chunks interpolate


def test_docs_list_every_scenario_key():
    doc = (ROOT / "docs/serving.md").read_text()
    missing = [k for k in Scenario.model_fields if f"`{k}`" not in doc]
    assert not missing, missing


@pytest.mark.slow
def test_serving_curves_command_pieces(tmp_path):
    from accelsim.serving import curves

    hw_dir = tmp_path / "hw"
    hw_dir.mkdir()
    for name in ("dense.yaml", "nm8_16.yaml"):
        (hw_dir / name).write_text((HW / name).read_text())
    data = curves.compute(ROOT, hw_dir, log=lambda s: None, models={"smollm2-135m": curves.MODELS["smollm2-135m"]})
    sp = {p["batch"]: p["speedup_tpot_vs_dense"] for p in data["batch"] if p["config"] == "nm8_16"}
    assert sp[1] > sp[2] > sp[4] > sp[8] and sp[32] > sp[8]
    ctx = [p for p in data["context"] if p["config"] == "nm8_16"]
    assert [p["context_tokens"] for p in ctx] == list(curves.CONTEXTS)
    shares = [p["attention_share"] for p in ctx]
    assert shares == sorted(shares) and shares[-1] > 0.5
    written = curves.plot(data, tmp_path)
    assert [p.name for p in written] == ["serving_batch.png", "serving_context.png", "serving_mix.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    assert "| nm8_16 |" in curves.markdown_tables(data)


def test_gemma_sliding_layers_read_at_most_their_window(hw):
    """Gemma-3-270M: 15 of 18 layers slide over 512 keys, 3 attend to the whole context; 1 KV head of 256."""
    dec, pre = ROOT / "traces/gemma3-270m_decode1_b32.npz", ROOT / "traces/gemma3-270m_prefill32.npz"
    with Trace(dec) as tr:
        arch = tr.architecture
        assert arch["layer_types"].count("sliding_attention") == 15 and arch["sliding_window"] == 512
    sc = Scenario(name="g", batch=2, prompt_tokens=64, generated_tokens=8064, prefill_chunk_tokens=32)
    rec = serve(hw, sc, dec, prefill_trace=pre)
    ctx = 64 + 4032
    assert rec["decode_context_tokens"] == ctx
    assert rec["kv_cache_read_bytes_per_step"] == 2 * 1 * 256 * (15 * 512 + 3 * ctx) * 2 * 2
    # the v2 prefill trace holds lm_head: it runs once, on the prompt's last token
    lm = rec["prefill"]["by_kind"]["lm_head"]
    assert lm["dram_bytes"] >= 640 * 262144 * 2 / 2  # at least the kept half of the 640 x 262144 bf16 rows
    assert lm["cycles"] < rec["decode_step"]["by_kind"]["lm_head"]["cycles"]  # 1 token, not 2


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["bf16", "int8", "int4", "fp8"]), st.lists(st.integers(), max_size=3),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*Scenario.model_fields, "bogus"]), _VALUES, max_size=8))
def test_any_scenario_mapping_loads_or_fails_in_one_line(tmp_path_factory, raw):
    p = tmp_path_factory.mktemp("fz") / "f.yaml"
    p.write_text(json.dumps(raw))  # JSON is YAML (NaN/Infinity read back as strings)
    try:
        sc = load_scenario(p)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(p) in str(exc)
    else:
        assert sc.batch >= 1 and (sc.context_tokens is not None) != (sc.prompt_tokens is not None)


def test_serving_outputs_are_byte_identical(tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = _run("--trace", str(DEC32), "--scenario", str(SCEN / "decode_b16_int4.yaml"), "--out", str(out))
        assert r.exit_code == 0, r.output
        outs.append(out)
    for f in ("serving.json", "serving_breakdown.csv"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes()
