"""The cost model's compressor / decoder areas and the decoder depth against the synthesised RTL (the table
``accelsim rtl table --out docs/rtl`` wrote), and the calibrated cost table derived from it.

The model is the shipped default table; the test states how far it may be from synthesis, so a change of
either side that moves them apart fails here. Needs no amaranth or Yosys: it reads the committed table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.config import load_hw
from accelsim.cost.model import area_breakdown, sparsity_area_overhead
from accelsim.cost.table import default_table, load_table
from accelsim.rtl.calibrate import SHIPPED, calibrated_entries, calibrated_table_text, compare
from accelsim.rtl.table import read_rows

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "rtl"
HW = ROOT / "hw_configs"


@pytest.fixture(scope="module")
def rows():
    return read_rows(DOCS / "synth_table.csv")


@pytest.fixture(scope="module")
def cmp(rows):
    return {c["pattern"]: c for c in compare(rows)}


def test_table_covers_every_pattern_width_and_architecture(rows):
    got = {(r["block"], r["pattern"], r["width_bits"], r["arch"]) for r in rows if r["pipeline_depth_cycles"] == 0}
    for p in ("2:4", "4:8", "8:16", "16:32", "32:64"):
        for w in (8, 16):
            assert ("decoder_lane", p, w, "") in got
            for a in ("compare_all", "bitonic", "oem_top_n"):
                assert ("compressor", p, w, a) in got
        assert ("packer_index", p, "", "") in got and ("unpacker_bitmask", p, "", "") in got


def test_decoder_lane_model_within_1_5x_of_synthesis(cmp):
    for p, c in cmp.items():
        ratio = c["synth_decoder_lane_um2"] / c["decoder_lane_um2"]
        assert 1 / 1.5 < ratio < 1.5, (p, ratio)


def test_compressor_network_model_underestimates_synthesis_by_1_to_3x(cmp):
    """The model prices only the compare-exchanges; the RTL also compacts the kept values into slot order."""
    for p, c in cmp.items():
        ratio = c["synth_compressor_comb_um2"] / c["compressor_network_um2"]
        assert 1.0 < ratio < 3.0, (p, ratio)


def test_pipelined_compressor_model_within_2x_of_synthesis(cmp):
    for p, c in cmp.items():
        ratio = c["synth_compressor_pipelined_um2"] / c["compressor_um2"]
        assert 0.5 < ratio < 2.0, (p, ratio)


def test_decoder_depth_fits_one_cycle_so_latency_1_holds(cmp):
    """Synthesised m:1 lane depth (gates) x the table's 2:1-mux delay fits one 1 GHz period for every shipped
    pattern, so ``decoder.latency_cycles: 1`` of the shipped configs is consistent with the RTL."""
    for p, c in cmp.items():
        hw = load_hw(HW / SHIPPED[p])
        assert hw.sparsity.decoder.latency_cycles == 1
        period_ps = 1e12 / hw.clock_hz
        assert c["synth_decoder_depth_levels"] * c["mux2_delay_ps"] <= period_ps, p
        assert c["synth_decoder_depth_levels"] >= c["decoder_depth_mux2_levels"]  # a mux level is >= 1 gate


def test_shipped_calibrated_table_is_derived_from_the_shipped_synthesis(rows):
    entries = calibrated_entries(rows)
    base = (ROOT / "accelsim" / "cost" / "default_45nm.yaml").read_text()
    shipped = (DOCS / "cost_45nm_rtl_calibrated.yaml").read_text()
    assert shipped == calibrated_table_text(entries, base), "regenerate: accelsim rtl calibrate (seconds)"
    cal, ref = load_table(DOCS / "cost_45nm_rtl_calibrated.yaml"), default_table()
    for sec in ("energy", "area", "params"):
        for name in ref.names(sec):
            key = f"{sec}.{name}"
            want = entries.get(key, ref.value(key, 45))
            assert cal.value(key, 45) == pytest.approx(want), key


def test_calibration_changes_only_compressor_decoder_and_converter_areas(rows):
    cal = load_table(DOCS / "cost_45nm_rtl_calibrated.yaml")
    dense = load_hw(HW / "dense.yaml")
    for p, f in SHIPPED.items():
        hw = load_hw(HW / f)
        a0, a1 = area_breakdown(hw), area_breakdown(hw, table=cal)
        changed = {k for k in a0 if a0[k] != pytest.approx(a1[k])}
        assert changed <= {"compressor", "decoder_mux", "bitmask_decoder"} and "compressor" in changed, p
        assert sparsity_area_overhead(hw, dense, table=cal) != pytest.approx(sparsity_area_overhead(hw, dense))


def test_calibrate_command_rewrites_the_shipped_files(tmp_path):
    from typer.testing import CliRunner

    from accelsim.cli import app

    r = CliRunner().invoke(
        app, ["rtl", "calibrate", "--synth-table", str(DOCS / "synth_table.csv"), "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    for f in ("calibration.csv", "cost_45nm_rtl_calibrated.yaml"):
        assert (tmp_path / f).read_bytes() == (DOCS / f).read_bytes(), f
    bad = CliRunner().invoke(
        app, ["rtl", "calibrate", "--synth-table", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "--synth-table" in bad.output and not (tmp_path / "x").exists()
