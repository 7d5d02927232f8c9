"""Sweep figures (accelsim/report/sweep_plots.py) draw exactly the rows they are given: heatmap cells are the
sweep's rows, roofline markers are the sites' intensity and throughput, stacked bars sum to each layer's
cycles. Data: a real sweep and real runs on the committed prefill trace."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config import load_hw
from accelsim.report import sweep_plots as sp
from accelsim.sim.engine import BREAKDOWN

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hw_configs"
PREFILL = ROOT / "traces" / "smollm2-135m_prefill32.npz"
KEYS = ["sparsity.pattern", "dram.bandwidth_gb_per_s"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    args = ["--set", "sparsity.pattern=2:4,8:16", "--set", "dram.bandwidth_gb_per_s=64,256", "--workers", "1"]
    r = CliRunner().invoke(app, ["sweep", "--trace", str(PREFILL), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    return out, pd.DataFrame(json.loads((out / "sweep.json").read_text())["rows"])  # full precision


@pytest.fixture(scope="module")
def sites():
    from accelsim.report.tables import sites_frame
    from accelsim.sim.run import simulate
    from accelsim.trace.format import Trace

    out = {}
    for name in ("dense", "nm8_16", "nm2_4"):
        cfg = load_hw(HW / f"{name}.yaml")
        with Trace(PREFILL) as tr:
            out[name] = (cfg, sites_frame(simulate(cfg, tr)))
    return out


def test_heatmap_cells_are_the_sweeps_rows(swept):
    out, df = swept
    x, y = "dram.bandwidth_gb_per_s", "sparsity.pattern"
    cells = sp.heatmap_table(df, x, y, "speedup_vs_dense")
    assert list(cells.columns) == [64, 256] and list(cells.index) == ["2:4", "8:16"]
    for _, row in df.iterrows():
        assert cells.loc[row[y], row[x]] == row["speedup_vs_dense"]
    fig = sp.sweep_heatmap(df, x, y, "speedup_vs_dense")
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), cells.to_numpy())
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in df["speedup_vs_dense"])
    assert ax.get_xlabel() == "dram.bandwidth_gb_per_s (GB/s)"
    assert fig.axes[1].get_ylabel() == "speedup vs the dense machine (x)"  # the colour bar names the unit


def test_heatmap_with_a_third_key_needs_it_fixed_and_leaves_missing_cells_blank(swept):
    _, df = swept
    three = pd.concat([df.assign(**{"array.mma.units": u}) for u in (4, 8)], ignore_index=True)
    three.loc[three["array.mma.units"] == 8, "speedup_vs_dense"] *= 2
    with pytest.raises(ValueError, match=r"fixed= \(array\.mma\.units\)$"):
        sp.heatmap_table(three, "dram.bandwidth_gb_per_s", "sparsity.pattern")
    cells = sp.heatmap_table(three, "dram.bandwidth_gb_per_s", "sparsity.pattern", fixed={"array.mma.units": 8})
    assert cells.loc["8:16", 256] == 2 * df.set_index(KEYS).loc[("8:16", 256), "speedup_vs_dense"]
    part = df[~((df["sparsity.pattern"] == "2:4") & (df["dram.bandwidth_gb_per_s"] == 64))]
    cells = sp.heatmap_table(part, "dram.bandwidth_gb_per_s", "sparsity.pattern")
    assert np.isnan(cells.loc["2:4", 64]) and cells.notna().sum().sum() == 3
    ax = sp.sweep_heatmap(part, "dram.bandwidth_gb_per_s", "sparsity.pattern").axes[0]
    assert len(ax.texts) == 3
    with pytest.raises(ValueError, match="no column 'nope'"):
        sp.heatmap_table(df, "nope", "sparsity.pattern")


def test_sweep_writes_the_heatmap_of_its_last_two_keys(swept, tmp_path):
    out, df = swept
    assert (out / "sweep_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = sp.sweep_heatmaps(df, KEYS)
    assert fig.axes[0].get_xlabel().startswith("dram.bandwidth_gb_per_s")
    assert fig.axes[0].get_ylabel().startswith("sparsity.pattern")
    one = tmp_path / "one"
    r = CliRunner().invoke(
        app, ["sweep", "--trace", str(PREFILL), "--out", str(one), "--set", "sparsity.pattern=8:16", "--workers", "1"]
    )
    assert r.exit_code == 0, r.output
    assert (one / "sweep_tradeoff.png").is_file() and not (one / "sweep_heatmap.png").exists()


def test_roofline_markers_are_each_sites_intensity_and_throughput(sites):
    cfg, s = sites["nm8_16"]
    ax = sp.roofline(s, cfg).axes[0]
    dram = s[[f"dram_{k}_bytes" for k in ("weight", "activation", "metadata", "output")]].sum(axis=1)
    got = np.concatenate([c.get_offsets() for c in ax.collections])
    want = np.column_stack([s["dense_macs"] / dram, s["dense_macs"] / s["cycles"]])
    assert got.shape == want.shape
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(want, axis=0))
    heights = sorted(ln.get_ydata()[0] for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1)
    assert heights == [cfg.peak_macs_per_cycle, cfg.peak_macs_per_cycle * 16 / 8]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert "MACs per DRAM byte" in ax.get_xlabel() and "MACs per cycle" in ax.get_ylabel()


def test_stall_breakdown_same_parts_in_every_panel_bars_sum_to_layer_cycles(sites):
    dense = sites["dense"][1]
    runs = {"8:16": sites["nm8_16"][1], "2:4": sites["nm2_4"][1]}
    fig = sp.stall_breakdown(runs, baseline=dense)
    panels = fig.axes
    assert len(panels) == 2 and panels[0].get_shared_y_axes().joined(panels[0], panels[1])
    orders = [[c.get_label() for c in ax.containers] for ax in panels]
    assert orders[0] == orders[1] and orders[0][0] == "compute (kept MACs)"
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == orders[0]
    for ax, (label, s) in zip(panels, runs.items(), strict=True):
        per_layer = s.groupby("layer", sort=False)["cycles"].sum()
        tops = np.sum([[b.get_height() for b in c] for c in ax.containers], axis=0)
        np.testing.assert_allclose(tops, per_layer.to_numpy() / 1e3)
        speedups = dense.groupby("layer", sort=False)["cycles"].sum() / per_layer
        assert [t.get_text() for t in ax.texts] == [f"{v:.2f}x" for v in speedups]
        assert ax.get_title(loc="left").startswith(
            f"{label}: {dense['cycles'].sum() / s['cycles'].sum():.2f}x vs dense"
        )
    assert panels[0].get_ylabel() == "cycles (thousands)"
    parts = sp.layer_breakdown(runs["8:16"])
    assert (parts[[f"{p}_cycles" for p in BREAKDOWN]].sum(axis=1) == parts["cycles"]).all()


def test_axis_labels_of_keys_carry_units():
    assert sp.key_label("dram.bandwidth_gb_per_s") == "dram.bandwidth_gb_per_s (GB/s)"
    assert sp.key_label("array.mma.units", [4, 8]) == "array.mma.units (count)"
    assert sp.key_label("clock_hz", [1e9]) == "clock_hz (Hz)"
    assert sp.metric_label("energy_pj_per_token") == "energy per token (pJ)"


def test_sweep_tradeoff_labels_do_not_overlap_and_point_at_their_points(swept):
    from matplotlib.text import Text

    from accelsim.report.plots import sweep_tradeoff

    _, df = swept
    fig = sweep_tradeoff(df, KEYS)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]
        assert boxes, "every front is labelled"
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        assert all(t.arrow_patch is not None for t in ax.texts)  # a leader line to the labelled point
