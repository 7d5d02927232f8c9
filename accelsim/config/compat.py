"""The SCALE-Sim compatibility machine (``array.scalesim_compat``): one tile per site, no weight-load overlap,
ideal memory. Used to check accelsim against SCALE-Sim's cycle formulas (tests and benchmarks)."""

from __future__ import annotations

from accelsim.config.hw import HwConfig

#: Buffer size that never limits a tile (bytes).
HUGE = 1 << 40


def scalesim_compat_hw(
    dataflow: str,
    rows: int,
    cols: int,
    sparsity: dict | None = None,
    *,
    weight_bytes: float = 2,
    name: str = "scalesim-compat",
) -> HwConfig:
    """A ``rows x cols`` systolic array of ``dataflow`` (``ws`` / ``os``) in SCALE-Sim compatibility mode."""
    return HwConfig.model_validate(
        {
            "name": name,
            "clock_hz": 1e9,
            "precision": {
                "activation_bytes": 2,
                "weight_bytes": weight_bytes,
                "accumulator_bytes": 4,
                "output_bytes": 2,
            },
            "array": {
                "dataflow": dataflow,
                "scalesim_compat": True,
                "systolic": {"rows": rows, "cols": cols, "weight_load_rows_per_cycle": 1},
            },
            "sram": {
                "activation_buffer_bytes": HUGE,
                "weight_buffer_bytes": HUGE,
                "output_buffer_bytes": HUGE,
                "max_tokens_per_tile": 1 << 30,
            },
            "dram": {"bandwidth_gb_per_s": float("inf"), "latency_cycles": 0},
            "sparsity": sparsity or {"kind": "dense"},
        }
    )
