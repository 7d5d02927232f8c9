"""Issue 10 regressions: candidate rows, compacted gather reads and metadata of padded rows, counted by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_hw
from accelsim.cost.model import area_breakdown, hardware
from accelsim.sim.actions import Action
from accelsim.sim.operands import candidate_rows, nm_instruction_rows, unstructured_instruction_rows
from accelsim.sim.work import build_site_work

HW = Path(__file__).resolve().parents[1] / "hw_configs"


@pytest.mark.parametrize(
    ("n", "m", "k", "rows"),
    [
        (2, 4, 16, 32),  # 8 groups of 4
        (8, 16, 16, 32),  # 2 groups of 16
        (16, 32, 16, 32),  # half a group: its 32 rows
        (32, 64, 16, 64),  # m/n would say 32: the 16 slots lie in one group of 64 rows
        (6, 8, 16, 32),  # n does not divide k: the instruction at slot 16 touches groups 2..5
        (3, 4, 16, 24),  # slots 0..15 touch groups 0..5 (6 x 4), as do 16..31 and 32..47
    ],
)
def test_candidate_rows_by_hand(n, m, k, rows):
    assert candidate_rows(k, n, m) == rows


def test_instruction_rows_follow_the_groups_they_touch():
    # 6:8 on K = 32 (4 groups, 24 slots), k = 16: slots 0..15 -> groups 0..2 (24 rows), 16..23 -> 2..3 (16)
    assert list(nm_instruction_rows(np.full(4, 8), 6, 16)) == [24, 16]
    # compacted storage: only the kept rows of those groups are there
    assert list(nm_instruction_rows(np.array([6, 6, 5, 6]), 6, 16)) == [17, 11]


def test_unstructured_instruction_reads_the_union_of_its_tokens_rows():
    mask = np.zeros((2, 8), dtype=bool)
    mask[0, [0, 1, 2]] = True
    mask[1, [1, 5]] = True
    rows, kept = unstructured_instruction_rows(mask, tokens=2, k=2)
    # slots 0..1: token 0 rows {0, 1}, token 1 rows {1, 5} -> 3 rows; slots 2..3: token 0 row {2} -> 1 row
    assert list(rows) == [3, 1] and list(kept) == [4, 1]


def test_cost_model_uses_the_same_candidate_rows():
    hw = load_hw(HW / "nm16_32.yaml")
    h = hardware(hw)
    mm = hw.array.mma
    assert h.candidate_register_bits == mm.units * (candidate_rows(16, 16, 32) - 16) * mm.outputs * 16
    assert area_breakdown(hw)["weight_candidate_registers"] == pytest.approx(h.candidate_register_bits * 5.98)


def _one_token(cfg: str, K: int = 64, O: int = 32, **sparsity):  # noqa: N803
    """One decode token on a shipped config, with ``sparsity`` keys overridden."""
    from accelsim.config.hw import HwConfig

    raw = load_hw(HW / cfg).model_dump()
    raw["sparsity"].update(sparsity)
    hw = HwConfig.model_validate(raw)
    x = np.random.default_rng(0).normal(size=(1, K)).astype(np.float16)
    return hw, build_site_work(hw, x, O)


def test_decode_gather_reads_the_compacted_rows_from_the_weight_sram():
    hw, w = _one_token("nm2_4.yaml")
    # one token keeps 32 of 64 rows; stored compacted, every instruction reads only those: 32 rows x O x 2 B
    assert w.actions[Action.WEIGHT_SRAM_READ_BYTE.value] == 32 * 32 * 2
    assert w.actions[Action.WEIGHT_SRAM_WRITE_BYTE.value] == 32 * 32 * 2  # what was fetched
    _, wd = _one_token("nm2_4.yaml", weight_fetch="dense")
    assert wd.actions[Action.WEIGHT_SRAM_READ_BYTE.value] == 64 * 32 * 2  # dense storage: every candidate row


def test_padding_token_rows_carry_no_metadata():
    hw, w = _one_token("nm2_4.yaml")
    # one real token of the 8-row instruction: 32 kept slots x 2 index bits, for each of 32/16 = 2 output blocks
    assert w.actions[Action.METADATA_READ_BIT.value] == 2 * 32 * 2


def _run_with(tmp_path, base: str, edit) -> tuple[int, str, Path]:
    import yaml
    from typer.testing import CliRunner

    from accelsim.cli import app

    data = yaml.safe_load((HW / base).read_text())
    edit(data)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    trace = HW.parent / "traces" / "smollm2-135m_decode16.npz"
    res = CliRunner().invoke(app, ["run", "--hw", str(cfg), "--trace", str(trace), "--out", str(out)])
    return res.exit_code, res.output, out


def test_metadata_buffer_too_small_names_key_and_minimum(tmp_path):
    def edit(d):
        d["sparsity"]["metadata_buffer"]["capacity_bytes"] = 100

    code, text, out = _run_with(tmp_path, "nm8_16.yaml", edit)
    # 8:16 index metadata of the widest site (K = 1536): 96 groups x 8 x 4 bits = 384 B a token, two tokens
    assert code == 2 and not out.exists()
    assert "sparsity.metadata_buffer.capacity_bytes=100" in text and "minimum 768" in text
    assert len(text.strip().splitlines()) == 1


def test_density_that_keeps_nothing_is_rejected(tmp_path):
    def edit(d):
        d["sparsity"]["density"] = 0.0005  # round(0.0005 x 576) = 0 kept channels

    code, text, out = _run_with(tmp_path, "unstructured_flex.yaml", edit)
    assert code == 2 and not out.exists()
    assert "sparsity.density=0.0005" in text and "0.5/K" in text
    assert len(text.strip().splitlines()) == 1
