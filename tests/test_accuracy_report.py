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


DENSITY = ROOT / "docs" / "accuracy_density.json"
DENSITY_MODELS = ("smollm2-135m", "gemma3-270m")


def test_docs_page_holds_the_density_tables_and_the_figure():
    from accelsim.accuracy import density

    recs = json.loads(DENSITY.read_text())["records"]
    page = (ROOT / "docs" / "accuracy.md").read_text()
    inner = page.split(density.BEGIN, 1)[1].split(density.END, 1)[0]
    assert inner.strip() == density.tables(recs).strip(), (
        "docs/accuracy.md is out of date: rerun python -m accelsim.accuracy.density ... --report docs/accuracy.md"
    )
    assert "](accuracy_density.png)" in page and (ROOT / "docs" / "accuracy_density.png").stat().st_size > 10_000
    for model in DENSITY_MODELS:
        for suite in ("density", "baselines"):
            for spec in expand_suite(suite):
                r = recs[spec.key(model)]
                assert (r["windows"], r["seq_len"], r["text"]) == (4, 512, "pydoc_data.topics"), spec.key(model)


def test_density_suite_covers_three_densities_and_every_family():
    from accelsim.accuracy.spec import DENSITY_FAMILIES

    keys = {s.key("m") for s in expand_suite("density")}
    for d, fam in DENSITY_FAMILIES.items():
        assert [int(p.split(":")[1]) for p in fam] == [4, 8, 16, 32]
        for p in fam:
            n, m = (int(v) for v in p.split(":"))
            assert n / m == d
            assert {f"m|{p}|magnitude|none", f"m|{p}|magnitude|var"} <= keys
        assert f"m|unstructured{d:g}|magnitude|none" in keys and f"m|teal{1 - d:g}|magnitude|var" in keys


GEMMA = ROOT / "docs" / "accuracy_gemma3-270m.json"


def test_docs_page_holds_the_gemma_tables_on_4_windows_with_bos():
    from accelsim.accuracy.report import markers

    recs = json.loads(GEMMA.read_text())["records"]
    begin, end = markers("gemma3-270m")
    page = (ROOT / "docs" / "accuracy.md").read_text()
    inner = page.split(begin, 1)[1].split(end, 1)[0]
    assert inner.strip() == tables(recs, "gemma3-270m").strip()
    assert "gemma3-270m|dense|none|none" in recs and "gemma3-270m|8:16|magnitude|none" in recs
    for r in recs.values():
        assert r["model"] == "gemma3-270m" and r["windows"] == 4 and r["bos_prefix"] is True
        assert r["dense_ppl"] == recs["gemma3-270m|dense|none|none"]["ppl"]


def test_gemma_16_window_check_rows():
    recs = json.loads((ROOT / "docs" / "accuracy_gemma3-270m_w16.json").read_text())["records"]
    assert {"gemma3-270m|dense|none|none", "gemma3-270m|8:16|magnitude|none"} <= set(recs)
    for r in recs.values():
        assert (r["windows"], r["seq_len"], r["bos_prefix"]) == (16, 512, True)
    page = (ROOT / "docs" / "accuracy.md").read_text()
    w4 = json.loads(DENSITY.read_text())["records"]["gemma3-270m|8:16|magnitude|none"]["ppl"]
    assert f"| 8:16 | {w4:.2f} | {recs['gemma3-270m|8:16|magnitude|none']['ppl']:.2f} |" in page
