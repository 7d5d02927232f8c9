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


ACCURACY = Path(__file__).resolve().parents[1] / "docs" / "accuracy_smollm2-135m.json"


def test_run_outputs_carry_energy_per_site_and_action_counts(tmp_path, trace):
    import pandas as pd

    out = tmp_path / "out"
    r = runner.invoke(app, ["run", "--hw", str(HW / "nm2_4.yaml"), "--trace", str(trace), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "summary.json").read_text())
    df = pd.read_csv(out / "sites.csv")
    # per-site energy sums to the run's, component by component
    assert df["energy_pj"].sum() == pytest.approx(rec["energy_pj"], rel=1e-8)  # CSV keeps 9 significant digits per site
    for comp, v in rec["energy_pj_by_component"].items():
        assert df[f"energy_pj.{comp}"].sum() == pytest.approx(v, rel=1e-9, abs=1e-3)
    # the action counts that priced it are in the summary, equal to the per-site counts summed
    assert rec["action_counts"]
    for action, n in rec["action_counts"].items():
        assert int(df[f"{action}_count"].sum()) == n


def test_run_and_compare_join_the_accuracy_of_the_same_pattern(tmp_path, trace):
    r = runner.invoke(
        app, ["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--json", "--accuracy", str(ACCURACY)]
    )
    assert r.exit_code == 0, r.output
    rec = json.loads(r.output[r.output.index("{") :])
    acc = json.loads(ACCURACY.read_text())["records"]["smollm2-135m|8:16|magnitude|none"]
    assert rec["accuracy_key"] == "smollm2-135m|8:16|magnitude|none" and rec["ppl"] == acc["ppl"]
    r = runner.invoke(
        app,
        ["compare", "--trace", str(trace), "--hw-dir", str(HW), "--out", str(tmp_path), "--accuracy", str(ACCURACY)],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "compare.json").read_text())
    by_pattern = {row["pattern"]: row["ppl"] for row in rows}
    assert by_pattern["dense"] < by_pattern["16:32"] < by_pattern["8:16"] < by_pattern["4:8"] < by_pattern["2:4"]


def test_accuracy_file_that_is_not_one_is_exit_2_and_no_output(tmp_path, trace):
    bad = tmp_path / "acc.json"
    bad.write_text('{"schema": "something-else"}')
    out = tmp_path / "never"
    r = runner.invoke(
        app,
        ["run", "--hw", str(HW / "nm8_16.yaml"), "--trace", str(trace), "--accuracy", str(bad), "--out", str(out)],
    )
    assert r.exit_code == 2 and "acc.json" in r.output and "schema" in r.output
    assert not out.exists()


def test_bad_cost_section_is_rejected_when_the_config_loads(tmp_path):
    bad = tmp_path / "bad_cost.yaml"
    bad.write_text((HW / "nm8_16.yaml").read_text() + "cost:\n  node_nm: 3\n")
    r = runner.invoke(app, ["validate", "--hw", str(bad)])
    assert r.exit_code == 2 and "bad_cost.yaml" in r.output and "cost.node_nm" in r.output


@pytest.mark.parametrize("command", ["sweep", "run", "compare", "trace", "tradeoff"])
def test_help_shows_no_value_type_for_flags(command):
    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output
    flag_lines = [ln for ln in r.output.splitlines() if "--help" in ln]
    assert flag_lines and "Show this message" in flag_lines[0]
    assert "<path>" in r.output  # options that take a value still show its type


def test_default_hw_works_from_any_working_directory(tmp_path, trace, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no hw_configs/ here
    r = runner.invoke(app, ["run", "--trace", str(trace), "--json"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.output[r.output.index("{") :])
    assert rec["config"] == "nm8_16" and rec["baseline_config"] == "dense"


def test_a_default_found_nowhere_is_one_line_naming_the_option(tmp_path, trace, monkeypatch):
    import accelsim.cli.paths as paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "CHECKOUT", tmp_path / "no-checkout")
    r = runner.invoke(app, ["run", "--trace", str(trace)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--hw hw_configs/nm8_16.yaml" in lines[0] and "give --hw PATH" in lines[0]
    r = runner.invoke(app, ["compare", "--trace", str(trace)])
    assert r.exit_code == 2 and "--hw-dir hw_configs" in r.output


def test_a_working_directory_config_wins_and_typed_paths_are_not_reinterpreted(tmp_path, monkeypatch):
    from accelsim.cli.paths import CHECKOUT, resolve_default

    monkeypatch.chdir(tmp_path)
    default = Path("hw_configs/nm8_16.yaml")
    assert resolve_default(default, default, "--hw") == CHECKOUT / default
    (tmp_path / "hw_configs").mkdir()
    (tmp_path / default).write_text((HW / "nm8_16.yaml").read_text())
    assert resolve_default(default, default, "--hw") == default
    typed = Path("hw_configs/dense.yaml")  # exists only in the checkout, but the user typed it
    assert resolve_default(typed, default, "--hw") == typed
