"""``accelsim eval``: perplexity and generative fidelity of N:M-sparsified real models.

Registered by ``accelsim.cli`` as ``app.command("eval")(eval_cmd)``. Exits 0 on success and 2 on bad input
with one error line on stderr. torch is imported inside the function only. Results are merged into a JSON
file after every row, so an interrupted run keeps the rows it finished.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from accelsim.console import ProgressBar as _Bar
from accelsim.console import err_console as _err
from accelsim.console import fail as _fail
from accelsim.console import out_console as _out


def eval_cmd(
    model: str = typer.Option("smollm2-135m", "--model", help="'smollm2-135m', a .gguf file or a HF model directory."),
    pattern: list[str] = typer.Option(
        ["8:16"],
        "--pattern",
        "-p",
        help="Sparsity patterns, comma-separated and/or repeated: dense, n:m (2:4, 8:16 ...), unstructured0.5, "
        "teal0.5, teal0.5-greedy.",
    ),
    criterion: list[str] = typer.Option(
        ["magnitude"],
        "--criterion",
        "-c",
        help="Selection criteria (list): magnitude, amber, weight-aware (= wina), clact, larosa.",
    ),
    mitigation: list[str] = typer.Option(
        ["none"],
        "--mitigation",
        "-g",
        help="Error mitigations (list): none, var, median-shift, static-shift, learnable, var-learnable.",
    ),
    suite: str = typer.Option(
        None,
        "--suite",
        help="A named set of rows instead of --pattern/--criterion/--mitigation: 'docs-table' (the table of "
        "docs/accuracy.md, 39 rows, about 1.5 h on 2 cores) or 'ci' (magnitude at every pattern, and 8:16 with var).",
    ),
    report: Path = typer.Option(
        None,
        "--report",
        help="Markdown page whose generated-tables section is rewritten from the whole results file after the run "
        "(created if missing), e.g. docs/accuracy.md.",
    ),
    windows: int = typer.Option(16, "--windows", help="Evaluation windows (the first N non-overlapping ones)."),
    seq_len: int = typer.Option(512, "--seq-len", help="Tokens per window."),
    calib_windows: int = typer.Option(
        8, "--calib-windows", help="Calibration windows (second half of the text) for static shift, TEAL, learnable."
    ),
    kinds: str = typer.Option("all", "--kinds", help="Projections to sparsify: all or a list of q,k,v,o,gate,up,down."),
    layers: str = typer.Option("all", "--layers", help="Decoder layers to sparsify: all or e.g. 0-3,7."),
    text: str = typer.Option("pydoc", "--text", help="Evaluation text: 'pydoc' (pydoc_data.topics) or a UTF-8 file."),
    gen_tokens: int = typer.Option(
        32, "--gen-tokens", help="New tokens per prompt for the generative score (0: perplexity and top-1 only)."
    ),
    fit_epochs: int = typer.Option(2, "--fit-epochs", help="Passes over the calibration windows (learnable fit)."),
    fit_lr: float = typer.Option(2e-3, "--fit-lr", help="Adam learning rate of the learnable fit."),
    greedy_windows: int = typer.Option(1, "--greedy-windows", help="Calibration windows for TEAL's greedy search."),
    greedy_step: float = typer.Option(0.1, "--greedy-step", help="TEAL greedy base step (sparsity of q per step)."),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Results JSON (merged into if it exists). Default results/accuracy/<model>.json."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on a terminal."),
) -> None:
    """Perplexity (and greedy-generation agreement with the dense model) of a sparsified real model.

    Every combination of --pattern x --criterion x --mitigation that exists is run (dense once; TEAL only with
    the magnitude criterion), or the rows of --suite. Example: accelsim eval --pattern 2:4,8:16 --mitigation none,var

    The table of docs/accuracy.md: accelsim eval --suite docs-table --out docs/accuracy_smollm2-135m.json
    --report docs/accuracy.md
    """
    from accelsim.accuracy.spec import SpecError, expand, expand_suite, parse_kinds, parse_layers, split_list

    try:
        if suite is not None:
            specs, skipped = expand_suite(suite), []
        else:
            specs, skipped = expand(split_list(pattern), split_list(criterion), split_list(mitigation))
        kind_t = parse_kinds(kinds)
        layer_t = parse_layers(layers)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    if not specs:
        raise _fail("no valid pattern/criterion/mitigation combination: " + "; ".join(skipped))
    for name, val, lo in (
        ("--windows", windows, 1),
        ("--seq-len", seq_len, 2),
        ("--calib-windows", calib_windows, 1),
        ("--gen-tokens", gen_tokens, 0),
        ("--fit-epochs", fit_epochs, 1),
        ("--greedy-windows", greedy_windows, 1),
        ("--threads", threads, 1),
    ):
        if val < lo:
            raise _fail(f"{name} {val}: allowed >= {lo}")
    if not 0.0 < greedy_step <= 1.0:
        raise _fail(f"--greedy-step {greedy_step}: allowed 0 < step <= 1")
    if not fit_lr > 0.0:
        raise _fail(f"--fit-lr {fit_lr}: allowed > 0")
    if text != "pydoc" and not Path(text).is_file():
        raise _fail(f"--text {text!r}: no such file; allowed: pydoc or a UTF-8 text file")
    for note in skipped:
        _err.print(f"skipped: {note}", markup=False)

    from accelsim.hf import ModelLoadError, resolve_model

    try:
        resolve_model(model)
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    out_path = out or Path("results/accuracy") / f"{Path(model).stem if model != 'smollm2-135m' else model}.json"
    from accelsim.cli import check_out

    check_out(out_path, is_file=True)

    from accelsim.accuracy.calibrate import WindowError
    from accelsim.accuracy.evaluate import EvalSettings, Evaluator
    from accelsim.accuracy.records import load_records, write_records

    try:
        load_records(out_path)
    except ValueError as exc:
        raise _fail(str(exc)) from None

    import torch

    torch.set_num_threads(threads)
    settings = EvalSettings(
        model=model,
        text=text,
        windows=windows,
        seq_len=seq_len,
        calib_windows=calib_windows,
        kinds=kind_t,
        layers=layer_t,
        gen_tokens=gen_tokens,
        fit_epochs=fit_epochs,
        fit_lr=fit_lr,
        greedy_windows=greedy_windows,
        greedy_step=greedy_step,
    )

    def log(msg: str) -> None:
        _err.print(msg, markup=False, soft_wrap=True)

    ev = Evaluator(settings, progress=lambda label: _Bar(label, progress), log=log)
    t0 = time.perf_counter()
    try:
        ev.state()
        if layer_t is not None:
            parse_layers(layers, _num_layers(ev.state().model))
    except (ModelLoadError, WindowError, SpecError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    rows = []
    for i, spec in enumerate(specs, 1):
        rec = ev.run(spec)
        write_records(out_path, [rec])
        rows.append(rec)
        log(
            f"[{i}/{len(specs)}] {rec['pattern']:>16} {rec['criterion']:>12} {rec['mitigation']:>13}  "
            f"ppl {rec['ppl']:9.3f}  (dense {rec['dense_ppl']:.3f}, +{rec['delta_ppl']:.3f})  "
            f"agree {_num(rec['token_agreement'])}  {rec['timings_s']['total']:.0f} s"
        )
    _print_table(rows)
    _out.print(f"{len(rows)} row(s) merged into {out_path} in {time.perf_counter() - t0:.0f} s")
    if report is not None:
        from accelsim.accuracy.report import update_markdown

        update_markdown(report, load_records(out_path), rows[0]["model"])
        _out.print(f"tables of {out_path} written into {report}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _num_layers(model: Any) -> int:
    from accelsim.accuracy.sparsify import decoder_layers

    return len(decoder_layers(model))


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title=None)
    for col in (
        "pattern",
        "criterion",
        "mitigation",
        "ppl",
        "delta ppl",
        "token agr.",
        "forced agr.",
        "top-1 agr.",
        "s",
    ):
        t.add_column(col, justify="right" if col not in ("pattern", "criterion", "mitigation") else "left")
    for r in rows:
        t.add_row(
            r["pattern"],
            r["criterion"],
            r["mitigation"],
            f"{r['ppl']:.3f}",
            f"{r['delta_ppl']:+.3f}",
            _num(r["token_agreement"]),
            _num(r["forced_agreement"]),
            f"{r['top1_agreement']:.3f}",
            f"{r['timings_s']['total']:.0f}",
        )
    _out.print(t)
