"""Report figures: they draw what the frame says (no pixels compared)."""

from __future__ import annotations

import pandas as pd

from accelsim.report.plots import tradeoff_grid


def _frame() -> pd.DataFrame:
    rows = []
    for trace, phase in (("a.npz", "prefill"), ("b.npz", "decode")):
        for pat, dppl, sp, en, ar, fe, fa in (
            ("dense", 0.0, 1.0, 1.0, 0.0, True, False),
            ("2:4", 50.0, 1.9, 0.6, 0.06, True, True),
            ("8:16", 16.0, 1.9, 0.61, 0.13, True, True),
            ("unstructured0.5", 9.0, 1.4, 2.2, 23.0, False, True),
            ("4:8", float("nan"), 1.9, 0.6, 0.08, False, False),  # no accuracy record: left out
        ):
            rows.append(
                dict(
                    trace=trace, phase=phase, pattern=pat, label=pat, delta_ppl=dppl, speedup_vs_dense=sp,
                    energy_vs_dense=en, area_overhead_fraction=ar, front_energy=fe, front_area=fa,
                )
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_tradeoff_grid_has_a_row_per_trace_and_marks_the_fronts(tmp_path):
    fig = tradeoff_grid(_frame(), title="t")
    axes = fig.axes
    assert len(axes) == 2 * 3
    labels = {t.get_text() for t in axes[0].texts}
    assert labels == {"dense", "2:4", "8:16", "unstructured0.5"}  # 4:8 has no delta_ppl
    assert {t.get_text() for t in axes[2].texts} == {"2:4", "8:16", "unstructured0.5"}  # no dense on the area plane
    assert axes[2].get_yscale() == "log"
    # energy panel: the front line joins the three front points in delta_ppl order
    (line,) = axes[1].get_lines()
    assert list(line.get_xdata()) == [0.0, 16.0, 50.0]
    fig.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_breakdown_names_configs_when_patterns_repeat():
    from accelsim.report.plots import breakdown_bars

    df = pd.DataFrame(
        {
            "config": ["dense", "unstructured", "unstructured_flex", "nm8_16"],
            "pattern": ["dense", "unstructured0.5", "unstructured0.5", "8:16"],
            "compute_cycles": [4.0, 2.0, 2.0, 2.0],
            "speedup_vs_dense": [1.0, 2.0, 2.0, 2.0],
        }
    )
    ax = breakdown_bars(df).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(df["config"])
    assert ax.get_xlabel().startswith("hardware config")
    distinct = breakdown_bars(df[df["config"] != "unstructured_flex"]).axes[0]
    assert [t.get_text() for t in distinct.get_xticklabels()] == ["dense", "unstructured0.5", "8:16"]
