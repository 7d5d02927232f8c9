"""Trade-off of cost against accuracy (join, Pareto fronts, sensitivity) and the `accelsim cost` / `tradeoff` CLI.

The accuracy records here are a small fixture in the schema of ``docs/accuracy_smollm2-135m.json``
(``accelsim-accuracy/1``); the traces are synthetic (they say so)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from accelsim.api import with_overrides
from accelsim.cli import app
from accelsim.config.hw import load_hw
from accelsim.cost import CostError, area_breakdown, default_table
from accelsim.explore import (
    Run,
    cost_frame,
    join_accuracy,
    load_accuracy,
    load_runs,
    pareto_front,
    parse_scalings,
    save_runs,
    sensitivity,
    simulate_runs,
    tradeoff,
)
from accelsim.sim.actions import ACTIONS
from tests.helpers import smollm2_shaped_trace
from tests.test_cost import tiny, tiny_dense

HW = Path(__file__).resolve().parents[1] / "hw_configs"
runner = CliRunner()

PPL = {"dense": 15.0, "2:4": 60.0, "4:8": 40.0, "8:16": 30.0, "16:32": 25.0, "unstructured0.5": 20.0}


def accuracy_file(path: Path, patterns=PPL, extra=()) -> Path:
    recs = {}
    for pat, ppl in patterns.items():
        crit, mit = ("none", "none") if pat == "dense" else ("magnitude", "none")
        key = f"smollm2-135m|{pat}|{crit}|{mit}"
        recs[key] = {
            "key": key,
            "model": "smollm2-135m",
            "pattern": pat,
            "criterion": crit,
            "mitigation": mit,
            "ppl": ppl,
            "dense_ppl": PPL["dense"],
            "delta_ppl": ppl - PPL["dense"],
        }
    for r in extra:
        recs[r["key"]] = r
    path.write_text(json.dumps({"schema": "accelsim-accuracy/1", "records": recs}))
    return path


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("t") / "pf8.npz", tokens=8, layers=1)


@pytest.fixture(scope="module")
def hw_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hw")
    for n in ("dense", "nm2_4", "nm16_32", "unstructured"):
        shutil.copy(HW / f"{n}.yaml", d / f"{n}.yaml")
    return d


@pytest.fixture(scope="module")
def runs(hw_dir, trace):
    return simulate_runs(sorted(hw_dir.glob("*.yaml")), [trace])


def test_pareto_front_by_hand():
    df = pd.DataFrame(
        {"c": [1.0, 2.0, 3.0, 0.5, 2.0, float("nan"), 4.0], "a": [5.0, 3.0, 3.0, 10.0, 3.0, 0.0, 0.0]},
        index=list("ABCDEFG"),
    )
    front = pareto_front(df, "c", "a")
    # C is dominated by B (same accuracy, more cost); B and E tie (neither dominates); F has no cost
    assert list(front[front].index) == ["A", "B", "D", "E", "G"]


def test_three_objective_front_by_hand():
    df = pd.DataFrame(
        {"e": [1.0, 0.5, 0.6, 0.5], "a": [0.0, 0.1, 0.3, 0.2], "d": [0.0, 5.0, 4.0, 5.0]}, index=list("DPQR")
    )
    # R is dominated by P (same energy and loss, more area); Q trades area for accuracy
    front = pareto_front(df, ["e", "a"], "d")
    assert list(front[front].index) == ["D", "P", "Q"]


def test_join_by_pattern_criterion_and_the_configs_mitigation(tmp_path, runs):
    extra = [
        {
            "key": "m|2:4|magnitude|median-shift",
            "model": "smollm2-135m",
            "pattern": "2:4",
            "criterion": "magnitude",
            "mitigation": "median-shift",
            "ppl": 50.0,
            "delta_ppl": 35.0,
        },
        {
            "key": "m|2:4|amber|none",
            "model": "smollm2-135m",
            "pattern": "2:4",
            "criterion": "amber",
            "mitigation": "none",
            "ppl": 45.0,
            "delta_ppl": 30.0,
        },
    ]
    acc = load_accuracy(accuracy_file(tmp_path / "acc.json", extra=extra))
    df = join_accuracy(cost_frame(runs), acc)
    got = dict(zip(df["pattern"], df["ppl"], strict=True))
    assert got == {"dense": 15.0, "2:4": 60.0, "16:32": 25.0, "unstructured0.5": 20.0}
    assert join_accuracy(cost_frame(runs), acc, criterion="amber").set_index("pattern").loc["2:4", "ppl"] == 45.0
    # a config with median shift hardware joins the median-shift record
    nm24 = next(r for r in runs if r.pattern == "2:4")
    hw = with_overrides(nm24.hw, {"sparsity.mitigation": "median_shift"})
    r = Run(hw, "x", nm24.trace, "prefill", 8, True, 1, 1, dict(nm24.counts))
    mixed = join_accuracy(cost_frame([runs[0], r]), acc)
    assert mixed.set_index("pattern").loc["2:4", "ppl"] == 50.0


def test_missing_accuracy_leaves_the_row_unranked(tmp_path, runs):
    acc = load_accuracy(accuracy_file(tmp_path / "a.json", patterns={"dense": 15.0, "2:4": 60.0}))
    df = tradeoff(runs, acc)
    row = df.set_index("pattern").loc["16:32"]
    assert pd.isna(row["ppl"]) and not row["front_energy"] and not row["front_area"]
    by = df.set_index("pattern")
    assert by.loc["dense", "front_energy"] and by.loc["dense", "front_all"]  # no overhead, no loss
    assert not by.loc["dense", "front_area"] and by.loc["2:4", "front_area"]  # area front: sparse configs only


def test_tradeoff_columns_and_dense_reference(tmp_path, runs):
    acc = load_accuracy(accuracy_file(tmp_path / "a.json"))
    df = tradeoff(runs, acc).set_index("pattern")
    assert df.loc["dense", "energy_vs_dense"] == 1.0 and df.loc["dense", "area_overhead_fraction"] == 0.0
    assert list(df.index) == ["dense", "2:4", "16:32", "unstructured0.5"]
    assert df.loc["2:4", "area_overhead_fraction"] < df.loc["16:32", "area_overhead_fraction"]
    area = sum(area_breakdown(load_hw(HW / "nm2_4.yaml")).values())
    assert df.loc["2:4", "area_um2"] == pytest.approx(area)
    parts = df.loc["2:4", [c for c in df.columns if c.startswith("energy_pj.")]].sum()
    assert parts == pytest.approx(df.loc["2:4", "energy_pj"])


def _hand_runs() -> list[Run]:
    """Dense: 1000 MACs + 10 DRAM bytes; 2:4: 500 MACs (+ mux) + 30 DRAM bytes. At 4 pJ/bit the sparse
    design wins on energy (1772 vs 1920 pJ); at 8 pJ/bit it loses (2732 vs 2240 pJ)."""

    def counts(**kw):
        c = dict.fromkeys(ACTIONS, 0)
        c.update(kw)
        return c

    return [
        Run(
            tiny_dense(),
            "d",
            "hand.npz",
            "prefill",
            1,
            True,
            100,
            1000,
            counts(mac_active=1000, dram_read_byte_weight=10),
        ),
        Run(
            tiny(),
            "s",
            "hand.npz",
            "prefill",
            1,
            True,
            60,
            1000,
            counts(mac_active=500, mux_select=500, dram_read_byte_weight=30),
        ),
    ]


def test_sensitivity_reports_which_scaling_moves_the_front(tmp_path):
    acc = load_accuracy(accuracy_file(tmp_path / "a.json", patterns={"dense": 15.0, "2:4": 60.0}))
    base = tradeoff(_hand_runs(), acc).set_index("pattern")
    assert base.loc["2:4", "energy_pj"] == pytest.approx(500 * 1.6 + 500 * 0.024 + 30 * 32)
    assert base["front_energy"].all()
    s = sensitivity(_hand_runs(), acc, {"energy.dram_bit": (0.5, 2.0), "energy.mux2_bit": (2.0,)})
    moved = s[s["changed"]]
    assert list(zip(moved["entry"], moved["factor"], moved["axis"], moved["left"], strict=True)) == [
        ("energy.dram_bit", 2.0, "energy", "2:4"),
        ("energy.dram_bit", 2.0, "all", "2:4"),
    ]
    assert not s[(s["entry"] == "energy.mux2_bit")]["changed"].any()


def test_runs_round_trip_and_errors(tmp_path, runs):
    p = save_runs(tmp_path / "runs.json", runs)
    back = load_runs(p)
    assert [r.counts for r in back] == [r.counts for r in runs]
    assert [r.hw for r in back] == [r.hw for r in runs]
    raw = json.loads(p.read_text())
    del raw["runs"][0]["action_counts"]["mux_select"]
    p.write_text(json.dumps(raw))
    with pytest.raises(CostError, match=r"runs\[0\].action_counts: missing action\(s\) mux_select"):
        load_runs(p)


def test_accuracy_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "other", "records": {}}))
    with pytest.raises(CostError, match="schema: must be 'accelsim-accuracy/1'"):
        load_accuracy(bad)
    bad.write_text(json.dumps({"schema": "accelsim-accuracy/1", "records": [{"pattern": "2:4"}]}))
    with pytest.raises(CostError, match="missing 'ppl'"):
        load_accuracy(bad)
    with pytest.raises(CostError, match="cannot read"):
        load_accuracy(tmp_path / "nope.json")


def test_parse_scalings():
    assert parse_scalings(["energy.dram_bit=0.5,2"]) == {"energy.dram_bit": (0.5, 2.0)}
    for bad in ("energy.dram_bit", "energy.dram_bit=x", "energy.dram_bit=-1"):
        with pytest.raises(CostError):
            parse_scalings([bad])
    with pytest.raises(CostError, match="no such entry"):
        default_table().scaled({"energy.nope": 2.0})


# --- CLI ----------------------------------------------------------------------------------------------------------


def test_cost_cli_prints_area_breakdown_and_overhead():
    r = runner.invoke(app, ["cost", "--hw", str(HW / "nm8_16.yaml"), "--prices"])
    assert r.exit_code == 0, r.output
    for word in ("decoder_mux", "compressor", "metadata_buffer", "sparsity_area_overhead", "mux_select", "58"):
        assert word in r.output
    r = runner.invoke(app, ["cost", "--hw", str(HW / "nm8_16.yaml"), "--json", "--node", "7"])
    rec = json.loads(r.output)
    assert rec["area_um2"] == pytest.approx(sum(area_breakdown(load_hw(HW / "nm8_16.yaml"), node_nm=7).values()))
    assert rec["inventory"]["compressor_comparators_per_lane"] == 58 and rec["inventory"]["node_nm"] == 7


@pytest.mark.parametrize(
    "edit, args, message",
    [
        (None, ["--node", "3"], "node_nm 3"),
        (
            "cost:\n  energy:\n    dram_bitt: {value: 8, unit: pJ/bit, source: x}\n",
            [],
            "cost.energy.dram_bitt: unknown entry",
        ),
        ("cost:\n  nodes: 7\n", [], "cost.nodes: unknown key (allowed: node_nm"),
        ("  n: 17\n", [], "n must be <= m"),
    ],
)
def test_cost_cli_bad_input_is_one_line_exit_2(tmp_path, edit, args, message):
    hw = tmp_path / "my cfg [1].yaml"
    text = (HW / "nm8_16.yaml").read_text()
    if edit is not None:
        text = text.replace("  n: 8\n", edit) if edit.startswith("  n:") else text + edit
    hw.write_text(text)
    r = runner.invoke(app, ["cost", "--hw", str(hw), *args])
    assert r.exit_code == 2
    assert message in r.output
    if edit is not None:
        assert "my cfg [1].yaml" in r.output


def test_tradeoff_cli_end_to_end_and_from_saved_runs(tmp_path, trace, hw_dir):
    acc = accuracy_file(tmp_path / "acc.json")
    out = tmp_path / "out"
    args = ["tradeoff", "--accuracy", str(acc), "--hw-dir", str(hw_dir)]
    r = runner.invoke(app, [*args, "--trace", str(trace), "--out", str(out), "--scale", "energy.dram_bit=0.5,2"])
    assert r.exit_code == 0, r.output
    assert "SYNTHETIC" in r.output and "16:32" in r.output and "*" in r.output
    assert {p.name for p in out.iterdir()} == {"tradeoff.csv", "tradeoff.png", "sensitivity.csv", "runs.json"}
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    df = pd.read_csv(out / "tradeoff.csv")
    assert set(df["pattern"]) == {"dense", "2:4", "16:32", "unstructured0.5"}
    r2 = runner.invoke(app, [*args, "--runs", str(out / "runs.json"), "--markdown", "--no-sensitivity"])
    assert r2.exit_code == 0, r2.output
    assert "| trace | pattern |" in r2.output
    out3 = tmp_path / "out3"
    r3 = runner.invoke(
        app, [*args, "--runs", str(out / "runs.json"), "--breakeven", "--scale", "area.sram_mib=2", "--out", str(out3)]
    )
    assert r3.exit_code == 0, r3.output
    assert "break-even" in r3.output and (out3 / "breakeven.csv").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give either --trace"),
        (["--trace", "nope.npz"], "nope.npz: no such trace file"),
        (["--runs", "x.json", "--trace", "y.npz"], "give either --trace"),
        (["--runs", "x.json", "--scale", "energy.nope=2"], "energy.nope"),
        (["--runs", "x.json"], "cannot read runs JSON"),
    ],
)
def test_tradeoff_cli_bad_input_is_exit_2(tmp_path, hw_dir, extra, message):
    acc = accuracy_file(tmp_path / "acc.json")
    r = runner.invoke(app, ["tradeoff", "--accuracy", str(acc), "--hw-dir", str(hw_dir), *extra])
    assert r.exit_code == 2
    assert message in r.output


def test_two_configs_of_one_pattern_get_distinct_labels(tmp_path, runs):
    uns = next(r for r in runs if r.pattern == "unstructured0.5")
    raw = uns.hw.model_dump()
    raw["name"] = "unstructured_k1536"
    raw["cost"] = {"unstructured_select_inputs": 64}
    from accelsim.config.hw import HwConfig

    narrow = Run(HwConfig.model_validate(raw), "x", uns.trace, uns.phase, uns.tokens, True, uns.cycles, 1, uns.counts)
    acc = load_accuracy(accuracy_file(tmp_path / "a.json"))
    df = tradeoff([*runs, narrow], acc)
    labels = list(df["label"])
    assert "unstructured0.5 (unstructured)" in labels and "unstructured0.5 (unstructured_k1536)" in labels
    a = df.set_index("label")["area_overhead_fraction"]
    assert a["unstructured0.5 (unstructured_k1536)"] < a["unstructured0.5 (unstructured)"]
    s = sensitivity([*runs, narrow], acc, {"area.mux2_bit": (2.0,)})
    assert set(s["axis"]) == {"energy", "area", "all"}


def test_breakeven_finds_the_nearest_factor_that_moves_a_front(tmp_path):
    from accelsim.explore import breakeven

    acc = load_accuracy(accuracy_file(tmp_path / "a.json", patterns={"dense": 15.0, "2:4": 60.0}))
    # dense 1600 + 320 f pJ, 2:4 812 + 960 f pJ: 2:4 stops saving energy above f = 788/640 = 1.23
    be = breakeven(_hand_runs(), acc, ["energy.dram_bit", "area.sram_mib"]).set_index("entry")
    assert be.loc["energy.dram_bit", "up_factor"] == pytest.approx(2**0.5)
    assert be.loc["energy.dram_bit", "up_change"] == "hand/energy: -2:4; hand/all: -2:4"
    assert pd.isna(be.loc["energy.dram_bit", "down_factor"]) and pd.isna(be.loc["area.sram_mib", "up_factor"])
