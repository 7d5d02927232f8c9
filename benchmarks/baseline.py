"""The "cycles unchanged" guard: simulated cycles of every shipped config on both committed traces.

``benchmarks/baseline_cycles.json`` stores, for each (trace, config), the total cycles and the cycles of every
site, together with the git commit whose simulator produced them. ``tests/test_cycles_baseline.py`` re-simulates
and compares, so speed work on ``accelsim/sim`` cannot change a single cycle unnoticed.

A deliberate change of the timing accounting changes the numbers on purpose: then regenerate the file with

    python benchmarks/baseline.py --update

and commit it with the change (the diff of the JSON shows exactly which totals moved).

Run without ``--update`` to compare only (exit code 1 and one line per difference when something moved).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from accelsim import __version__  # noqa: E402
from accelsim.config import load_hw  # noqa: E402
from accelsim.sim.run import simulate  # noqa: E402
from accelsim.trace.format import Trace  # noqa: E402

BASELINE = ROOT / "benchmarks" / "baseline_cycles.json"
TRACES = ("traces/smollm2-135m_prefill32.npz", "traces/smollm2-135m_decode16.npz")


def configs() -> list[Path]:
    return sorted((ROOT / "hw_configs").glob("*.yaml"))


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def source_commit() -> dict[str, object]:
    """The commit the simulator code came from, and whether the simulator's files differ from it."""
    dirty = _git("status", "--porcelain", "--", "accelsim", "hw_configs")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "accelsim_last_commit": _git("log", "-1", "--format=%H", "--", "accelsim", "hw_configs"),
        "accelsim_dirty": bool(dirty) if dirty != "unknown" else None,
    }


def measure(traces: tuple[str, ...] = TRACES) -> dict[str, dict[str, dict[str, object]]]:
    """``{trace: {config: {"cycles": total, "site_cycles": [...]}}}`` with the current code."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    for trace in traces:
        per_cfg: dict[str, dict[str, object]] = {}
        for cfg in configs():
            with Trace(ROOT / trace) as tr:
                res = simulate(load_hw(cfg), tr)
            per_cfg[cfg.stem] = {
                "cycles": int(res.totals["cycles"]),
                "site_cycles": [int(r["cycles"]) for r in res.sites],
            }
        out[trace] = per_cfg
    return out


def differences(stored: dict, current: dict) -> list[str]:
    """One line per (trace, config) whose cycles differ from the stored ones (empty when all equal)."""
    lines = []
    for trace in sorted(set(stored) | set(current)):
        s, c = stored.get(trace, {}), current.get(trace, {})
        for cfg in sorted(set(s) | set(c)):
            if cfg not in s or cfg not in c:
                lines.append(f"{trace} {cfg}: only in {'current' if cfg in c else 'baseline'}")
                continue
            if s[cfg]["cycles"] != c[cfg]["cycles"]:
                lines.append(f"{trace} {cfg}: cycles {s[cfg]['cycles']} in baseline, {c[cfg]['cycles']} now")
            elif s[cfg]["site_cycles"] != c[cfg]["site_cycles"]:
                moved = sum(a != b for a, b in zip(s[cfg]["site_cycles"], c[cfg]["site_cycles"], strict=False))
                lines.append(f"{trace} {cfg}: same total, {moved} site(s) with different cycles")
    return lines


def write(path: Path = BASELINE) -> dict:
    data = {
        "what": "total and per-site simulated cycles of every hw_configs/*.yaml on the committed traces",
        "regenerate": "python benchmarks/baseline.py --update",
        "accelsim_version": __version__,
        **source_commit(),
        "results": measure(),
    }
    # one site list per line keeps the file short and its diffs readable
    text = json.dumps(data, indent=1)
    path.write_text(_compact_lists(text) + "\n")
    return data


def _compact_lists(text: str) -> str:
    """Put every JSON list of integers on one line."""

    def one_line(m: re.Match) -> str:
        return "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]"

    return re.sub(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\]", one_line, text)


def main() -> int:
    ap = argparse.ArgumentParser(description="Compare (or with --update, rewrite) benchmarks/baseline_cycles.json.")
    ap.add_argument("--update", action="store_true", help="rewrite the baseline from the current code")
    args = ap.parse_args()
    if args.update:
        data = write()
        print(
            f"wrote {BASELINE.relative_to(ROOT)} from commit {data['git_commit']} (accelsim dirty: "
            f"{data['accelsim_dirty']})"
        )
        return 0
    stored = json.loads(BASELINE.read_text())
    diff = differences(stored["results"], measure())
    for line in diff:
        print(line)
    print("cycles unchanged" if not diff else f"{len(diff)} difference(s) from {stored['git_commit']}")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
