"""Run results -> tidy tables (pandas), summary dicts and files (CSV + JSON), written atomically."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from accelsim import __version__
from accelsim.config import HwConfig
from accelsim.safeio import atomic_output_dir, check_out_dir, dump_json
from accelsim.sim.actions import ACTIONS
from accelsim.sim.engine import BREAKDOWN
from accelsim.sim.run import DRAM_KINDS, RunResult


def sites_frame(result: RunResult, hw: HwConfig | None = None) -> pd.DataFrame:
    """One row per site (decode: summed over steps), every numeric column with its unit in the name. With
    ``hw`` (the config that ran) and the cost model, per-site ``energy_pj`` and ``energy_pj.<component>``
    columns follow; they sum to the run's energy."""
    df = pd.DataFrame(result.sites)
    drop = [c for c in ("union_rows", "real_rows", "kept_values") if c in df.columns]
    df = df.drop(columns=drop)
    if hw is not None:
        from accelsim.cost import energy_by_site

        energy = pd.DataFrame(energy_by_site(hw, result.sites), index=df.index)
        df = pd.concat([df, energy], axis=1)
    return df


def summary(
    result: RunResult,
    *,
    baseline: RunResult | None = None,
    energy_pj: Mapping[str, float] | None = None,
    area_um2: Mapping[str, float] | None = None,
    area_overhead_fraction: float | None = None,
) -> dict[str, Any]:
    """The run's totals as a flat, JSON-ready dict (units in every key)."""
    t = result.totals
    out: dict[str, Any] = {
        "config": result.hw_name,
        "pattern": result.pattern,
        "phase": result.phase,
        "synthetic_trace": result.synthetic,
        "sites": t["sites"],
        "tokens": result.meta.get("trace_tokens"),
        "cycles": t["cycles"],
        "time_us": t["cycles"] / result.clock_hz * 1e6,
        "clock_hz": result.clock_hz,
        "peak_macs_per_cycle": result.peak_macs_per_cycle,
        "utilization": t["utilization"],
        "dense_equivalent_utilization": t["dense_equivalent_utilization"],
        "dense_macs": t["dense_macs"],
        "mac_active_count": t["mac_active_count"],
    }
    for p in BREAKDOWN:
        out[f"{p}_cycles"] = t[f"{p}_cycles"]
    for k in DRAM_KINDS:
        out[f"dram_{k}_bytes"] = t[f"dram_{k}_bytes"]
    out["dram_total_bytes"] = t["dram_total_bytes"]
    out["dram_busy_cycles"] = t["dram_busy_cycles"]
    out["compressor_busy_cycles"] = t["compressor_busy_cycles"]
    out["pe_busy_cycles"] = t["pe_busy_cycles"]
    out["union_density"] = t["union_density"]
    out["union_density_by_kind"] = dict(sorted(result.union_density_by_kind.items()))
    out["action_counts"] = {a: int(t[f"{a}_count"]) for a in ACTIONS}
    if baseline is not None:
        out["baseline_config"] = baseline.hw_name
        out["baseline_cycles"] = baseline.totals["cycles"]
        out["speedup_vs_dense"] = baseline.totals["cycles"] / t["cycles"] if t["cycles"] else float("nan")
        bw = baseline.totals["dram_weight_bytes"]
        out["weight_bytes_vs_dense"] = t["dram_weight_bytes"] / bw if bw else float("nan")
    if energy_pj is not None:
        total = float(sum(energy_pj.values()))
        out["energy_pj"] = total
        out["energy_pj_by_component"] = {k: float(v) for k, v in energy_pj.items()}
        out["energy_pj_per_dense_mac"] = total / t["dense_macs"] if t["dense_macs"] else float("nan")
        toks = result.meta.get("trace_tokens") or 0
        out["energy_pj_per_token"] = total / toks if toks else float("nan")
    if area_um2 is not None:
        out["area_um2"] = float(sum(area_um2.values()))
        out["area_um2_by_component"] = {k: float(v) for k, v in area_um2.items()}
    if area_overhead_fraction is not None:
        out["sparsity_area_overhead_fraction"] = area_overhead_fraction
    return out


def write_atomic(out_dir: str | Path, writers: Mapping[str, Callable[[Path], Any]]) -> list[Path]:
    """Write several files into ``out_dir``, all or none: ``out_dir`` and the file names are checked first
    (``accelsim.safeio.check_out_dir``), every writer writes into a hidden temporary sibling, and the whole
    directory is renamed into place at the end (``accelsim.safeio.atomic_output_dir``)."""
    out = Path(out_dir)
    check_out_dir(out, writers)
    with atomic_output_dir(out) as tmp:
        for name, writer in writers.items():
            writer(tmp / name)
    return [out / name for name in writers]


def csv_writer(frame: pd.DataFrame) -> Callable[[Path], Any]:
    return lambda p: frame.to_csv(p, index=False, float_format="%.9g", lineterminator="\n")


def json_writer(obj: Any) -> Callable[[Path], Any]:
    """Canonical JSON (sorted keys); NaN and Infinity ("no value", e.g. a missing perplexity) become null."""
    return lambda p: dump_json(obj, p, nan_as_null=True)


def write_outputs(out_dir: str | Path, frame: pd.DataFrame, record: dict[str, Any]) -> list[Path]:
    """``sites.csv`` and ``summary.json`` of one run, atomically."""
    return write_atomic(out_dir, {"sites.csv": csv_writer(frame), "summary.json": json_writer(record)})


def run_record(
    summary_dict: dict[str, Any], *, hw_path: str, hw_sha256: str, trace_path: str, trace_sha256: str, trace_meta: dict
) -> dict[str, Any]:
    """The JSON summary with provenance: accelsim version and the hashes of the config and trace."""
    rec = dict(summary_dict)
    rec["provenance"] = {
        "accelsim_version": __version__,
        "hw_config": hw_path,
        "hw_config_sha256": hw_sha256,
        "trace": trace_path,
        "trace_sha256": trace_sha256,
        "model": trace_meta.get("model"),
        "model_sha256": trace_meta.get("model_sha256"),
        "synthetic": trace_meta.get("synthetic"),
    }
    return rec
