"""The cost model: the table and its overrides, the action <-> price contract, hand-computed energies and areas
of a tiny machine, the sum of parts, decoder area against M, dense has no sparsity cost, node scaling, and the
compressor's comparator networks."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from accelsim.api import with_overrides
from accelsim.config.hw import HwConfig, load_hw
from accelsim.cost import (
    AREA_COMPONENTS,
    ENERGY_COMPONENTS,
    SPARSITY_AREA_COMPONENTS,
    CostError,
    action_prices,
    area_breakdown,
    default_table,
    energy_breakdown,
    hardware,
    load_table,
    sparsity_area_overhead,
)
from accelsim.cost.networks import apply, batcher_pairs, bitonic_pairs, comparators, depth, network
from accelsim.cost.table import REQUIRED_ENTRIES
from accelsim.sim.actions import ACTIONS
from accelsim.sim.run import simulate
from accelsim.trace.format import Trace
from tests.helpers import smollm2_shaped_trace

HW = Path(__file__).resolve().parents[1] / "hw_configs"
SHIPPED = ["dense", "nm2_4", "nm4_8", "nm8_16", "nm16_32", "unstructured"]

# A tiny machine whose numbers are easy to follow by hand: one mma unit of t x o x k = 1 x 2 x 2 issuing every
# cycle (P = 4 multipliers), bf16 operands with fp32 accumulation, 2:4 with index metadata, every SRAM 8 KiB
# (the capacity of the table's reference read: 10 pJ per 64 b).
TINY = {
    "schema_version": 1,
    "name": "tiny24",
    "clock_hz": 1.0e9,
    "precision": {"activation_bytes": 2, "weight_bytes": 2, "accumulator_bytes": 4, "output_bytes": 2},
    "array": {
        "dataflow": "mma",
        "mma": {
            "units": 1,
            "tokens": 1,
            "outputs": 2,
            "reduction": 2,
            "issue_interval_cycles": 1,
            "latency_cycles": 1,
            "operand_buffer_read_bytes_per_cycle": 64,
        },
    },
    "sram": {
        "activation_buffer_bytes": 8192,
        "weight_buffer_bytes": 8192,
        "output_buffer_bytes": 8192,
        "max_tokens_per_tile": 8,
    },
    "dram": {"bandwidth_gb_per_s": 64.0, "latency_cycles": 10, "burst_bytes": 4},
    "sparsity": {
        "kind": "nm",
        "n": 2,
        "m": 4,
        "selection": "dynamic",
        "weight_fetch": "dense",
        "metadata_format": "index",
        "compressor": {"groups_per_cycle": 1, "latency_cycles": 1, "placement": "consumer"},
        "decoder": {"latency_cycles": 1},
        "metadata_buffer": {"capacity_bytes": 8192, "read_bytes_per_cycle": 8},
    },
}


def tiny(**sparsity) -> HwConfig:
    raw = {**TINY, "sparsity": {**TINY["sparsity"], **sparsity}}
    return HwConfig.model_validate(raw)


def tiny_dense() -> HwConfig:
    raw = {**TINY, "name": "tiny_dense", "sparsity": {"kind": "dense", "weight_fetch": "dense"}}
    return HwConfig.model_validate(raw)


def counts_of(hw: HwConfig, trace: Path) -> dict[str, int]:
    with Trace(trace) as tr:
        res = simulate(hw, tr)
    return {a: int(res.totals[f"{a}_count"]) for a in ACTIONS}


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("c") / "pf8.npz", tokens=8, layers=1)


@pytest.fixture(scope="module")
def decode_trace(tmp_path_factory):
    return smollm2_shaped_trace(tmp_path_factory.mktemp("d") / "dc2.npz", tokens=2, phase="decode", layers=1)


# --- the table -----------------------------------------------------------------------------------------------


def test_default_table_every_entry_has_value_unit_source_and_all_nodes():
    t = default_table()
    assert t.node_nm == 45 and set(t.nodes) == {45, 16, 7, 5}
    assert set(t.entries) == set(REQUIRED_ENTRIES)
    for e in t.entries.values():
        assert e.value >= 0 and e.unit and len(e.source) > 10 and e.tag in "VSDU"
    assert t.entries["energy.dram_bit"].scaling == "none"  # DRAM energy does not scale with the node
    for key, src in t.scaling_sources.items():
        assert src, key


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.replace('{value: 0.03, unit: "1", tag: V,', '{value: 0.03, unit: "1", tag: V, bogus: 1,'),
            "params.mac_gated_fraction",
        ),
        (lambda s: s.replace("schema: accelsim-cost-table/1", "schema: x"), "schema"),
        (
            lambda s: s.replace("  mul_fp32:\n    {value: 3.7,", "  mul_fp32:\n    {value: -3.7,"),
            "energy.mul_fp32.value",
        ),
        (lambda s: s + "\nenergy: {}\n", "duplicate key"),
        (lambda s: s.replace('tag: V, source: "Horowitz ISSCC\'14 fp32 add [1.1]"', 'tag: X, source: "h"'), "tag"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, edit, message):
    src = (Path(__file__).resolve().parents[1] / "accelsim/cost/default_45nm.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(src))
    assert edit(src) != src
    with pytest.raises(CostError) as ei:
        load_table(bad)
    assert "bad.yaml" in str(ei.value) and message in str(ei.value) and "\n" not in str(ei.value)


def test_table_without_a_used_entry_or_with_an_unused_one_is_an_error(tmp_path):
    src = (Path(__file__).resolve().parents[1] / "accelsim/cost/default_45nm.yaml").read_text()
    p = tmp_path / "t.yaml"
    p.write_text(src.replace("  adder_bit:\n    {value: 0.003125", "  adder_bitt:\n    {value: 0.003125"))
    with pytest.raises(CostError, match="missing entries energy.adder_bit"):
        load_table(p)


def test_override_changes_the_value_and_records_its_source():
    hw = with_overrides(load_hw(HW / "nm8_16.yaml"), {})
    raw = hw.model_dump()
    raw["cost"] = {"energy": {"dram_bit": {"value": 8.0, "unit": "pJ/bit", "source": "LPDDR4 CactiDRAM"}}}
    lp = HwConfig.model_validate(raw)
    p0 = action_prices(hardware(hw))["dram_read_byte_weight"]["dram_weight"]
    p1 = action_prices(hardware(lp))["dram_read_byte_weight"]["dram_weight"]
    assert p0 == pytest.approx(32.0) and p1 == pytest.approx(64.0)
    assert "LPDDR4 CactiDRAM" in hardware(lp).table.entries["energy.dram_bit"].source


def test_override_quoted_at_another_node_is_converted():
    raw = load_hw(HW / "dense.yaml").model_dump()
    # 0.0059 um^2... quoted at 7 nm: a 7 nm MAC of 298 um^2 is 298/0.059 um^2 at 45 nm
    raw["cost"] = {
        "node_nm": 7,
        "area": {"mac_bf16_acc32": {"value": 298.0, "unit": "um^2", "source": "7 nm quote", "node_nm": 7}},
    }
    hw = HwConfig.model_validate(raw)
    assert area_breakdown(hw)["mac"] == pytest.approx(2048 * 298.0)
    assert area_breakdown(hw, node_nm=45)["mac"] == pytest.approx(2048 * 298.0 / 0.059)


@pytest.mark.parametrize(
    "cost, message",
    [
        ({"energi": {}}, "cost.energi: unknown key (allowed: node_nm, datatype"),
        (
            {"energy": {"dram_bitt": {"value": 1, "unit": "pJ/bit", "source": "x"}}},
            "cost.energy.dram_bitt: unknown entry (allowed:",
        ),
        (
            {"energy": {"dram_bit": {"value": 1, "unit": "pJ", "source": "x"}}},
            "cost.energy.dram_bit.unit: must be 'pJ/bit'",
        ),
        ({"energy": {"dram_bit": {"value": 1, "unit": "pJ/bit"}}}, "missing source"),
        ({"energy": {"dram_bit": 8.0}}, "cost.energy.dram_bit: must be a mapping"),
        (
            {"energy": {"dram_bit": {"value": 1, "unit": "pJ/bit", "source": "x", "colour": 1}}},
            "dram_bit.colour: unknown key",
        ),
        ({"node_nm": 3}, "cost.node_nm: must be one of 45, 16, 7, 5"),
        ({"datatype": "fp8"}, "cost.datatype: must be one of int8, fp16, bf16"),
        ({"compressor_network": "magic"}, "cost.compressor_network: must be one of"),
        ({"params": {"activity": {"value": -1, "unit": "1", "source": "x"}}}, "cost.params.activity.value"),
    ],
)
def test_bad_overrides_name_the_key_and_what_is_allowed(cost, message):
    raw = load_hw(HW / "nm8_16.yaml").model_dump()
    raw["cost"] = cost
    hw = HwConfig.model_validate(raw)
    with pytest.raises(CostError) as ei:
        area_breakdown(hw)
    assert message in str(ei.value) and "nm8_16" in str(ei.value)


def test_unknown_precision_needs_a_datatype():
    raw = load_hw(HW / "dense.yaml").model_dump()
    raw["precision"]["weight_bytes"] = 0.5
    with pytest.raises(CostError, match="set cost.datatype"):
        area_breakdown(HwConfig.model_validate(raw))
    raw["cost"] = {"datatype": "int8"}
    assert area_breakdown(HwConfig.model_validate(raw))["mac"] == pytest.approx(2048 * 419)


# --- the action contract -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_counted_action_is_priced_and_every_priced_action_is_counted(name, small_trace):
    hw = load_hw(HW / f"{name}.yaml")
    prices = action_prices(hardware(hw))
    assert set(prices) == set(ACTIONS)
    with Trace(small_trace) as tr:
        res = simulate(hw, tr)
    counted = {k[: -len("_count")] for k in res.totals if k.endswith("_count")}
    assert counted == set(ACTIONS)


MITIGATED = [
    ("nm8_16", {"sparsity.mitigation": "var_learnable", "sparsity.metadata_format": "bitmask"}),
    ("nm2_4", {"sparsity.mitigation": "median_shift", "sparsity.compressor.placement": "producer"}),
    ("unstructured", {"sparsity.mitigation": "learnable"}),
    ("nm4_8", {"sparsity.mitigation": "var"}),
    ("dense", {}),
]


def test_no_count_without_a_price_and_no_price_without_a_count(small_trace, decode_trace):
    """Across configs that exercise every action: a nonzero count always has a nonzero price, and every
    action with a price on some config is counted (nonzero) on some config."""
    priced_somewhere, counted_somewhere = set(), set()
    for name, ov in MITIGATED:
        hw = with_overrides(load_hw(HW / f"{name}.yaml"), ov)
        prices = action_prices(hardware(hw))
        for tr in (small_trace, decode_trace):
            counts = counts_of(hw, tr)
            for a, n in counts.items():
                if n:
                    counted_somewhere.add(a)
                    assert prices[a] is not None and sum(prices[a].values()) > 0, (name, a)
        for a, p in prices.items():
            if p is not None and sum(p.values()) > 0:
                priced_somewhere.add(a)
    assert priced_somewhere == set(ACTIONS)
    assert counted_somewhere == set(ACTIONS)


def test_unknown_and_missing_actions_are_errors_not_zeros():
    hw = tiny()
    counts = dict.fromkeys(ACTIONS, 1)
    with pytest.raises(CostError, match="unknown action.*mac_skipped"):
        energy_breakdown(hw, {**counts, "mac_skipped": 3})
    del counts["dram_write_byte_output"]
    with pytest.raises(CostError, match="missing action.*dram_write_byte_output"):
        energy_breakdown(hw, counts)


def test_a_count_of_hardware_the_config_lacks_is_an_error():
    counts = dict.fromkeys(ACTIONS, 0)
    counts["metadata_read_bit"] = 5
    with pytest.raises(CostError, match="metadata_read_bit counted, but the config has no hardware"):
        energy_breakdown(tiny_dense(), counts)
    counts = dict.fromkeys(ACTIONS, 0)
    counts["mitigation_token_op"] = 1
    with pytest.raises(CostError, match="mitigation_token_op"):
        energy_breakdown(tiny(), counts)


# --- hand-computed tiny machine ------------------------------------------------------------------------------


def test_tiny_area_by_hand():
    a = area_breakdown(tiny())
    sram = 8192 / 2**20 * 3.4e6  # 26,562.5 um^2 per 8 KiB at 3.4 mm^2/MiB
    assert a["mac"] == pytest.approx(4 * 5050)  # P = 1 unit x 1 x 2 x 2 / 1 cycle = 4 bf16 MACs
    # operand registers: t*k*16 (activations) + k*o*16 (weights) + t*o*32 (accumulators) = 32 + 64 + 64 bits
    assert a["pe_registers"] == pytest.approx(160 * 5.98)
    # weight candidates: ceil(k/n)*m = 4 rows instead of k = 2, of o = 2 weights of 16 b: 64 extra bits
    assert a["weight_candidate_registers"] == pytest.approx(64 * 5.98)
    assert a["metadata_registers"] == pytest.approx(1 * 2 * 2 * 5.98)  # t*k slots x ceil(log2 4) bits
    assert a["decoder_mux"] == pytest.approx(4 * 3 * 16 * 2.0)  # P x (m-1) x w_w 2:1 mux bits
    # top-2-of-4: Batcher's 5 comparators (pruning keeps all 5); compare (|x|: 15 b, index: 2 b) = 17 b,
    # swap value and index (18 b) on two outputs; one pipeline stage of 4 x 18 b
    assert comparators(4, 2) == 5
    ce = 17 * 2.2 + 2 * 18 * 2.0
    assert a["compressor"] == pytest.approx(5 * ce + 1 * 4 * 18 * 5.98)
    for c in ("metadata_buffer", "act_sram", "weight_sram", "out_sram"):
        assert a[c] == pytest.approx(sram)
    assert a["bitmask_decoder"] == 0 and a["mitigation"] == 0
    assert list(a) == list(AREA_COMPONENTS)


def test_tiny_prices_by_hand():
    p = action_prices(hardware(tiny()))
    bit = 10.0 / 64  # 8 KiB SRAM: 10 pJ per 64 b read (Horowitz), writes = reads
    assert p["mac_active"] == {"mac": pytest.approx(1.6)}
    assert p["mac_gated"] == {"mac": pytest.approx(0.03 * 1.6)}
    assert p["mux_select"] == {"decoder_mux": pytest.approx(0.5 * 3 * 16 * 0.001)}
    ce = 17 * 0.00092 + 2 * 18 * 0.5 * 0.001
    assert p["compressor_group"]["compressor"] == pytest.approx(5 * ce + 1 * 4 * 18 * 0.009)
    assert p["metadata_write_bit"] == {"metadata_buffer": pytest.approx(bit)}
    assert p["metadata_read_bit"] == {"metadata_buffer": pytest.approx(bit), "pe_registers": pytest.approx(0.009)}
    port = pytest.approx(8 * 0.0053)  # one crosspoint-bit of the operand-port crossbar per bit read
    assert p["act_sram_read_byte"] == {
        "act_sram": pytest.approx(8 * bit),
        "pe_registers": pytest.approx(8 * 0.009),
        "operand_port": port,
    }
    assert p["weight_sram_write_byte"] == {"weight_sram": pytest.approx(8 * bit)}
    assert p["out_sram_update_byte"] == {"out_sram": pytest.approx(16 * bit)}  # read + write
    assert p["out_sram_read_byte"] == {"out_sram": pytest.approx(8 * bit)}
    assert p["dram_read_byte_metadata"] == {"dram_metadata": pytest.approx(32.0)}  # 4 pJ/bit
    assert all(p[a] is None for a in ACTIONS if a.startswith("mitigation_"))


def test_tiny_energy_by_hand():
    counts = dict.fromkeys(ACTIONS, 0)
    counts.update(mac_active=100, mac_gated=20, mux_select=100, compressor_group=10, metadata_read_bit=40)
    counts.update(weight_sram_read_byte=64, dram_read_byte_weight=32)
    e = energy_breakdown(tiny(), counts)
    bit = 10.0 / 64
    assert e["mac"] == pytest.approx(100 * 1.6 + 20 * 0.048)
    assert e["decoder_mux"] == pytest.approx(100 * 0.024)
    assert e["metadata_buffer"] == pytest.approx(40 * bit)
    assert e["pe_registers"] == pytest.approx(40 * 0.009 + 64 * 8 * 0.009)
    assert e["weight_sram"] == pytest.approx(64 * 8 * bit)
    assert e["dram_weight"] == pytest.approx(32 * 32.0)
    assert e["compressor"] == pytest.approx(10 * (5 * (17 * 0.00092 + 0.018) + 4 * 18 * 0.009))
    assert list(e) == list(ENERGY_COMPONENTS)


def test_bitmask_format_adds_a_converter_and_reads_m_bits_per_group():
    a_idx, a_bm = area_breakdown(tiny()), area_breakdown(tiny(metadata_format="bitmask"))
    # one converter per group in flight: t x ceil(k/n) = 1; prefix count 4 x 3 adder bits, 2 x 4 x 3 compares
    assert a_bm["bitmask_decoder"] == pytest.approx(4 * 3 * 4.28 + 2 * 4 * 3 * 2.2)
    assert a_idx["bitmask_decoder"] == 0
    p = action_prices(hardware(tiny(metadata_format="bitmask")))["metadata_read_bit"]
    assert p["bitmask_decoder"] == pytest.approx((4 * 3 * 0.003125 + 2 * 4 * 3 * 0.00092) / 4)


# --- sum of parts, dense, monotone in M, nodes -----------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_energy_is_the_sum_of_its_parts(name, small_trace):
    hw = load_hw(HW / f"{name}.yaml")
    counts = counts_of(hw, small_trace)
    e = energy_breakdown(hw, counts)
    prices = action_prices(hardware(hw))
    by_action = sum(n * sum(prices[a].values()) for a, n in counts.items() if prices[a] is not None)
    assert sum(e.values()) == pytest.approx(by_action, rel=1e-12)
    assert all(v >= 0 for v in e.values())


def test_energy_is_linear_in_counts():
    hw = tiny(metadata_format="bitmask", mitigation="var_learnable")
    rng = np.random.default_rng(0)
    for _ in range(20):
        c1 = {a: int(rng.integers(0, 1000)) for a in ACTIONS}
        c2 = {a: int(rng.integers(0, 1000)) for a in ACTIONS}
        e1, e2 = energy_breakdown(hw, c1), energy_breakdown(hw, c2)
        e12 = energy_breakdown(hw, {a: c1[a] + c2[a] for a in ACTIONS})
        for k in ENERGY_COMPONENTS:
            assert e12[k] == pytest.approx(e1[k] + e2[k])


def test_dense_has_no_decoder_compressor_or_metadata_cost(small_trace):
    dense = load_hw(HW / "dense.yaml")
    a = area_breakdown(dense)
    assert all(a[c] == 0 for c in SPARSITY_AREA_COMPONENTS)
    e = energy_breakdown(dense, counts_of(dense, small_trace))
    for c in ("decoder_mux", "bitmask_decoder", "compressor", "metadata_buffer", "dram_metadata", "mitigation"):
        assert e[c] == 0
    assert sparsity_area_overhead(dense, dense) == 0
    with pytest.raises(CostError, match="baseline must be dense"):
        sparsity_area_overhead(dense, load_hw(HW / "nm2_4.yaml"))


def test_static_mask_has_no_run_time_selection_hardware():
    hw = tiny(selection="static_first_n")
    a = area_breakdown(hw)
    assert all(a[c] == 0 for c in SPARSITY_AREA_COMPONENTS)


def test_shipped_configs_overhead_is_their_sparsity_hardware():
    dense = load_hw(HW / "dense.yaml")
    ad = area_breakdown(dense)
    for name in SHIPPED[1:]:
        hw = load_hw(HW / f"{name}.yaml")
        a = area_breakdown(hw)
        extra = sum(a[c] for c in SPARSITY_AREA_COMPONENTS)
        assert sparsity_area_overhead(hw, dense) == pytest.approx(extra / sum(ad.values()))
        assert extra > 0


def _decoder_area(a: dict[str, float]) -> float:
    return sum(a[c] for c in SPARSITY_AREA_COMPONENTS if c != "metadata_buffer")


@pytest.mark.parametrize("fmt", ["index", "bitmask"])
@pytest.mark.parametrize("scale_lanes", [False, True])
def test_decoder_area_grows_with_m_at_fixed_ratio(fmt, scale_lanes):
    base = load_hw(HW / "nm8_16.yaml")
    prev: dict[str, float] | None = None
    for n, m in ((1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64)):
        ov = {"sparsity.n": n, "sparsity.m": m, "sparsity.metadata_format": fmt}
        if scale_lanes:  # same activations per cycle into the compressor (256), as the shipped configs
            ov["sparsity.compressor.groups_per_cycle"] = 256 // m
        a = area_breakdown(with_overrides(base, ov))
        if prev is not None:
            assert a["decoder_mux"] > prev["decoder_mux"]
            assert a["compressor"] > prev["compressor"]
            assert _decoder_area(a) > _decoder_area(prev)
        prev = a


def test_shipped_overhead_order_follows_m():
    dense = load_hw(HW / "dense.yaml")
    ov = [sparsity_area_overhead(load_hw(HW / f"{n}.yaml"), dense) for n in SHIPPED[1:]]
    assert ov == sorted(ov) and ov[0] > 0


def test_node_scaling_of_area_and_energy():
    hw = load_hw(HW / "nm8_16.yaml")
    a45, a7 = area_breakdown(hw), area_breakdown(hw, node_nm=7)
    assert a7["mac"] == pytest.approx(a45["mac"] * 0.059)
    assert a7["decoder_mux"] == pytest.approx(a45["decoder_mux"] * 0.059)
    assert a7["weight_sram"] == pytest.approx(a45["weight_sram"] * 0.35 / 3.4, rel=1e-2)
    p45, p5 = action_prices(hardware(hw)), action_prices(hardware(hw, node_nm=5))
    assert p5["mac_active"]["mac"] == pytest.approx(1.6 * 0.080)
    assert p5["dram_read_byte_weight"] == p45["dram_read_byte_weight"]  # DRAM does not scale
    raw = hw.model_dump()
    raw["cost"] = {"node_nm": 16}
    assert area_breakdown(HwConfig.model_validate(raw))["mac"] == pytest.approx(a45["mac"] * 0.190)
    with pytest.raises(CostError, match="node_nm 3"):
        area_breakdown(hw, node_nm=3)


def test_unstructured_crossbar_selects_among_its_instructions_rows():
    """The lockstep unstructured machine (decoder kind crossbar) is one machine in timing and area: an
    instruction reads the union of the rows its t tokens use (<= t x k), so each multiplier selects among
    t x k = 8 x 16 = 128 candidate rows (not the whole weight tile); its compressor still sees a whole row."""
    hw = load_hw(HW / "unstructured.yaml")
    h = hardware(hw)
    # tiling: K_tile <= half the weight buffer / (output granule 32 x 2 B) = 4096 rows
    assert h.k_max == 4096 and h.sel_inputs == 128 and h.sel_bits == 7 and h.compressor_width == 4096
    a = area_breakdown(hw)
    assert a["decoder_mux"] == pytest.approx(2048 * 127 * 16 * 2.0)
    assert a["weight_candidate_registers"] == pytest.approx(8 * (128 - 16) * 16 * 16 * 5.98)
    raw = hw.model_dump()
    raw["cost"] = {"unstructured_select_inputs": 64}
    small = area_breakdown(HwConfig.model_validate(raw))
    assert small["decoder_mux"] == pytest.approx(2048 * 63 * 16 * 2.0)


def test_systolic_dataflows_have_their_own_inventory():
    ws = {
        "dataflow": "ws",
        "systolic": {"rows": 4, "cols": 2, "weight_load_rows_per_cycle": 1, "os_weight_link_factor": 1.0},
    }
    raw = {**TINY, "array": ws}
    hw = HwConfig.model_validate(raw)
    a = area_breakdown(hw)
    assert a["mac"] == pytest.approx(8 * 5050)
    assert a["pe_registers"] == pytest.approx(8 * (16 + 16 + 32) * 5.98)
    assert a["weight_candidate_registers"] == pytest.approx(8 * (4 / 2 - 1) * 16 * 5.98)  # m/n candidates per PE
    assert a["decoder_mux"] == pytest.approx(8 * 3 * 16 * 2.0)
    os_ = {**ws, "dataflow": "os", "systolic": {**ws["systolic"], "os_weight_link_factor": 2.0}}
    a_os = area_breakdown(HwConfig.model_validate({**TINY, "array": os_}))
    assert a_os["weight_candidate_registers"] == pytest.approx(8 * 1 * 16 * 5.98)  # links 2x wide


def test_mitigation_hardware_is_priced_and_static_shift_is_free():
    base = area_breakdown(tiny())["mitigation"]
    assert base == 0 and area_breakdown(tiny(mitigation="static_shift"))["mitigation"] == 0
    # VAR at the compressor's 4 elements/cycle: 4 squarers + 8 fp32 adders, a div/sqrt unit, 1 epilogue multiplier
    assert area_breakdown(tiny(mitigation="var"))["mitigation"] == pytest.approx(4 * (900 + 2 * 4184) + 11884 + 7700)
    assert area_breakdown(tiny(mitigation="learnable"))["mitigation"] == pytest.approx(7700 + 4184)
    p = action_prices(hardware(tiny(mitigation="var")))
    assert p["mitigation_stat_element"]["mitigation"] == pytest.approx(0.7 + 2 * 0.9)
    assert p["mitigation_token_op"]["mitigation"] == pytest.approx(61.0)
    assert p["mitigation_output_add"] is None  # VAR scales only


# --- comparator networks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", range(1, 7))
def test_network_counts_match_the_closed_forms(p):
    m = 2**p
    assert len(batcher_pairs(m)) == (p * p - p + 4) * 2 ** (p - 2) - 1
    assert len(bitonic_pairs(m)) == m * p * (p + 1) // 4
    assert depth(batcher_pairs(m), m) == p * (p + 1) // 2


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6, 7, 8, 12, 16])
def test_networks_sort_and_select_by_the_zero_one_principle(m):
    zero_one = np.array(list(itertools.product([0, 1], repeat=m)), dtype=np.int8)
    want = np.sort(zero_one, axis=1)
    assert (apply(batcher_pairs(m), zero_one) == want).all()
    if m & (m - 1) == 0:
        assert (apply(bitonic_pairs(m), zero_one) == want).all()
    assert network(m, m) == ()  # keeping all m needs no selection
    for n in range(1, m):
        got = apply(network(m, n), zero_one)
        assert (got[:, m - n :] == want[:, m - n :]).all(), (m, n)  # the n largest, sorted
        assert comparators(m, n) <= len(batcher_pairs(m))


def test_top_half_counts_used_by_the_shipped_configs():
    assert [comparators(m, m // 2) for m in (4, 8, 16, 32)] == [5, 18, 58, 174]
    assert comparators(16, 16) == 0 and math.isclose(comparators(16, 8, "bitonic_sort"), 80)


def test_energy_by_site_sums_to_the_run(small_trace):
    from accelsim.cost import energy_by_site

    hw = load_hw(HW / "nm8_16.yaml")
    with Trace(small_trace) as tr:
        res = simulate(hw, tr)
    per_site = energy_by_site(hw, res.sites)
    total = energy_breakdown(hw, {a: int(res.totals[f"{a}_count"]) for a in ACTIONS})
    assert len(per_site) == len(res.sites)
    assert sum(r["energy_pj"] for r in per_site) == pytest.approx(sum(total.values()))
    for c in ENERGY_COMPONENTS:
        assert sum(r[f"energy_pj.{c}"] for r in per_site) == pytest.approx(total[c])
    with pytest.raises(CostError, match="has no count"):
        energy_by_site(hw, [{"name": "x"}])


def test_every_table_entry_is_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs/cost-model.md").read_text()
    missing = [k for k, e in default_table().entries.items() if e.name not in doc]
    assert not missing, f"docs/cost-model.md does not mention {missing}"
