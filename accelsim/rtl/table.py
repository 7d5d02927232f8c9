"""Build and synthesise the RTL blocks one cell of the table at a time; write the table and its plot.

A *cell* is one block at one parameter point: the compressor (``pattern x width x arch``), the decoder lane
(``m:1`` of ``width`` bits, one per multiplier), the index-format metadata packer (mask -> ``n`` indices) and
the bitmask unpacker (``m``-bit mask -> ``n`` selects: the cost model's bitmask-to-index converter). Each cell's
Yosys run is time-boxed; a cell over the limit is reported as ``> <limit> s`` and has no numbers.

The written files hold no timings, so the same inputs write the same bytes (timings are printed only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

from accelsim.rtl.params import ARCHS, FORMATS, RtlParamError, check_spec, require_amaranth, require_yosys
from accelsim.rtl.plan import compressor_layers

__all__ = ["BLOCKS", "TABLE_PATTERNS", "TABLE_WIDTHS", "TABLE_COLUMNS", "build_block", "synth_cell", "table_cells"]

BLOCKS = ("compressor", "decoder_lane", "packer", "unpacker")
TABLE_PATTERNS = ("2:4", "4:8", "8:16", "16:32", "32:64")
TABLE_WIDTHS = (8, 16)
TABLE_COLUMNS = (
    "block",
    "pattern",
    "width_bits",
    "arch",
    "pipeline_depth_cycles",
    "status",
    "nand2_equivalents",
    "area_um2_45nm",
    "logic_depth_levels",
    "register_bits",
)


def build_block(block: str, pattern: str, width: int, arch: str = "compare_all", fmt: str = "index", stages: int = 0):
    """The amaranth component of one cell (parameters checked first: :class:`RtlParamError`)."""
    if block not in BLOCKS:
        raise RtlParamError(f"--block {block!r}: allowed values are {', '.join(BLOCKS)}")
    spec = check_spec(pattern, width, arch if block == "compressor" else None, stages)
    if stages and block != "compressor":
        raise RtlParamError(f"--pipeline-depth {stages}: only the compressor is pipelined (the {block} is one level)")
    if block == "compressor" and stages > (layers := compressor_layers(arch, spec.n, spec.m)):
        raise RtlParamError(f"--pipeline-depth {stages}: {arch} {pattern} has {layers} layers; allowed 0..{layers}")
    if block in ("packer", "unpacker") and fmt not in FORMATS:
        raise RtlParamError(f"--format {fmt!r}: allowed values are {', '.join(FORMATS)}")
    require_amaranth()
    if block == "compressor":
        from accelsim.rtl.compressor import Compressor

        return Compressor(spec.n, spec.m, spec.width, arch, stages=stages)
    from accelsim.rtl.lanes import DecoderLane, MetadataPacker, MetadataUnpacker

    if block == "decoder_lane":
        return DecoderLane(spec.m, spec.width)
    if block == "packer":
        return MetadataPacker(spec.n, spec.m, fmt)
    return MetadataUnpacker(spec.n, spec.m, fmt)


def synth_cell(
    block: str,
    pattern: str,
    width: int,
    arch: str = "compare_all",
    *,
    fmt: str = "index",
    stages: int = 0,
    timeout_s: float = 600.0,
) -> dict:
    """Synthesise one cell; the row of :data:`TABLE_COLUMNS` plus ``synth_s`` and ``cells`` (gate counts)."""
    from accelsim.rtl.synth import SynthError, SynthTimeout, synthesize

    comp = build_block(block, pattern, width, arch, fmt, stages)
    require_yosys()
    row = {
        "block": block if block == "compressor" or block == "decoder_lane" else f"{block}_{fmt}",
        "pattern": pattern,
        "width_bits": width if block in ("compressor", "decoder_lane") else "",
        "arch": arch if block == "compressor" else "",
        "pipeline_depth_cycles": stages,
    }
    try:
        res = synthesize(comp, timeout_s=timeout_s)
    except SynthTimeout as exc:
        return {**row, "status": f"> {exc.limit_s:g} s", "synth_s": exc.limit_s, "cells": {}}
    except SynthError as exc:  # a Yosys failure is one cell's result, not the end of the table
        return {**row, "status": f"failed: {exc}", "synth_s": 0.0, "cells": {}}
    return {
        **row,
        "status": "ok",
        "nand2_equivalents": round(res.nand2_equivalents, 1),
        "area_um2_45nm": round(res.area_um2_45nm, 1),
        "logic_depth_levels": res.logic_depth_levels,
        "register_bits": res.register_bits,
        "synth_s": res.synth_s,
        "cells": res.cells,
    }


def table_cells(
    patterns: Sequence[str] = TABLE_PATTERNS,
    widths: Sequence[int] = TABLE_WIDTHS,
    archs: Sequence[str] = ARCHS,
    pipelined: Sequence[tuple[str, int]] = (),
) -> list[tuple]:
    """The ``(block, pattern, width, arch, fmt, stages)`` cells of the table, cheapest first within each pattern;
    ``pipelined`` adds ``oem_top_n`` compressors at width 16 with ``stages`` register banks (the calibration's)."""
    cells: list[tuple] = []
    for p in patterns:
        cells.append(("packer", p, 2, "", "index", 0))
        cells.append(("unpacker", p, 2, "", "bitmask", 0))
        for w in widths:
            cells.append(("decoder_lane", p, w, "", "index", 0))
        for w in widths:
            for a in archs:
                if a == "bitonic" and check_spec(p, w).m & (check_spec(p, w).m - 1):
                    continue  # bitonic needs a power-of-two m
                cells.append(("compressor", p, w, a, "index", 0))
    for p, stages in pipelined:
        cells.append(("compressor", p, 16, "oem_top_n", "index", stages))
    return cells


def run_table(cells: Sequence[tuple], timeout_s: float, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Synthesise every cell in order (one Yosys run at a time)."""
    rows = []
    for block, p, w, a, fmt, stages in cells:
        row = synth_cell(block, p, w, a or "compare_all", fmt=fmt, stages=stages, timeout_s=timeout_s)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def rows_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore", lineterminator="\n")
    wr.writeheader()
    for r in rows:
        wr.writerow({k: r.get(k, "") for k in TABLE_COLUMNS})
    return buf.getvalue()


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a written ``synth_table.csv`` (numbers parsed; cells over the time box keep empty numbers)."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict = dict(r)
            row["pipeline_depth_cycles"] = int(r["pipeline_depth_cycles"])
            row["width_bits"] = int(r["width_bits"]) if r["width_bits"] else ""
            if r["status"] == "ok":
                row["nand2_equivalents"] = float(r["nand2_equivalents"])
                row["area_um2_45nm"] = float(r["area_um2_45nm"])
                row["logic_depth_levels"] = int(r["logic_depth_levels"])
                row["register_bits"] = int(r["register_bits"])
            rows.append(row)
    return rows


def rows_markdown(rows: Sequence[dict]) -> str:
    head = "| " + " | ".join(TABLE_COLUMNS) + " |\n|" + "---|" * len(TABLE_COLUMNS) + "\n"
    body = "".join("| " + " | ".join(str(r.get(k, "")) for k in TABLE_COLUMNS) + " |\n" for r in rows)
    return head + body


def plot_rows(rows: Sequence[dict], path: Path) -> None:
    """Area (NAND2 equivalents, log scale) and logic depth against m, one line per block / arch / width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float, int]]] = {}
    for r in rows:
        if r["status"] != "ok" or r["block"] not in ("compressor", "decoder_lane") or r["pipeline_depth_cycles"]:
            continue
        label = f"{r['arch']} w{r['width_bits']}" if r["block"] == "compressor" else f"decoder lane w{r['width_bits']}"
        m = check_spec(r["pattern"], 2).m
        series.setdefault(label, []).append((m, r["nand2_equivalents"], r["logic_depth_levels"]))
    fig, (ax_a, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, pts in sorted(series.items()):
        pts.sort()
        ms = [p[0] for p in pts]
        style = "--" if label.startswith("decoder") else "-"
        ax_a.plot(ms, [p[1] for p in pts], style, marker="o", label=label)
        ax_d.plot(ms, [p[2] for p in pts], style, marker="o", label=label)
    for ax, title, unit in (
        (ax_a, "area", "NAND2 equivalents (x 0.798 um^2 at 45 nm)"),
        (ax_d, "logic depth", "logic_depth_levels (gates on the longest path)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("m (group size; n = m/2)")
        ax.set_ylabel(unit)
        ax.set_title(f"N:M compressor and decoder lane: {title}")
        ax.grid(True, which="both", alpha=0.3)
    ax_a.set_yscale("log")
    if series:
        ax_d.legend(fontsize=7, loc="upper left")
    else:
        ax_a.text(0.5, 0.5, "no synthesised cell (all over the time box)", ha="center", transform=ax_a.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
