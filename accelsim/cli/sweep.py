"""``accelsim sweep``: every combination of config values on one or more traces, locally or on Dask.

Registered by ``accelsim.cli`` as ``app.command("sweep")(sweep_cmd)``. Bad input (an unknown key, a value of
the wrong type, an empty list, a point that does not validate or tile, a Dask address that does not answer)
is one line on stderr and exit 2 before any point runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from accelsim import __version__
from accelsim.config.yaml_io import ConfigError
from accelsim.console import ProgressLines
from accelsim.console import fail as _fail
from accelsim.console import out_console as _out

EPILOG = "Keys, columns, resuming and how to run 10,000 points on a Dask cluster: docs/sweeps.md."


def sweep_cmd(
    hw: Path = typer.Option(None, "--hw", help="Hardware config YAML the points start from. Default: nm8_16.yaml."),
    sets: list[str] = typer.Option(
        [],
        "--set",
        help="KEY=V1,V2,...: a dotted config key and its values, e.g. array.mma.units=4,8,16 or "
        "sparsity.pattern=2:4,8:16 (sets sparsity.n and .m); repeat for more keys (all combinations).",
    ),
    grid: Path | None = typer.Option(
        None,
        "--grid",
        help="Listed points: YAML (a list of {key: value}) or CSV (a header of keys); combined with --set.",
    ),
    traces: list[Path] = typer.Option(..., "--trace", help="Trace .npz; repeat for several (see traces/)."),
    out: Path = typer.Option(
        ..., "--out", help="Directory: journal.jsonl (resume), sweep.csv, sweep.json, sweep_tradeoff.png."
    ),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="Dense config: each point is compared with it, with the point's non-sparsity keys applied. "
        "Default: dense.yaml next to --hw.",
    ),
    scheduler: str = typer.Option(
        "processes", "--scheduler", help="processes (local pool), local (a Dask LocalCluster) or tcp://HOST:PORT."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes / LocalCluster workers. Default: one per CPU core."
    ),
    timeout_s: float = typer.Option(5.0, "--timeout-s", min=0.1, help="Seconds to wait for a tcp:// scheduler."),
    accuracy: Path | None = typer.Option(
        None, "--accuracy", help="Results JSON of `accelsim eval`: adds ppl and delta_ppl by pattern and mitigation."
    ),
    criterion: str = typer.Option("magnitude", "--criterion", help="Selection criterion of the joined accuracy."),
    plot: bool = typer.Option(
        True, "--plot/--no-plot", help="Also write sweep_tradeoff.png (speedup vs area and energy, Pareto fronts)."
    ),
) -> None:
    """Sweep any config keys over their listed values on one or more traces; a tidy table, one row per point.

    Each finished run is appended to OUT/journal.jsonl at once: run the same command again after an
    interruption and only the missing points are simulated. The table is byte-identical whichever scheduler
    ran it.
    """
    from accelsim.cli import DEFAULT_HW, _baseline_path, check_out
    from accelsim.explore import grid as g
    from accelsim.explore import sweep as sw
    from accelsim.trace.format import TraceError

    check_out(out, ("journal.jsonl", "sweep.csv", "sweep.json", "sweep_tradeoff.png"))  # before any work
    hw = hw if hw is not None else DEFAULT_HW
    try:
        parsed = [g.parse_set(s) for s in sets]
        listed = g.read_grid(grid) if grid is not None else None
        if not parsed and listed is None:
            raise g.SweepError("nothing to sweep: give --set KEY=V1,V2,... or --grid FILE")
        combos = g.expand(listed, parsed)
        base = _baseline_path(hw, baseline)
        points = g.build_points(hw, combos, base)
        refs = [sw.trace_ref(t) for t in traces]
        g.check_tiling(points, {r.path: r.shapes for r in refs})
        acc = None
        if accuracy is not None:
            from accelsim.explore import load_accuracy

            acc = load_accuracy(accuracy)
    except (ConfigError, TraceError) as exc:
        raise _fail(str(exc)) from None
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise _fail(f"--trace: two traces share the file name {sorted(n for n in names if names.count(n) > 1)[0]}")
    try:
        sched = sw.Scheduler(scheduler, workers, timeout_s)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    n_runs = len(sw.plan(points, refs))
    _out.print(
        f"sweep: {len(points)} points x {len(refs)} trace(s) = {len(points) * len(refs)} rows, {n_runs} runs "
        f"(with the dense baselines) on {scheduler} ({sched.workers} workers)"
    )
    progress = ProgressLines("sweep runs")
    try:
        df, already = sw.run_sweep(points, refs, out, sched, progress=progress)
    except ConfigError as exc:  # a worker saw another trace file (shared storage out of date)
        raise _fail(str(exc)) from None
    finally:
        progress.close()
        sched.close()
    if already:
        _out.print(f"resumed: {already} of {n_runs} runs were already in {out / sw.JOURNAL}")
    if acc is not None:
        from accelsim.explore import join_accuracy

        df = join_accuracy(df, acc, criterion=criterion)
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    meta = {
        "schema": "accelsim-sweep/1",
        "accelsim_version": __version__,
        "hw_config": str(hw),
        "baseline": str(base) if base is not None else None,
        "keys": keys,
        "traces": [{"name": r.name, "path": r.path, "sha256": r.sha256} for r in refs],
    }
    written = write_tables(out, df, meta, keys, plot)
    _out.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


def write_tables(out: Path, df, meta: dict[str, Any], keys: list[str], plot: bool) -> list[Path]:
    """``sweep.csv``, ``sweep.json`` (the same rows at full precision, with provenance) and, with ``plot``
    and the dense comparison, ``sweep_tradeoff.png``: all or none (atomic)."""
    from accelsim.report.tables import csv_writer, write_atomic

    record = json.dumps({**meta, "rows": json_rows(df)}, indent=1, allow_nan=False) + "\n"  # columns in table order
    writers = {"sweep.csv": csv_writer(df), "sweep.json": lambda p: p.write_text(record, encoding="utf-8")}
    if plot and "speedup_vs_dense" in df.columns:

        def draw(path: Path) -> None:
            from accelsim.report.plots import sweep_tradeoff

            fig = sweep_tradeoff(df, keys, title=f"sweep of {meta['hw_config']}: speed against area and energy")
            fig.savefig(path, dpi=110, metadata={"Software": None})

        writers["sweep_tradeoff.png"] = draw
    return write_atomic(out, writers)


def json_rows(df) -> list[dict[str, Any]]:
    """The table's rows as JSON-ready dicts: numpy scalars as Python numbers, NaN (no value) as null."""
    rows = []
    for rec in df.to_dict(orient="records"):
        row = {}
        for k, v in rec.items():
            v = v.item() if hasattr(v, "item") else v
            row[k] = None if isinstance(v, float) and math.isnan(v) else v
        rows.append(row)
    return rows
