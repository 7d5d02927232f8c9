"""cProfile of one perplexity-only ``accelsim eval`` row per pattern against the dense perplexity over the same
2 windows, in one process, 1 thread; the time split into the linears, the selection kernels, attention and
everything else. Written to benchmarks/results/profile_eval_row.txt.

Run: python benchmarks/profile_eval_row.py [--patterns 2:4,16:32] [--detail 16:32]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from accelsim.accuracy.evaluate import EvalSettings, Evaluator  # noqa: E402
from accelsim.accuracy.metrics import perplexity  # noqa: E402
from accelsim.accuracy.spec import RunSpec, parse_pattern  # noqa: E402
from accelsim.hf import load_model  # noqa: E402


def split_s(stats: pstats.Stats) -> dict[str, float]:
    out = {"total_s": 0.0, "linear_s": 0.0, "selection_s": 0.0, "attention_s": 0.0}
    for (fn, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        out["total_s"] += tt
        if name == "<built-in method torch._C._nn.linear>":
            out["linear_s"] += tt
        elif "nm_fast" in fn or "nm_kernel" in fn:
            out["selection_s"] += tt
        elif "scaled_dot_product" in name:
            out["attention_s"] += tt
    out["other_s"] = out["total_s"] - out["linear_s"] - out["selection_s"] - out["attention_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patterns", default="2:4,4:8,8:16,16:32,unstructured0.5,teal0.5")
    ap.add_argument("--detail", default="16:32", help="pattern whose top functions are listed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/profile_eval_row.txt"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    ev = Evaluator(EvalSettings(windows=2, gen_tokens=0), loaded_model=load_model("smollm2-135m"))
    st = ev.state()
    ev.dense()
    lines = [f"load average at start {[round(v, 2) for v in os.getloadavg()]}, torch threads 1, 2 windows x 512"]
    detail = ""
    for pat in ["dense", *args.patterns.split(",")]:
        if pat != "dense":
            ev.run(RunSpec(parse_pattern(pat)))  # warm-up (cached kernels, TEAL calibration)
        prof = cProfile.Profile()
        prof.enable()
        if pat == "dense":
            perplexity(st.model, st.eval_windows)
        else:
            ev.run(RunSpec(parse_pattern(pat)))
        prof.disable()
        parts = split_s(pstats.Stats(prof))
        lines.append(f"{pat:>16}: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
        print(lines[-1], flush=True)
        if pat == args.detail:
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(8)
            detail = buf.getvalue()
    lines.append(f"load average at end {[round(v, 2) for v in os.getloadavg()]}")
    Path(args.out).write_text("\n".join(lines) + f"\n\ntop functions of {args.detail}:\n{detail}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
