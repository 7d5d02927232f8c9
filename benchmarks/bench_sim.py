"""Simulator speed: wall time of `simulate` on LLM-shaped traces, written to benchmarks/results/sim.json.

Cases: one Llama-2-7B decode token (32 layers x 7 sites, hidden 4096, intermediate 11008) and a SmolLM2-135M
prefill of 128 tokens, each on dense.yaml and nm8_16.yaml. The Llama trace is synthetic (sampled values with
Llama-2-7B's shapes; it says synthetic: true); SmolLM2 uses the committed real trace when present.
SCALE-Sim reference (shared/reference/scalesim-cycle-model.md, Table A, same machine type): one
1x4096->4096 decode GEMV takes 67-135 s and a whole Llama-7B decode token about 10 hours.

Run: python benchmarks/bench_sim.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelsim import __version__  # noqa: E402
from accelsim.config import load_hw  # noqa: E402
from accelsim.sim.run import simulate  # noqa: E402
from accelsim.trace.format import Site, Trace, TraceData, write_trace  # noqa: E402

SCALESIM_DECODE_GEMV_4096_S = (67.0, 135.0)  # Table A, 1x4096->4096, 32x32 / 128x128 arrays
SCALESIM_LLAMA7B_TOKEN_S = 10 * 3600.0  # section 7.2 estimate


def llama_decode_trace(path: Path, tokens: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    h, i = 4096, 11008
    shapes = [
        ("q", h, h, "attn"),
        ("k", h, h, "attn"),
        ("v", h, h, "attn"),
        ("o", h, h, "o"),
        ("gate", h, i, "mlp"),
        ("up", h, i, "mlp"),
        ("down", i, h, "down"),
    ]
    sites, inputs = [], {}
    for layer in range(32):
        for kind, k, o, inp in shapes:
            iid = f"L{layer}.{inp}"
            sites.append(Site(len(sites), f"model.layers.{layer}.{kind}", layer, kind, k, o, iid))
            if iid not in inputs:
                draw = rng.laplace if kind in ("o", "down") else rng.normal
                inputs[iid] = draw(size=(tokens, k)).astype(np.float16)
    meta = {
        "model": "synthetic llama2-7b shapes (benchmark)",
        "model_sha256": "",
        "phase": "decode",
        "text_source": "none",
        "text_sha256": "",
        "tool_version": __version__,
        "synthetic": True,
    }
    return write_trace(path, TraceData(meta, sites, inputs, np.arange(tokens)))


def time_case(hw_name: str, trace: Path, repeat: int) -> dict:
    hw = load_hw(ROOT / "hw_configs" / f"{hw_name}.yaml")
    walls = []
    for _ in range(repeat):
        with Trace(trace) as tr:
            t0 = time.perf_counter()
            res = simulate(hw, tr)
            walls.append(time.perf_counter() - t0)
    return {
        "config": hw_name,
        "wall_s_median": statistics.median(walls),
        "wall_s_all": walls,
        "simulated_cycles": res.totals["cycles"],
        "sites": res.totals["sites"],
        "simulated_cycles_per_s": res.totals["cycles"] / statistics.median(walls),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sim.json")
    args = ap.parse_args()
    results = {
        "accelsim_version": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        llama = llama_decode_trace(Path(tmp) / "llama7b_decode1.npz")
        for cfg in ("dense", "nm8_16"):
            case = time_case(cfg, llama, args.repeat)
            case["trace"] = "llama2-7b decode, 1 token (synthetic values)"
            case["speedup_vs_scalesim_token_estimate"] = SCALESIM_LLAMA7B_TOKEN_S / case["wall_s_median"]
            results["cases"].append(case)
            print(
                f"{case['trace']:45s} {cfg:8s} {case['wall_s_median']:.3f} s "
                f"({case['simulated_cycles']:,} cycles; "
                f"SCALE-Sim ~10 h -> {case['speedup_vs_scalesim_token_estimate']:,.0f}x)"
            )
    real = sorted((ROOT / "traces").glob("smollm2-135m_prefill*.npz"))
    if real:
        for cfg in ("dense", "nm8_16"):
            case = time_case(cfg, real[-1], args.repeat)
            case["trace"] = real[-1].name
            results["cases"].append(case)
            print(f"{case['trace']:45s} {cfg:8s} {case['wall_s_median']:.3f} s ({case['simulated_cycles']:,} cycles)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
