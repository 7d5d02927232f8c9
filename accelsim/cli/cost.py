"""``accelsim cost`` (area breakdown and per-action prices of one config, no trace) and ``accelsim tradeoff``
(energy per token and area overhead against perplexity, Pareto fronts, sensitivity to the cost table).

Both exit 2 with one line on stderr on bad input, and write nothing partial.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from accelsim.config.yaml_io import ConfigError
from accelsim.console import err_console as _err
from accelsim.console import fail as _fail
from accelsim.console import out_console as _out
from accelsim.console import user_text


def _load(path: Path):
    from accelsim.cli import load_checked_hw

    try:
        return load_checked_hw(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _print_rows(title: str, header: list[str], rows: list[list[str]], markdown: bool) -> None:
    """Print ``rows`` as a markdown table (``--markdown``) or a rich table with ``title``."""
    if markdown:
        _out.print(_markdown(header, rows), soft_wrap=True, markup=False)
        return
    t = Table(title=title)
    for c in header:
        t.add_column(c)
    for r in rows:
        t.add_row(*(user_text(c, 1000) for c in r))
    _out.print(t)


def _table_arg(table: Path | None):
    from accelsim.cost.table import default_table, load_table

    try:
        return load_table(table) if table is not None else default_table()
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def cost_cmd(
    hw: Path = typer.Option(..., "--hw", help="Hardware config YAML (see hw_configs/)."),
    node: int | None = typer.Option(
        None, "--node", help="Technology node in nm (45, 16, 7, 5). Default: the config's cost.node_nm, else 45."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Dense config for the area overhead. Default: dense.yaml next to --hw, if present."
    ),
    table: Path | None = typer.Option(None, "--table", help="Cost table YAML instead of the shipped 45 nm table."),
    prices: bool = typer.Option(False, "--prices", help="Also print the energy price of every action (pJ)."),
    json_only: bool = typer.Option(False, "--json", help="Print JSON (area by component, prices, inventory)."),
) -> None:
    """Area of a hardware config by component (um^2), its sparsity overhead against dense, and the inventory
    behind it (multipliers, m:1 mux width, compressor comparators). Needs no trace."""
    import json

    from accelsim.cost.model import action_prices, area_from_hardware, hardware, sparsity_area_overhead

    cfg = _load(hw)
    base_tab = _table_arg(table)
    try:
        h = hardware(cfg, table=base_tab, node_nm=node, where=str(hw))
        area = area_from_hardware(h)
        p = action_prices(h)
        base_path = baseline if baseline is not None else (hw.parent / "dense.yaml")
        overhead = None
        if baseline is not None or base_path.is_file():
            dense = _load(base_path)
            overhead = sparsity_area_overhead(cfg, dense, table=base_tab, node_nm=node)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    total = sum(area.values())
    inv = {
        "node_nm": h.node_nm,
        "datatype": h.datatype,
        "multipliers": h.lanes,
        "selection_inputs_per_multiplier": h.sel_inputs,
        "index_bits": h.sel_bits,
        "metadata_format": h.metadata_format if h.dynamic else None,
        "compressor_network": h.network if h.compressor_lanes else None,
        "compressor_lanes": h.compressor_lanes,
        "compressor_width": h.compressor_width if h.compressor_lanes else None,
        "compressor_comparators_per_lane": h.compressor_comparators,
        "k_max": h.k_max,
        "table": h.table.origin,
    }
    if json_only:
        rec: dict[str, Any] = {
            "config": cfg.name,
            "pattern": cfg.sparsity.label,
            "area_um2": total,
            "area_um2_by_component": area,
            "sparsity_area_overhead_fraction": overhead,
            "energy_pj_per_action": {a: (None if v is None else v) for a, v in p.items()},
            "inventory": inv,
        }
        _out.print_json(json.dumps(rec, sort_keys=True))
        return
    t = Table(title=f"area of {user_text(cfg.name)} ({cfg.sparsity.label}) at {h.node_nm} nm, {h.datatype} MACs")
    t.add_column("component")
    t.add_column("area_um2", justify="right")
    t.add_column("share", justify="right")
    for k, v in area.items():
        if v:
            t.add_row(k, f"{v:,.0f}", f"{v / total:.1%}")
    t.add_row("total", f"{total:,.0f}", f"{total / 1e6:.3f} mm^2")
    if overhead is not None:
        t.add_row("sparsity_area_overhead_fraction (vs dense)", f"{overhead:.2%}", "")
    _out.print(t)
    _out.print(
        "inventory: " + ", ".join(f"{k}={v}" for k, v in inv.items() if v is not None and k != "table"),
        soft_wrap=True,
    )
    _out.print(f"table: {h.table.origin}", style="dim", soft_wrap=True, markup=False)
    if prices:
        pt = Table(title=f"energy per action (pJ) of {user_text(cfg.name)} at {h.node_nm} nm")
        pt.add_column("action")
        pt.add_column("pJ", justify="right")
        pt.add_column("by component")
        for a, v in p.items():
            if v is None:
                pt.add_row(a, "-", "no such hardware in this config")
            else:
                pt.add_row(a, f"{sum(v.values()):.5g}", ", ".join(f"{c} {x:.4g}" for c, x in v.items()))
        _out.print(pt)
    _out.print("Not included: DRAM PHY/controller, control, clock tree, wires (docs/cost-model.md).", style="dim")


def _fmt(v: Any, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if kind == "pct":
        return f"{v:+.1%}"
    if kind == "x":
        return f"{v:.3f}"
    if kind == "uj":
        return f"{v / 1e6:,.1f}"
    if kind == "ppl":
        return f"{v:.2f}"
    return str(v)


def tradeoff_table_rows(df) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the trade-off table (shared by the terminal and Markdown output)."""
    header = [
        "trace",
        "pattern",
        "energy_uJ_per_token",
        "energy_vs_dense",
        "area_overhead",
        "speedup",
        "ppl",
        "delta_ppl",
        "front_energy",
        "front_area",
        "front_all",
    ]
    rows = []
    for _, r in df.iterrows():
        rows.append(
            [
                r["trace"],
                r["label"],
                _fmt(r["energy_pj_per_token"], "uj"),
                _fmt(r["energy_vs_dense"], "x"),
                _fmt(r["area_overhead_fraction"], "pct"),
                _fmt(r["speedup_vs_dense"], "x"),
                _fmt(r["ppl"], "ppl"),
                _fmt(r["delta_ppl"], "ppl"),
                "*" if r["front_energy"] else "",
                "*" if r["front_area"] else "",
                "*" if r["front_all"] else "",
            ]
        )
    return header, rows


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def tradeoff_cmd(
    accuracy: Path = typer.Option(
        ..., "--accuracy", help="Accuracy results JSON of `accelsim eval` (e.g. docs/accuracy_smollm2-135m.json)."
    ),
    trace: list[Path] = typer.Option(
        [], "--trace", help="Trace .npz to simulate every config on; repeat for several (prefill and decode)."
    ),
    runs: Path | None = typer.Option(
        None, "--runs", help="runs.json written by a previous `accelsim tradeoff --out` (no simulation)."
    ),
    hw_dir: Path = typer.Option(Path("hw_configs"), "--hw-dir", help="Directory of hardware configs (*.yaml)."),
    node: int | None = typer.Option(None, "--node", help="Technology node in nm (45, 16, 7, 5)."),
    table: Path | None = typer.Option(None, "--table", help="Cost table YAML instead of the shipped 45 nm table."),
    criterion: str = typer.Option("magnitude", "--criterion", help="Accuracy criterion to join (hardware: |x|)."),
    mitigation: str | None = typer.Option(
        None, "--mitigation", help="Accuracy mitigation to join. Default: each config's own (none for hw_configs/)."
    ),
    scale: list[str] = typer.Option(
        [],
        "--scale",
        help="ENTRY=F1,F2 to scale in the sensitivity analysis, e.g. energy.dram_bit=0.5,2 (repeat). "
        "Default: DRAM, SRAM, MAC, mux and comparator energy; mux, comparator, register, SRAM and MAC area.",
    ),
    no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the sensitivity analysis."),
    breakeven: bool = typer.Option(
        False,
        "--breakeven",
        help="Also find, per entry (the --scale entries or the defaults), the factors nearest 1 (within x1/16..x16) "
        "that change a front.",
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print Markdown tables (for docs)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write tradeoff.csv, tradeoff.png (cost vs delta_ppl, Pareto fronts), sensitivity.csv and runs.json "
        "(counts, for --runs) here.",
    ),
) -> None:
    """Rank the patterns by energy per token and by area overhead against their perplexity increase, mark the
    Pareto fronts, and report which cost-table scalings move them."""
    import accelsim.explore as to
    from accelsim.trace.format import TraceError

    if (runs is None) == (not trace):
        raise _fail("give either --trace (one or more, simulated here) or --runs (a saved runs.json)")
    from accelsim.cli import check_out

    files = ("tradeoff.csv", "tradeoff.png", "runs.json")
    files += (() if no_sensitivity else ("sensitivity.csv",)) + (("breakeven.csv",) if breakeven else ())
    check_out(out, files)
    tab = _table_arg(table)
    try:
        acc = to.load_accuracy(accuracy)
        to.check_criterion(acc, criterion)
        scalings = to.parse_scalings(scale) if scale else None
        if scalings:
            tab.scaled(dict.fromkeys(scalings, 1.0))  # unknown entries are errors before any simulation
        if runs is not None:
            run_list = to.load_runs(runs)
        else:
            from accelsim.cli.paths import resolve_default

            hw_dir = resolve_default(hw_dir, Path("hw_configs"), "--hw-dir")
            paths = sorted(hw_dir.glob("*.yaml"))
            if not paths:
                raise _fail(f"{hw_dir}: no *.yaml hardware configs found")
            for p in paths:
                _load(p)
            for tr in trace:
                if not tr.is_file():
                    raise _fail(f"{tr}: no such trace file")
            run_list = to.simulate_runs(paths, trace, progress=lambda s: _err.print(s, style="dim"))
        df = to.tradeoff(run_list, acc, table=tab, node_nm=node, criterion=criterion, mitigation=mitigation)
        sens = None
        if not no_sensitivity:
            sens = to.sensitivity(
                run_list, acc, scalings, table=tab, node_nm=node, criterion=criterion, mitigation=mitigation
            )
        be = None
        if breakeven:
            be = to.breakeven(
                run_list, acc, scalings, table=tab, node_nm=node, criterion=criterion, mitigation=mitigation
            )
    except (ConfigError, TraceError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None
    if df["synthetic_trace"].any():
        _out.print("[bold yellow]warning:[/] a trace is SYNTHETIC (synthetic: true in its metadata)")
    header, rows = tradeoff_table_rows(df)
    unmatched = sorted(set(df.loc[df["ppl"].isna(), "pattern"]))
    if markdown:
        _out.print(_markdown(header, rows), soft_wrap=True, markup=False)
    else:
        t = Table(
            title=f"cost vs accuracy ({criterion}; node {node or tab.node_nm} nm); * = on the Pareto front of "
            "energy/token vs delta_ppl, area overhead vs delta_ppl (sparse configs), and all three"
        )
        for i, c in enumerate(header):
            t.add_column(c, justify="left" if i < 2 else "right")
        for r in rows:
            t.add_row(*(user_text(c, 1000) for c in r))
        _out.print(t)
    if unmatched:
        _out.print(f"no accuracy record for: {', '.join(unmatched)} (not ranked)", style="yellow", markup=False)
    if sens is not None:
        moved = sens[sens["changed"]]
        if moved.empty:
            _out.print(
                f"sensitivity: none of {sens['entry'].nunique()} entries x {sorted(set(sens['factor']))} moves a front"
            )
        else:
            sh = ["entry", "factor", "trace", "axis", "front", "entered", "left"]
            srows = [[str(r[c]) if c != "factor" else f"x{r[c]:g}" for c in sh] for _, r in moved.iterrows()]
            _print_rows("scalings that change a Pareto front", sh, srows, markdown)
            still = sorted(set(sens["entry"]) - set(moved["entry"]))
            if still:
                _out.print(f"no change from: {', '.join(still)}", style="dim", soft_wrap=True)
    if be is not None:
        bh = ["entry", "down_factor", "down_change", "up_factor", "up_change"]
        brows = [
            [r["entry"]]
            + [
                "-" if _missing(r["down_factor"]) else f"x{r['down_factor']:.3g}",
                r["down_change"] or "no change down to x1/16",
                "-" if _missing(r["up_factor"]) else f"x{r['up_factor']:.3g}",
                r["up_change"] or "no change up to x16",
            ]
            for _, r in be.iterrows()
        ]
        _print_rows("break-even: the scaling nearest x1 that changes a front", bh, brows, markdown)
    if out is not None:
        from accelsim.report.plots import tradeoff_grid
        from accelsim.report.tables import csv_writer, write_atomic

        def plot(path: Path) -> None:
            fig = tradeoff_grid(df, title=f"cost vs accuracy ({criterion} criterion, node {node or tab.node_nm} nm)")
            fig.savefig(path, dpi=110, metadata={"Software": None})

        writers = {
            "tradeoff.csv": csv_writer(df),
            "tradeoff.png": plot,
            "runs.json": lambda p: to.save_runs(p, run_list),
        }
        if sens is not None:
            writers["sensitivity.csv"] = csv_writer(sens)
        if be is not None:
            writers["breakeven.csv"] = csv_writer(be)
        written = write_atomic(out, writers)
        _out.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)
