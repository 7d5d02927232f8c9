"""``accelsim trace``: record a real activation trace from a PyTorch model, or write a synthetic one.

Registered by ``accelsim.cli`` as ``app.command("trace")(trace)``. Exits 0 on success, 2 on bad input with
one error line on stderr, and never leaves a partial output file (the writer renames a temporary file).
torch is imported only when a real model is traced.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import typer

from accelsim.console import ProgressBar as _Bar
from accelsim.console import err_console as _err
from accelsim.console import fail as _fail
from accelsim.console import out_console as _out
from accelsim.trace.format import PHASES, TraceError

DEFAULT_TOKENS = 32


def _parse_layers(text: str | None) -> list[int] | None:
    if text is None or text.strip() in ("", "all"):
        return None
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", text):
        raise _fail(f"--layers {text!r}: expected a list like 0,1 or 0-3,7 (or 'all')")
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(out))


def _slug(model: str) -> str:
    p = Path(model)
    name = p.stem if p.suffix == ".gguf" else p.name or model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def trace(
    model: str = typer.Option(
        "smollm2-135m", "--model", "-m", help="'smollm2-135m' (bundled), a .gguf file or a Hugging Face model folder."
    ),
    tokens: int = typer.Option(
        DEFAULT_TOKENS, "--tokens", "-t", help="prefill: tokens of the one forward pass; decode: generated steps."
    ),
    phase: str = typer.Option("prefill", "--phase", "-p", help="prefill | decode"),
    text: str = typer.Option("pydoc", "--text", help="'pydoc' (pydoc_data.topics) or a UTF-8 text file."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output .npz (default: traces/<model>_<phase><tokens>.npz)."
    ),
    offset: int = typer.Option(0, "--offset", help="First token of the text to use."),
    prompt_tokens: int = typer.Option(32, "--prompt-tokens", help="decode: prompt length before the steps."),
    with_weights: bool = typer.Option(False, "--with-weights", help="Also store weights and biases (see --layers)."),
    layers: str | None = typer.Option(
        None, "--layers", help="Layers whose weights --with-weights stores, e.g. 0,1 (default: all)."
    ),
    synthetic: str | None = typer.Option(
        None, "--synthetic", help="Write a synthetic trace with these shapes instead (llama2-7b, smollm2-135m)."
    ),
    stats_from: Path | None = typer.Option(
        None, "--stats-from", help="--synthetic: the real trace whose value distributions are fitted."
    ),
    seed: int = typer.Option(0, "--seed", help="--synthetic: random seed (same seed, same bytes)."),
    dtype: str = typer.Option(
        "float32", "--dtype", help="Model compute dtype: float32, or bfloat16 to halve a 7B model's memory."
    ),
    batch: int | None = typer.Option(
        None, "--batch", "-b", help="Sequences: B text windows (default 1), or the first B prompts of --prompt-file."
    ),
    stride: int | None = typer.Option(None, "--stride", help="--batch: text tokens between window starts."),
    prompt_file: Path | None = typer.Option(
        None, "--prompt-file", help="UTF-8 file, one prompt per non-empty line, instead of text windows."
    ),
    lm_head: bool = typer.Option(True, "--lm-head/--no-lm-head", help="Also record lm_head's input (last site)."),
    stats: bool = typer.Option(False, "--stats", help="Print activation statistics per site kind."),
    compare_plain: bool = typer.Option(False, "--compare-plain", help="Also time the same forward pass without hooks."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr."),
) -> None:
    """Record the inputs of every linear site of a real model's forward pass (or sample a synthetic trace).

    Examples:

      accelsim trace                                   (SmolLM2-135M, 32-token prefill of the pydoc text)

      accelsim trace --phase decode --tokens 16 --out traces/smollm2-135m_decode16.npz

      accelsim trace --phase decode --tokens 16 --batch 4   (4 text windows, 4 tokens per step)

      accelsim trace --synthetic llama2-7b --stats-from traces/smollm2-135m_prefill32.npz --tokens 16
    """
    if phase not in PHASES:
        raise _fail(f"--phase {phase!r}: allowed {', '.join(PHASES)}")
    if tokens < 1:
        raise _fail(f"--tokens {tokens}: must be >= 1")
    layer_list = _parse_layers(layers)
    if layers is not None and not with_weights:
        raise _fail("--layers chooses the layers whose weights are stored: add --with-weights")
    from accelsim.cli import check_out

    check_out(out, is_file=True)
    if batch is not None and batch < 1:
        raise _fail(f"--batch {batch}: must be >= 1")
    if stride is not None and (stride < 1 or prompt_file is not None):
        raise _fail(f"--stride {stride}: must be >= 1, and is for text windows (not with --prompt-file)")
    if synthetic is not None:
        if batch not in (None, 1) or prompt_file is not None:
            raise _fail("--batch/--prompt-file: a synthetic trace holds one sequence")
        _synthetic(synthetic, stats_from, tokens, phase, seed, out, with_weights, stats, progress, lm_head)
        return
    if stats_from is not None:
        raise _fail("--stats-from is used with --synthetic only")
    if prompt_file is not None:
        from accelsim.trace.batch import BatchInputError, read_prompts

        try:
            read_prompts(prompt_file)
        except BatchInputError as exc:
            raise _fail(str(exc)) from None
        if text != "pydoc":
            raise _fail("--prompt-file replaces --text: give one of them")
    suffix = f"_b{batch}" if batch not in (None, 1) else ""
    out = out or Path("traces") / f"{_slug(model)}_{phase}{tokens}{suffix}.npz"
    check_out(out, is_file=True)

    from accelsim.hf import ModelLoadError, resolve_model
    from accelsim.trace.tracer import TraceInputError, separate_input_bytes, trace_to_file

    if text != "pydoc" and not Path(text).is_file():
        raise _fail(f"--text {text!r}: no such file (use 'pydoc' or a UTF-8 text file)")
    try:
        resolve_model(model)  # a missing model fails here, before torch is imported
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None

    bar = _Bar("trace", progress)
    if progress:
        _err.print(f"loading {model} ...")
    else:  # transformers' own loading bars (tqdm)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        res = trace_to_file(
            out,
            model=model,
            tokens=tokens,
            phase=phase,
            text=text,
            offset=offset,
            prompt_tokens=prompt_tokens,
            weight_layers=(layer_list if with_weights else ()),
            progress=bar,
            measure_plain=compare_plain,
            dtype=dtype,
            batch=batch,
            stride=stride,
            prompt_file=prompt_file,
            lm_head=lm_head,
        )
    except (ModelLoadError, TraceInputError, TraceError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    finally:
        bar.close()
    data, sec = res.data, res.seconds
    stored, separate = separate_input_bytes(data)
    meta = data.meta
    _out.print(
        f"wrote {out}: {_mb(out.stat().st_size)}, {len(data.sites)} linear sites, {len(data.inputs)} stored inputs, "
        f"{phase} T={tokens}, {meta['sequences']} sequence(s) ({meta['model']}, synthetic: false)",
        markup=False,
    )
    _out.print(
        f"inputs: {_mb(stored)} float16 = {stored / separate:.3f}x of storing each site's input separately "
        f"({_mb(separate)}); linear sites cover {meta['linear_weight_share']:.1%} of the model's parameters"
    )
    timing = f"time: load {sec['load']:.1f} s, tokenize {sec['tokenize']:.2f} s, traced forward {sec['traced']:.2f} s"
    if "plain" in sec:
        timing += f" (plain {sec['plain']:.2f} s: {sec['traced'] / sec['plain']:.2f}x)"
    _out.print(timing + f", write {sec['write']:.2f} s")
    if stats:
        _print_stats(out)


def _synthetic(
    shape: str,
    stats_from: Path | None,
    tokens: int,
    phase: str,
    seed: int,
    out: Path | None,
    with_weights: bool,
    stats: bool,
    progress: bool,
    lm_head: bool = True,
) -> None:
    from accelsim.trace.synthetic import SHAPES, synthesize

    if shape not in SHAPES:
        raise _fail(f"--synthetic {shape!r}: known shapes {', '.join(SHAPES)}")
    if stats_from is None:
        raise _fail("--synthetic needs --stats-from <a real trace .npz> to fit the value distributions")
    if with_weights:
        raise _fail("--with-weights: a synthetic trace has no weights")
    out = out or Path("traces") / f"{shape}_synthetic_{phase}{tokens}.npz"
    from accelsim.cli import check_out

    check_out(out, is_file=True)
    _check_synthetic_fits(SHAPES[shape], tokens)
    bar = _Bar("sample", progress)
    t0 = time.perf_counter()
    try:
        synthesize(out, shape, stats_from, tokens=tokens, phase=phase, seed=seed, progress=bar, lm_head=lm_head)
    except (TraceError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        bar.close()
    _out.print(
        f"wrote {out}: {_mb(out.stat().st_size)}, {shape} shapes, {phase} T={tokens}, seed {seed}, "
        f"values fitted to {stats_from.name} (synthetic: true), {time.perf_counter() - t0:.1f} s",
        markup=False,
    )
    if stats:
        _print_stats(out)


def _check_synthetic_fits(shape, tokens: int) -> None:  # noqa: ANN001 - a ModelShape
    """Refuse a synthetic trace whose inputs cannot be held while they are written (estimate in the message)."""
    from accelsim.safeio import BASE_BYTES, RunEstimate, TooLargeError, check_fits
    from accelsim.trace.synthetic import shape_sites

    sites = shape_sites(shape)
    widest = max(sites, key=lambda s: s.K)
    # inputs are drawn one at a time (float32 samples, scales and the float16 copy: ~16 bytes per value)
    need = tokens * widest.K * 16
    est = RunEstimate(peak_bytes=BASE_BYTES + need, seconds=0.0, tiles=0, largest_site=f"{widest.kind} K={widest.K}")
    try:
        check_fits(est, what=f"--tokens {tokens}: a synthetic {shape.name} trace", max_seconds=None)
    except TooLargeError as exc:
        raise _fail(str(exc)) from None


def _print_stats(path: Path) -> None:
    from accelsim.trace.stats import activation_stats, format_stats

    _out.print(f"activation statistics per site kind ({path.name}; N:M columns for 8:16):", markup=False)
    _out.print(format_stats(activation_stats(path, nm="8:16")), markup=False)
