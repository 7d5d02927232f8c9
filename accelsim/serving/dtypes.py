"""Weight, activation and KV-cache datatypes of a scenario on a hardware config, and the dequantiser's cost.

The hardware's ``precision`` gives the array's operand widths (bf16 = 2 bytes in the shipped configs). A
scenario datatype narrower than its operand is stored narrow in DRAM and SRAM (fewer bytes to fetch, fewer
bytes through the operand buffer) and widened by a dequantiser between the operand buffer and the multipliers:
``w = q * scale`` for group-quantised weights (one bf16 scale per ``group_size`` input channels and output
column), a plain convert for int8 activations / KV entries. The multipliers keep their width, so the MAC
energy and area do not change. A datatype wider than the operand cannot be held (``scenario.check_datatypes``).
"""

from __future__ import annotations

from typing import Any

from accelsim.config.hw import HwConfig
from accelsim.serving.scenario import Scenario

SCALE_BYTES = {"bf16": 2.0}


def scenario_hw(hw: HwConfig, sc: Scenario) -> HwConfig:
    """``hw`` with the scenario's storage widths; ``hw`` itself when they are its own (bf16 on bf16 hardware)."""
    w, a = sc.bytes_of("weight_datatype"), sc.bytes_of("activation_datatype")
    pr = hw.precision
    if (w, a, a) == (pr.weight_bytes, pr.activation_bytes, pr.output_bytes):
        return hw
    data = hw.model_dump()
    data["precision"].update(weight_bytes=w, activation_bytes=a, output_bytes=a)
    return HwConfig.model_validate(data)


def weight_scales(sc: Scenario) -> tuple[int, float] | None:
    """``(group_size, scale_bytes)`` for the simulator, ``None`` for bf16 weights."""
    g = sc.group_size
    return None if g is None else (g, SCALE_BYTES[sc.scale_datatype])


def dequant_lanes(hw: HwConfig) -> int:
    """Dequantisers needed to widen every weight element the array takes per cycle at peak: ``mma``: units x
    outputs x reduction / issue interval, times m/n candidate rows for dynamic N:M; ``ws``: cols x weight rows
    loaded per cycle; ``os``: cols x the weight link factor."""
    a, sp = hw.array, hw.sparsity
    if a.dataflow == "mma":
        assert a.mma is not None
        mm = a.mma
        widen = sp.m / sp.n if (sp.kind == "nm" and sp.selection == "dynamic" and sp.n and sp.m) else 1.0
        return int(round(mm.units * mm.outputs * mm.reduction * widen / mm.issue_interval_cycles))
    assert a.systolic is not None
    if a.dataflow == "ws":
        return a.systolic.cols * a.systolic.weight_load_rows_per_cycle
    return int(round(a.systolic.cols * a.systolic.os_weight_link_factor))


def dequant_elements(counts: dict[str, int], hw: HwConfig, w_bytes: float, a_bytes: float) -> dict[str, float]:
    """Elements widened by the dequantiser: weight (or KV) elements read from the weight buffer when stored
    narrower than the operand, activation elements read from the activation buffer likewise."""
    pr = hw.precision
    out = {"weight": 0.0, "activation": 0.0}
    if w_bytes < pr.weight_bytes:
        out["weight"] = counts["weight_sram_read_byte"] / w_bytes
    if a_bytes < pr.activation_bytes:
        out["activation"] = counts["act_sram_read_byte"] / a_bytes
    return out


def dequant_cost(hw: HwConfig, sc: Scenario) -> dict[str, Any]:
    """Prices of the dequantiser on ``hw`` (energy per element, area of all lanes) and the widths it saves."""
    from accelsim.cost.model import area_from_hardware, hardware

    h = hardware(hw)
    needed = any(
        sc.bytes_of(k) < b
        for k, b in (
            ("weight_datatype", hw.precision.weight_bytes),
            ("activation_datatype", hw.precision.activation_bytes),
            ("kv_cache_datatype", hw.precision.weight_bytes),
        )
    )
    lanes = dequant_lanes(hw) if needed else 0
    area = lanes * h.v("area.dequant_bf16")
    machine = sum(area_from_hardware(h).values())
    return {
        "dequant_pj_per_element": h.v("energy.dequant_bf16"),
        "dequant_lanes": lanes,
        "dequant_area_um2": area,
        "dequant_area_fraction": area / machine if machine else 0.0,
        "weight_storage_bits": sc.bytes_of("weight_datatype") * 8,
        "weight_operand_bits": hw.precision.weight_bytes * 8,
        "weight_bits_saved_per_element": hw.precision.weight_bytes * 8 - sc.bytes_of("weight_datatype") * 8,
    }
