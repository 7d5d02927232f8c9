"""Energy (pJ) and area (um^2) proxies of an accelsim hardware config, by component.

Energy = action counts from the simulator x per-action prices (the Accelergy / Sparseloop method); area = an
inventory of the config's hardware x per-unit areas. Every number comes from a YAML table with a value, a
unit and a source (``default_45nm.yaml`` in this package), scaled to 16/7/5 nm on request and overridable
per config (``cost:`` section). Formulas and sources: ``docs/cost-model.md``.

    from accelsim.cost import energy_breakdown, area_breakdown, sparsity_area_overhead
"""

from accelsim.cost.model import (
    AREA_COMPONENTS,
    ENERGY_COMPONENTS,
    SPARSITY_AREA_COMPONENTS,
    Hardware,
    action_prices,
    area_breakdown,
    area_from_hardware,
    energy_breakdown,
    energy_by_site,
    energy_from_prices,
    hardware,
    sparsity_area_overhead,
)
from accelsim.cost.table import COST_KEYS, CostError, CostTable, check_cost_section, default_table, load_table

__all__ = [
    "AREA_COMPONENTS",
    "COST_KEYS",
    "ENERGY_COMPONENTS",
    "SPARSITY_AREA_COMPONENTS",
    "CostError",
    "CostTable",
    "Hardware",
    "action_prices",
    "area_breakdown",
    "area_from_hardware",
    "check_cost_section",
    "default_table",
    "energy_breakdown",
    "energy_by_site",
    "energy_from_prices",
    "hardware",
    "load_table",
    "sparsity_area_overhead",
]
