"""What each modelling assumption does to the answer: ``docs/assumptions.md`` from one command.

Every assumption of the hardware model that a reviewer could dispute is one :class:`Assumption`: the shipped
default ("on") and a credible alternative ("off"), applied to every config of the comparison *and* to the dense
baseline, so that ratios stay fair. For each phase (one real trace each) the report gives, per assumption and
per pattern, the speedup, the energy ratio against dense and the area overhead with the assumption on and off,
and names the pattern pairs whose order flips: a conclusion that survives every row is robust.

It also sweeps the operand-port width (the narrowest port at which each pattern stops stalling on it) and
lists the depth of each selection network against the clock period.

Simulations run once per distinct (machine, trace): cost-only assumptions reuse them. ``jobs > 1`` runs them in
a process pool; the output does not depend on ``jobs``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.config.hw import HwConfig, load_hw

DEFAULT_CONFIGS = (
    "nm2_4", "nm4_8", "nm8_16", "nm16_32", "nm4_16", "nm8_32", "nm12_16",
    "unstructured", "unstructured_flex", "dense_topk_gather",
)  # fmt: skip
"""Shipped configs compared (``hw_configs/<name>.yaml``), against ``dense.yaml``."""

PORT_WIDTHS = (768, 1024, 1280, 1536, 2048, 2304, 3072)
"""Operand-port widths swept (bytes/cycle): 768 is a dense instruction's need, 2048 the shipped port."""

Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class Assumption:
    label: str
    on: str  # the shipped default and its source
    off: str  # the alternative
    edit: Edit  # config dict -> edited copy, or None where the assumption does not apply


def _set(path: str, value: Any, only: Callable[[dict[str, Any]], bool] = lambda d: True) -> Edit:
    def edit(d: dict[str, Any]) -> dict[str, Any] | None:
        if not only(d):
            return None
        d = copy.deepcopy(d)
        node = d
        *parents, leaf = path.split(".")
        for key in parents:
            if node.get(key) is None:
                return None
            node = node[key]
        if leaf not in node or node[leaf] == value:
            return None
        node[leaf] = value
        return d

    return edit


def _cost(key: str, value: Any, only: Callable[[dict[str, Any]], bool] = lambda d: True) -> Edit:
    def edit(d: dict[str, Any]) -> dict[str, Any] | None:
        if not only(d):
            return None
        d = copy.deepcopy(d)
        cost = dict(d.get("cost") or {})
        section, _, leaf = key.partition(".")
        if leaf:
            cost[section] = {**(cost.get(section) or {}), leaf: value}
        elif cost.get(section) == value:
            return None
        else:
            cost[section] = value
        d["cost"] = cost
        return d

    return edit


def _is_nm(d: dict[str, Any]) -> bool:
    return d["sparsity"]["kind"] == "nm"


def _other_metadata_format(d: dict[str, Any]) -> dict[str, Any] | None:
    """Index <-> bitmask metadata; the buffer is resized in proportion so that the tiling does not change."""
    from accelsim.sim.tiling import metadata_bytes_per_token

    if not _is_nm(d):
        return None
    e = copy.deepcopy(d)
    sp = e["sparsity"]
    sp["metadata_format"] = "bitmask" if sp["metadata_format"] == "index" else "index"
    old = metadata_bytes_per_token(HwConfig.model_validate(d), 1536)
    new = metadata_bytes_per_token(HwConfig.model_validate(e), 1536)
    buf = sp["metadata_buffer"]
    buf["capacity_bytes"] = math.ceil(buf["capacity_bytes"] * new / old / 1024) * 1024
    return e


def _metadata_for_16_32(d: dict[str, Any]) -> dict[str, Any] | None:
    cap = d["sparsity"].get("metadata_buffer", {}) or {}
    if d["sparsity"]["kind"] == "dense" or cap.get("capacity_bytes", 0) >= 122880:
        return None
    return _set("sparsity.metadata_buffer.capacity_bytes", 122880)(d)


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "accumulator registers",
        "partial sums stay in PE registers across an output tile's reduction (`array.mma.accumulator_registers`)",
        "every partial sum is a read-modify-write of the output SRAM",
        _set("array.mma.accumulator_registers", False),
    ),
    Assumption(
        "operand port 2048 B/cycle",
        "2048 B/cycle operand-buffer port (`array.mma.operand_buffer_read_bytes_per_cycle`), priced as a crossbar",
        "768 B/cycle, what a dense instruction needs",
        _set("array.mma.operand_buffer_read_bytes_per_cycle", 768.0),
    ),
    Assumption(
        "metadata buffer per pattern",
        "each buffer holds two 128-token tiles of its own pattern's metadata",
        "every buffer sized for 16:32 (120 KiB), as before issue 10",
        _metadata_for_16_32,
    ),
    Assumption(
        "metadata format",
        "index (ceil(log2 m) bits per kept value; bitmask for 12:16)",
        "the other format (m bits per group), buffer resized in proportion",
        _other_metadata_format,
    ),
    Assumption(
        "compressor network",
        "pruned odd-even merge top-n (Batcher), same tie rule (`cost.compressor_network`)",
        "full odd-even merge sort",
        _cost("compressor_network", "odd_even_merge_sort", _is_nm),
    ),
    Assumption(
        "gathered-row activations",
        "0.25 cycle per run of gathered rows, HBM2 tRRD_S (`dram.gather_segment_overhead_cycles`)",
        "gathered rows stream at full bandwidth",
        _set("dram.gather_segment_overhead_cycles", 0.0),
    ),
    Assumption(
        "leakage",
        "static power x simulated time (`cost.params.leakage_scale` = 1)",
        "no static energy",
        _cost("params.leakage_scale", {"value": 0.0, "unit": "1", "source": "docs/assumptions.md: leakage off"}),
    ),
    Assumption(
        "decoder latency",
        "shipped `sparsity.decoder.latency_cycles` (1 for an m:1 mux, 21 for the Benes network)",
        "0 cycles",
        _set("sparsity.decoder.latency_cycles", 0),
    ),
)


def _sim_key(d: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in d.items() if k not in ("cost", "name")}, sort_keys=True)


def _simulate(args: tuple[str, str]) -> dict[str, float]:
    from accelsim.sim.run import simulate
    from accelsim.trace.format import Trace

    cfg_json, trace = args
    with Trace(trace) as tr:
        totals = simulate(HwConfig.model_validate_json(cfg_json), tr).totals
    return {k: v for k, v in totals.items() if isinstance(v, int | float)}


@dataclass
class Point:
    cycles: float
    energy_pj: float
    overhead: float | None
    operand_stall_cycles: float


class Runner:
    """Simulate each distinct (machine, trace) once; price every config from its simulation."""

    def __init__(self, traces: Sequence[str], jobs: int = 1, progress: Callable[[int, int], None] | None = None):
        self.traces, self.jobs, self.progress = list(traces), jobs, progress
        self._totals: dict[tuple[str, str], dict[str, float]] = {}

    def run(self, configs: Sequence[dict[str, Any]]) -> None:
        todo: dict[tuple[str, str], str] = {}
        for d in configs:
            for t in self.traces:
                key = (_sim_key(d), t)
                if key not in self._totals:
                    todo[key] = HwConfig.model_validate(d).model_dump_json()
        keys = sorted(todo)
        args = [(todo[k], k[1]) for k in keys]
        if self.jobs > 1 and len(args) > 1:
            with ProcessPoolExecutor(self.jobs) as pool:
                results = list(self._tick(pool.map(_simulate, args), len(args)))
        else:
            results = list(self._tick(map(_simulate, args), len(args)))
        self._totals.update(zip(keys, results, strict=True))

    def _tick(self, it, total: int):
        for i, r in enumerate(it, 1):
            if self.progress:
                self.progress(i, total)
            yield r

    def point(self, d: dict[str, Any], dense: dict[str, Any], trace: str) -> Point:
        from accelsim.cost.model import energy_breakdown, sparsity_area_overhead
        from accelsim.sim.actions import ACTIONS

        totals = self._totals[(_sim_key(d), trace)]
        hw = HwConfig.model_validate(d)
        energy = energy_breakdown(hw, {a: int(totals[f"{a}_count"]) for a in ACTIONS})
        overhead = sparsity_area_overhead(hw, HwConfig.model_validate(dense))
        return Point(totals["cycles"], sum(energy.values()), overhead, totals["operand_stall_cycles"])


def _flips(names: Sequence[str], on: Sequence[float | None], off: Sequence[float | None], tol: float) -> list[str]:
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a0, b0, a1, b1 = on[i], on[j], off[i], off[j]
            if None in (a0, b0, a1, b1):
                continue
            d0, d1 = a0 - b0, a1 - b1  # type: ignore[operator]
            if abs(d0) > tol and abs(d1) > tol and (d0 > 0) != (d1 > 0):
                out.append(f"{names[i]} vs {names[j]}")
    return out


METRICS = (
    ("speedup vs dense (x)", lambda p, dp: dp.cycles / p.cycles, "{:.3f}", 0.01),
    ("energy vs dense", lambda p, dp: p.energy_pj / dp.energy_pj, "{:.3f}", 0.005),
)


def _fmt_area(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:+.1f}%"


def _cell(a: str, b: str) -> str:
    return f"{a} =" if a == b else f"{a} → {b}"


def build_report(
    hw_dir: str | Path,
    traces: Sequence[str | Path],
    *,
    configs: Sequence[str] = DEFAULT_CONFIGS,
    assumptions: Sequence[Assumption] = ASSUMPTIONS,
    port_widths: Sequence[int] = PORT_WIDTHS,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    command: str = "",
) -> str:
    """The markdown report (see the module docstring). ``traces`` are the real traces, one per phase."""
    hw_dir = Path(hw_dir)
    dense = load_hw(hw_dir / "dense.yaml").model_dump()
    cfgs = {name: load_hw(hw_dir / f"{name}.yaml").model_dump() for name in configs}
    names = list(cfgs)
    traces = [str(t) for t in traces]
    runner = Runner(traces, jobs, progress)
    variants: list[tuple[dict[str, Any], dict[str, dict[str, Any] | None]]] = []
    for a in assumptions:
        variants.append((a.edit(dense) or dense, {n: a.edit(d) for n, d in cfgs.items()}))
    ports = {w: {n: _set("array.mma.operand_buffer_read_bytes_per_cycle", float(w))(d) or d for n, d in cfgs.items()}
             for w in port_widths}  # fmt: skip
    pool = [dense, *cfgs.values()]
    for vd, vc in variants:
        pool += [vd, *(d for d in vc.values() if d is not None)]
    for w in port_widths:
        pool += [_set("array.mma.operand_buffer_read_bytes_per_cycle", float(w))(dense) or dense, *ports[w].values()]
    runner.run(pool)

    lines = [
        "# What each assumption does to the answer",
        "",
        "Generated by `" + (command or "accelsim assumptions") + "`; do not edit by hand.",
        "",
        "Each row switches one assumption of the hardware model from its shipped default (on) to an alternative",
        "(off), in every config **and** in the dense baseline. A cell reads `on → off` (`=` where the assumption",
        "changes nothing for that config). The last column names the pattern pairs whose order flips when the",
        "assumption is switched off: a conclusion that no row flips does not depend on any single assumption.",
        "",
        "| assumption | on (shipped default, source) | off |",
        "|---|---|---|",
    ]
    lines += [f"| {a.label} | {a.on} | {a.off} |" for a in assumptions]
    head = "| assumption | " + " | ".join(names) + " | order flips |"
    rule = "|---|" + "---|" * len(names) + "---|"
    for trace in traces:
        phase = _phase(trace)
        base = {n: runner.point(d, dense, trace) for n, d in cfgs.items()}
        dbase = runner.point(dense, dense, trace)
        for title, fn, fmt, tol in METRICS:
            lines += ["", f"## {phase}: {title}", "", f"Trace `{trace}`.", "", head, rule]
            on = [fn(base[n], dbase) for n in names]
            lines.append("| shipped | " + " | ".join(fmt.format(v) for v in on) + " | |")
            for a, (vd, vc) in zip(assumptions, variants, strict=True):
                dp = runner.point(vd, vd, trace)
                off = [fn(runner.point(vc[n] or cfgs[n], vd, trace), dp) for n in names]
                cells = [_cell(fmt.format(x), fmt.format(y)) for x, y in zip(on, off, strict=True)]
                flips = _flips(names, on, off, tol)
                lines.append(f"| {a.label} | " + " | ".join(cells) + f" | {', '.join(flips) or 'none'} |")
    # area does not depend on the trace
    trace = traces[0]
    lines += ["", "## Area overhead against dense (both phases)", "", head, rule]
    on_a = [runner.point(d, dense, trace).overhead for d in cfgs.values()]
    lines.append("| shipped | " + " | ".join(_fmt_area(v) for v in on_a) + " | |")
    for a, (vd, vc) in zip(assumptions, variants, strict=True):
        off_a = [runner.point(vc[n] or cfgs[n], vd, trace).overhead for n in names]
        cells = [_cell(_fmt_area(x), _fmt_area(y)) for x, y in zip(on_a, off_a, strict=True)]
        flips = _flips(names, on_a, off_a, 0.002)
        lines.append(f"| {a.label} | " + " | ".join(cells) + f" | {', '.join(flips) or 'none'} |")
    lines += _port_section(runner, cfgs, dense, ports, traces, port_widths)
    lines += _depth_section(cfgs)
    return "\n".join(lines) + "\n"


def _phase(trace: str) -> str:
    from accelsim.trace.format import Trace

    with Trace(trace) as tr:
        return str(tr.meta.get("phase", Path(trace).stem))


def _port_section(runner, cfgs, dense, ports, traces, widths) -> list[str]:
    names = list(cfgs)
    out = [
        "",
        "## Operand-port width",
        "",
        "Speedup against dense at each operand-port width (bytes/cycle; dense needs 768 and never stalls on it),",
        "and the narrowest swept width at which the pattern has no operand-port stall cycles.",
    ]
    for trace in traces:
        out += ["", f"### {_phase(trace)}", "", "| config | " + " | ".join(f"{w} B/cycle" for w in widths)
                + " | not port-bound from (bytes_per_cycle) |", "|---|" + "---|" * (len(widths) + 1)]  # fmt: skip
        for n in names:
            row, free = [], None
            for w in widths:
                dd = _set("array.mma.operand_buffer_read_bytes_per_cycle", float(w))(dense) or dense
                p, dp = runner.point(ports[w][n], dd, trace), runner.point(dd, dd, trace)
                row.append(f"{dp.cycles / p.cycles:.3f}")
                if free is None and p.operand_stall_cycles == 0:
                    free = w
            out.append(f"| {n} | " + " | ".join(row) + f" | {free if free is not None else f'> {widths[-1]}'} |")
    return out


def _depth_section(cfgs) -> list[str]:
    from accelsim.cost.model import hardware

    out = [
        "",
        "## Selection-network depth against the clock",
        "",
        "The decoder's latency is a config key, not derived from the network: this table checks it. Depth is in",
        "2:1 multiplexer stages of `cost.params.mux2_delay_ps` each. A network whose delay exceeds",
        "`max(1, decoder.latency_cycles)` clock periods would need a deeper pipeline or a slower clock (`fits`).",
        "",
        "| config | decoder | select inputs per multiplier | depth (mux2 stages) | delay_ps | clock period_ps |"
        " decoder.latency_cycles | fits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, d in cfgs.items():
        hw = HwConfig.model_validate(d)
        h = hardware(hw)
        depth = math.ceil(math.log2(h.sel_inputs)) if h.sel_inputs > 1 else 0
        if h.decoder_kind == "benes":
            depth = h.benes_stages
        delay = depth * h.v("params.mux2_delay_ps")
        lat = hw.sparsity.decoder.latency_cycles if hw.sparsity.decoder is not None else 0
        period = 1e12 / hw.clock_hz
        fits = "yes" if delay <= max(1, lat) * period else "no"
        cells = (n, h.decoder_kind, h.sel_inputs, depth, f"{delay:.0f}", f"{period:.0f}", lat, fits)
        out.append("| " + " | ".join(map(str, cells)) + " |")
    return out
