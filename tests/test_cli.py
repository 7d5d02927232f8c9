"""The command line as a user meets it: exit codes, one-line errors, no partial outputs, stable bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from tests.helpers import smollm2_shaped_trace

HW = Path(__file__).resolve().parents[1] / "hw_configs"
runner = CliRunner()


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("t") / "pf16.npz", tokens=16, layers=1)


def test_run_prints_totals_and_writes_csv_and_json(tmp_path, trace):
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "SYNTHETIC" in r.output
    assert "speedup_vs_dense" in r.output and "dram_weight_bytes" in r.output
    rec = json.loads((out / "summary.json").read_text())
    assert rec["provenance"]["hw_config_sha256"] and rec["provenance"]["trace_sha256"]
    assert rec["provenance"]["accelsim_version"]
    assert rec["pattern"] == "8:16" and rec["speedup_vs_dense"] > 1
    csv = (out / "sites.csv").read_text().splitlines()
    assert len(csv) == 1 + 7 and csv[0].startswith("site,name,layer,kind,K,O,tokens")
    # same inputs, same bytes
    out2 = tmp_path / "out2"
    runner.invoke(app, ["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--out", str(out2)])
    for f in ("sites.csv", "summary.json"):
        assert (out / f).read_bytes().replace(str(out).encode(), b"") == (out2 / f).read_bytes().replace(
            str(out2).encode(), b""
        )


def test_bad_config_is_one_line_exit_2_and_no_output(tmp_path, trace):
    bad = tmp_path / "bad.yaml"
    bad.write_text((HW / "nm8_16.yaml").read_text().replace("  n: 8\n", "  n: 17\n"))
    out = tmp_path / "never"
    r = runner.invoke(app, ["run", "--hw", str(bad), "--trace", str(trace), "--out", str(out)])
    assert r.exit_code == 2
    assert "bad.yaml" in r.output and "n must be <= m" in r.output
    assert not out.exists()


def test_bad_trace_is_exit_2(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    r = runner.invoke(app, ["run", "--hw", str(HW / "dense.yaml"), "--trace", str(junk)])
    assert r.exit_code == 2 and "junk.npz" in r.output


def test_validate_every_shipped_config():
    args = ["validate"]
    for p in sorted(HW.glob("*.yaml")):
        args += ["--hw", str(p)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.output.count(": ok") == len(list(HW.glob("*.yaml")))


def test_compare_lists_every_config(tmp_path, trace):
    r = runner.invoke(app, ["compare", "--trace", str(trace), "--hw-dir", str(HW), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "compare.csv").read_text().splitlines()
    assert (tmp_path / "breakdown.png").read_bytes()[:4] == b"\x89PNG"
    assert len(rows) == 1 + len(list(HW.glob("*.yaml")))
