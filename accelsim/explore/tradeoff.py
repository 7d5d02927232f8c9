"""Trade-off of cost against accuracy: energy per token and area overhead versus perplexity increase.

Inputs are (1) runs: the action counts of each hardware config on each trace (simulated here, or read back
from a ``runs.json`` this module wrote), and (2) the accuracy results file of ``accelsim eval``
(``docs/accuracy_smollm2-135m.json``: schema ``accelsim-accuracy/1``, records with ``pattern`` like ``"2:4"``,
``"8:16"``, ``"unstructured0.5"``, ``"dense"``, ``criterion``, ``mitigation``, ``ppl`` and ``delta_ppl``).

The join is on the pattern label (``HwConfig.sparsity.label`` equals the accuracy record's ``pattern``), the
selection criterion (the hardware's score is ``|x|``: ``magnitude``) and the mitigation (the config's
``sparsity.mitigation`` with ``_`` -> ``-``). A config without a matching accuracy record stays in the table
with an empty perplexity and is not ranked.

Energy is recomputed from the counts for every cost-table scaling, so the sensitivity analysis needs no new
simulation: ``accelsim.explore.sensitivity`` scales chosen entries (e.g. ``energy.dram_bit`` x0.5 and x2)
and reports which scalings change the Pareto front.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from accelsim.config.hw import HwConfig, load_hw
from accelsim.config.yaml_io import format_validation_error
from accelsim.cost.model import action_prices, area_from_hardware, energy_from_prices, hardware
from accelsim.cost.table import CostError, CostTable, default_table
from accelsim.safeio import finite_or_null
from accelsim.sim.actions import ACTIONS

__all__ = [
    "ACCURACY_SCHEMA",
    "Run",
    "cost_frame",
    "join_accuracy",
    "load_accuracy",
    "load_runs",
    "pareto_front",
    "save_runs",
    "simulate_runs",
    "tradeoff",
]

ACCURACY_SCHEMA = "accelsim-accuracy/1"
RUNS_SCHEMA = "accelsim-runs/1"


@dataclass
class Run:
    """The action counts of one config on one trace (all that the cost model needs)."""

    hw: HwConfig
    hw_path: str
    trace: str
    phase: str
    tokens: int
    synthetic: bool
    cycles: int
    dense_macs: int
    counts: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> str:
        return self.hw.name

    @property
    def pattern(self) -> str:
        return self.hw.sparsity.label


def simulate_runs(
    hw_paths: Sequence[str | Path],
    traces: Sequence[str | Path],
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Run]:
    """Simulate every config on every trace (sites in trace order, as ``accelsim run``) and keep the counts."""
    from accelsim.sim.run import simulate
    from accelsim.trace.format import Trace

    configs = [(str(p), load_hw(p)) for p in hw_paths]
    runs = []
    for tr in traces:
        for path, hw in configs:
            if progress is not None:
                progress(f"simulating {hw.name} on {Path(tr).name}")
            with Trace(tr) as t:
                res = simulate(hw, t)
            runs.append(
                Run(
                    hw=hw,
                    hw_path=path,
                    trace=str(tr),
                    phase=res.phase,
                    tokens=int(res.meta["trace_tokens"]),
                    synthetic=bool(res.synthetic),
                    cycles=int(res.totals["cycles"]),
                    dense_macs=int(res.totals["dense_macs"]),
                    counts={a: int(res.totals[f"{a}_count"]) for a in ACTIONS},
                )
            )
    return runs


def save_runs(path: str | Path, runs: Iterable[Run]) -> Path:
    """Write runs (config, trace, counts) as JSON, to re-run trade-offs without simulating."""
    recs = [
        {
            "config": r.config,
            "hw_config": r.hw_path,
            "hw": r.hw.model_dump(mode="json"),
            "trace": r.trace,
            "phase": r.phase,
            "tokens": r.tokens,
            "synthetic_trace": r.synthetic,
            "cycles": r.cycles,
            "dense_macs": r.dense_macs,
            "action_counts": r.counts,
        }
        for r in runs
    ]
    p = Path(path)
    body = json.dumps(finite_or_null({"schema": RUNS_SCHEMA, "runs": recs}), indent=1, sort_keys=True, allow_nan=False)
    p.write_text(body + "\n")
    return p


def load_runs(path: str | Path) -> list[Run]:
    """Read runs written by :func:`save_runs` (or any list of records with the same keys).

    Raises:
        CostError: not such a file, or a record lacks a key or an action count (named).
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CostError(f"{p}: cannot read runs JSON ({exc})") from None
    recs = raw.get("runs") if isinstance(raw, dict) else raw
    if not isinstance(recs, list) or not recs:
        raise CostError(f"{p}: expected {{'schema': '{RUNS_SCHEMA}', 'runs': [...]}} with at least one run")
    need = ("config", "hw", "trace", "phase", "tokens", "cycles", "dense_macs", "action_counts")
    runs = []
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise CostError(f"{p}: runs[{i}]: expected an object with keys {', '.join(need)}, got {type(r).__name__}")
        missing = [k for k in need if k not in r]
        if missing:
            raise CostError(f"{p}: runs[{i}]: missing key(s) {', '.join(missing)}")
        if not isinstance(r["action_counts"], dict):
            raise CostError(f"{p}: runs[{i}].action_counts: expected an object of counts per action")
        gone = sorted(set(ACTIONS) - set(r["action_counts"]))
        if gone:
            more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
            raise CostError(f"{p}: runs[{i}].action_counts: missing action(s) {', '.join(gone[:5])}{more}")
        try:
            hw = HwConfig.model_validate(r["hw"])
        except ValidationError as exc:
            raise CostError(format_validation_error(f"{p}: runs[{i}].hw", exc)) from None
        runs.append(
            Run(
                hw=hw,
                hw_path=str(r.get("hw_config", hw.name)),
                trace=str(r["trace"]),
                phase=str(r["phase"]),
                tokens=int(r["tokens"]),
                synthetic=bool(r.get("synthetic_trace", False)),
                cycles=int(r["cycles"]),
                dense_macs=int(r["dense_macs"]),
                counts={k: int(v) for k, v in r["action_counts"].items()},
            )
        )
    return runs


# --- accuracy -------------------------------------------------------------------------------------------------


def load_accuracy(path: str | Path) -> pd.DataFrame:
    """Accuracy records as a frame: ``pattern, criterion, mitigation, ppl, dense_ppl, delta_ppl, model, key``.

    Accepts ``{"schema": "accelsim-accuracy/1", "records": {key: record}}`` (or ``records`` as a list).

    Raises:
        CostError: unreadable file, wrong schema, or a record without ``pattern`` / ``ppl``.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CostError(f"{p}: cannot read accuracy JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != ACCURACY_SCHEMA:
        got = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise CostError(f"{p}: schema: must be '{ACCURACY_SCHEMA}', got {got!r}")
    recs = raw.get("records")
    if isinstance(recs, dict):
        recs = list(recs.values())
    if not isinstance(recs, list):
        raise CostError(f"{p}: records: must be a mapping or a list of records")
    rows = []
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise CostError(f"{p}: records[{i}]: expected an object with 'pattern' and 'ppl', got {type(r).__name__}")
        for k in ("pattern", "ppl"):
            if k not in r:
                raise CostError(f"{p}: records[{i}]: missing '{k}'")
        dense_ppl = r.get("dense_ppl")
        delta = r.get("delta_ppl", (r["ppl"] - dense_ppl) if dense_ppl is not None else None)
        if delta is None:
            raise CostError(f"{p}: records[{i}]: needs 'delta_ppl' or 'dense_ppl'")
        rows.append(
            {
                "model": r.get("model"),
                "pattern": str(r["pattern"]),
                "criterion": str(r.get("criterion", "magnitude")),
                "mitigation": str(r.get("mitigation", "none")),
                "ppl": float(r["ppl"]),
                "dense_ppl": float(dense_ppl) if dense_ppl is not None else float("nan"),
                "delta_ppl": float(delta),
                "key": r.get("key", f"{r.get('model')}|{r['pattern']}"),
            }
        )
    return pd.DataFrame(rows)


def check_criterion(accuracy: pd.DataFrame, criterion: str) -> None:
    """``criterion`` must be one the accuracy records hold (CostError naming the allowed ones otherwise)."""
    have = sorted(set(accuracy["criterion"])) if "criterion" in accuracy else []
    if criterion not in have:
        shown = criterion if len(criterion) <= 60 else criterion[:57] + "..."
        raise CostError(f"--criterion {shown!r}: allowed {', '.join(have) or '(no records)'} (the records' criteria)")


def _mitigation_label(hw_mitigation: str) -> str:
    return hw_mitigation.replace("_", "-")


def join_accuracy(
    costs: pd.DataFrame,
    accuracy: pd.DataFrame,
    *,
    criterion: str = "magnitude",
    mitigation: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Add ``ppl`` and ``delta_ppl`` to ``costs`` (one row per config and trace) from the accuracy records.

    ``dense`` matches the record with pattern ``dense`` whatever its criterion/mitigation. Other rows match
    pattern, ``criterion`` and the mitigation (``mitigation`` if given, else the config's own).

    Raises:
        CostError: two accuracy records match one config (ambiguous) or ``model`` matches no record.
    """
    acc = accuracy
    if model is not None:
        acc = acc[acc["model"] == model]
        if acc.empty:
            raise CostError(f"no accuracy records for model {model!r} (have: {sorted(accuracy['model'].unique())})")
    out = costs.copy()
    ppl, dppl, keys = [], [], []
    for _, row in out.iterrows():
        if row["pattern"] == "dense":
            hit = acc[acc["pattern"] == "dense"]
        else:
            mit = mitigation if mitigation is not None else _mitigation_label(row["mitigation"])
            hit = acc[(acc["pattern"] == row["pattern"]) & (acc["criterion"] == criterion) & (acc["mitigation"] == mit)]
        if len(hit) > 1 and hit["model"].nunique() > 1:
            raise CostError(
                f"accuracy records of several models match {row['config']} ({sorted(hit['model'].unique())}): "
                "choose one with model="
            )
        if len(hit) > 1 and row["pattern"] == "dense":
            hit = hit.iloc[:1]
        if len(hit) > 1:
            raise CostError(f"{len(hit)} accuracy records match {row['config']}: {list(hit['key'])}")
        if hit.empty:
            ppl.append(float("nan"))
            dppl.append(float("nan"))
            keys.append(None)
        else:
            ppl.append(float(hit["ppl"].iloc[0]))
            dppl.append(float(hit["delta_ppl"].iloc[0]))
            keys.append(hit["key"].iloc[0])
    out["ppl"] = ppl
    out["delta_ppl"] = dppl
    out["accuracy_key"] = keys
    return out


# --- costs ----------------------------------------------------------------------------------------------------


def cost_frame(
    runs: Sequence[Run],
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
) -> pd.DataFrame:
    """One row per run: energy per token, area, and both against the dense config of the same trace."""
    table = table or default_table()
    rows = []
    cache: dict[int, tuple[Any, dict[str, float]]] = {}
    for r in runs:
        key = id(r.hw)
        if key not in cache:
            h = hardware(r.hw, table=table, node_nm=node_nm)
            cache[key] = (action_prices(h), area_from_hardware(h))
        prices, area = cache[key]
        energy = energy_from_prices(prices, r.counts, where=r.config)
        e = sum(energy.values())
        rows.append(
            {
                "trace": Path(r.trace).stem,
                "phase": r.phase,
                "synthetic_trace": r.synthetic,
                "tokens": r.tokens,
                "config": r.config,
                "pattern": r.pattern,
                "mitigation": r.hw.sparsity.mitigation,
                "cycles": r.cycles,
                "energy_pj": e,
                "energy_pj_per_token": e / r.tokens if r.tokens else float("nan"),
                "energy_pj_per_dense_mac": e / r.dense_macs if r.dense_macs else float("nan"),
                "area_um2": sum(area.values()),
                **{f"energy_pj.{k}": v for k, v in energy.items()},
                **{f"area_um2.{k}": v for k, v in area.items()},
            }
        )
    df = pd.DataFrame(rows)
    dense = df[df["pattern"] == "dense"].drop_duplicates("trace").set_index("trace")
    if dense.empty:
        raise CostError("no dense config among the runs: the trade-off is against dense (add hw_configs/dense.yaml)")
    base_e = df["trace"].map(dense["energy_pj_per_token"])
    base_a = df["trace"].map(dense["area_um2"])
    base_c = df["trace"].map(dense["cycles"])
    df["energy_vs_dense"] = df["energy_pj_per_token"] / base_e
    df["area_overhead_fraction"] = df["area_um2"] / base_a - 1.0
    df["speedup_vs_dense"] = base_c / df["cycles"]
    return df


def pareto_front(df: pd.DataFrame, cost: str | Sequence[str], accuracy: str = "delta_ppl") -> pd.Series:
    """``True`` for rows that no other row dominates: at most as large in every ``cost`` column and in
    ``accuracy``, and smaller in one. All columns are minimised.

    Rows with a missing value in any of the columns are never on the front (``False``).
    """
    cols = [cost] if isinstance(cost, str) else list(cost)
    cols.append(accuracy)
    ok = df[cols].notna().all(axis=1)
    front = pd.Series(False, index=df.index)
    pts = df.loc[ok, cols].to_numpy(dtype=float)
    for pos, i in enumerate(df.index[ok]):
        p = pts[pos]
        dominated = ((pts <= p).all(axis=1) & (pts < p).any(axis=1)).any()
        front[i] = not bool(dominated)
    return front


AXES = {"energy": "energy_pj_per_token", "area": "area_overhead_fraction"}
"""The single-cost Pareto planes (cost column against ``delta_ppl``)."""
FRONTS = ("energy", "area", "all")
"""``energy``: energy per token vs delta_ppl, every config. ``area``: area overhead vs delta_ppl among the
sparse configs (the dense reference has zero overhead and zero loss, so it would dominate every sparse point
on this plane: it buys nothing there). ``all``: energy per token, area overhead and delta_ppl together,
every config."""


def tradeoff(
    runs: Sequence[Run],
    accuracy: pd.DataFrame,
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
    criterion: str = "magnitude",
    mitigation: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Costs joined with accuracy; per trace, ranks by energy per token and by area overhead, and the Pareto
    fronts of :data:`FRONTS` (columns ``front_energy``, ``front_area``, ``front_all``).

    ``label`` is the pattern, or ``pattern (config)`` when two configs of one trace share a pattern."""
    df = join_accuracy(
        cost_frame(runs, table=table, node_nm=node_nm),
        accuracy,
        criterion=criterion,
        mitigation=mitigation,
        model=model,
    )
    parts = []
    for _, g in df.groupby("trace", sort=False):
        g = g.copy()
        sparse = g["pattern"] != "dense"
        for axis, col in AXES.items():
            g[f"rank_{axis}"] = g[col].rank(method="min").astype(int)
        g["front_energy"] = pareto_front(g, AXES["energy"])
        g["front_area"] = pareto_front(g[sparse], AXES["area"]).reindex(g.index, fill_value=False)
        g["front_all"] = pareto_front(g, list(AXES.values()))
        dup = g["pattern"].duplicated(keep=False)
        g["label"] = g["pattern"].where(~dup, g["pattern"] + " (" + g["config"] + ")")
        parts.append(g.sort_values("label", key=lambda c: c.map(_pattern_order), kind="stable"))
    return pd.concat(parts).reset_index(drop=True)


def _fronts(df: pd.DataFrame) -> dict[tuple[str, str], frozenset[str]]:
    return {
        (trace, axis): frozenset(g.loc[g[f"front_{axis}"], "label"])
        for trace, g in df.groupby("trace")
        for axis in FRONTS
    }


def _pattern_order(label: str) -> tuple[int, float]:
    pattern = label.split(" ")[0]
    if pattern == "dense":
        return (0, 0.0)
    if ":" in pattern:
        return (1, float(pattern.split(":")[1]))
    return (2, 0.0)
