"""Hardware config validation: every failure mode gives one line naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from accelsim.config import ConfigError, load_hw

HW_DIR = Path(__file__).resolve().parents[1] / "hw_configs"
SHIPPED = sorted(HW_DIR.glob("*.yaml"))


def test_six_shipped_configs_validate_and_share_one_machine():
    names = {p.stem for p in SHIPPED}
    assert {"dense", "nm2_4", "nm4_8", "nm8_16", "nm16_32", "unstructured"} <= names
    cfgs = [load_hw(p) for p in SHIPPED]
    machine = {c.model_dump_json(exclude={"name", "sparsity", "cost"}) for c in cfgs}
    assert len(machine) == 1, "hw_configs must differ only in their sparsity section"
    # a cost section only names the compressor network the sparsity hardware uses
    assert all(set(c.cost or {}) <= {"compressor_network"} for c in cfgs)
    assert {c.sparsity.label for c in cfgs} >= {"dense", "2:4", "4:8", "8:16", "16:32", "unstructured0.5"}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hw.yaml"
    p.write_text(text)
    return p


def _base() -> str:
    return (HW_DIR / "nm8_16.yaml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("  n: 8\n", "  n: 32\n", "sparsity: n must be <= m"),
        ("  latency_cycles: 100\n", "  latency_cycles: 100\n  latncy: 3\n", "dram.latncy: unknown key"),
        ("bandwidth_gb_per_s: 256.0", "bandwidth_gb_per_s: fast", "dram.bandwidth_gb_per_s"),
        ("bandwidth_gb_per_s: 256.0", "bandwidth_gb_per_s: -1", "greater than or equal to 0.001"),
        ("dataflow: mma", "dataflow: systolic", "array.dataflow: must be one of 'ws', 'os' or 'mma'"),
        ("weight_fetch: gather_rows", "weight_fetch: some", "sparsity.weight_fetch"),
        ("    units: 8\n", "", "array.mma.units: required key is missing"),
        ("  metadata_buffer:\n", "  metadata_buffr:\n", "sparsity.metadata_buffr: unknown key"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_key(tmp_path, old, new, expect):
    text = _base()
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_hw(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert expect in msg


def test_duplicate_keys_are_rejected(tmp_path):
    path = _write(tmp_path, _base().replace("  burst_bytes: 64\n", "  burst_bytes: 64\n  burst_bytes: 32\n"))
    with pytest.raises(ConfigError, match="duplicate key"):
        load_hw(path)


def test_dense_must_not_carry_sparsity_hardware(tmp_path):
    text = (HW_DIR / "dense.yaml").read_text().replace("  kind: dense\n", "  kind: dense\n  n: 2\n  m: 4\n")
    with pytest.raises(ConfigError, match="kind 'dense' has no 'n'"):
        load_hw(_write(tmp_path, text))


def test_unstructured_on_weight_stationary_is_rejected(tmp_path):
    text = (
        (HW_DIR / "unstructured.yaml")
        .read_text()
        .replace("  dataflow: mma\n", "  dataflow: ws\n  systolic: {rows: 8, cols: 8}\n")
    )
    with pytest.raises(ConfigError, match="weight-stationary"):
        load_hw(_write(tmp_path, text))


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_hw(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_hw(_write(tmp_path, "- 1\n- 2\n"))


def test_config_is_frozen_and_digest_ignores_formatting(tmp_path):
    a = load_hw(HW_DIR / "nm8_16.yaml")
    with pytest.raises(ValidationError):
        a.name = "x"  # type: ignore[misc]
    b = load_hw(_write(tmp_path, "# a comment\n" + _base()))
    assert a.digest() == b.digest()


def test_docs_key_reference_matches_the_models():
    from accelsim.config.reference import config_reference_markdown

    doc = (HW_DIR.parent / "docs" / "hardware-config.md").read_text()
    assert doc == config_reference_markdown(), (
        "regenerate: python -m accelsim.config.reference > docs/hardware-config.md"
    )
