"""Accuracy of N:M activation sparsity on real models (torch; never imported by the simulator).

Modules: ``spec`` (patterns, criteria, mitigations; pure Python), ``masks`` (the N:M rule in torch, same as
``accelsim.nm``), ``criteria``, ``mitigations``, ``sparsify`` (the model wrapper), ``calibrate`` (windows,
static shift, learnable fit), ``teal`` (histogram thresholds, greedy allocation), ``metrics`` (perplexity,
generation agreement), ``records`` (the results file), ``evaluate`` (the ``Evaluator`` of ``accelsim eval``),
``report`` (Markdown tables; pure Python).

Importing this package imports nothing heavy; the names below load their module on first use::

    from accelsim.accuracy import Evaluator, EvalSettings, RunSpec, parse_pattern
    rec = Evaluator(EvalSettings(windows=4)).run(RunSpec(parse_pattern("8:16"), "magnitude", "var"))
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RunSpec": "spec",
    "Pattern": "spec",
    "SpecError": "spec",
    "parse_pattern": "spec",
    "expand": "spec",
    "nm_mask": "masks",
    "topk_mask": "masks",
    "Sparsifier": "sparsify",
    "fit_learnable": "calibrate",
    "static_shifts": "calibrate",
    "make_windows": "calibrate",
    "collect_histograms": "teal",
    "greedy_allocation": "teal",
    "Evaluator": "evaluate",
    "EvalSettings": "evaluate",
    "perplexity": "metrics",
    "load_records": "records",
    "write_records": "records",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"accelsim.accuracy.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'accelsim.accuracy' has no attribute {name!r}")
