"""The accuracy table of docs/accuracy.md, the suites that make it, and the Markdown writer (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim.accuracy.report import BEGIN, END, tables, update_markdown
from accelsim.accuracy.spec import SpecError, expand_suite

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "accuracy_smollm2-135m.json"


def _records() -> dict:
    return json.loads(RESULTS.read_text())["records"]


def test_docs_table_suite_is_the_table_the_issue_asks_for():
    specs = expand_suite("docs-table")
    keys = [s.key("m") for s in specs]
    assert len(keys) == len(set(keys)) == 1 + 5 * 6 + 2 * 3 + 2
    assert "m|dense|none|none" in keys
    for p in ("2:4", "4:8", "8:16", "16:32", "unstructured0.5"):
        for mi in ("none", "var", "median-shift", "static-shift", "learnable", "var-learnable"):
            assert f"m|{p}|magnitude|{mi}" in keys
    for p in ("2:4", "8:16"):
        for c in ("amber", "weight-aware", "clact"):
            assert f"m|{p}|{c}|none" in keys
    assert {"m|teal0.5|magnitude|none", "m|teal0.5-greedy|magnitude|none"} <= set(keys)


def test_unknown_suite_names_the_allowed_ones():
    with pytest.raises(SpecError, match="allowed: docs-table, density, baselines, ci"):
        expand_suite("paper")


def test_committed_results_cover_the_docs_table_on_the_default_evaluation_set():
    recs = _records()
    for spec in expand_suite("docs-table"):
        r = recs[spec.key("smollm2-135m")]
        assert (r["windows"], r["seq_len"], r["calib_windows"]) == (16, 512, 8)
        assert r["text"] == "pydoc_data.topics"


def test_docs_page_holds_the_tables_of_the_committed_results():
    page = (ROOT / "docs" / "accuracy.md").read_text()
    inner = page.split(BEGIN, 1)[1].split(END, 1)[0]
    assert inner.strip() == tables(_records(), "smollm2-135m").strip(), (
        "docs/accuracy.md is out of date: rerun the command at its top (or update_markdown on the JSON)"
    )
    assert "accelsim eval --suite docs-table --out docs/accuracy_smollm2-135m.json --report docs/accuracy.md" in page


def test_update_markdown_rewrites_only_the_generated_section(tmp_path):
    recs = _records()
    small = {k: v for k, v in recs.items() if "|8:16|" in k or "|dense|" in k}
    page = tmp_path / "acc.md"
    update_markdown(page, small)  # created with markers
    first = page.read_text()
    assert first.startswith(BEGIN) and first.rstrip().endswith(END) and "| 8:16 |" in first
    page.write_text("# title\n\nprose before\n\n" + first + "\nprose after\n")
    update_markdown(page, recs)
    text = page.read_text()
    assert text.startswith("# title\n\nprose before\n\n") and text.endswith("\nprose after\n")
    ppl_2_4 = recs["smollm2-135m|2:4|magnitude|none"]["ppl"]
    assert f"| 2:4 | {ppl_2_4:.2f} |" in text and text.count(BEGIN) == 1 and text.count(END) == 1
