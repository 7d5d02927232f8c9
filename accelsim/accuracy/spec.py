"""What an accuracy run sparsifies and how: patterns, criteria, mitigations, and where they apply.

This module is pure Python (no torch): the CLI validates its options with it before loading anything.

Pattern labels (also the join key to hardware results, see ``docs/accuracy.md``):

* ``dense``: nothing is sparsified.
* ``n:m`` (any ``1 <= n <= m``, e.g. ``2:4``, ``8:16``): per token, per group of ``m`` consecutive input
  channels, keep the ``n`` largest scores (``accelsim.nm`` rule).
* ``unstructured<d>`` (e.g. ``unstructured0.5``): per-token top-k keeping ``round(d * K)`` (at least 1).
  ``d`` is the kept fraction (density); ``unstructured50%`` is accepted and means the same.
* ``teal<s>`` / ``teal<s>-greedy`` (e.g. ``teal0.5``): TEAL thresholds at target *sparsity* ``s``, uniform
  over the projections, or allocated block by block with TEAL's greedy search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CRITERIA",
    "MITIGATIONS",
    "KINDS",
    "Pattern",
    "RunSpec",
    "SUITES",
    "DENSITY_FAMILIES",
    "expand_suite",
    "SpecError",
    "parse_pattern",
    "parse_criterion",
    "parse_mitigation",
    "parse_kinds",
    "parse_layers",
    "split_list",
    "result_key",
]

CRITERIA: dict[str, str] = {
    "magnitude": "|x|",
    "amber": "|x| * f_j, f_j = ||W_hat[:, j]|| / min_k ||W_hat[:, k]||, W_hat = (W - mu) / sigma (Amber Pruner)",
    "weight-aware": "|x| * ||W[:, j]||_2 (WINA's gate, arXiv 2505.19427; alias wina)",
    "clact": "|x_ij| * ||X[:, j]||_2 / ||X[i, :]||_2, column norm over the tokens of the sequence (CLACT, "
    "arXiv 2509.22166; prefill only, non-causal)",
    "larosa": "|(x Q)_j| with Q the PCA rotation of the calibration inputs, linear on W Q (LaRoSA, ICML 2025)",
}
MITIGATIONS: dict[str, str] = {
    "none": "no correction",
    "var": "per-token variance correction: scale the kept values by sqrt(Var(x) / Var(x_sparse))",
    "median-shift": "per-token lower median eta: x~ = P(x - eta) + eta",
    "static-shift": "one eta per linear (mean of per-token medians on the calibration windows): x~ = P(x - eta) + eta",
    "learnable": "learnable diagonal scale and shift per output channel: y = (x_sp W^T) * (1 + a) + b",
    "var-learnable": "VAR, then learnable diagonal scale and shift",
}
KINDS: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
_KIND_ALIASES = {f"{k}_proj": k for k in KINDS}


class SpecError(ValueError):
    """A bad pattern, criterion, mitigation, kind or layer list. The message is one line naming the bad
    value and the allowed values."""


@dataclass(frozen=True)
class Pattern:
    """A parsed sparsity pattern. ``label`` is canonical (``"2:4"``, ``"unstructured0.5"``, ``"teal0.5-greedy"``)."""

    kind: str  # "dense" | "nm" | "unstructured" | "teal"
    n: int | None = None
    m: int | None = None
    density: float = 1.0  # kept fraction (nominal, for teal = 1 - target sparsity)
    greedy: bool = False  # teal only

    @property
    def label(self) -> str:
        if self.kind == "dense":
            return "dense"
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        if self.kind == "unstructured":
            return f"unstructured{_num(self.density)}"
        return f"teal{_num(1.0 - self.density)}" + ("-greedy" if self.greedy else "")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    @property
    def hw_config(self) -> str | None:
        """Name of the matching ``hw_configs/*.yaml`` (same selection rule), or None (TEAL has no hw config)."""
        if self.kind == "dense":
            return "dense"
        if self.kind == "nm":
            return f"nm{self.n}_{self.m}"
        if self.kind == "unstructured":
            return "unstructured"
        return None


def _num(x: float) -> str:
    """``0.5 -> '0.5'``, ``0.25 -> '0.25'``, ``0.3333333 -> '0.333333'``."""
    return f"{x:.6f}".rstrip("0").rstrip(".")


_PATTERN_HELP = (
    "allowed: dense, n:m with 1 <= n <= m (e.g. 2:4, 8:16), unstructured<density> (e.g. unstructured0.5), "
    "teal<sparsity>[-greedy] (e.g. teal0.5-greedy)"
)


def parse_pattern(text: str) -> Pattern:
    """Parse one pattern label (see the module docstring)."""
    t = str(text).strip().lower()
    if t == "dense":
        return Pattern("dense")
    m = re.fullmatch(r"(\d+):(\d+)", t)
    if m:
        n, mm = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= mm:
            raise SpecError(f"pattern {text!r}: N:M needs 1 <= n <= m; {_PATTERN_HELP}")
        if n == mm:
            return Pattern("dense")
        return Pattern("nm", n=n, m=mm, density=n / mm)
    m = re.fullmatch(r"unstructured(\d*\.?\d+)(%?)", t)
    if m:
        d = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
        if not 0.0 < d <= 1.0:
            raise SpecError(f"pattern {text!r}: unstructured density must be in (0, 1]; {_PATTERN_HELP}")
        return Pattern("unstructured", density=d) if d < 1.0 else Pattern("dense")
    m = re.fullmatch(r"teal(\d*\.?\d+)(%?)(-greedy|-uniform)?", t)
    if m:
        s = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
        if not 0.0 < s < 1.0:
            raise SpecError(f"pattern {text!r}: TEAL target sparsity must be in (0, 1); {_PATTERN_HELP}")
        return Pattern("teal", density=1.0 - s, greedy=m.group(3) == "-greedy")
    raise SpecError(f"unknown pattern {text!r}; {_PATTERN_HELP}")


def parse_criterion(text: str) -> str:
    t = str(text).strip().lower().replace("_", "-")
    t = {
        "weight_aware": "weight-aware",
        "wa": "weight-aware",
        "weightaware": "weight-aware",
        "wina": "weight-aware",
    }.get(t, t)
    if t not in CRITERIA:
        raise SpecError(f"unknown criterion {text!r}; allowed: {', '.join(CRITERIA)}")
    return t


def parse_mitigation(text: str) -> str:
    t = str(text).strip().lower().replace("_", "-")
    t = {
        "median": "median-shift",
        "shift": "median-shift",
        "static": "static-shift",
        "scale-shift": "learnable",
        "var+learnable": "var-learnable",
        "variance": "var",
    }.get(t, t)
    if t not in MITIGATIONS:
        raise SpecError(f"unknown mitigation {text!r}; allowed: {', '.join(MITIGATIONS)}")
    return t


def split_list(values: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``["2:4,8:16", "16:32"] -> ["2:4", "8:16", "16:32"]`` (comma-separated and/or repeated), order kept,
    duplicates dropped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def parse_kinds(text: str | list[str] | None) -> tuple[str, ...]:
    """``"all"`` or a comma list of ``q,k,v,o,gate,up,down`` (``q_proj`` style accepted), in canonical order."""
    items = split_list(text) if text is not None else ["all"]
    if items == ["all"] or not items:
        return KINDS
    kinds = set()
    for it in items:
        k = _KIND_ALIASES.get(it.lower(), it.lower())
        if k not in KINDS:
            raise SpecError(f"unknown projection kind {it!r}; allowed: all or {', '.join(KINDS)}")
        kinds.add(k)
    return tuple(k for k in KINDS if k in kinds)


def parse_layers(text: str | None, num_layers: int | None = None) -> tuple[int, ...] | None:
    """``"all"`` -> None (every layer); ``"0-3,7"`` -> ``(0, 1, 2, 3, 7)``. Checked against ``num_layers``
    when given."""
    if text is None or str(text).strip().lower() in ("", "all"):
        return None
    out: set[int] = set()
    for part in split_list(str(text)):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise SpecError(f"layer list {text!r}: bad item {part!r}; allowed: all, or indices and ranges like 0-3,7")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise SpecError(f"layer list {text!r}: range {part!r} runs backwards")
        out.update(range(lo, hi + 1))
    if num_layers is not None:
        bad = sorted(i for i in out if i >= num_layers)
        if bad:
            raise SpecError(f"layer {bad[0]} does not exist; allowed: 0-{num_layers - 1}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class RunSpec:
    """One row of an accuracy table: a pattern with a selection criterion and an error mitigation."""

    pattern: Pattern
    criterion: str = "magnitude"
    mitigation: str = "none"

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise SpecError(f"unknown criterion {self.criterion!r}; allowed: {', '.join(CRITERIA)}")
        if self.mitigation not in MITIGATIONS:
            raise SpecError(f"unknown mitigation {self.mitigation!r}; allowed: {', '.join(MITIGATIONS)}")
        if self.pattern.kind == "teal" and self.criterion != "magnitude":
            raise SpecError(
                f"criterion {self.criterion!r} with pattern {self.pattern.label!r}: TEAL thresholds |x|; "
                "allowed: magnitude"
            )
        if self.criterion == "larosa" and self.mitigation not in ("none", "var"):
            raise SpecError(
                f"mitigation {self.mitigation!r} with criterion 'larosa': the rotated input has no shift or fitted "
                "epilogue here; allowed: none, var"
            )
        if self.pattern.kind == "teal" and self.mitigation in ("median-shift", "static-shift"):
            raise SpecError(
                f"mitigation {self.mitigation!r} with pattern {self.pattern.label!r}: TEAL thresholds are calibrated "
                "on x, not x - eta; allowed: none, var, learnable, var-learnable"
            )

    @property
    def is_dense(self) -> bool:
        return self.pattern.kind == "dense"

    @property
    def criterion_label(self) -> str:
        return "none" if self.is_dense else self.criterion

    @property
    def mitigation_label(self) -> str:
        return "none" if self.is_dense else self.mitigation

    def key(self, model: str) -> str:
        return result_key(model, self.pattern.label, self.criterion_label, self.mitigation_label)


def result_key(model: str, pattern: str, criterion: str, mitigation: str) -> str:
    """The key of a record in a results file: ``"<model>|<pattern>|<criterion>|<mitigation>"``."""
    return f"{model}|{pattern}|{criterion}|{mitigation}"


def expand(patterns: list[str], criteria: list[str], mitigations: list[str]) -> tuple[list[RunSpec], list[str]]:
    """The cross product of the parsed lists, minus combinations that do not exist, in a stable order:
    ``(specs, skipped notes)``. Dense appears once (criterion and mitigation do not apply to it); TEAL keeps
    only the magnitude criterion and the mitigations that make sense with a threshold. Raises SpecError on
    an unknown value."""
    pats = [parse_pattern(p) for p in patterns]
    crits = [parse_criterion(c) for c in criteria] or ["magnitude"]
    mits = [parse_mitigation(m) for m in mitigations] or ["none"]
    specs: list[RunSpec] = []
    skipped: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for p in pats:
        for c in crits:
            for mi in mits:
                if p.kind == "dense":
                    c2, m2 = "magnitude", "none"
                else:
                    c2, m2 = c, mi
                try:
                    spec = RunSpec(p, c2, m2)
                except SpecError as exc:
                    skipped.append(str(exc))
                    continue
                ident = (p.label, spec.criterion_label, spec.mitigation_label)
                if ident not in seen:
                    seen.add(ident)
                    specs.append(spec)
    return specs, skipped


#: N:M patterns of each density (kept fraction) of the density sweep, one per group size m = 4, 8, 16, 32.
DENSITY_FAMILIES: dict[float, list[str]] = {
    0.25: ["1:4", "2:8", "4:16", "8:32"],
    0.5: ["2:4", "4:8", "8:16", "16:32"],
    0.75: ["3:4", "6:8", "12:16", "24:32"],
}

#: Named sets of rows. ``docs-table`` is the table of ``docs/accuracy.md`` (issue 4): every N:M pattern and
#: unstructured 50 % with the magnitude criterion under each mitigation, the other criteria without
#: mitigation at 2:4 and 8:16, TEAL at 50 % with uniform and greedy allocation, and dense.
SUITES: dict[str, list[tuple[list[str], list[str], list[str]]]] = {
    "docs-table": [
        (["dense"], ["magnitude"], ["none"]),
        (
            ["2:4", "4:8", "8:16", "16:32", "unstructured0.5"],
            ["magnitude"],
            ["none", "var", "median-shift", "static-shift", "learnable", "var-learnable"],
        ),
        (["2:4", "8:16"], ["amber", "weight-aware", "clact"], ["none"]),
        (["teal0.5", "teal0.5-greedy"], ["magnitude"], ["none"]),
    ],
    # Issue 15: perplexity against density, magnitude criterion, without and with VAR (the best mitigation that
    # needs neither calibration nor fitting). N:M families at 25 / 50 / 75 % kept, unstructured and TEAL.
    "density": [
        (["dense"], ["magnitude"], ["none"]),
        (
            [p for fam in DENSITY_FAMILIES.values() for p in fam]
            + ["unstructured0.25", "unstructured0.5", "unstructured0.75"],
            ["magnitude"],
            ["none", "var"],
        ),
        (["teal0.75", "teal0.5", "teal0.25"], ["magnitude"], ["none", "var"]),
    ],
    # Issue 15: stronger training-free baselines at the same densities: WINA's gate (weight-aware) and LaRoSA
    # (PCA rotation), per-token top-k and N:M with m = 16, plus magnitude N:M m = 16 for reference.
    "baselines": [
        (["dense"], ["magnitude"], ["none"]),
        (
            ["unstructured0.25", "unstructured0.5", "unstructured0.75", "4:16", "8:16", "12:16"],
            ["weight-aware", "larosa"],
            ["none"],
        ),
    ],
    "ci": [
        (["dense", "2:4", "4:8", "8:16", "16:32", "unstructured0.5"], ["magnitude"], ["none"]),
        (["8:16"], ["magnitude"], ["var"]),
    ],
}


def expand_suite(name: str) -> list[RunSpec]:
    """The rows of a named suite (see ``SUITES``), in table order. Raises SpecError on an unknown name."""
    if name not in SUITES:
        raise SpecError(f"unknown suite {name!r}; allowed: {', '.join(SUITES)}")
    specs: list[RunSpec] = []
    for pats, crits, mits in SUITES[name]:
        part, _ = expand(pats, crits, mits)
        specs += [s for s in part if s not in specs]
    return specs
