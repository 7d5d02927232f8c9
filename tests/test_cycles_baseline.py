"""Cycles-unchanged guard: every shipped config on both committed traces gives the stored cycles.

The stored numbers (``benchmarks/baseline_cycles.json``, with the git commit that produced them) are the
reference for speed work on the simulator: a faster ``accelsim/sim`` must give the same cycles, site by site.

REGENERATE after a deliberate change of the timing accounting (and commit the new file with that change):

    python benchmarks/baseline.py --update
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import baseline  # noqa: E402

STORED = json.loads(baseline.BASELINE.read_text())


def test_baseline_file_covers_every_shipped_config_and_both_traces():
    assert set(STORED["results"]) == set(baseline.TRACES)
    names = {p.stem for p in baseline.configs()}
    for trace, per_cfg in STORED["results"].items():
        assert set(per_cfg) == names, trace
        for cfg, rec in per_cfg.items():
            assert rec["cycles"] == sum(rec["site_cycles"]) > 0, (trace, cfg)
    assert len(STORED["git_commit"]) == 40


@pytest.mark.parametrize("trace", baseline.TRACES)
def test_cycles_equal_the_stored_baseline(trace):
    current = baseline.measure(traces=(trace,))
    diff = baseline.differences({trace: STORED["results"][trace]}, current)
    assert not diff, (
        f"simulated cycles moved from benchmarks/baseline_cycles.json (commit {STORED['git_commit'][:10]}):\n"
        + "\n".join(diff)
        + "\nIf the accounting change is deliberate: python benchmarks/baseline.py --update"
    )


def test_differences_reports_a_moved_site():
    rec = {"t": {"c": {"cycles": 10, "site_cycles": [4, 6]}}}
    assert baseline.differences(rec, rec) == []
    moved = {"t": {"c": {"cycles": 10, "site_cycles": [5, 5]}}}
    assert baseline.differences(rec, moved) == ["t c: same total, 2 site(s) with different cycles"]
    total = {"t": {"c": {"cycles": 11, "site_cycles": [5, 6]}}}
    assert baseline.differences(rec, total) == ["t c: cycles 10 in baseline, 11 now"]
