"""One command for the simulator-speed benchmarks of issue 14; writes ``benchmarks/results.json``.

1. ``side_by_side`` (``bench_scalesim.py``): the same dense GEMMs on accelsim's SCALE-Sim compatibility mode
   and on SCALE-Sim v3 (installed on first use into ``benchmarks/.scalesim-venv``), cycles checked equal, wall
   times, speedups against the 10,000x target.
2. ``whole_model`` (``bench_models.py``): whole traces on every shipped config, dense-equivalent MACs per
   wall-second and peak memory, against the issue's targets, and a 7B batch-8 decode step at 4k context (serving layer).
3. ``sweep_throughput`` (``bench_sweep.py``): design points per minute of ``accelsim.api.sweep``, locally and
   on a Dask ``LocalCluster`` (skipped, and said so, without ``dask.distributed``).
4. ``profile`` (``profile_sim.py``): cProfile of a 7B decode token and the SmolLM2 128-token prefill on
   ``nm8_16.yaml``, written to ``benchmarks/results/profile.txt``, and of the 7B 512-token prefill, written to
   ``benchmarks/results/profile_7b_prefill512.txt`` (not in ``--smoke``).

Only the first three top-level keys of ``results.json`` are written (read-modify-write: other benchmarks' keys stay).

  python benchmarks/run_all.py                 # everything, about 8-10 min on 2 cores (SCALE-Sim 10 s limit)
  python benchmarks/run_all.py --smoke         # tiny sizes in seconds; never installs; SCALE-Sim only if cached
  python benchmarks/run_all.py --only whole_model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import bench_models  # noqa: E402
import bench_scalesim  # noqa: E402
import bench_sweep  # noqa: E402
import profile_sim  # noqa: E402
from results_io import add_common_args, out_path, update_results  # noqa: E402

PARTS = ("side_by_side", "whole_model", "sweep_throughput", "profile")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, "tiny sizes, nothing installed, SCALE-Sim skipped unless already cached; asserts no times")
    ap.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    bench_scalesim.add_args(ap)
    bench_models.add_args(ap)
    args = ap.parse_args(argv)
    out = out_path(args)
    parts = args.only or list(PARTS)
    status = 0
    if "side_by_side" in parts and bench_scalesim.run_from_args(args, out)["all_cycles_equal"] is False:
        print("!!! side_by_side: cycle counts differ (see results)", file=sys.stderr)
        status = 1
    if "whole_model" in parts:
        bench_models.run_from_args(args, out)
    if "sweep_throughput" in parts:
        smoke_trace = bench_models.smoke_trace(print) if args.smoke else None
        update_results(out, {"sweep_throughput": bench_sweep.run(smoke=args.smoke, trace=smoke_trace)})
    if "profile" in parts and not args.smoke:
        print(f"wrote {profile_sim.run()}")
        print(f"wrote {profile_sim.run(out=profile_sim.OUT.with_name('profile_7b_prefill512.txt'), prefill512=True)}")
    print(f"wrote {', '.join(parts)} to {out}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
