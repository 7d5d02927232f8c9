"""The points of a sweep: ``--set key=v1,v2`` lists and ``--grid`` files over any key of a hardware config.

A key is a dotted path into the config's YAML mapping (``array.mma.units``, ``dram.bandwidth_gb_per_s``,
``sparsity.n``, ``cost.node_nm``); ``sparsity.pattern=N:M`` is a shorthand that sets ``sparsity.n`` and
``sparsity.m`` together. Every point is built by editing the YAML mapping and validating the result exactly
as :func:`accelsim.config.load_hw` validates a file (and the ``cost:`` section as the cost model does), so a
sweep point is a config that could have been written by hand. Errors name the key and the value.
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from accelsim.config.hw import HwConfig
from accelsim.config.yaml_io import ConfigError, format_validation_error, read_yaml

VIRTUAL_KEYS = {"sparsity.pattern": "N:M, sets sparsity.n and sparsity.m"}


class SweepError(ConfigError):
    """A sweep specification or one of its points is invalid (one line: key, value, what is allowed)."""


@dataclass(frozen=True)
class Point:
    """One design point: the swept values, its validated config and the dense config it is compared with."""

    index: int
    values: dict[str, Any]
    hw: HwConfig
    baseline: HwConfig | None


def parse_value(text: str) -> Any:
    """``"8"`` -> 8, ``"0.5"`` / ``"1e9"`` -> float, ``"true"`` -> True, anything else stays a string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            v = conv(t)
        except ValueError:
            continue
        if isinstance(v, float) and math.isnan(v):
            return t
        return v
    return t


def parse_set(spec: str) -> tuple[str, list[Any]]:
    """``"array.mma.units=4,8,16"`` -> ``("array.mma.units", [4, 8, 16])``.

    Raises:
        SweepError: no ``=``, an empty key, an empty list or an empty value.
    """
    key, sep, vals = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SweepError(f"--set {spec!r}: expected KEY=V1,V2,... (e.g. array.mma.units=4,8,16)")
    items = [v.strip() for v in vals.split(",")] if vals.strip() else []
    if not items:
        raise SweepError(f"--set {key}: the list of values is empty (expected {key}=V1,V2,...)")
    if any(v == "" for v in items):
        raise SweepError(f"--set {key}={vals}: empty value in the list")
    return key, [parse_value(v) for v in items]


def read_grid(path: str | Path) -> list[dict[str, Any]]:
    """The listed points of a ``--grid`` file: YAML (a list of mappings, or ``points:`` with one) or CSV (a
    header of keys, one point per row).

    Raises:
        SweepError: unreadable file, not a list of mappings, or an empty list.
    """
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"--grid {p}: no such file")
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            rows = [{k.strip(): parse_value(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    else:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            raw = YAML(typ="safe", pure=True).load(p.read_text(encoding="utf-8"))
        except (YAMLError, UnicodeDecodeError) as exc:
            raise SweepError(f"--grid {p}: not valid YAML ({exc})".replace("\n", " ")) from None
        rows = raw.get("points") if isinstance(raw, dict) else raw
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SweepError(f"--grid {p}: expected a list of mappings of key: value (or points: [...])")
    if not rows:
        raise SweepError(f"--grid {p}: no points")
    return [dict(r) for r in rows]


def expand(grid: Sequence[Mapping[str, Any]] | None, sets: Sequence[tuple[str, Sequence[Any]]]) -> list[dict]:
    """Every grid point combined with every combination of the ``--set`` lists, in a fixed order: grid rows
    in file order, then the ``--set`` lists as nested loops (the last ``--set`` varies fastest)."""
    keys = [k for k, _ in sets]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise SweepError(f"--set {dup[0]}: given twice (give all its values in one list)")
    base = list(grid) if grid else [{}]
    clash = sorted(set(keys) & {k for g in base for k in g})
    if clash:
        raise SweepError(f"--set {clash[0]}: also a column of --grid (give it in one place)")
    combos = list(itertools.product(*[list(v) for _, v in sets]))
    return [{**g, **dict(zip(keys, c, strict=True))} for g in base for c in combos]


def _allowed(ref: Mapping[str, Any], parents: Sequence[str]) -> str:
    """The keys that may follow ``parents``: the schema's (sections marked ``.``), plus a virtual key there."""
    scope = ".".join(parents)
    names = [f"{k}." if isinstance(v, dict) or (not parents and k == "cost") else k for k, v in ref.items()]
    names += [k.rpartition(".")[2] for k in VIRTUAL_KEYS if k.rpartition(".")[0] == scope]
    return ", ".join(sorted(set(names)))


def _set(data: dict, full: dict, key: str, value: Any) -> None:
    """Put ``value`` at dotted ``key`` of the YAML mapping ``data``; ``full`` is the validated config dumped
    with every default, which says which keys exist."""
    if key == "sparsity.pattern":
        n, sep, m = str(value).partition(":")
        try:
            nv, mv = int(n), int(m)
        except ValueError:
            raise SweepError(f"sparsity.pattern={value}: expected N:M with integers, e.g. 8:16") from None
        if not sep:
            raise SweepError(f"sparsity.pattern={value}: expected N:M with integers, e.g. 8:16")
        _set(data, full, "sparsity.n", nv)
        _set(data, full, "sparsity.m", mv)
        return
    *parents, leaf = key.split(".")
    in_cost = bool(parents) and parents[0] == "cost"  # free-form overrides, checked by the cost model
    node, ref = data, full
    for depth, part in enumerate(parents):
        where = ".".join(parents[: depth + 1])
        if in_cost:
            nxt = node.get(part)
            node = nxt if isinstance(nxt, dict) else node.setdefault(part, {}) if nxt is None else None
            if node is None:
                raise SweepError(f"{key}={value}: '{where}' is a value, not a section")
            ref = {}
            continue
        if part not in ref:
            raise SweepError(f"{key}={value}: unknown key '{where}' (allowed here: {_allowed(ref, parents[:depth])})")
        if not isinstance(ref[part], dict):
            if ref[part] is None:
                raise SweepError(f"{key}={value}: '{where}' is not set in this config (nothing to change)")
            raise SweepError(f"{key}={value}: '{where}' is a value, not a section")
        ref = ref[part]
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    if not in_cost and leaf not in ref:
        scope = ".".join(parents) or "<top>"
        raise SweepError(f"{key}={value}: unknown key '{leaf}' in {scope} (allowed: {_allowed(ref, parents)})")
    if isinstance(ref.get(leaf), dict):
        raise SweepError(f"{key}={value}: '{key}' is a section; give one of its keys")
    node[leaf] = value


def validate_config(data: Mapping[str, Any], where: str) -> HwConfig:
    """Validate a config mapping as ``load_hw`` does, then its ``cost:`` section as the cost model does."""
    try:
        cfg = HwConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(where, exc)) from None
    if cfg.cost is not None:
        from accelsim.cost import check_cost_section

        check_cost_section(cfg.cost, where)
    return cfg


def apply(raw: Mapping[str, Any], values: Mapping[str, Any], where: str) -> HwConfig:
    """The config of ``raw`` (a config's YAML mapping) with ``values`` set at their dotted keys, validated.

    Raises:
        SweepError: unknown key, or the edited config is invalid; the message names every key=value.
    """
    full = validate_config(raw, where).model_dump(mode="json")
    data = copy.deepcopy(dict(raw))
    for key, value in values.items():
        _set(data, full, key, value)
    try:
        return validate_config(data, where)
    except SweepError:
        raise
    except ConfigError as exc:
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        raise SweepError(f"point {shown}: {exc}") from None


def build_points(
    hw_path: str | Path, combos: Sequence[Mapping[str, Any]], baseline_path: str | Path | None
) -> list[Point]:
    """Validate every point (and the dense config of its machine) before anything runs.

    The baseline of a point is the dense config (``baseline_path``) with the point's values that are not
    ``sparsity.*`` keys applied: the same machine without sparsity hardware, so that the speedup and the area
    overhead compare like with like.
    """
    raw = read_yaml(hw_path)
    base_raw = read_yaml(baseline_path) if baseline_path is not None else None
    if base_raw is not None:
        dense = validate_config(base_raw, str(baseline_path))
        if dense.sparsity.kind != "dense":
            raise SweepError(f"--baseline {baseline_path}: sparsity.kind is '{dense.sparsity.kind}', must be 'dense'")
    points = []
    for i, values in enumerate(combos):
        hw = apply(raw, values, str(hw_path))
        base = None
        if base_raw is not None:
            machine = {k: v for k, v in values.items() if not k.startswith("sparsity.")}
            base = apply(base_raw, machine, str(baseline_path))
        points.append(Point(index=i, values=dict(values), hw=hw, baseline=base))
    return points


def check_tiling(points: Sequence[Point], trace_shapes: Mapping[str, Sequence[tuple[int, int, int]]]) -> None:
    """Every point's config tiles every site of every trace (``(T, K, O)`` per site), checked as
    ``accelsim run`` checks before simulating (:func:`accelsim.sim.tiling.check_sites`); else one line."""
    from accelsim.sim.tiling import TilingError, check_sites

    seen: set[str] = set()
    for p in points:
        for cfg in (p.hw, p.baseline):
            if cfg is None or cfg.digest() in seen:
                continue
            seen.add(cfg.digest())
            for trace, shapes in trace_shapes.items():
                try:
                    check_sites(cfg, [(K, O) for _, K, O in shapes])
                except TilingError as exc:
                    shown = " ".join(f"{k}={v}" for k, v in p.values.items())
                    raise SweepError(f"point {shown}: {trace}: {exc}") from None
