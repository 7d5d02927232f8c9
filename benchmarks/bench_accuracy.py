"""Accuracy-side speed: one sparse row of ``accelsim eval`` against a dense forward over the same windows, the
forward time of the sparsified SmolLM2-135M against the dense one, the mask kernels (compiled kernel vs the
numpy reference rule), and one learnable fit; written to benchmarks/results/accuracy.json, and the row ratios
to the ``accuracy`` key of benchmarks/results.json.

Eval row: ``Evaluator.run`` of a perplexity-only row (``gen_tokens=0``: sparsifier set-up, the sparsified
forwards, the statistics and the record) over ``--row-windows`` windows, divided by ``perplexity`` of the dense
model over the same windows, measured back to back in each round (median over rounds), for the patterns of
``EVAL_ROW_PATTERNS`` (N:M at m = 4..32, unstructured 50 %, TEAL 50 %). Target: <= 1.3.

Forward: one 512-token window of the evaluation text through the whole model (LM head included), repeated;
each configuration's median is divided by the dense median measured in the same interleaved rounds (the
machine is shared, so rounds alternate configurations instead of timing them one after the other).

Run: python benchmarks/bench_accuracy.py [--repeat 5] [--no-fit]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from accelsim import __version__, nm  # noqa: E402
from accelsim.accuracy import masks  # noqa: E402
from accelsim.accuracy.calibrate import fit_learnable, make_windows, tokenize  # noqa: E402
from accelsim.accuracy.sparsify import Sparsifier  # noqa: E402
from accelsim.accuracy.spec import RunSpec, parse_pattern  # noqa: E402
from accelsim.accuracy.teal import collect_histograms, uniform_thresholds  # noqa: E402
from accelsim.hf import load_model, pydoc_text  # noqa: E402

CONFIGS = [
    ("2:4", "magnitude", "none"),
    ("8:16", "magnitude", "none"),
    ("16:32", "magnitude", "none"),
    ("unstructured0.5", "magnitude", "none"),
    ("teal0.5", "magnitude", "none"),
    ("8:16", "magnitude", "var"),
    ("8:16", "magnitude", "median-shift"),
    ("8:16", "amber", "none"),
    ("8:16", "clact", "none"),
    ("8:16", "weight-aware", "none"),
]


EVAL_ROW_PATTERNS = ("2:4", "4:8", "8:16", "16:32", "unstructured0.5", "teal0.5")


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_masks(repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for k in (576, 1536):
        x = rng.standard_normal((512, k)).astype(np.float32)
        xt = torch.from_numpy(x)
        for label, n, m in (("2:4", 2, 4), ("8:16", 8, 16), ("16:32", 16, 32), ("unstructured0.5", k // 2, k)):
            s, st = np.abs(x), xt.abs()
            t_torch = min(_time(lambda st=st, n=n, m=m: masks.nm_mask(st, n, m), repeat * 4))
            t_np = min(_time(lambda s=s, n=n, m=m: nm.nm_mask(s, n, m), repeat))
            w = torch.randn(k, 576)
            t_mm = min(_time(lambda xt=xt, w=w: xt @ w, repeat * 4))
            rows.append(
                {
                    "tokens": 512,
                    "K": k,
                    "pattern": label,
                    "torch_ms": 1e3 * t_torch,
                    "numpy_ms": 1e3 * t_np,
                    "matmul_512xKx576_ms": 1e3 * t_mm,
                }
            )
            print(
                f"mask {label:>16} K={k:5d}: torch {1e3 * t_torch:7.2f} ms, numpy {1e3 * t_np:7.2f} ms, "
                f"one matmul {1e3 * t_mm:6.2f} ms",
                flush=True,
            )
    return rows


def bench_eval_rows(lm, windows: int, repeat: int) -> list[dict]:
    """Ratio of one perplexity-only ``accelsim eval`` row to the dense forward over the same windows."""
    from accelsim.accuracy.evaluate import EvalSettings, Evaluator
    from accelsim.accuracy.metrics import perplexity

    ev = Evaluator(EvalSettings(windows=windows, gen_tokens=0), loaded_model=lm)
    st = ev.state()
    ev.dense()
    rows = []
    for pat in EVAL_ROW_PATTERNS:
        spec = RunSpec(parse_pattern(pat))
        ev.run(spec)  # warm-up: loads the cached compiled kernels (and, for TEAL, calibrates the thresholds once)
        dense_s, row_s = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            perplexity(st.model, st.eval_windows)
            dense_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            ev.run(spec)
            row_s.append(time.perf_counter() - t)
        ratios = [a / b for a, b in zip(row_s, dense_s, strict=True)]
        rows.append(
            {
                "pattern": pat,
                "windows": windows,
                "row_s": row_s,
                "dense_forward_s": dense_s,
                "ratio_to_dense": statistics.median(ratios),
                "target_ratio": 1.3,
            }
        )
        print(f"eval row {pat:>16} over {windows} windows: {statistics.median(ratios):.2f}x dense", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-fit", action="store_true", help="skip the learnable-fit timing (about 2 minutes)")
    ap.add_argument("--row-windows", type=int, default=2, help="windows of the eval-row timing")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/accuracy.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    lm = load_model("smollm2-135m")
    load_s = time.perf_counter() - t0
    model = lm.model
    ids = tokenize(lm.tokenizer, pydoc_text()[0])
    ev, ca = make_windows(ids, 1, 512, 8)
    window = ev[:1]

    sparsifiers = {}
    for pat, crit, mit in CONFIGS:
        sp = Sparsifier(model, RunSpec(parse_pattern(pat), crit, mit), stats=False)
        sparsifiers[(pat, crit, mit)] = sp
    teal = sparsifiers[("teal0.5", "magnitude", "none")]
    hists = collect_histograms(model, teal.sites, ca[:2])
    for name, t in uniform_thresholds(teal.sites, hists, 0.5).items():
        next(s for s in teal.sites if s.name == name).threshold = t

    def dense_fwd():
        with torch.no_grad():
            model(input_ids=window, use_cache=False)

    def sparse_fwd(sp):
        def f():
            with sp, torch.no_grad():
                model(input_ids=window, use_cache=False)

        return f

    dense_fwd()  # warm-up
    times: dict[str, list[float]] = {"dense": []}
    for key in sparsifiers:
        times["|".join(key)] = []
    for r in range(args.repeat):  # interleaved rounds
        times["dense"] += _time(dense_fwd, 1)
        for key, sp in sparsifiers.items():
            times["|".join(key)] += _time(sparse_fwd(sp), 1)
        print(f"round {r + 1}/{args.repeat}: dense {times['dense'][-1]:.2f} s", flush=True)
    dense_med = statistics.median(times["dense"])
    fwd_rows = [{"config": "dense", "median_s": dense_med, "all_s": times["dense"], "ratio_to_dense": 1.0}]
    for key in sparsifiers:
        k = "|".join(key)
        med = statistics.median(times[k])
        # per-round ratios (each against the dense forward of the same round) are robust to load changes
        ratios = [a / b for a, b in zip(times[k], times["dense"], strict=True)]
        fwd_rows.append({"config": k, "median_s": med, "all_s": times[k], "ratio_to_dense": statistics.median(ratios)})
        print(f"forward {k:>32}: {med:.2f} s, {statistics.median(ratios):.2f}x dense", flush=True)

    eval_rows = bench_eval_rows(lm, args.row_windows, args.repeat)
    mask_rows = bench_masks(args.repeat)

    fit = None
    if not args.no_fit:
        sp = Sparsifier(model, RunSpec(parse_pattern("8:16"), "magnitude", "learnable"), stats=False)
        with sp:
            rep = fit_learnable(model, sp, ca[:8], epochs=2, lr=2e-3)
        fit = {"pattern": "8:16", "windows": 8, "epochs": 2, "steps": rep["steps"], "seconds": rep["seconds"]}
        print(f"learnable fit 8:16 (8 windows x 2 epochs, 30 layers): {rep['seconds']:.0f} s", flush=True)

    out = {
        "accelsim_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "load_average_at_end": list(os.getloadavg()),
        "model": lm.name,
        "model_sha256": lm.sha256,
        "model_load_s": load_s,
        "forward_window_tokens": 512,
        "eval_row": eval_rows,
        "forward": fwd_rows,
        "masks": mask_rows,
        "learnable_fit": fit,
        "note": "eval_row = one perplexity-only accelsim eval row over row-windows windows / dense perplexity "
        "over the same windows, back to back per round. forward = one 512-token window through SmolLM2-135M "
        "incl. LM head; ratio_to_dense = median over interleaved rounds of (sparse time / dense time of the "
        "same round). The machine is shared: absolute times vary by 2x between runs, ratios much less.",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results_io import RESULTS, update_results

    summary = {
        "source": "benchmarks/results/accuracy.json",
        "eval_row_ratio_to_dense": {r["pattern"]: round(r["ratio_to_dense"], 3) for r in eval_rows},
        "eval_row_windows": args.row_windows,
        "target_ratio": 1.3,
        "torch_threads": args.threads,
        "load_average_at_end": [round(v, 2) for v in out["load_average_at_end"]],
    }
    update_results(RESULTS, {"accuracy": summary})
    print(f"accuracy summary written to {RESULTS}")


if __name__ == "__main__":
    main()
