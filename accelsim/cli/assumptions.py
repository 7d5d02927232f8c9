"""``accelsim assumptions``: write docs/assumptions.md (what each modelling assumption does to the answer)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from accelsim.config.yaml_io import ConfigError
from accelsim.console import ProgressBar, fail, out_console
from accelsim.sim.tiling import TilingError
from accelsim.trace.format import TraceError

_TRACES = ["traces/smollm2-135m_prefill32.npz", "traces/smollm2-135m_decode16.npz"]


def assumptions_cmd(
    trace: list[Path] = typer.Option(
        [Path(t) for t in _TRACES], "--trace", help="Real trace, one per phase (repeat the option)."
    ),
    hw_dir: Path = typer.Option(
        Path("hw_configs"), "--hw-dir", help="Directory of the shipped configs (dense.yaml and the patterns)."
    ),
    config: list[str] = typer.Option(
        None, "--config", help="Config to compare (a file stem in --hw-dir; repeat). Default: all shipped patterns."
    ),
    out: Path = typer.Option(Path("docs/assumptions.md"), "--out", help="Markdown file to write."),
    jobs: int = typer.Option(1, "--jobs", min=1, max=64, help="Simulation processes (output does not depend on it)."),
) -> None:
    """Write docs/assumptions.md: what each modelling assumption does to speedup, energy and area.

    Each assumption (accumulator registers, operand-port width, metadata buffer and format, compressor network,
    gathered-row DRAM efficiency, leakage, decoder latency) is switched off in turn, in every config and in the
    dense baseline; per phase the page gives every pattern's speedup, energy ratio and area overhead with it on
    and off, the pattern pairs whose order flips, an operand-port width sweep and the selection-network depths.
    Example:

        accelsim assumptions --jobs 2    # writes docs/assumptions.md from the two committed SmolLM2 traces
    """
    from accelsim.cli.paths import resolve_default
    from accelsim.explore.assumptions import DEFAULT_CONFIGS, build_report

    hw_dir = resolve_default(hw_dir, Path("hw_configs"), "--hw-dir")
    if trace == [Path(t) for t in _TRACES]:
        trace = [resolve_default(t, t, "--trace") for t in trace]
    names = tuple(config) if config else DEFAULT_CONFIGS
    for n in ("dense", *names):
        if not (hw_dir / f"{n}.yaml").is_file():
            raise fail(f"{hw_dir / (n + '.yaml')}: no such config (--config takes file stems in --hw-dir)")
    for t in trace:
        if not t.is_file():
            raise fail(f"{t}: no such trace file (--trace)")
    from accelsim.cli import check_out

    check_out(out, is_file=True)  # a directory, an unwritable parent, a read-only or pseudo file system
    bar = ProgressBar("simulating", delay_s=1.0)
    argv = " ".join(f"--trace {t}" for t in trace)
    cfg_args = "".join(f" --config {n}" for n in config) if config else ""
    command = f"accelsim assumptions {argv}{cfg_args} --out {out}"
    try:
        text = build_report(hw_dir, [str(t) for t in trace], configs=names, jobs=jobs, progress=bar, command=command)
    except (ConfigError, TraceError, TilingError, ValueError) as exc:
        raise fail(str(exc).splitlines()[0]) from None
    finally:
        bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    out_console.print(f"wrote {out}", markup=False)
