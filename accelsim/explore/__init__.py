"""Design-space exploration above the cost model: runs of configs on traces, the join with accuracy results,
Pareto fronts, the sensitivity of the fronts to the cost table, and sweeps over any config key.

    from accelsim.explore import simulate_runs, load_accuracy, tradeoff, sensitivity
"""

from accelsim.explore.sensitivity import DEFAULT_SCALINGS, breakeven, parse_scalings, sensitivity
from accelsim.explore.tradeoff import (
    ACCURACY_SCHEMA,
    AXES,
    FRONTS,
    RUNS_SCHEMA,
    Run,
    check_criterion,
    cost_frame,
    join_accuracy,
    load_accuracy,
    load_runs,
    pareto_front,
    save_runs,
    simulate_runs,
    tradeoff,
)

__all__ = [
    "ACCURACY_SCHEMA",
    "AXES",
    "DEFAULT_SCALINGS",
    "FRONTS",
    "RUNS_SCHEMA",
    "Run",
    "breakeven",
    "check_criterion",
    "cost_frame",
    "join_accuracy",
    "load_accuracy",
    "load_runs",
    "pareto_front",
    "parse_scalings",
    "save_runs",
    "sensitivity",
    "simulate_runs",
    "tradeoff",
]
