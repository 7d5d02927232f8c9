"""Whole-model simulator figures: wall time, simulated dense-equivalent MACs per wall-second, peak memory.

Every case (one trace on one hardware config) runs in a fresh subprocess, so its peak resident memory
(``ru_maxrss``) is its own; ``rss_before_simulate_mb`` is the high-water mark after the imports and opening the
trace, so the difference is what the simulation itself added.

Cases:

* both committed real SmolLM2-135M traces (``traces/*.npz``) on every ``hw_configs/*.yaml``;
* a real SmolLM2-135M 128-token prefill (traced into ``benchmarks/.cache/traces`` when torch and the bundled
  model are there);
* a Llama-2-7B-shaped decode token and a 512-token prefill (``accelsim trace --synthetic llama2-7b``, values
  fitted to the committed prefill trace; ``synthetic: true``), made into the same cache directory;
* a Llama-2-7B-shaped batch-8 decode step with attention at 4k context: the serving layer's steady-state
  decode step (``Scenario(batch=8, context_tokens=4096)``: the linear sites of 8 sequences plus ``QK^T`` and
  ``PV`` over a 4096-token KV cache) on a synthetic 7B decode trace of 8 sequences
  (``synthesize(..., sequences=8)``). Sweep throughput is ``bench_sweep.py``.

Run: python benchmarks/run_all.py --only whole_model   (or python benchmarks/bench_models.py [--smoke])
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from results_io import add_common_args, machine_info, out_path, update_results, wall_stats  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "traces"
STATS_FROM = ROOT / "traces" / "smollm2-135m_prefill32.npz"
REAL_TRACES = ("traces/smollm2-135m_prefill32.npz", "traces/smollm2-135m_decode16.npz")

# issue 14's targets on this 2-core machine (medians)
TARGETS = {
    "smollm2-135m_prefill128": {"all_configs_total_wall_s": 3.0},
    "llama2-7b_decode1": {"per_config_wall_s": 0.5},
    "llama2-7b_prefill512": {"per_config_wall_s": 10.0, "peak_rss_mb": 1024.0},
}

#: groups whose one-pass case also runs without the reader thread (``accelsim.sim.run.PREFETCH``): what it buys
READER_THREAD_CASES = ("llama2-7b_prefill512", "smollm2-135m_prefill128", "smoke_synthetic_prefill4")
#: serving decode-step groups: ``(batch, context_tokens)`` of the scenario
SERVING = {"llama2-7b_batch8_decode_attention4k": (8, 4096), "smoke_serving_b2_context64": (2, 64)}


def _hwm_mb() -> float:
    """High-water resident memory of this process so far (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case_here(hw_paths: list[Path], trace_path: Path, repeat: int, reader_thread: bool = True) -> dict[str, Any]:
    """Simulate ``repeat`` times in this process (the subprocess side of :func:`run_case`); several configs are
    simulated in one ``simulate_many`` pass (inputs read once, masks shared). ``reader_thread=False`` reads every
    input in the simulating thread (``accelsim.sim.run.PREFETCH``), to measure what the reader thread buys."""
    import accelsim.sim.run as sim_run
    from accelsim.config import load_hw
    from accelsim.sim.run import simulate_many
    from accelsim.trace.format import Trace

    sim_run.PREFETCH = reader_thread

    hws = [load_hw(p) for p in hw_paths]
    with Trace(trace_path) as tr:
        phase, synthetic, n_sites = tr.phase, tr.synthetic, len(tr.sites)
    before = _hwm_mb()
    walls, cpus, results = [], [], []
    for _ in range(repeat):
        with Trace(trace_path) as tr:
            t0, c0 = time.perf_counter(), time.process_time()
            results = simulate_many(hws, tr)  # a fresh memo per call: nothing carries over between repeats
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    assert results
    res = results[0]
    return {
        "phase": phase,
        "synthetic": synthetic,
        "sites": n_sites,
        "tokens": res.meta["trace_tokens"],
        "simulated_cycles": int(sum(r.totals["cycles"] for r in results)),
        "dense_macs": int(sum(r.totals["dense_macs"] for r in results)),
        "wall_s": walls,
        "cpu_s": cpus,
        "rss_before_simulate_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def serving_case_here(hw_paths: list[Path], trace_path: Path, repeat: int, batch: int, context: int) -> dict:
    """The subprocess side of a serving case: ``Server(hw, Scenario(batch, context_tokens)).run()`` per config,
    ``repeat`` times (a fresh attention memo per repeat: nothing carries over). Dense-equivalent MACs: the linear
    sites' ``batch * K * O`` plus the attention sites' ``T * K * O`` per layer."""
    from accelsim.config import load_hw
    from accelsim.serving import Scenario, check_traces
    from accelsim.serving.attention import attention_shapes
    from accelsim.serving.metrics import Server
    from accelsim.trace.format import Trace

    hws = [load_hw(p) for p in hw_paths]
    sc = Scenario(name=f"b{batch}_c{context}", batch=batch, context_tokens=context)
    with Trace(trace_path) as tr:
        phase, synthetic, n_sites = tr.phase, tr.synthetic, len(tr.sites)
        check_traces(sc, str(trace_path), tr, None)
        arch = tr.require_architecture()
        linear_macs = batch * sum(s.K * s.O for s in tr.sites)
    attn_macs = sum(a.T * a.K * a.O * a.count for a in attention_shapes(arch, batch=batch, past=context - 1, queries=1))
    before = _hwm_mb()
    walls, cpus, recs = [], [], []
    for _ in range(repeat):
        with Trace(trace_path) as tr:
            t0, c0 = time.perf_counter(), time.process_time()
            recs = [Server(hw, sc, tr).run() for hw in hws]
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return {
        "phase": phase,
        "synthetic": synthetic,
        "sites": n_sites,
        "tokens": batch,
        "scenario": sc.model_dump(),
        "simulated_cycles": int(sum(round(r["decode_step"]["cycles"]) for r in recs)),
        "dense_macs": int((linear_macs + attn_macs) * len(hws)),
        "attention_dense_macs_per_config": int(attn_macs),
        "tpot_ms": {r["config"]: r["tpot_ms"] for r in recs},
        "attention_share": {r["config"]: r["decode_step"]["by_kind"]["attention"]["share"] for r in recs},
        "wall_s": walls,
        "cpu_s": cpus,
        "rss_before_simulate_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_case(
    hw_path: Path | list[Path],
    trace_path: Path,
    repeat: int,
    serving: tuple[int, int] | None = None,
    reader_thread: bool = True,
) -> dict[str, Any]:
    """One case in a fresh interpreter; the summary record with medians, MACs per second and peak memory.
    A list of configs is one case: all of them in one ``simulate_many`` pass (cycles and MACs summed)."""
    paths = hw_path if isinstance(hw_path, list) else [hw_path]
    cmd = [
        sys.executable,
        str(Path(__file__)),
        "--case",
        *[a for p in paths for a in ("--hw", str(p))],
        "--trace",
        str(trace_path),
        "--repeat",
        str(repeat),
        *([] if serving is None else ["--serving-batch", str(serving[0]), "--serving-context", str(serving[1])]),
        *([] if reader_thread else ["--no-reader-thread"]),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("CASE_RESULT ")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"case {'+'.join(p.name for p in paths)} on {trace_path.name} failed: {tail[0]}")
    raw = json.loads(lines[-1].split(" ", 1)[1])
    wall = wall_stats(raw.pop("wall_s"))
    cpu = wall_stats(raw.pop("cpu_s"))
    return {
        "config": paths[0].stem if len(paths) == 1 else "+".join(p.stem for p in paths),
        "trace": _rel(trace_path),
        **raw,
        "wall_s": wall,
        "cpu_s": cpu,
        "dense_equivalent_macs_per_wall_s": raw["dense_macs"] / wall["median"],
        "simulated_cycles_per_wall_s": raw["simulated_cycles"] / wall["median"],
    }


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _make(path: Path, args: list[str], log) -> Path | None:
    """Create a cached trace with ``python -m accelsim.cli trace ARGS --out path`` unless it exists."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "accelsim.cli", "trace", *args, "--no-progress", "--out", str(path)]
    log(f"making {_rel(path)}: {' '.join(cmd[1:])}")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        log(f"  could not make it: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        return None
    return path


def make_batch_decode(path: Path, shape: str, sequences: int, log, layers: int | None = None) -> Path:
    """A synthetic one-step decode trace of ``sequences`` sequences with ``shape``'s sites (cached)."""
    from accelsim.trace.synthetic import synthesize

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthesize(path, shape, STATS_FROM, tokens=1, phase="decode", seed=0, layers=layers, sequences=sequences)
        log(f"made {_rel(path)} (synthetic {shape}, {sequences} sequences, one decode step)")
    return path


def smoke_trace(log) -> Path:
    from accelsim.trace.synthetic import make_test_trace

    path = ROOT / "benchmarks" / ".cache" / "smoke" / "smollm2-shapes_prefill4_2layers.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_test_trace(path, tokens=4, phase="prefill", layers=2, seed=0)
        log(f"made {_rel(path)}")
    return path


def groups(smoke: bool, prefill512_configs: list[str] | None, log) -> list[tuple[str, Path, list[Path]]]:
    """``(group name, trace, configs)`` to run."""
    cfgs = sorted((ROOT / "hw_configs").glob("*.yaml"))
    if smoke:
        two = [c for c in cfgs if c.stem in ("dense", "nm8_16")]
        small = make_batch_decode(ROOT / "benchmarks" / ".cache" / "smoke" / "smollm2-shapes_decode1_b2_2layers.npz",
                                  "smollm2-135m", 2, log, layers=2)  # fmt: skip
        return [("smoke_synthetic_prefill4", smoke_trace(log), two), ("smoke_serving_b2_context64", small, two)]
    out: list[tuple[str, Path, list[Path]]] = []
    for t in REAL_TRACES:
        out.append((Path(t).stem, ROOT / t, cfgs))
    pf128 = _make(CACHE / "smollm2-135m_prefill128.npz", ["--tokens", "128", "--phase", "prefill"], log)
    if pf128 is not None:
        out.append(("smollm2-135m_prefill128", pf128, cfgs))
    syn = ["--synthetic", "llama2-7b", "--stats-from", str(STATS_FROM)]
    dec = _make(CACHE / "llama2-7b_decode1.npz", [*syn, "--tokens", "1", "--phase", "decode"], log)
    if dec is not None:
        out.append(("llama2-7b_decode1", dec, cfgs))
    pf512 = _make(CACHE / "llama2-7b_prefill512.npz", [*syn, "--tokens", "512", "--phase", "prefill"], log)
    if pf512 is not None:
        chosen = cfgs if prefill512_configs in (None, ["all"]) else [c for c in cfgs if c.stem in prefill512_configs]
        out.append(("llama2-7b_prefill512", pf512, chosen))
    b8 = make_batch_decode(CACHE / "llama2-7b_decode1_b8.npz", "llama2-7b", 8, log)
    out.append(("llama2-7b_batch8_decode_attention4k", b8, cfgs))
    return out


def run(
    *,
    smoke: bool = False,
    repeat: int = 3,
    prefill512_repeat: int = 1,
    prefill512_configs: list[str] | None = None,
    log=print,
    checkpoint=None,
) -> dict[str, Any]:
    """All whole-model cases; returns the ``whole_model`` record."""
    env = machine_info()
    record: dict[str, Any] = {
        "what": "whole-trace simulate() per config: wall time, dense-equivalent MACs per wall-second, peak RSS",
        "status": "running",
        "smoke": smoke,
        "environment": env,
        "definitions": {
            "wall_s": "simulate(hw, trace) of the whole trace, min/median/max over repeats in one process",
            "dense_equivalent_macs_per_wall_s": "sum over sites of T*K*O (dense MACs) / median wall_s",
            "peak_rss_mb": "ru_maxrss of the case's own subprocess (imports + trace + simulation)",
            "rss_before_simulate_mb": "high-water RSS after imports and opening the trace, before simulating",
            "all_configs_total_wall_s": "sum over configs of the median wall_s of separate runs (one process each)",
            "all_configs_one_pass_wall_s": "median wall_s of simulate_many(all configs, trace) in one process: "
            "each input read once, masks shared by configs with the same selection (what accelsim compare runs)",
            "llama2-7b_batch8_decode_attention4k": "Server(hw, Scenario(batch=8, context_tokens=4096)).run(): one "
            "decode step of 8 sequences (linear sites + attention over the 4096-token KV cache) on a synthetic 7B "
            "decode trace of 8 sequences; simulated_cycles is the step's cycles, dense_macs includes attention",
            "llama2-7b_prefill512": "the synthetic 7B trace as accelsim trace writes it: its inputs (>= 256 KiB "
            "each) are stored, not deflated (docs/trace-format.md, Compression)",
        },
        "targets": TARGETS,
        "groups": {},
    }
    for name, trace, cfgs in groups(smoke, prefill512_configs, log):
        rep = prefill512_repeat if name == "llama2-7b_prefill512" else (1 if smoke else repeat)
        cases = []
        serving = SERVING.get(name)
        for cfg in cfgs:
            c = run_case(cfg, trace, rep, serving)
            cases.append(c)
            log(
                f"{name:28s} {c['config']:13s} {c['wall_s']['median']:8.3f} s  "
                f"{c['dense_equivalent_macs_per_wall_s'] / 1e9:8.2f} G dense MACs/s  "
                f"{c['simulated_cycles']:>14,} cycles  peak {c['peak_rss_mb']:7.0f} MB "
                f"(before simulate {c['rss_before_simulate_mb']:.0f} MB)"
            )
        grp: dict[str, Any] = {
            "trace": _rel(trace),
            "cases": cases,
            "all_configs_total_wall_s": sum(c["wall_s"]["median"] for c in cases),
        }
        if len(cfgs) > 1:  # every config in one process and one pass over the trace (what accelsim compare does)
            one = run_case(list(cfgs), trace, rep, serving)
            one_cycles = sum(c["simulated_cycles"] for c in cases)
            if one["simulated_cycles"] != one_cycles:
                raise RuntimeError(f"{name}: one-pass cycles {one['simulated_cycles']} != separate runs {one_cycles}")
            grp["all_configs_one_pass"] = one
            grp["all_configs_one_pass_wall_s"] = one["wall_s"]["median"]
            if name in READER_THREAD_CASES:  # the same pass with every input read in the simulating thread
                off = run_case(list(cfgs), trace, rep, serving, reader_thread=False)
                if off["simulated_cycles"] != one["simulated_cycles"]:
                    raise RuntimeError(f"{name}: cycles without the reader thread differ from with it")
                grp["reader_thread"] = {
                    "one_pass_wall_s_on": one["wall_s"]["median"],
                    "one_pass_wall_s_off": off["wall_s"]["median"],
                    "one_pass_cpu_s_on": one["cpu_s"]["median"],
                    "one_pass_cpu_s_off": off["cpu_s"]["median"],
                    "wall_speedup": off["wall_s"]["median"] / one["wall_s"]["median"],
                }
                on_s, off_s = one["wall_s"]["median"], off["wall_s"]["median"]
                log(f"{name:28s} {'reader thread':13s} on {on_s:.3f} s, off {off_s:.3f} s")
            log(
                f"{name:28s} {'all, one pass':13s} {one['wall_s']['median']:8.3f} s  (sum of separate runs "
                f"{grp['all_configs_total_wall_s']:.3f} s)"
            )
        if name in TARGETS:
            grp["target"] = TARGETS[name]
            grp["target_met"] = _target_met(TARGETS[name], cases, grp.get("all_configs_one_pass_wall_s"))
        record["groups"][name] = grp
        if checkpoint is not None:
            checkpoint(record)
    record["status"] = "complete"
    env["load_average_at_end_1_5_15_min"] = [round(v, 2) for v in os.getloadavg()]
    return record


def _target_met(target: dict[str, float], cases: list[dict[str, Any]], one_pass_s: float | None = None) -> dict:
    met = {}
    if "all_configs_total_wall_s" in target:
        met["all_configs_total_wall_s"] = sum(c["wall_s"]["median"] for c in cases) < target["all_configs_total_wall_s"]
        if one_pass_s is not None:
            met["all_configs_one_pass_wall_s"] = one_pass_s < target["all_configs_total_wall_s"]
    if "per_config_wall_s" in target:
        met["per_config_wall_s"] = all(c["wall_s"]["median"] < target["per_config_wall_s"] for c in cases)
    if "peak_rss_mb" in target:
        met["peak_rss_mb"] = all(c["peak_rss_mb"] < target["peak_rss_mb"] for c in cases)
    return met


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model-repeat", type=int, default=3, help="repeats per whole-model case (default 3)")
    ap.add_argument("--prefill512-repeat", type=int, default=3, help="repeats of the 7B 512-token prefill")
    ap.add_argument(
        "--prefill512-configs",
        default="dense,nm8_16",
        help="configs for the 7B 512-token prefill (comma list or 'all'; about a minute each)",
    )


def run_from_args(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """:func:`run` with the options of :func:`add_args`, checkpointed into and written to ``out``."""
    rec = run(
        smoke=args.smoke,
        repeat=args.model_repeat,
        prefill512_repeat=args.prefill512_repeat,
        prefill512_configs=args.prefill512_configs.split(","),
        checkpoint=lambda r: update_results(out, {"whole_model": r}),
    )
    update_results(out, {"whole_model": rec})
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, "one tiny synthetic trace on two configs")
    ap.add_argument("--case", action="store_true", help=argparse.SUPPRESS)  # subprocess side of one case
    ap.add_argument("--hw", type=Path, action="append", help=argparse.SUPPRESS)
    ap.add_argument("--trace", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--serving-batch", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serving-context", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-reader-thread", action="store_true", help=argparse.SUPPRESS)
    add_args(ap)
    args = ap.parse_args()
    if args.case and args.serving_batch is not None:
        rec = serving_case_here(args.hw, args.trace, args.repeat, args.serving_batch, args.serving_context)
        print("CASE_RESULT " + json.dumps(rec), flush=True)
        return 0
    if args.case:
        rec = run_case_here(args.hw, args.trace, args.repeat, reader_thread=not args.no_reader_thread)
        print("CASE_RESULT " + json.dumps(rec), flush=True)
        return 0
    out = out_path(args)
    run_from_args(args, out)
    print(f"wrote whole_model to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
