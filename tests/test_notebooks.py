"""Every notebook in notebooks/ runs top to bottom (code cells executed in order, no Jupyter needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    matplotlib.use("Agg")
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: strip outputs"
    monkeypatch.chdir(ROOT / "notebooks")
    ns: dict = {"__name__": "__main__"}
    try:
        for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
            src = "".join(cell["source"])
            try:
                exec(compile(src, f"{path.name}[code cell {i}]", "exec"), ns)
            except Exception as exc:  # name the cell
                raise AssertionError(f"{path.name}, code cell {i} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(ROOT)
        import matplotlib.pyplot as plt

        plt.close("all")
    CHECKS[path.name](ns)  # the notebook reached its end and computed what it shows


def _which_nm(ns: dict) -> None:
    assert "sens" in ns and "to" in ns and ns["to"]["front_all"].any()


def _design_space(ns: dict) -> None:
    df, keys = ns["df"], ns["KEYS"]
    assert len(df) == len(df.drop_duplicates(keys)) >= 48 and df["delta_ppl"].notna().all()
    assert len(ns["front"]) >= 2 and ns["already"] == len(ns["sw"].plan(ns["points"], [ns["prefill_ref"]]))
    assert set(ns["runs"]) == {"8:16", "2:4", "dense"}


CHECKS = {"which_nm.ipynb": _which_nm, "design_space.ipynb": _design_space}
