"""``accelsim run --scenario`` and ``accelsim compare --scenario``: serving metrics (TTFT, TPOT, tokens/s, energy
per token, breakdown by site kind) of a scenario YAML (``docs/serving.md``). Bad input: one line, exit 2, no
partial output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from accelsim.config import ConfigError
from accelsim.console import fail, out_console, user_text
from accelsim.sim.tiling import TilingError
from accelsim.trace.format import TraceError

RUN_FILES = ("serving.json", "serving_breakdown.csv")
COMPARE_FILES = ("compare_serving.csv", "compare_serving.json")
COMPARE_COLS = (
    "config",
    "pattern",
    "ttft_ms",
    "tpot_ms",
    "tokens_per_s",
    "uj_per_token",
    "speedup_tpot_vs_dense",
    "speedup_ttft_vs_dense",
    "energy_per_token_vs_dense",
    "attention_share",
    "lm_head_share",
)


def _scenario(path: Path):
    from accelsim.serving import load_scenario

    try:
        return load_scenario(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def serve_one(hw_path: Path, cfg: Any, sc: Any, sc_path: Path, trace: Path, prefill: Path | None, base: Any):
    """``accelsim.serving.serve`` with the CLI's one-line errors."""
    from accelsim.serving import serve

    for p in (trace, prefill):
        if p is not None and not p.is_file():
            raise fail(f"{p}: no such trace file")
    try:
        return serve(cfg, sc, trace, prefill_trace=prefill, baseline=base, where=str(sc_path), hw_where=str(hw_path))
    except (ConfigError, TraceError) as exc:
        raise fail(str(exc)) from None
    except TilingError as exc:
        raise fail(f"{hw_path}: {exc}") from None


def breakdown_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (phase, kind) of the record's breakdowns."""
    rows = []
    for phase in ("prefill", "decode_step"):
        if phase not in rec:
            continue
        for kind, v in rec[phase]["by_kind"].items():
            rows.append({"config": rec["config"], "phase": phase, "kind": kind, **v})
    return rows


def print_serving(rec: dict[str, Any]) -> None:
    if rec.get("synthetic_trace"):
        out_console.print("[bold yellow]warning:[/] this trace is SYNTHETIC (synthetic: true in its metadata)")
    shape = (
        f"context {rec['context_tokens']}"
        if rec["mode"] == "decode_step"
        else f"prompt {rec['prompt_tokens']} (chunks of {rec['prefill_chunk_tokens']}) + {rec['generated_tokens']}"
    )
    t = Table(
        title=f"{user_text(rec['scenario'])} on {user_text(rec['config'])} ({rec['pattern']}): batch {rec['batch']}, "
        f"{shape}, weights {rec['weight_datatype']}, activations {rec['activation_datatype']}, "
        f"KV {rec['kv_cache_datatype']}"
    )
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for key in ("ttft_ms", "ttft_last_ms", "tpot_ms", "tokens_per_s", "decode_tokens_per_s", "uj_per_token",
                "prefill_time_share",
                "speedup_tpot_vs_dense", "speedup_ttft_vs_dense", "energy_per_token_vs_dense",
                "kv_cache_read_bytes_per_step", "kv_cache_write_bytes_per_step", "weight_bytes_per_step",
                "dequant_area_um2", "weight_storage_bits", "weight_operand_bits"):  # fmt: skip
        v = rec.get(key)
        if v is not None:
            t.add_row(key, f"{v:,.4g}" if isinstance(v, float) and abs(v) < 1e4 else f"{v:,.0f}")
    out_console.print(t)
    for phase in ("prefill", "decode_step"):
        if phase not in rec:
            continue
        b = rec[phase]
        bt = Table(title=f"{phase}: {b['time_ms']:.4g} ms, {b['energy_pj'] / 1e6:,.1f} uJ, by site kind")
        for c in ("kind", "cycles", "share", "dram_bytes", "energy_pj"):
            bt.add_column(c, justify="left" if c == "kind" else "right")
        for kind, v in b["by_kind"].items():
            bt.add_row(kind, f"{v['cycles']:,.0f}", f"{v['share']:.1%}", f"{v['dram_bytes']:,.0f}",
                       f"{v['energy_pj']:,.0f}")  # fmt: skip
        out_console.print(bt)
    out_console.print(
        "Attention: QK^T and PV per KV head, dense, KV cache read from DRAM; embedding lookup not counted "
        "(docs/serving.md).",
        style="dim",
        soft_wrap=True,
    )


def run_scenario(hw_path: Path, cfg: Any, base_path: Path | None, scenario: Path, trace: Path,
                 prefill: Path | None, out: Path | None, json_only: bool) -> None:  # fmt: skip
    """The body of ``accelsim run --scenario``."""
    from accelsim.cli import _load_hw, check_out
    from accelsim.report.tables import csv_writer, json_writer, write_atomic

    check_out(out, RUN_FILES)
    sc = _scenario(scenario)
    base = _load_hw(base_path) if base_path is not None else None
    if base is not None and base.sparsity.kind != "dense":
        raise fail(f"{base_path}: sparsity.kind is '{base.sparsity.kind}'; a baseline must be 'dense'")
    rec = serve_one(hw_path, cfg, sc, scenario, trace, prefill, base)
    if json_only:
        out_console.print_json(json.dumps(rec, sort_keys=True))
    else:
        print_serving(rec)
    if out is not None:
        import pandas as pd

        written = write_atomic(
            out,
            {"serving.json": json_writer(rec), "serving_breakdown.csv": csv_writer(pd.DataFrame(breakdown_rows(rec)))},
        )
        out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


def compare_scenario(paths: list[Path], scenario: Path, trace: Path, prefill: Path | None, out: Path | None) -> None:
    """The body of ``accelsim compare --scenario``: every config of the directory on one scenario."""
    import pandas as pd

    from accelsim.cli import _load_hw, check_out
    from accelsim.report.tables import csv_writer, json_writer, write_atomic
    from accelsim.serving import check_datatypes

    check_out(out, COMPARE_FILES)
    sc = _scenario(scenario)
    cfgs = [_load_hw(p) for p in paths]
    for p, c in zip(paths, cfgs, strict=True):
        try:
            check_datatypes(sc, c, str(scenario), str(p))
        except ConfigError as exc:
            raise fail(str(exc)) from None
    dense = [c for c in cfgs if c.sparsity.kind == "dense" and c.name == "dense"] or [
        c for c in cfgs if c.sparsity.kind == "dense"
    ]
    base = dense[0] if dense else None
    recs = [serve_one(p, c, sc, scenario, trace, prefill, base) for p, c in zip(paths, cfgs, strict=True)]
    for r in recs:
        r["attention_share"] = r["decode_step"]["by_kind"].get("attention", {}).get("share")
        r["lm_head_share"] = r["decode_step"]["by_kind"].get("lm_head", {}).get("share")
    recs.sort(key=lambda r: -r["tpot_ms"])
    flat = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in recs])
    df = flat.reindex(columns=list(COMPARE_COLS))
    t = Table(title=f"{user_text(sc.name)} ({sc.mode}, batch {sc.batch}) on {user_text(trace.name)}: decode step "
              "shares of attention and lm_head")  # fmt: skip
    cells = [[_cell(r[c]) for c in COMPARE_COLS] for _, r in df.iterrows()]
    for i, c in enumerate(COMPARE_COLS):  # names and numbers never wrap; headers wrap at the underscores
        t.add_column(c.replace("_", " "), justify="left" if c in ("config", "pattern") else "right",
                     min_width=max(len(row[i]) for row in cells))  # fmt: skip
    for row in cells:
        t.add_row(*row)
    out_console.print(t)
    if out is not None:
        written = write_atomic(
            out, {"compare_serving.csv": csv_writer(flat), "compare_serving.json": json_writer(recs)}
        )
        out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return user_text(v)


CURVE_FILES = ("serving_curves.json", "serving_batch.png", "serving_context.png", "serving_mix.png")


def curves_cmd(
    out: Path = typer.Option(Path("docs"), "--out", help="Directory for serving_curves.json and the three PNGs."),
    hw_dir: Path = typer.Option(Path("hw_configs"), "--hw-dir", help="Directory of hardware configs (*.yaml)."),
) -> None:
    """The serving curves of docs/serving.md: speedup and uj_per_token vs batch (1..32, both real models) and
    vs context (512..32k, the 7B-shaped model), and the prefill/decode mix of a chat request (a few minutes)."""
    from accelsim.cli import check_out
    from accelsim.cli.paths import resolve_default
    from accelsim.console import err_console
    from accelsim.report.tables import json_writer, write_atomic
    from accelsim.serving import curves

    hw_dir = resolve_default(hw_dir, Path("hw_configs"), "--hw-dir")
    check_out(out, CURVE_FILES)
    root = hw_dir.resolve().parent
    for dec, pre in curves.MODELS.values():
        for p in (dec, pre):
            if not (root / p).is_file():
                raise fail(f"{root / p}: no such trace file (the curves need the committed traces)")
    try:
        data = curves.compute(root, hw_dir, log=lambda s: err_console.print(s, style="dim"))
    except (ConfigError, TraceError, ValueError) as exc:
        raise fail(str(exc)) from None

    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        curves.plot(data, Path(tmp))
        writers: dict[str, Any] = {"serving_curves.json": json_writer(data)}
        for name in CURVE_FILES[1:]:
            writers[name] = lambda path, src=Path(tmp) / name: shutil.copyfile(src, path)
        written = write_atomic(out, writers)
    out_console.print(curves.markdown_tables(data), markup=False, soft_wrap=True)
    out_console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)
