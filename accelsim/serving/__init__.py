"""Serving scenarios: batch, context, chunked prefill and datatypes in; TTFT, TPOT, tokens/s and energy per token
out, with the breakdown by site kind (q k v o gate up down, attention, lm_head). See ``docs/serving.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelsim.serving.scenario import Scenario, ScenarioError, check_datatypes, check_traces, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "serve", "check_datatypes", "check_traces"]


def dense_variant(hw: Any) -> Any:
    """``hw`` with ``sparsity: dense`` (the baseline machine when no dense config is given)."""
    from accelsim.config.hw import HwConfig

    data = hw.model_dump()
    data["sparsity"] = {"kind": "dense"}
    return HwConfig.model_validate(data)


def serve(
    hw: Any,
    scenario: Scenario,
    trace: str | Path,
    *,
    prefill_trace: str | Path | None = None,
    baseline: Any | None = None,
    where: str = "<scenario>",
    hw_where: str | None = None,
) -> dict[str, Any]:
    """The serving record of ``scenario`` on ``hw`` (an ``HwConfig``) with the decode ``trace`` (and the prefill
    trace for a request). ``baseline``: a dense ``HwConfig`` for the speedups. Checks come before any simulation;
    errors are one-line :class:`ScenarioError` / ``TraceError``."""
    from contextlib import ExitStack

    from accelsim.serving.metrics import Server, with_baseline
    from accelsim.trace.format import Trace

    check_datatypes(scenario, hw, where, hw_where or f"config '{hw.name}'")
    with ExitStack() as stack:
        dec = stack.enter_context(Trace(trace))
        pre = stack.enter_context(Trace(prefill_trace)) if prefill_trace is not None else None
        check_traces(scenario, where, dec, pre)
        rec = Server(hw, scenario, dec, pre).run()
        if baseline is not None:
            check_datatypes(scenario, baseline, where, f"config '{baseline.name}'")
            rec = with_baseline(rec, Server(baseline, scenario, dec, pre).run())
    rec["trace"] = str(trace)
    rec["prefill_trace"] = None if prefill_trace is None else str(prefill_trace)
    rec["synthetic_trace"] = bool(dec.meta.get("synthetic"))
    return rec
