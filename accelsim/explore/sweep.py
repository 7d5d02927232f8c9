"""Run a sweep: every design point on every trace, on local processes or a Dask cluster, resumable.

Each simulation (a point's config, or the dense config of its machine, on one trace) is a *run* keyed by
``sha256(config digest, trace sha256, accelsim version)``. A run's result is appended to
``<out>/journal.jsonl`` (one JSON line, flushed to disk) the moment it finishes; a sweep started again with
the same output directory reads the journal first and runs only what is missing, so a killed sweep resumes
without recomputing. The table is always assembled from the journal, in point order, so that the same points
give the same table byte for byte whichever scheduler ran them and however often the sweep was interrupted.

Workers receive a config (a small dict) and the trace's *path*; they open the trace themselves (a local
file, or shared storage on a cluster) and check its sha256, so a trace is never pickled into a task.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from accelsim import __version__
from accelsim.config.hw import HwConfig
from accelsim.explore.grid import Point, SweepError

JOURNAL = "journal.jsonl"
SCHEDULERS = ("processes", "local", "tcp://HOST:PORT")


@dataclass(frozen=True)
class TraceRef:
    """A trace by path and content hash (what a worker needs to open and check it)."""

    path: str
    sha256: str
    name: str
    phase: str
    tokens: int
    shapes: tuple[tuple[int, int, int], ...]


def trace_ref(path: str | Path) -> TraceRef:
    """Open and check a trace once in the parent: its hash, phase and the (T, K, O) of every site."""
    from accelsim.trace.format import Trace, file_sha256

    with Trace(path) as tr:
        decode = tr.phase == "decode"
        t = 1 if decode else tr.n_tokens
        shapes = tuple((t, s.K, s.O) for s in tr.sites)
        phase, tokens = tr.phase, tr.n_tokens
    return TraceRef(str(path), file_sha256(path), Path(path).stem, phase, tokens, shapes)


def run_key(hw: HwConfig, trace_sha256: str) -> str:
    blob = json.dumps({"hw": hw.digest(), "trace_sha256": trace_sha256, "accelsim": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def run_task(hw: dict[str, Any], trace_path: str, trace_sha256: str) -> dict[str, Any]:
    """Simulate one config on one trace and price it; runs in a worker. Returns the run's scalars."""
    return run_tasks([("", hw)], trace_path, trace_sha256)[0][1]


def run_tasks(
    runs: Sequence[tuple[str, dict[str, Any]]], trace_path: str, trace_sha256: str
) -> list[tuple[str, dict[str, Any]]]:
    """:func:`run_task` of several ``(key, config)`` on one trace in one pass over it (``simulate_many``: each
    input read once, masks shared by configs that select alike). Returns ``(key, scalars)`` in order."""
    from accelsim.sim.run import simulate_many
    from accelsim.trace.format import Trace, file_sha256

    got = file_sha256(trace_path)
    if got != trace_sha256:
        raise SweepError(f"{trace_path}: sha256 {got[:12]} on this worker, expected {trace_sha256[:12]}")
    cfgs = [HwConfig.model_validate(hw) for _, hw in runs]
    with Trace(trace_path) as tr:
        results = simulate_many(cfgs, tr)
    return [(key, _scalars(cfg, res)) for (key, _), cfg, res in zip(runs, cfgs, results, strict=True)]


def _scalars(cfg: HwConfig, res) -> dict[str, Any]:
    from accelsim.cost import area_breakdown, energy_breakdown
    from accelsim.sim.actions import ACTIONS
    from accelsim.sim.engine import BREAKDOWN
    from accelsim.sim.run import DRAM_KINDS

    t = res.totals
    out: dict[str, Any] = {"cycles": int(t["cycles"]), "time_us": t["cycles"] / res.clock_hz * 1e6}
    out.update({f"{p}_cycles": int(t[f"{p}_cycles"]) for p in BREAKDOWN})
    out["utilization"] = float(t["utilization"])
    out["dense_equivalent_utilization"] = float(t["dense_equivalent_utilization"])
    out["union_density"] = float(t["union_density"])
    out.update({f"dram_{k}_bytes": int(t[f"dram_{k}_bytes"]) for k in DRAM_KINDS})
    out["dram_total_bytes"] = int(t["dram_total_bytes"])
    out["dense_macs"] = int(t["dense_macs"])
    counts = {a: int(t[f"{a}_count"]) for a in ACTIONS}
    energy = energy_breakdown(cfg, counts)
    area = area_breakdown(cfg)
    out["energy_pj"] = float(sum(energy.values()))
    out["area_um2"] = float(sum(area.values()))
    out.update({f"energy_pj.{k}": float(v) for k, v in energy.items()})
    out.update({f"area_um2.{k}": float(v) for k, v in area.items()})
    return out


def read_journal(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Finished runs by key; a torn last line (a sweep killed while writing) is ignored."""
    path = Path(out_dir) / JOURNAL
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "key" in rec and "result" in rec:
            done[rec["key"]] = rec["result"]
    return done


def _append(fh, key: str, hw: HwConfig, trace: TraceRef, result: Mapping[str, Any]) -> None:
    rec = {"key": key, "config": hw.name, "trace": trace.name, "trace_sha256": trace.sha256, "result": result}
    fh.write(json.dumps(rec) + "\n")  # the result keeps run_task's column order
    fh.flush()
    os.fsync(fh.fileno())


def plan(points: Sequence[Point], traces: Sequence[TraceRef]) -> dict[str, tuple[HwConfig, TraceRef]]:
    """The distinct runs of a sweep (points and their dense baselines, on every trace), in a fixed order."""
    runs: dict[str, tuple[HwConfig, TraceRef]] = {}
    for tr in traces:
        for p in points:
            for cfg in (p.hw, p.baseline):
                if cfg is not None:
                    runs.setdefault(run_key(cfg, tr.sha256), (cfg, tr))
    return runs


#: Runs simulated in one pass over a trace. A larger chunk shares more trace reads and masks; a smaller one loses
#: less on a kill (the journal gets a chunk's runs when the chunk ends). 8 keeps most of the one-pass saving.
MAX_CHUNK = 8


def chunk_tasks(tasks: Sequence[tuple[str, dict, str, str]], workers: int) -> list[tuple[list, str, str]]:
    """Runs grouped by trace into ``(runs, path, sha)`` chunks, each simulated in one pass over its trace:
    per trace, at most ``workers`` chunks of about equal size and of at most ``MAX_CHUNK`` runs (consecutive
    runs, so configs that differ only in other keys than the sparsity share their masks). A sweep killed
    mid-chunk redoes that chunk's runs (at most ``MAX_CHUNK``) on resume."""
    by_trace: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for key, hw, path, sha in tasks:
        by_trace.setdefault((path, sha), []).append((key, hw))
    chunks = []
    for (path, sha), runs in by_trace.items():
        n = max(1, min(workers, len(runs)), -(-len(runs) // MAX_CHUNK))
        size = -(-len(runs) // n)
        chunks += [(runs[i : i + size], path, sha) for i in range(0, len(runs), size)]
    return chunks


class Scheduler:
    """Where runs execute: ``processes`` (a local process pool), ``local`` (a Dask LocalCluster started
    here) or ``tcp://HOST:PORT`` (an existing Dask scheduler). Connects on construction, so a scheduler that
    does not answer fails before any point runs."""

    def __init__(self, spec: str, workers: int | None = None, timeout_s: float = 5.0):
        self.spec, self.client, self.cluster, self.pool = spec, None, None, None
        self.workers = workers or os.cpu_count() or 1
        if spec == "processes":
            return
        if spec != "local" and not spec.startswith("tcp://"):
            raise SweepError(f"--scheduler {spec}: must be one of {', '.join(SCHEDULERS)}")
        try:
            import distributed
        except ImportError:
            raise SweepError(f"--scheduler {spec}: needs dask.distributed (pip install 'accelsim[sweep]')") from None
        if spec == "local":
            import logging

            self.cluster = distributed.LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: no clash with a cluster already on 8787
                silence_logs=logging.ERROR,
            )
            self.client = distributed.Client(self.cluster)
        else:
            try:
                self.client = distributed.Client(spec, timeout=f"{timeout_s}s")
            except (OSError, TimeoutError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SweepError(
                    f"--scheduler {spec}: no Dask scheduler answered within {timeout_s:g} s ({msg})"
                ) from None
            self.workers = len(self.client.scheduler_info().get("workers", {}))

    def run(self, tasks: Sequence[tuple[str, dict, str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, result)`` as runs finish, in completion order."""
        if not tasks:
            return
        chunks = chunk_tasks(tasks, self.workers)
        if self.client is not None:
            import distributed

            futures = [
                self.client.submit(run_tasks, runs, path, sha, key=f"accelsim-runs-{runs[0][0]}", pure=False)
                for runs, path, sha in chunks
            ]
            for fut in distributed.as_completed(futures):
                yield from fut.result()
            return
        if self.workers == 1:
            for runs, path, sha in chunks:
                yield from run_tasks(runs, path, sha)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a parent that holds threads (progress bar)
        self.pool = ProcessPoolExecutor(max_workers=min(self.workers, len(chunks)), mp_context=ctx)
        futs = [self.pool.submit(run_tasks, runs, path, sha) for runs, path, sha in chunks]
        for fut in as_completed(futs):
            yield from fut.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_sweep(
    points: Sequence[Point],
    traces: Sequence[TraceRef],
    out_dir: str | Path,
    scheduler: Scheduler,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Run what the journal of ``out_dir`` lacks; return the table and how many runs were already done."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(points, traces)
    done = read_journal(out)
    todo = [(k, cfg.model_dump(mode="json"), tr.path, tr.sha256) for k, (cfg, tr) in runs.items() if k not in done]
    already = len(runs) - len(todo)
    if progress is not None:
        progress(already, len(runs))
    path = out / JOURNAL
    torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a", encoding="utf-8") as fh:
        if torn:  # a sweep killed in the middle of a line: start the next record on a line of its own
            fh.write("\n")
        for n, (key, result) in enumerate(scheduler.run(todo), start=already + 1):
            cfg, tr = runs[key]
            _append(fh, key, cfg, tr, result)
            if progress is not None:
                progress(n, len(runs))
    return table(points, traces, read_journal(out)), already


def table(points: Sequence[Point], traces: Sequence[TraceRef], done: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (trace, point), traces in the given order and points in sweep order. Columns: the trace,
    the point's index and swept keys, its config, then the run's scalars and the comparison with the dense
    config of the same machine (``speedup_vs_dense``, ``energy_vs_dense``, ``area_overhead_percent``)."""
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    rows = []
    for tr in traces:
        for p in points:
            res = done[run_key(p.hw, tr.sha256)]
            row: dict[str, Any] = {"trace": tr.name, "phase": tr.phase, "tokens": tr.tokens, "point_index": p.index}
            row.update({k: p.values.get(k) for k in keys})
            row.update(
                {
                    "config": p.hw.name,
                    "pattern": p.hw.sparsity.label,
                    "mitigation": p.hw.sparsity.mitigation,
                    "peak_macs_per_cycle": p.hw.peak_macs_per_cycle,
                    "dram_bytes_per_cycle": p.hw.dram_bytes_per_cycle,
                }
            )
            head = ["cycles", "time_us"]
            row.update({c: res[c] for c in head})
            row["energy_pj_per_token"] = res["energy_pj"] / tr.tokens
            if p.baseline is not None:
                b = done[run_key(p.baseline, tr.sha256)]
                row["baseline_cycles"] = b["cycles"]
                row["speedup_vs_dense"] = b["cycles"] / res["cycles"]
                row["energy_vs_dense"] = res["energy_pj"] / b["energy_pj"]
                row["area_overhead_percent"] = (res["area_um2"] / b["area_um2"] - 1.0) * 100.0
            row.update({c: v for c, v in res.items() if c not in head})
            rows.append(row)
    return pd.DataFrame(rows)
