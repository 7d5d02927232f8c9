"""K-tiled activation tiles (``sram.activation_tiling``, docs/timing-model.md "K-tiled activation tiles").

* the default ``full_k`` is every shipped config's; ``k_tiled`` on a site whose full ``K`` already fits is the
  ``full_k`` run, site by site;
* the tiling rule: on a 7B-shaped ``down_proj`` (K=11008) ``k_tiled`` grows ``T_tile`` from 8 to 128 tokens, and
  every K-tiled tiling respects the buffers (activations, metadata, weights, accumulators);
* DRAM bytes: K-tiled activations are read ``n_o`` times (closed form, consumer compressor), the weight bytes fall
  by the ratio of token tiles, the compressor and SRAM actions count every re-read; producer placement re-reads
  the compressed tile;
* ``auto`` takes, per site, the mode with fewer modelled DRAM bytes on the shapes tested;
* K-tiled activation tiles never leave the whole input on chip (``k`` after ``q`` reads its input again);
* a ``k_tiled`` run on the committed SmolLM2 prefill trace from the CLI; bad values are one-line errors.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import accelsim.sim.run as run_mod
from accelsim.cli import app
from accelsim.config import ConfigError, load_hw
from accelsim.sim.tiling import TilingError, check_sites, choose_tiling, dram_bytes_estimate, metadata_bytes_per_token
from accelsim.sim.work import _first_span_reads, build_site_work
from accelsim.trace.format import Trace
from tests.test_validation_reference import compare, random_case

ROOT = Path(__file__).resolve().parents[1]
PREFILL = ROOT / "traces" / "smollm2-135m_prefill32.npz"
DECODE = ROOT / "traces" / "smollm2-135m_decode16.npz"
DRAM_KEYS = ("dram_read_byte_weight", "dram_read_byte_activation", "dram_read_byte_metadata", "dram_write_byte_output")


def _hw(name: str, mode: str, **sram):
    hw = load_hw(ROOT / "hw_configs" / f"{name}.yaml")
    return hw.model_copy(update={"sram": hw.sram.model_copy(update={"activation_tiling": mode, **sram})})


def _x(T: int, K: int, seed: int = 0) -> np.ndarray:  # noqa: N803
    return np.random.default_rng(seed).standard_normal((T, K), dtype=np.float32).astype(np.float16)


def _dram_bytes(work) -> int:
    return sum(int(work.actions[k]) for k in DRAM_KEYS)


def test_full_k_is_the_default_of_every_shipped_config():
    for cfg in sorted((ROOT / "hw_configs").glob("*.yaml")):
        assert load_hw(cfg).sram.activation_tiling == "full_k", cfg.name


def test_k_tiled_equals_full_k_when_the_whole_row_fits():
    """SmolLM2's widest K=1536 x 32 tokens fits half the default 512 KiB buffer: no site is K-tiled."""
    hws = [_hw("nm8_16", "full_k"), _hw("nm8_16", "k_tiled"), _hw("nm8_16", "auto")]
    with Trace(PREFILL) as tr:
        full, kt, auto = run_mod.simulate_many(hws, tr)
    assert full.sites == kt.sites == auto.sites
    assert all(r["T_tile"] == 32 for r in kt.sites)


def test_tiling_grows_the_token_tile_of_a_wide_down_proj():
    for name in ("dense", "nm8_16"):
        full = choose_tiling(_hw(name, "full_k"), 512, 11008, 4096)
        kt = choose_tiling(_hw(name, "k_tiled"), 512, 11008, 4096)
        assert (full.T_tile, full.act_k_tiled) == (8, False)
        assert kt.T_tile == 128 and kt.act_k_tiled and kt.K_tile < 11008
        assert kt.T_tile * kt.K_tile * 2 <= 524288 / 2  # one reduction span of 128 tokens in half the buffer
        assert choose_tiling(_hw(name, "auto"), 512, 11008, 4096) == kt
        # one decode token: the activations are small, re-reading them per output tile only costs
        assert choose_tiling(_hw(name, "auto"), 1, 11008, 4096) == choose_tiling(_hw(name, "full_k"), 1, 11008, 4096)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.sampled_from(["dense", "nm8_16", "nm2_4", "unstructured", "nm16_32"]),
    st.integers(1, 700),
    st.integers(1, 20000),
    st.integers(1, 12000),
    st.integers(12, 21),
    st.integers(12, 21),
    st.integers(12, 20),
)
def test_k_tiled_tilings_fit_the_buffers(name, T, K, O, act_log2, w_log2, out_log2):  # noqa: N803
    hw = _hw(
        name,
        "k_tiled",
        activation_buffer_bytes=1 << act_log2,
        weight_buffer_bytes=1 << w_log2,
        output_buffer_bytes=1 << out_log2,
    )
    try:
        tl = choose_tiling(hw, T, K, O)
    except TilingError as exc:
        msg = str(exc)
        assert "\n" not in msg and ("minimum" in msg or "fit" in msg), msg
        return
    assert 1 <= tl.T_tile <= min(T, hw.sram.max_tokens_per_tile)
    assert 1 <= tl.K_tile <= K and 1 <= tl.O_tile <= O
    assert tl.T_tile * tl.K_tile * 2 <= hw.sram.activation_buffer_bytes / 2
    assert tl.K_tile * tl.O_tile * 2 <= hw.sram.weight_buffer_bytes / 2
    assert tl.T_tile * tl.O_tile * 4 <= hw.sram.output_buffer_bytes / 2
    meta = metadata_bytes_per_token(hw, tl.K_tile)
    if meta:
        assert tl.T_tile * meta <= hw.sparsity.metadata_buffer.capacity_bytes / 2
    if hw.sparsity.kind == "nm" and tl.K_tile < K:
        assert tl.K_tile % hw.sparsity.m == 0  # a reduction span never splits an N:M group


@pytest.mark.parametrize("name", ["dense", "nm8_16"])
def test_dram_bytes_of_a_k_tiled_down_proj_follow_the_closed_form(name):
    T, K, O = 512, 11008, 4096  # noqa: N806
    x = _x(T, K)
    full = build_site_work(_hw(name, "full_k"), x, O)
    kt = build_site_work(_hw(name, "k_tiled"), x, O)
    dense_act = T * K * 2
    assert full.actions["dram_read_byte_activation"] == dense_act
    assert kt.n_act == kt.n_t * kt.n_o * kt.n_k > kt.n_t
    assert kt.actions["dram_read_byte_activation"] == kt.n_o * dense_act
    assert kt.actions["act_sram_write_byte"] == kt.n_o * dense_act
    # every token tile streams the weights once: the bytes fall by the ratio of token tiles (64 -> 4)
    assert (full.n_t, kt.n_t) == (64, 4)
    w_full, w_kt = full.actions["dram_read_byte_weight"], kt.actions["dram_read_byte_weight"]
    if name == "dense":
        assert w_full * kt.n_t == w_kt * full.n_t
    else:  # gather_rows: the union of 128 tokens' rows holds at least as many as an 8-token union, at most all
        assert w_full * kt.n_t <= w_kt * full.n_t <= kt.n_t * K * O * 2 * full.n_t
        assert w_kt < w_full / 10
    if name == "dense":
        assert full.actions["dram_read_byte_weight"] == full.n_t * K * O * 2
        assert kt.actions["dram_read_byte_weight"] == kt.n_t * K * O * 2
    else:  # the consumer's compressor compresses every activation tile it reads
        groups = T * math.ceil(K / 16)
        assert full.actions["compressor_group"] == groups
        assert kt.actions["compressor_group"] == kt.n_o * groups
        assert kt.actions["metadata_write_bit"] == kt.n_o * full.actions["metadata_write_bit"]
        assert int(kt.compress_busy.sum()) == kt.n_o * int(full.compress_busy.sum())
        # the mask a gathered weight tile (i, o, k) waits for is the first read of span (i, k)
        assert np.array_equal(kt.mask_tile, _first_span_reads(kt.n_t, kt.n_o, kt.n_k))
    if name == "dense":  # dense fetch: auto's estimate is the modelled read bytes
        for w in (full, kt):
            assert _dram_bytes(w) == dram_bytes_estimate(_hw(name, "auto"), T, K, O, w.tiling) + T * O * 2


def test_first_span_reads_points_at_output_tile_zero():
    assert _first_span_reads(2, 2, 2).tolist() == [0, 1, 0, 1, 4, 5, 4, 5]
    assert _first_span_reads(1, 3, 1).tolist() == [0, 0, 0]


def test_producer_placement_re_reads_the_compressed_tile():
    base = _hw("nm8_16", "k_tiled")
    sp = base.sparsity
    hw = base.model_copy(
        update={
            "sparsity": sp.model_copy(update={"compressor": sp.compressor.model_copy(update={"placement": "producer"})})
        }
    )
    T, K, O = 256, 11008, 4096  # noqa: N806
    x = _x(T, K, seed=1)
    kt = build_site_work(hw, x, O)
    kept = int(kt.stats["kept_density"] * T * K + 0.5)
    assert kt.n_k > 1
    assert kt.actions["dram_read_byte_activation"] == kt.n_o * kept * 2
    assert int(kt.compress_busy.sum()) == 0  # compressed by the producer, once
    assert kt.actions["compressor_group"] == T * math.ceil(K / 16)
    # metadata of span (i, k): its tokens x its groups x 8 kept x 4 bits, read once per output tile
    per_span = [math.ceil(kt.tiling.T_tile * math.ceil((b - a) / 16) * 32 / 8) for a, b in _spans(K, kt.tiling.K_tile)]
    assert kt.actions["dram_read_byte_metadata"] == kt.n_t * kt.n_o * sum(per_span)


def _spans(total: int, size: int):
    return [(a, min(a + size, total)) for a in range(0, total, size)]


SHAPES = [(512, 4096, 4096), (512, 4096, 11008), (512, 11008, 4096), (1, 11008, 4096), (32, 1536, 576), (96, 576, 192)]


@pytest.mark.parametrize("name", ["dense", "nm8_16"])
@pytest.mark.parametrize("act_bytes", [524288, 65536])
def test_auto_takes_the_mode_with_fewer_dram_bytes(name, act_bytes):
    picked_k = 0
    for T, K, O in SHAPES:  # noqa: N806
        x = _x(T, K, seed=T + K)
        by_mode = {
            m: build_site_work(_hw(name, m, activation_buffer_bytes=act_bytes), x, O)
            for m in ("full_k", "k_tiled", "auto")
        }
        b = {m: _dram_bytes(w) for m, w in by_mode.items()}
        assert b["auto"] == min(b["full_k"], b["k_tiled"]), (T, K, O, b)
        picked_k += by_mode["auto"].tiling.act_k_tiled and by_mode["auto"].n_k > 1
    assert picked_k >= 3


def test_auto_runs_no_more_dram_bytes_than_either_mode_on_real_traces():
    hws = [_hw("nm8_16", m, activation_buffer_bytes=65536) for m in ("full_k", "k_tiled", "auto")]
    for trace in (PREFILL, DECODE):
        with Trace(trace) as tr:
            full, kt, auto = run_mod.simulate_many(hws, tr)
        for rf, rk, ra in zip(full.sites, kt.sites, auto.sites, strict=True):
            tot = [
                sum(r[f"dram_{k}_bytes"] for k in ("weight", "activation", "metadata", "output")) for r in (rf, rk, ra)
            ]
            assert tot[2] == min(tot[:2]), (trace.name, rf["site"], tot)
        if trace == PREFILL:
            assert kt.totals["dram_activation_bytes"] > full.totals["dram_activation_bytes"]
            assert kt.totals["dram_weight_bytes"] < full.totals["dram_weight_bytes"]


def test_k_tiled_input_is_not_kept_on_chip_for_the_next_site():
    """Decode with a 64 KiB weight buffer: K_tile=512 < K=576 for one token. full_k keeps q's input for k and v;
    K-tiled activation tiles hold one reduction span, so k and v read their input again."""
    hws = [_hw("nm8_16", m, weight_buffer_bytes=65536) for m in ("full_k", "k_tiled")]
    with Trace(DECODE) as tr:
        full, kt = run_mod.simulate_many(hws, tr)
    rows = {(r["site"], m): r for m, res in (("f", full), ("k", kt)) for r in res.sites}
    k_site = next(r["site"] for r in full.sites if r["name"] == "model.layers.0.self_attn.k_proj")
    assert rows[(k_site, "k")]["K_tile"] < rows[(k_site, "k")]["K"]
    assert rows[(k_site, "f")]["dram_activation_bytes"] == 0
    assert rows[(k_site, "k")]["dram_activation_bytes"] > 0


def test_auto_tiles_a_site_that_full_k_cannot_hold():
    hw_full, hw_auto = (
        _hw("dense", "full_k", activation_buffer_bytes=4096),
        _hw("dense", "auto", activation_buffer_bytes=4096),
    )
    with pytest.raises(TilingError, match="sram.activation_buffer_bytes=4096 cannot hold two tokens of K=11008"):
        check_sites(hw_full, [(11008, 4096)])
    check_sites(hw_auto, [(11008, 4096)])
    tl = choose_tiling(hw_auto, 64, 11008, 4096)
    assert tl.act_k_tiled and tl.T_tile * tl.K_tile * 2 <= 2048
    nm = _hw("nm8_16", "k_tiled")
    tiny_meta = nm.sparsity.model_copy(
        update={"metadata_buffer": nm.sparsity.metadata_buffer.model_copy(update={"capacity_bytes": 4})}
    )
    with pytest.raises(
        TilingError, match="capacity_bytes=4 cannot hold two tokens' metadata of 16 channels: minimum 8$"
    ):
        check_sites(nm.model_copy(update={"sparsity": tiny_meta}), [(11008, 4096)])


def _config_text(mode: str, act_bytes: int = 65536) -> str:
    text = (ROOT / "hw_configs" / "nm8_16.yaml").read_text()
    old = "  activation_buffer_bytes: 524288"
    assert old in text
    return text.replace(old, f"  activation_tiling: {mode}\n  activation_buffer_bytes: {act_bytes}", 1)


def test_k_tiled_run_from_the_cli_on_the_prefill_trace(tmp_path):
    cfg = tmp_path / "nm8_16_ktiled.yaml"
    cfg.write_text(_config_text("k_tiled"))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", "--hw", str(cfg), "--trace", str(PREFILL), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "sites.csv").open()))
    assert len(rows) > 200
    down = [r for r in rows if r["kind"] == "down"]
    assert down and all(int(r["K_tile"]) < int(r["K"]) for r in down)
    assert all(int(r["T_tile"]) == 32 for r in down)  # full_k on this buffer: 8 tokens
    with Trace(PREFILL) as tr:
        ref = run_mod.simulate(load_hw(cfg), tr)
    assert [int(r["cycles"]) for r in rows] == [s["cycles"] for s in ref.sites]


@pytest.mark.parametrize("value", ["kt", "K_TILED", "true", "1"])
def test_bad_activation_tiling_is_a_one_line_error(tmp_path, value):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(_config_text(value))
    with pytest.raises(ConfigError) as err:
        load_hw(cfg)
    msg = str(err.value)
    assert "\n" not in msg and str(cfg) in msg
    assert "sram.activation_tiling" in msg and "'full_k', 'k_tiled' or 'auto'" in msg
    r = CliRunner().invoke(app, ["validate", "--hw", str(cfg)])
    assert r.exit_code == 2 and "sram.activation_tiling" in r.output


@pytest.mark.parametrize("mode", ["k_tiled", "auto"])
def test_event_model_equals_the_per_cycle_reference_with_k_tiled_activation_tiles(mode):
    """The independent per-cycle model (tests/reference_model.py) moves the spans through the slots, compresses
    every read, gathers rows from the span's first compression and accumulates partial sums across the k-tiles:
    cycles, busy cycles, stalls, DRAM bytes equal the event model's and the outputs equal ``prune(x) @ w``."""
    rng = np.random.default_rng(77 if mode == "k_tiled" else 78)
    done = k_tiled = 0
    while done < 80:
        case = random_case(rng)
        if case is None:
            continue
        hw, T, K, O, reuse = case  # noqa: N806
        hw = hw.model_copy(update={"sram": hw.sram.model_copy(update={"activation_tiling": mode})})
        try:
            tl = choose_tiling(hw, T, K, O)
        except TilingError:
            continue
        res = compare(hw, T, K, O, seed=int(rng.integers(1 << 30)), reuse=reuse)
        k_tiled += tl.act_k_tiled and res["work"].n_k > 1
        done += 1
    assert k_tiled >= (25 if mode == "k_tiled" else 6), k_tiled
