"""The energy / area table: YAML entries with value, unit and source, technology scaling, per-config overrides.

A table file (``default_45nm.yaml`` ships in this package) has four sections:

* ``energy``: pJ per operation (or per bit), ``area``: um^2 per instance (or per bit; SRAM in mm^2/MiB);
  each entry ``{value, unit, source, tag, scaling}`` where ``scaling`` is ``logic``, ``sram`` or ``none``;
* ``params``: dimensionless model parameters ``{value, unit, source, tag}`` (never node-scaled);
* ``scaling``: factors from the table's node to the other nodes, per class (``logic_area``, ``logic_energy``,
  ``sram_area``, ``sram_energy``), each with its source.

A hardware config may override entries in its ``cost:`` section (see :data:`COST_KEYS`)::

    cost:
      node_nm: 7                   # one of the table's nodes (45, 16, 7, 5)
      datatype: bf16               # MAC type for the precision's operand bytes (default: inferred)
      compressor_network: odd_even_merge_top_n
      unstructured_select_inputs: 2048
      energy:
        dram_bit: {value: 8.0, unit: pJ/bit, source: "LPDDR4: Accelergy CactiDRAM 512 pJ per 64 b"}

An override entry needs ``value``, ``unit`` (must equal the table's unit) and ``source``; it may give
``tag`` and ``node_nm`` (the node its value is quoted at; default the table's node). Unknown keys, unknown
entries, wrong units and missing sources are errors naming the file (or config), the key and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from accelsim.config.yaml_io import ConfigError, read_yaml

__all__ = [
    "COST_KEYS",
    "DATATYPES",
    "CostError",
    "CostTable",
    "Entry",
    "default_table",
    "load_table",
]

TABLE_SCHEMA = "accelsim-cost-table/1"
SECTIONS = ("energy", "area", "params")
SCALING_CLASSES = ("logic", "sram", "none")
SCALING_KEYS = ("logic_area", "logic_energy", "sram_area", "sram_energy")
TAGS = ("V", "S", "D", "U")
DATATYPES = ("int8", "fp16", "bf16")
"""MAC datatypes the table prices (``mac_<datatype>_acc32`` entries)."""
COST_KEYS = ("node_nm", "datatype", "compressor_network", "unstructured_select_inputs", "energy", "area", "params")
"""Allowed keys of a hardware config's ``cost:`` section."""

_ENTRY_KEYS = {"value", "unit", "source", "tag", "scaling"}
_PARAM_KEYS = {"value", "unit", "source", "tag"}
_OVERRIDE_REQUIRED = {"value", "unit", "source"}
_OVERRIDE_KEYS = _OVERRIDE_REQUIRED | {"tag", "node_nm"}


class CostError(ConfigError):
    """A cost table or a ``cost:`` override is invalid, or counts do not match the priced actions."""


@dataclass(frozen=True)
class Entry:
    """One priced quantity at the table's node."""

    section: str
    name: str
    value: float
    unit: str
    source: str
    tag: str
    scaling: str = "none"

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


@dataclass(frozen=True)
class CostTable:
    """A validated table: entries at ``node_nm`` plus scaling factors to other nodes."""

    node_nm: int
    entries: Mapping[str, Entry]  # "section.name" -> Entry
    scaling: Mapping[str, Mapping[int, float]]
    scaling_sources: Mapping[str, str]
    origin: str

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(sorted(next(iter(self.scaling.values())), reverse=True))

    def names(self, section: str) -> list[str]:
        return [e.name for e in self.entries.values() if e.section == section]

    def factor(self, section: str, scaling: str, node_nm: int) -> float:
        """Multiplier from the table's node to ``node_nm`` for an entry of ``section`` and scaling class."""
        if node_nm not in self.nodes:
            raise CostError(f"{self.origin}: node_nm {node_nm} is not in the table (allowed: {_join(self.nodes)})")
        if scaling == "none" or section == "params":
            return 1.0
        kind = "area" if section == "area" else "energy"
        return self.scaling[f"{scaling}_{kind}"][node_nm] / self.scaling[f"{scaling}_{kind}"][self.node_nm]

    def value(self, key: str, node_nm: int | None = None) -> float:
        """The value of ``section.name`` at ``node_nm`` (default: the table's node)."""
        e = self.entries.get(key)
        if e is None:
            raise CostError(f"{self.origin}: no entry '{key}' (allowed: {_join(self.entries)})")
        return e.value * self.factor(e.section, e.scaling, self.node_nm if node_nm is None else node_nm)

    def scaled(self, factors: Mapping[str, float]) -> CostTable:
        """A copy with the named entries (``"area.mux2_bit"``) multiplied by the given factors."""
        entries = dict(self.entries)
        for key, f in factors.items():
            if key not in entries:
                raise CostError(f"{self.origin}: cannot scale '{key}': no such entry (allowed: {_join(entries)})")
            if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
                raise CostError(f"{self.origin}: scale factor of '{key}' must be a positive number, got {f!r}")
            e = entries[key]
            entries[key] = replace(e, value=e.value * f, source=f"{e.source} (x{f:g} sensitivity)")
        return replace(self, entries=entries)

    def with_overrides(self, cost: Mapping[str, Any] | None, where: str) -> CostTable:
        """A copy with the ``energy`` / ``area`` / ``params`` overrides of a config's ``cost:`` section."""
        if not cost:
            return self
        check_cost_section(cost, where, self)
        entries = dict(self.entries)
        for section in SECTIONS:
            for name, ov in (cost.get(section) or {}).items():
                key = f"{section}.{name}"
                old = entries[key]
                value = float(ov["value"])
                node = ov.get("node_nm", self.node_nm)
                value /= self.factor(section, old.scaling, int(node))  # quoted at `node`: back to the table's node
                entries[key] = replace(
                    old, value=value, source=f"override in {where}: {ov['source']}", tag=str(ov.get("tag", "U"))
                )
        return replace(self, entries=entries, origin=f"{self.origin} + {where}")


def _join(items) -> str:
    return ", ".join(str(x) for x in items)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_cost_section(cost: Any, where: str, table: CostTable | None = None) -> None:
    """Validate a hardware config's ``cost:`` section against ``table`` (default table if ``None``).

    Raises:
        CostError: one line, ``<where>: cost.<key path>: <problem> (allowed: ...)``.
    """
    table = table or default_table()
    if cost is None:
        return
    if not isinstance(cost, Mapping):
        raise CostError(f"{where}: cost: must be a mapping of keys (allowed: {_join(COST_KEYS)})")
    for key, val in cost.items():
        if key not in COST_KEYS:
            raise CostError(f"{where}: cost.{key}: unknown key (allowed: {_join(COST_KEYS)})")
        if key == "node_nm" and val not in table.nodes:
            raise CostError(f"{where}: cost.node_nm: must be one of {_join(table.nodes)}, got {val!r}")
        if key == "datatype" and val not in DATATYPES:
            raise CostError(f"{where}: cost.datatype: must be one of {_join(DATATYPES)}, got {val!r}")
        if key == "compressor_network":
            from accelsim.cost.networks import NETWORKS

            if val not in NETWORKS:
                raise CostError(f"{where}: cost.compressor_network: must be one of {_join(NETWORKS)}, got {val!r}")
        if key == "unstructured_select_inputs" and not (
            isinstance(val, int) and not isinstance(val, bool) and val >= 2
        ):
            raise CostError(f"{where}: cost.unstructured_select_inputs: must be an integer >= 2, got {val!r}")
        if key in SECTIONS:
            if not isinstance(val, Mapping):
                raise CostError(f"{where}: cost.{key}: must be a mapping of entry names")
            allowed = table.names(key)
            for name, ov in val.items():
                path = f"cost.{key}.{name}"
                if name not in allowed:
                    raise CostError(f"{where}: {path}: unknown entry (allowed: {_join(allowed)})")
                if not isinstance(ov, Mapping):
                    raise CostError(f"{where}: {path}: must be a mapping with {_join(sorted(_OVERRIDE_REQUIRED))}")
                extra = set(ov) - _OVERRIDE_KEYS
                if extra:
                    raise CostError(
                        f"{where}: {path}.{sorted(extra)[0]}: unknown key (allowed: {_join(sorted(_OVERRIDE_KEYS))})"
                    )
                missing = _OVERRIDE_REQUIRED - set(ov)
                if missing:
                    raise CostError(f"{where}: {path}: missing {_join(sorted(missing))} (every entry needs a source)")
                if not _is_number(ov["value"]) or ov["value"] < 0:
                    raise CostError(f"{where}: {path}.value: must be a number >= 0, got {ov['value']!r}")
                want = table.entries[f"{key}.{name}"].unit
                if str(ov["unit"]) != want:
                    raise CostError(f"{where}: {path}.unit: must be '{want}', got {ov['unit']!r}")
                if not str(ov["source"]).strip():
                    raise CostError(f"{where}: {path}.source: must not be empty")
                if "tag" in ov and ov["tag"] not in TAGS:
                    raise CostError(f"{where}: {path}.tag: must be one of {_join(TAGS)}, got {ov['tag']!r}")
                if "node_nm" in ov and ov["node_nm"] not in table.nodes:
                    raise CostError(f"{where}: {path}.node_nm: must be one of {_join(table.nodes)}")


def _parse_table(raw: Any, origin: str) -> CostTable:
    if not isinstance(raw, Mapping):
        raise CostError(f"{origin}: the top level must be a mapping")
    allowed_top = {"schema", "node_nm", "scaling", *SECTIONS}
    for key in raw:
        if key not in allowed_top:
            raise CostError(f"{origin}: {key}: unknown key (allowed: {_join(sorted(allowed_top))})")
    if raw.get("schema") != TABLE_SCHEMA:
        raise CostError(f"{origin}: schema: must be '{TABLE_SCHEMA}', got {raw.get('schema')!r}")
    node = raw.get("node_nm")
    if not isinstance(node, int):
        raise CostError(f"{origin}: node_nm: must be an integer (nm), got {node!r}")
    entries: dict[str, Entry] = {}
    for section in SECTIONS:
        block = raw.get(section)
        if not isinstance(block, Mapping) or not block:
            raise CostError(f"{origin}: {section}: required section is missing or empty")
        keys = _PARAM_KEYS if section == "params" else _ENTRY_KEYS
        for name, e in block.items():
            path = f"{section}.{name}"
            if not isinstance(e, Mapping):
                raise CostError(f"{origin}: {path}: must be a mapping with {_join(sorted(keys))}")
            if set(e) != keys:
                diff = sorted(set(e) ^ keys)
                raise CostError(f"{origin}: {path}: keys must be exactly {_join(sorted(keys))} (check {_join(diff)})")
            if not _is_number(e["value"]) or e["value"] < 0:
                raise CostError(f"{origin}: {path}.value: must be a number >= 0, got {e['value']!r}")
            if not str(e["source"]).strip() or not str(e["unit"]).strip():
                raise CostError(f"{origin}: {path}: unit and source must not be empty")
            if e["tag"] not in TAGS:
                raise CostError(f"{origin}: {path}.tag: must be one of {_join(TAGS)}, got {e['tag']!r}")
            scaling = e.get("scaling", "none")
            if scaling not in SCALING_CLASSES:
                raise CostError(f"{origin}: {path}.scaling: must be one of {_join(SCALING_CLASSES)}, got {scaling!r}")
            entries[path] = Entry(section, name, float(e["value"]), str(e["unit"]), str(e["source"]), e["tag"], scaling)
    sc = raw.get("scaling")
    if not isinstance(sc, Mapping) or set(sc) != set(SCALING_KEYS):
        raise CostError(f"{origin}: scaling: must have exactly {_join(SCALING_KEYS)}")
    scaling: dict[str, dict[int, float]] = {}
    sources: dict[str, str] = {}
    nodes: set[int] | None = None
    for key, block in sc.items():
        if not isinstance(block, Mapping) or set(block) != {"unit", "tag", "values", "source"}:
            raise CostError(f"{origin}: scaling.{key}: keys must be exactly unit, tag, values, source")
        vals = block["values"]
        if not isinstance(vals, Mapping) or not all(
            isinstance(k, int) and _is_number(v) and v > 0 for k, v in vals.items()
        ):
            raise CostError(f"{origin}: scaling.{key}.values: must map node (nm, integer) to a positive factor")
        if node not in vals or vals[node] != 1.0:
            raise CostError(f"{origin}: scaling.{key}.values: the table's node {node} must have factor 1.0")
        if nodes is not None and set(vals) != nodes:
            raise CostError(
                f"{origin}: scaling.{key}.values: every class must list the same nodes ({_join(sorted(nodes))})"
            )
        nodes = set(vals)
        scaling[key] = {int(k): float(v) for k, v in vals.items()}
        sources[key] = str(block["source"])
    table = CostTable(node_nm=node, entries=entries, scaling=scaling, scaling_sources=sources, origin=origin)
    _check_required(table)
    return table


#: Entries the model reads; a table without one of them is an error (caught at load time, not at use).
REQUIRED_ENTRIES = (
    *(f"energy.mac_{d}_acc32" for d in DATATYPES),
    *(f"area.mac_{d}_acc32" for d in DATATYPES),
    *(f"{s}.{n}" for s in ("energy", "area") for n in ("mul_bf16", "add_fp32", "mul_fp32", "div_sqrt_fp32")),
    "energy.dequant_bf16",  # serving scenarios (accelsim.serving.dtypes)
    "area.dequant_bf16",
    *(f"{s}.{n}" for s in ("energy", "area") for n in ("register_bit", "comparator_bit", "mux2_bit", "adder_bit")),
    "energy.sram_read_64b_8kib",
    "energy.dram_bit",
    "energy.crossbar_bit",
    "energy.leakage_logic_per_um2_cycle",
    "energy.leakage_sram_per_mib_cycle",
    "area.crossbar_bit",
    "area.sram_mib",
    "params.mac_gated_fraction",
    "params.activity",
    "params.sram_energy_exponent",
    "params.sram_write_read_ratio",
    "params.median_bisection_passes",
    "params.leakage_scale",
    "params.mux2_delay_ps",
)


def _check_required(table: CostTable) -> None:
    missing = [k for k in REQUIRED_ENTRIES if k not in table.entries]
    if missing:
        raise CostError(f"{table.origin}: missing entries {_join(missing)}")
    extra = [k for k in table.entries if k not in REQUIRED_ENTRIES]
    if extra:
        raise CostError(f"{table.origin}: entries the model does not use: {_join(extra)} (a price needs a use)")


def load_table(path: str | Path) -> CostTable:
    """Read and validate a cost table YAML file (duplicate keys are errors)."""
    try:
        raw = read_yaml(path)
    except CostError:
        raise
    except ConfigError as exc:
        raise CostError(str(exc)) from None
    return _parse_table(raw, str(path))


@lru_cache(maxsize=1)
def default_table() -> CostTable:
    """The shipped 45 nm table (``accelsim/cost/default_45nm.yaml``), loaded once."""
    ref = resources.files("accelsim.cost") / "default_45nm.yaml"
    with resources.as_file(ref) as p:
        table = load_table(p)
    return replace(table, origin="default_45nm.yaml")
