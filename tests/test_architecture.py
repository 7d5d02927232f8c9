"""The import graph of the package flows one way: config -> trace -> sim -> cost -> explore -> report -> cli
(docs/architecture.md). Every import, top-level or inside a function, is read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "accelsim"

# rank of each top-level part of the package; a module may import only parts of the same or a lower rank
LAYERS: dict[str, int] = {
    "accelsim": 0,  # accelsim/__init__.py: the version only
    "nm": 0,  # N:M selection rule shared by the tracer and the simulator
    "hf": 0,  # model download/loading helpers (torch imported lazily)
    "safeio": 0,  # output path checks, atomic output directories, JSON without NaN, size estimates
    "config": 1,
    "trace": 2,
    "sim": 3,
    "accuracy": 3,  # the perplexity path: beside the simulator, never imported by it
    "cost": 4,
    "explore": 5,
    "serving": 5,  # serving scenarios: metrics over sim runs, attention sites, datatypes
    "rtl": 5,  # amaranth RTL of the N:M blocks, synthesis, calibration against cost (extra .[rtl])
    "report": 6,
    "api": 7,
    "cli": 8,
    "console": 8,
    "__main__": 8,
}
SIBLINGS_APART = {("sim", "accuracy"), ("accuracy", "sim")}


def _part(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "accelsim", module
    return parts[1] if len(parts) > 1 else "accelsim"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every ``accelsim`` module that ``path`` imports (absolute and relative, at any depth of the file)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "accelsim"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "accelsim":
                found.add(mod)
    return found


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(_module_name(p)) for p in modules()}
    assert parts - set(LAYERS) == set(), "add the new part to LAYERS and docs/architecture.md"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG.parent)))
def test_no_backward_import(path):
    me = _part(_module_name(path))
    bad = []
    for mod in sorted(imports_of(path)):
        other = _part(mod)
        if LAYERS[other] > LAYERS[me] or (me, other) in SIBLINGS_APART:
            bad.append(f"{mod} (layer {other})")
    assert not bad, f"{path.relative_to(PKG.parent)} (layer {me}) imports upward: {', '.join(bad)}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "accelsim" / "config"
    pkg.mkdir(parents=True)
    f = pkg / "hw.py"
    f.write_text("def f():\n    from accelsim.cost.table import x\n    from . import yaml_io\n")
    global PKG
    saved, PKG = PKG, tmp_path / "accelsim"
    try:
        assert imports_of(f) == {"accelsim.cost.table", "accelsim.config"}
    finally:
        PKG = saved


def test_architecture_doc_names_every_layer():
    text = (PKG.parent / "docs" / "architecture.md").read_text()
    assert "config -> trace -> sim -> cost -> explore -> report -> cli" in text
    for part in LAYERS:
        if part not in ("accelsim", "__main__"):
            assert f"`{part}" in text, part
