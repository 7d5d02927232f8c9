"""docs/assumptions.md generator: each assumption is switched in config and baseline, the port sweep finds the
width a pattern needs (counted by hand), output does not depend on --jobs, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config import load_hw
from accelsim.explore.assumptions import ASSUMPTIONS, build_report
from accelsim.sim.operands import candidate_rows

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hw_configs"
PREFILL = str(ROOT / "traces" / "smollm2-135m_prefill32.npz")
PICK = {"accumulator registers", "leakage", "compressor network", "gathered-row activations"}


def _row(text: str, section: str, label: str) -> list[str]:
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in part.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.fixture(scope="module")
def report() -> str:
    chosen = [a for a in ASSUMPTIONS if a.label in PICK]
    return build_report(
        HW, [PREFILL], configs=("nm8_16", "nm2_4"), assumptions=chosen, port_widths=(768, 1024, 1280, 2048)
    )


def test_port_sweep_finds_the_width_an_instruction_needs(report):
    hw = load_hw(HW / "nm8_16.yaml")
    mm = hw.array.mma
    # bytes one sparse instruction reads (activations + candidate weight rows), per cycle over all units
    need = mm.units * (mm.tokens * mm.reduction * 2 + candidate_rows(mm.reduction, 8, 16) * mm.outputs * 2)
    need //= mm.issue_interval_cycles
    assert need == 1280
    cells = _row(report, "Operand-port width", "nm8_16")
    assert cells[-1] == str(need)
    speedups = [float(c) for c in cells[1:-1]]
    assert speedups[0] < speedups[1] < speedups[2] == speedups[3]  # port-bound below 1280, flat from there


def test_each_assumption_changes_what_it_should(report):
    energy = "prefill: energy vs dense"
    acc = _row(report, energy, "accumulator registers")
    assert "→" in acc[1] and "→" in acc[2]  # every partial sum to SRAM changes energy of both patterns
    speed = _row(report, "prefill: speedup vs dense (x)", "accumulator registers")
    assert speed[1].endswith("=") and speed[2].endswith("=")  # ... but never the cycles
    comp = _row(report, "Area overhead against dense", "compressor network")
    lo, hi = (float(x.rstrip("%")) for x in comp[1].split(" → "))
    assert hi > lo  # a full sort has more comparators than the pruned top-n network
    leak = _row(report, "prefill: speedup vs dense (x)", "leakage")
    assert leak[1].endswith("=")  # leakage is energy only


def test_output_does_not_depend_on_jobs(report):
    chosen = [a for a in ASSUMPTIONS if a.label in PICK]
    again = build_report(
        HW, [PREFILL], configs=("nm8_16", "nm2_4"), assumptions=chosen, port_widths=(768, 1024, 1280, 2048), jobs=2
    )
    assert again == report


def test_cli_rejects_unknown_config_without_writing(tmp_path):
    out = tmp_path / "a.md"
    res = CliRunner().invoke(app, ["assumptions", "--hw-dir", str(HW), "--config", "nm9_16", "--out", str(out)])
    assert res.exit_code == 2
    assert "nm9_16.yaml: no such config" in res.output
    assert not out.exists()
