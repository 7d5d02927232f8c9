"""The cost model's compressor, decoder and bitmask-converter areas (and the decoder depth) next to the
synthesised blocks, and a calibrated cost table derived from them.

Model side: :func:`accelsim.cost.model.hardware` on the shipped N:M configs (bf16 operands, index metadata);
per lane (one compressor group, one multiplier's ``m:1`` mux, one bitmask converter). Synthesis side: rows of
:func:`accelsim.rtl.table.synth_cell` at width 16 (the configs' bf16), ``oem_top_n`` (the network the model
prices), combinational and pipelined to the config's ``compressor.latency_cycles``. um^2 = NAND2
equivalents x :data:`accelsim.rtl.synth.UM2_PER_NAND2_45NM`.

Calibration (:func:`calibrated_entries`): ``area.mux2_bit`` from the decoder lanes (synthesised area over the
model's ``(m-1) w`` mux bits, averaged over the patterns); then ``area.comparator_bit`` so the model's
combinational network (``CE x (c x comparator_bit + 2 q x mux2_bit)``) equals the synthesised
compressor in the least-squares sense. The compaction back end (prefix count, k-th-set select) that the
model does not list is thereby charged to the comparators. The default table is not changed: the calibrated
one is written next to the synthesis table and used with ``accelsim cost --table``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from accelsim.rtl.synth import UM2_PER_NAND2_45NM

__all__ = [
    "SHIPPED",
    "model_rows",
    "compare",
    "compare_csv",
    "calibrated_entries",
    "calibrated_table_text",
    "pipelined_cells",
]

HW_DIR = Path(__file__).resolve().parents[2] / "hw_configs"
SHIPPED = {"2:4": "nm2_4.yaml", "4:8": "nm4_8.yaml", "8:16": "nm8_16.yaml", "16:32": "nm16_32.yaml"}
CAL_WIDTH = 16
CAL_ARCH = "oem_top_n"


def _hardware(pattern: str, hw_dir: Path = HW_DIR):
    from accelsim.config import load_hw
    from accelsim.cost.model import hardware

    return hardware(load_hw(hw_dir / SHIPPED[pattern]))


def pipelined_cells(hw_dir: Path = HW_DIR) -> list[tuple[str, int]]:
    """``(pattern, compressor.latency_cycles)`` of every shipped N:M config: the pipelined cells to synthesise."""
    return [(p, _hardware(p, hw_dir).compressor_latency) for p in SHIPPED]


def model_rows(table=None, hw_dir: Path = HW_DIR) -> dict[str, dict]:
    """Per shipped pattern: the model's per-lane areas (um^2) and the decoder depth (mux2 levels)."""
    from dataclasses import replace

    from accelsim.cost.model import _converter_bits

    out = {}
    for p in SHIPPED:
        h = _hardware(p, hw_dir)
        if table is not None:
            h = replace(h, table=table)
        v = h.v
        ce = h.ce_compare_bits * v("area.comparator_bit") + 2 * h.ce_payload_bits * v("area.mux2_bit")
        regs = h.compressor_latency * h.compressor_width * h.ce_payload_bits * v("area.register_bit")
        add_bits, cmp_bits = _converter_bits(replace(h, sel_inputs=h.compressor_width, n_keep=h.compressor_keep))
        out[p] = {
            "m": h.compressor_width,
            "w_bits": h.w_a,
            "comparators": h.compressor_comparators,
            "latency_cycles": h.compressor_latency,
            "compressor_network_um2": h.compressor_comparators * ce,
            "compressor_registers_um2": regs,
            "compressor_register_bits": h.compressor_latency * h.compressor_width * h.ce_payload_bits,
            "compressor_um2": h.compressor_comparators * ce + regs,
            "decoder_lane_um2": (h.sel_inputs - 1) * h.w_w * v("area.mux2_bit"),
            "bitmask_converter_um2": add_bits * v("area.adder_bit") + cmp_bits * v("area.comparator_bit"),
            "decoder_depth_mux2_levels": math.ceil(math.log2(h.sel_inputs)),
            "mux2_delay_ps": v("params.mux2_delay_ps"),
            "ce_compare_bits": h.ce_compare_bits,
            "ce_payload_bits": h.ce_payload_bits,
            "decoder_mux_bits": (h.sel_inputs - 1) * h.w_w,
        }
    return out


def _synth_index(rows: Sequence[dict]) -> dict[tuple, dict]:
    idx = {}
    for r in rows:
        if r.get("status") == "ok":
            idx[(r["block"], r["pattern"], str(r["width_bits"]), r["arch"], int(r["pipeline_depth_cycles"]))] = r
    return idx


def compare(rows: Sequence[dict], table=None) -> list[dict]:
    """Model against synthesis per shipped pattern (um^2 at 45 nm); missing synthesis cells are None."""
    idx = _synth_index(rows)
    model = model_rows(table)
    out = []
    for p, mo in model.items():

        def area(block, arch="", depth=0, width=str(CAL_WIDTH), p=p):
            r = idx.get((block, p, width, arch, depth))
            return None if r is None else float(r["nand2_equivalents"]) * UM2_PER_NAND2_45NM

        def get(block, key, arch="", depth=0, width=str(CAL_WIDTH), p=p):
            r = idx.get((block, p, width, arch, depth))
            return None if r is None else int(r[key])

        lat = mo["latency_cycles"]
        out.append(
            {
                "pattern": p,
                **mo,
                "synth_compressor_comb_um2": area("compressor", CAL_ARCH),
                "synth_compressor_pipelined_um2": area("compressor", CAL_ARCH, lat),
                "synth_compressor_register_bits": get("compressor", "register_bits", CAL_ARCH, lat),
                "synth_compressor_depth_levels": get("compressor", "logic_depth_levels", CAL_ARCH),
                "synth_decoder_lane_um2": area("decoder_lane"),
                "synth_decoder_depth_levels": get("decoder_lane", "logic_depth_levels"),
                "synth_bitmask_converter_um2": area("unpacker_bitmask", width=""),
            }
        )
    return out


def compare_csv(cmp: Sequence[dict]) -> str:
    """:func:`compare` as CSV (floats at 1 decimal)."""
    import csv
    import io

    buf = io.StringIO()
    cols = list(cmp[0])
    wr = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    wr.writeheader()
    for r in cmp:
        wr.writerow({k: (f"{v:.1f}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    return buf.getvalue()


def calibrated_entries(rows: Sequence[dict]) -> dict[str, float]:
    """``area.mux2_bit`` and ``area.comparator_bit`` (um^2/bit) fitted to the synthesised blocks."""
    cmp = compare(rows)
    dec = [c for c in cmp if c["synth_decoder_lane_um2"]]
    comp = [c for c in cmp if c["synth_compressor_comb_um2"]]
    if not dec or not comp:
        raise ValueError("calibration needs the width-16 decoder lanes and oem_top_n compressors of the table")
    mux2 = sum(c["synth_decoder_lane_um2"] / c["decoder_mux_bits"] for c in dec) / len(dec)
    # least squares of  synth = CE*c*x + CE*2q*mux2  over the patterns, for x = comparator_bit
    a = [c["comparators"] * c["ce_compare_bits"] for c in comp]
    b = [c["synth_compressor_comb_um2"] - c["comparators"] * 2 * c["ce_payload_bits"] * mux2 for c in comp]
    comparator = sum(x * y for x, y in zip(a, b, strict=True)) / sum(x * x for x in a)
    return {"area.mux2_bit": round(mux2, 3), "area.comparator_bit": round(comparator, 3)}


def calibrated_table_text(entries: dict[str, float], base_text: str) -> str:
    """The shipped table's text with the ``area:`` entries of ``entries`` replaced (value, tag D, source)."""
    head, sep, rest = base_text.partition("\narea:\n")
    area, sep2, tail = rest.partition("\nparams:\n")
    if not sep or not sep2:
        raise ValueError("cost table text has no area: / params: sections")
    src = {
        "area.mux2_bit": "calibrated (accelsim rtl table): synthesised m:1 decoder lanes, 2:4..16:32 at 16 b, "
        "NAND2-eq x 0.798 um^2 (NanGate45 NAND2_X1) over (m-1) w mux bits, mean (docs/rtl.md)",
        "area.comparator_bit": "calibrated (accelsim rtl table): synthesised oem_top_n compressors 2:4..16:32 at "
        "16 b incl. compaction back end, least squares over CE x c with the calibrated mux2_bit (docs/rtl.md)",
    }
    for key, val in entries.items():
        name = key.split(".", 1)[1]
        pat = re.compile(rf"(  {name}:\n    \{{)value: [0-9.eE+-]+(.*?)tag: \w(.*?)source: \"[^\"]*\"\}}", re.S)
        area, count = pat.subn(
            lambda mt, v=val, s=src[key]: f'{mt[1]}value: {v}{mt[2]}tag: D{mt[3]}source: "{s}"}}', area
        )
        if count != 1:
            raise ValueError(f"cost table text: area.{name} entry not found")
    header = (
        "# accelsim 45 nm cost table, RTL-calibrated: the shipped default_45nm.yaml with area.mux2_bit and\n"
        "# area.comparator_bit fitted to synthesised blocks (written by `accelsim rtl table`; docs/rtl.md).\n"
    )
    return header + head + "\narea:\n" + area + "\nparams:\n" + tail
