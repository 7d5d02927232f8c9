"""Where simulate() spends its time: cProfile of a 7B decode token and the SmolLM2 128-token prefill on nm8_16.

Writes ``benchmarks/results/profile.txt``: per case the wall time without and with the profiler, the top
functions by own time and by cumulative time, and the time per site step split into the tile-work part
(``work.build_site_work``), the event part (``engine.simulate_site``) and the mask (``work.site_mask``).

The traces come from the benchmark cache (``benchmarks/.cache/traces``, made by ``bench_models.py``: the 7B one
with ``accelsim trace --synthetic llama2-7b``, the 128-token one with ``accelsim trace --tokens 128``).

Run: python benchmarks/profile_sim.py [--hw hw_configs/nm8_16.yaml] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import bench_models  # noqa: E402
from results_io import machine_info  # noqa: E402

import accelsim.sim.run as sim_run  # noqa: E402
from accelsim.config import load_hw  # noqa: E402
from accelsim.sim.run import simulate  # noqa: E402
from accelsim.trace.format import Trace  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "profile.txt"
PARTS = {
    "build_site_work (tile work, work.py)": ("work.py", "build_site_work"),
    "simulate_site_fast (compiled kernel, fast_engine.py)": ("fast_engine.py", "simulate_site_fast"),
    "simulate_site (simpy events, engine.py)": ("engine.py", "simulate_site"),
    "site_mask (N:M mask, work.py)": ("work.py", "site_mask"),
    "trace reading (format.py site_input)": ("format.py", "site_input"),
}


def cases(prefill512: bool = False) -> list[tuple[str, Path]]:
    """The profiled traces; ``prefill512``: only the 7B 512-token prefill instead (about 20 s, profiler included)."""
    bench_models.CACHE.mkdir(parents=True, exist_ok=True)
    syn = ["--synthetic", "llama2-7b", "--stats-from", str(bench_models.STATS_FROM)]
    if prefill512:
        big = bench_models._make(
            bench_models.CACHE / "llama2-7b_prefill512.npz", [*syn, "--tokens", "512", "--phase", "prefill"], print
        )
        if big is None:
            return []
        label = "llama2-7b prefill, 512 tokens (synthetic values; inputs stored, not deflated: docs/trace-format.md)"
        return [(label, big)]
    dec = bench_models._make(
        bench_models.CACHE / "llama2-7b_decode1.npz", [*syn, "--tokens", "1", "--phase", "decode"], print
    )
    pf = bench_models._make(
        bench_models.CACHE / "smollm2-135m_prefill128.npz", ["--tokens", "128", "--phase", "prefill"], print
    )
    out = []
    if dec is not None:
        out.append(("llama2-7b decode, 1 token (synthetic values)", dec))
    if pf is not None:
        out.append(("smollm2-135m prefill, 128 tokens (real trace)", pf))
    return out


def profile_case(label: str, hw_path: Path, trace_path: Path, top: int) -> str:
    hw = load_hw(hw_path)
    with Trace(trace_path) as tr:
        t0 = time.perf_counter()
        res = simulate(hw, tr)
        plain_s = time.perf_counter() - t0
    steps = sum(r["steps"] for r in res.sites)
    prof = cProfile.Profile()
    sim_run.PREFETCH = False  # cProfile sees one thread: read and mask in it, so that they are in the profile
    with Trace(trace_path) as tr:
        t0 = time.perf_counter()
        prof.enable()
        simulate(hw, tr)
        prof.disable()
        prof_s = time.perf_counter() - t0
    sim_run.PREFETCH = True
    st = pstats.Stats(prof)
    total = st.total_tt
    lines = [
        f"=== {label} on {hw_path.name} ===",
        f"trace: {trace_path.relative_to(ROOT)}; sites: {len(res.sites)}; site steps: {steps}; "
        f"simulated cycles: {res.totals['cycles']:,}",
        f"wall without profiler: {plain_s:.3f} s ({1e3 * plain_s / steps:.2f} ms per site step; engine fast, "
        f"input prefetch on); with cProfile: {prof_s:.3f} s (prefetch off: everything in the profiled thread)",
        "",
        "share of profiled time (cumulative, includes callees):",
    ]
    for name, (fname, func) in PARTS.items():
        cum = sum(v[3] for k, v in st.stats.items() if k[0].endswith(fname) and k[2] == func)
        lines.append(f"  {name:45s} {cum:8.3f} s  {100 * cum / total:5.1f} %  {1e3 * cum / steps:7.3f} ms per step")
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        body = buf.getvalue()
        body = body[body.index("   ncalls") :] if "   ncalls" in body else body
        lines += ["", f"top {top} functions by {title}:", body.rstrip()]
    return "\n".join(lines) + "\n"


def run(
    hw_path: Path = ROOT / "hw_configs" / "nm8_16.yaml", top: int = 25, out: Path = OUT, prefill512: bool = False
) -> Path:
    """Profile every case and write the text report to ``out``."""
    env = machine_info()
    head = (
        "cProfile of accelsim.sim.run.simulate (python benchmarks/profile_sim.py)\n"
        f"machine: {env['cpu_model']}, {env['cpu_count']} CPUs, load average {env['load_average_1_5_15_min']}; "
        f"Python {env['python']}, numpy {env['numpy']}, accelsim {env['accelsim']}\n\n"
    )
    parts = [profile_case(label, hw_path, path, top) for label, path in cases(prefill512)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + "\n\n".join(parts))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", type=Path, default=ROOT / "hw_configs" / "nm8_16.yaml")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--prefill512", action="store_true", help="profile only the 7B 512-token prefill (slow)")
    args = ap.parse_args()
    print(f"wrote {run(args.hw, args.top, args.out, args.prefill512)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
