"""Sweep throughput: design points per minute with ``accelsim.api.sweep``, locally and on a Dask ``LocalCluster``.

A point is one ``evaluate(config, trace)`` (simulation, cost, summary record). The sweep is every shipped
config on the committed SmolLM2-135M prefill trace, run three ways:

* ``local``: ``executor=None``, the points one after another in this process;
* ``dask_local_cluster``: a ``dask.distributed.LocalCluster`` with one single-threaded worker process per CPU;
  the cluster's start-up (``startup_s``) is timed apart from the sweep, and the sweep is run twice on it so the
  second (``wall_s``) is not charged the workers' first imports (``first_wall_s``).

Both must give the same rows (cycles of every point compared). ``--smoke`` uses two configs on a tiny synthetic
trace; Dask is skipped (and the record says so) when ``dask.distributed`` is not installed.

Run: python benchmarks/run_all.py --only sweep
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from results_io import machine_info  # noqa: E402

SWEEP_TRACE = ROOT / "traces" / "smollm2-135m_prefill32.npz"


def _timed_sweep(configs: list[Path], trace: Path, executor: Any) -> tuple[float, list[int]]:
    from accelsim.api import sweep

    t0 = time.perf_counter()
    df = sweep([str(c) for c in configs], [str(trace)], executor=executor)
    wall = time.perf_counter() - t0
    return wall, [int(v) for v in df["cycles"]]


class _Impure:
    """A Dask client whose ``submit`` never reuses an earlier identical task's result (``pure=False``), so that
    the second, timed sweep really runs instead of returning the first sweep's cached futures."""

    def __init__(self, client: Any):
        self.client = client

    def submit(self, fn, *args, **kwargs):
        return self.client.submit(fn, *args, pure=False, **kwargs)


def _rate(n_points: int, wall_s: float) -> float:
    return 60.0 * n_points / wall_s


def run(*, smoke: bool = False, trace: Path | None = None, log=print) -> dict[str, Any]:
    """The ``sweep_throughput`` record."""
    cfgs = sorted((ROOT / "hw_configs").glob("*.yaml"))
    if smoke:
        cfgs = [c for c in cfgs if c.stem in ("dense", "nm8_16")]
    trace = trace or SWEEP_TRACE
    n = len(cfgs)
    local_s, local_cycles = _timed_sweep(cfgs, trace, None)
    log(f"sweep local: {n} points in {local_s:.2f} s = {_rate(n, local_s):.1f} points per minute")
    rec: dict[str, Any] = {
        "what": "accelsim.api.sweep over every shipped config on one trace: design points per minute",
        "smoke": smoke,
        "environment": machine_info(),
        "trace": str(trace.relative_to(ROOT)) if trace.is_relative_to(ROOT) else str(trace),
        "configs": [c.stem for c in cfgs],
        "points": n,
        "local": {"wall_s": local_s, "points_per_minute": _rate(n, local_s)},
    }
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        rec["dask_local_cluster"] = {"status": "skipped: dask.distributed is not installed (pip install '.[sweep]')"}
        log(rec["dask_local_cluster"]["status"])
        return rec
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            startup_s = time.perf_counter() - t0
            first_s, first_cycles = _timed_sweep(cfgs, trace, _Impure(client))
            dask_s, dask_cycles = _timed_sweep(cfgs, trace, _Impure(client))
    same = first_cycles == local_cycles and dask_cycles == local_cycles
    rec["dask_local_cluster"] = {
        "status": "ok",
        "workers": workers,
        "threads_per_worker": 1,
        "startup_s": startup_s,
        "first_wall_s": first_s,
        "wall_s": dask_s,
        "points_per_minute": _rate(n, dask_s),
        "cycles_equal_to_local": same,
    }
    log(
        f"sweep on a Dask LocalCluster ({workers} workers): {n} points in {dask_s:.2f} s = "
        f"{_rate(n, dask_s):.1f} points per minute (start-up {startup_s:.1f} s, first sweep {first_s:.2f} s)"
    )
    if not same:
        raise AssertionError("sweep on Dask gave different cycles from the local sweep")
    return rec
