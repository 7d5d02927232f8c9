"""Markdown tables of an accuracy results file (pure Python: no torch).

    python -m accelsim.accuracy.report docs/accuracy_smollm2-135m.json

prints the tables of ``docs/accuracy.md``: perplexity by pattern x mitigation (magnitude criterion), the
agreement with the dense model for the same rows, the criteria, TEAL, and the timings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["tables", "main"]

PATTERNS = ["2:4", "4:8", "8:16", "16:32", "unstructured0.5"]
MITIGATIONS = ["none", "var", "median-shift", "static-shift", "learnable", "var-learnable"]
CRITERIA = ["magnitude", "amber", "weight-aware", "clact"]


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    return "\n".join([_row(header), _row(sep), *(_row(r) for r in rows)])


def _get(recs: dict[str, dict], model: str, pattern: str, criterion: str, mitigation: str) -> dict | None:
    return recs.get(f"{model}|{pattern}|{criterion}|{mitigation}")


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def tables(records: dict[str, dict], model: str | None = None) -> str:
    """All tables for one model (the first model in the file when not given) as Markdown."""
    if not records:
        return "(no records)"
    model = model or next(iter(records.values()))["model"]
    recs = {k: r for k, r in records.items() if r["model"] == model}
    dense = _get(recs, model, "dense", "none", "none")
    any_rec = next(iter(recs.values()))
    out = []
    dppl = dense["ppl"] if dense else any_rec["dense_ppl"]
    out.append(
        f"Model `{model}` (sha256 `{any_rec['model_sha256'][:12]}…`), {any_rec['windows']} windows x "
        f"{any_rec['seq_len']} tokens of `{any_rec['text']}` (sha256 `{any_rec['text_sha256'][:12]}…`), "
        f"{any_rec['calib_windows']} calibration windows. **Dense perplexity {dppl:.3f}.**"
    )

    # 1. perplexity, magnitude criterion, pattern x mitigation
    rows = []
    for p in PATTERNS:
        cells = [p]
        for mi in MITIGATIONS:
            r = _get(recs, model, p, "magnitude", mi)
            cells.append(_f(r["ppl"] if r else None))
        rows.append(cells)
    out.append(
        "**Perplexity, magnitude criterion** (rows: pattern, all 50 % dense; columns: mitigation):\n\n"
        + _table(["pattern", *MITIGATIONS], rows)
    )

    # 2. agreement for the same rows
    rows = []
    for p in PATTERNS:
        cells = [p]
        for mi in MITIGATIONS:
            r = _get(recs, model, p, "magnitude", mi)
            cells.append(
                "–"
                if r is None
                else f"{r['top1_agreement']:.3f} / {r['forced_agreement']:.2f} / {r['token_agreement']:.2f}"
            )
        rows.append(cells)
    out.append(
        "**Agreement with the dense model, magnitude criterion**: top-1 next-token agreement on the evaluation "
        "windows / teacher-forced agreement along the dense greedy continuations / free-running greedy token "
        "agreement:\n\n" + _table(["pattern", *MITIGATIONS], rows)
    )

    # 3. criteria without mitigation
    rows = []
    for c in CRITERIA:
        cells = [c]
        for p in ("2:4", "8:16"):
            r = _get(recs, model, p, c, "none")
            cells += [
                _f(r["ppl"] if r else None),
                _f(r["top1_agreement"] if r else None, "{:.3f}"),
                _f(r["token_agreement"] if r else None),
            ]
        rows.append(cells)
    out.append(
        "**Selection criteria, no mitigation** (ppl / top-1 agreement / greedy token agreement):\n\n"
        + _table(["criterion", "2:4 ppl", "2:4 top-1", "2:4 tokens", "8:16 ppl", "8:16 top-1", "8:16 tokens"], rows)
    )

    # 4. TEAL
    rows = []
    for p in ("teal0.5", "teal0.5-greedy"):
        r = _get(recs, model, p, "magnitude", "none")
        if r is None:
            continue
        rd = r["realized_density"]
        alloc = r.get("teal_allocation")
        alloc_s = " ".join(f"{k} {v:.2f}" for k, v in alloc.items()) if alloc else "all 0.50"
        rows.append(
            [
                p,
                _f(r["ppl"]),
                f"{r['top1_agreement']:.3f}",
                _f(r["token_agreement"]),
                f"{1 - rd['mean']:.3f}",
                f"{1 - rd['param_weighted']:.3f}",
                alloc_s,
            ]
        )
    for p in ("unstructured0.5", "16:32", "8:16"):
        r = _get(recs, model, p, "magnitude", "none")
        if r is not None:
            rows.append(
                [
                    p + " (reference)",
                    _f(r["ppl"]),
                    f"{r['top1_agreement']:.3f}",
                    _f(r["token_agreement"]),
                    "0.500",
                    "0.500",
                    "every input exactly 50 %",
                ]
            )
    if rows:
        out.append(
            "**TEAL at 50 % target sparsity** (realized sparsity on the evaluation windows: mean over the "
            "sparsified inputs, and weighted by weight count; greedy: mean sparsity per projection kind):\n\n"
            + _table(
                ["pattern", "ppl", "top-1", "tokens", "sparsity (mean)", "sparsity (param-weighted)", "allocation"],
                rows,
                "lrrrrrl",
            )
        )

    # 5. timings
    rows = []
    for k in sorted(recs, key=lambda k: (recs[k]["pattern"], recs[k]["criterion"], recs[k]["mitigation"])):
        r = recs[k]
        t = r["timings_s"]
        rows.append(
            [
                r["pattern"],
                r["criterion"],
                r["mitigation"],
                _f(t.get("calibrate"), "{:.0f}"),
                _f(t.get("fit"), "{:.0f}"),
                _f(t.get("ppl"), "{:.0f}"),
                _f(t.get("generate"), "{:.0f}"),
                _f(t.get("total"), "{:.0f}"),
            ]
        )
    out.append(
        "**Time of each step** (seconds, 2 shared cores; calibration is counted once, on the first row "
        "that needs it):\n\n"
        + _table(
            ["pattern", "criterion", "mitigation", "calibrate", "fit", "ppl", "generate", "total"], rows, "lllrrrrr"
        )
    )
    return "\n\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m accelsim.accuracy.report RESULTS.json", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text())
    print(tables(data["records"]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
