"""Hardware description: validated, frozen pydantic models loaded from YAML.

Every quantity carries its unit in its name. Unknown keys, wrong types, out-of-range values and ``n > m``
are errors that name the file, the key path and what is allowed (see :func:`load_hw`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accelsim.config.yaml_io import ConfigError, format_validation_error, read_yaml

SCHEMA_VERSION = 1
ElemBytes = Annotated[float, Field(gt=0, le=8, multiple_of=0.5)]


class _Model(BaseModel):
    # strict: "8" and true are not integers and 8.5 is not an integer (no silent coercion); an int is a float
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, strict=True)


class Precision(_Model):
    """Bytes per element of each operand (bf16 with fp32 accumulation is 2/2/4/2; int4 weights are 0.5)."""

    activation_bytes: ElemBytes = 2
    """Bytes per activation element read by the array."""
    weight_bytes: ElemBytes = 2
    """Bytes per weight element (0.5 for int4, 1 for int8)."""
    accumulator_bytes: ElemBytes = 4
    """Bytes per partial sum held in the output buffer."""
    output_bytes: ElemBytes = 2
    """Bytes per output element written back to DRAM."""


class Mma(_Model):
    """A tensor-core-like matrix unit: one instruction computes a ``tokens x outputs x reduction`` block."""

    units: int = Field(ge=1, le=1024)
    """Independent matrix units; the instructions of a tile are spread over them."""
    tokens: int = Field(ge=1, le=256)
    """Instruction rows ``t`` (tokens); decode pads them and shows as lost utilisation."""
    outputs: int = Field(ge=1, le=256)
    """Instruction columns ``o`` (output channels)."""
    reduction: int = Field(ge=1, le=256)
    """Instruction depth ``k`` in kept (compressed) reduction elements."""
    issue_interval_cycles: int = Field(ge=1, le=1024)
    """Cycles between two instructions on one unit (the unit's throughput)."""
    latency_cycles: int = Field(ge=0, le=4096)
    """Pipeline depth of an instruction: paid once per compute tile (fill/drain)."""
    operand_buffer_read_bytes_per_cycle: float = Field(gt=0, le=1 << 20)
    """Operand-buffer read port shared by all units, in bytes per cycle; a sparse instruction reads the candidate
    rows of every group it touches (``accelsim.sim.operands``), so the port can limit issue. Priced in area and
    energy as a crossbar from the buffer's banks to the units (``area/energy.crossbar_bit`` per port bit)."""
    accumulator_registers: bool = True
    """Accumulators stay in the unit's registers across the instructions of one reduction tile (as a tensor core's
    accumulator fragments); the output buffer sees one read-modify-write per chain. ``false``: every instruction
    read-modify-writes the output buffer."""


class Systolic(_Model):
    """A rows x cols systolic array (``ws`` or ``os``)."""

    rows: int = Field(ge=1, le=4096)
    """Array rows ``R`` (ws: reduction; os: tokens)."""
    cols: int = Field(ge=1, le=4096)
    """Array columns ``C`` (output channels)."""
    weight_load_rows_per_cycle: int = Field(default=1, ge=1, le=4096)
    """``ws``: weight rows written into the array per cycle when a fold is loaded."""
    os_weight_link_factor: float = Field(default=1.0, ge=1.0, le=64.0)
    """``os``: width of the weight links relative to dense; N:M shortens a fold's stream only if >= m/n."""


class Array(_Model):
    """The compute array."""

    dataflow: Literal["ws", "os", "mma"]
    """``ws`` weight-stationary systolic, ``os`` output-stationary systolic, ``mma`` tensor-core-like."""
    mma: Mma | None = None
    """Required for ``dataflow: mma``."""
    systolic: Systolic | None = None
    """Required for ``dataflow: ws`` and ``os``."""
    scalesim_compat: bool = False
    """SCALE-Sim's setting: no overlap of weight loading with compute and its -1 cycle per site (ws/os)."""

    @model_validator(mode="after")
    def _section_for_dataflow(self) -> Array:
        if self.dataflow == "mma" and self.mma is None:
            raise ValueError("dataflow 'mma' needs an 'mma' section")
        if self.dataflow in ("ws", "os") and self.systolic is None:
            raise ValueError(f"dataflow '{self.dataflow}' needs a 'systolic' section")
        if self.scalesim_compat and self.dataflow == "mma":
            raise ValueError("scalesim_compat applies to the ws and os dataflows only")
        return self


class Sram(_Model):
    """On-chip buffers. Activation and weight buffers are double buffered: a tile uses half of each."""

    activation_buffer_bytes: int = Field(ge=64, le=1 << 40)
    """Activation buffer; an activation tile of dense ``T_tile x K`` activations (``T_tile x K_tile`` with
    ``activation_tiling: k_tiled``) uses at most half."""
    weight_buffer_bytes: int = Field(ge=64, le=1 << 40)
    """Weight buffer; a weight tile ``K_tile x O_tile`` uses at most half."""
    output_buffer_bytes: int = Field(ge=64, le=1 << 40)
    """Accumulators of two output tiles (one computing, one writing back)."""
    max_tokens_per_tile: int = Field(default=128, ge=1, le=1 << 40)
    """Upper bound on the tokens of a tile (the union of their masks decides gather_rows traffic)."""
    activation_tiling: Literal["full_k", "k_tiled", "auto"] = "full_k"
    """``full_k``: an activation tile holds ``T_tile x K`` (every reduction tile of its tokens; read once per token
    tile), so a wide ``K`` forces few tokens per tile. ``k_tiled``: an activation tile holds ``T_tile x K_tile`` (one
    reduction span, partial sums on chip), read again for every output tile, so ``T_tile`` can grow and the weights
    are streamed fewer times. ``auto``: per site, ``k_tiled`` when it lowers the closed-form DRAM bytes
    ``token tiles x weight bytes + activation reads x activation bytes`` (docs/timing-model.md, "K-tiled activation
    tiles")."""


class Dram(_Model):
    """One shared DRAM channel: reads and writes contend for it."""

    bandwidth_gb_per_s: float = Field(ge=1e-3)
    """Peak bandwidth in 1e9 bytes per second (``.inf`` for SCALE-Sim's stall-free setting)."""
    latency_cycles: int = Field(ge=0, le=100_000)
    """Access latency added to every transfer after its bytes have crossed the channel."""
    burst_bytes: int = Field(default=64, ge=1, le=1 << 20)
    """Transfer granule: gathered weight rows are rounded up to whole bursts."""
    gather_segment_overhead_cycles: float = Field(default=0.0, ge=0, le=10_000)
    """Channel cycles lost per run of consecutive gathered weight rows (a row activation that the bank parallelism
    does not hide). A dense tile read is one run. Shipped configs: 0.25 (JESD235 HBM2 tRRD_S = 4 tCK per
    pseudo-channel over 16 pseudo-channels; docs)."""
    prefetch_next_site: bool = False
    """Cross-site weight prefetch (off: every site starts cold). On: the next site's first weight tile is fetched in
    the DRAM channel's idle cycles while the current site computes its last tile, when its transfer fits those idle
    cycles (with ``gather_rows`` only when the next site reuses the on-chip input, whose mask is then known). See
    docs/timing-model.md, "Cross-site weight prefetch"."""


class Compressor(_Model):
    """Run-time top-n-of-m compressor."""

    groups_per_cycle: int = Field(ge=1, le=1 << 20)
    """Groups of m activations (unstructured: token rows) selected per cycle."""
    cycles_per_group: int = Field(default=1, ge=1, le=4096)
    """Cycles one lane spends on a group: 1 for a pipelined network, the value-bit passes of a radix select."""
    latency_cycles: int = Field(ge=0, le=4096)
    """Pipeline latency from a token tile's last group in to its compressed tile out."""
    placement: Literal["consumer", "producer"] = "consumer"
    """``consumer``: on the critical path of the consuming site. ``producer``: overlapped with the producer;
    the site then reads compressed activations and metadata from DRAM."""


class Decoder(_Model):
    kind: Literal["mux", "crossbar", "benes", "none"] | None = None
    """How multipliers reach their weights (default: ``mux`` for N:M, ``crossbar`` for unstructured).
    ``mux``: N:M, an m:1 mux per multiplier over the candidate rows of the
    groups an instruction touches. ``crossbar``: unstructured in lockstep, each instruction reads the union of its
    tokens' rows and every multiplier selects among up to ``tokens x reduction`` of them. ``benes``: unstructured
    on a flexible engine (SIGMA-like): kept activations stationary, weights distributed by a Benes network.
    ``none``: a dense array on the compacted rows of ``gather_rows`` (TEAL-like; decode saving only)."""
    latency_cycles: int = Field(ge=0, le=4096)
    """Extra pipeline latency of the selection, paid once per compute tile (array fill)."""


class MetadataBuffer(_Model):
    capacity_bytes: int = Field(ge=1, le=1 << 40)
    """Holds the metadata of two activation tiles (double buffered); limits tokens per tile."""
    read_bytes_per_cycle: float = Field(ge=1e-3, le=1 << 20)
    """Read bandwidth towards the array; can limit instruction issue."""


class Sparsity(_Model):
    """The sparsity hardware. ``dense`` has none of compressor, decoder or metadata buffer."""

    kind: Literal["dense", "nm", "unstructured"]
    """``dense`` (no sparsity hardware), ``nm`` (n of every m), ``unstructured`` (per-token top-k)."""
    n: int | None = Field(default=None, ge=1, le=1024)
    """N:M: values kept per group (``kind: nm``)."""
    m: int | None = Field(default=None, ge=1, le=1024)
    """N:M: group size in consecutive input channels (``kind: nm``)."""
    density: float | None = Field(default=None, gt=0, le=1)
    """Unstructured: kept fraction per token (per-token top-k)."""
    selection: Literal["dynamic", "static_first_n"] = "dynamic"
    """``dynamic``: run-time top-n by ``|x|``; ``static_first_n``: SCALE-Sim's static shared weight mask."""
    weight_fetch: Literal["dense", "gather_rows"] = "dense"
    """``gather_rows`` reads only the weight rows some token of the tile keeps, rounded to bursts."""
    metadata_format: Literal["index", "bitmask"] = "index"
    """``index``: ceil(log2 m) bits per kept value (unstructured: ceil(log2 K)); ``bitmask``: m bits per group
    (unstructured: one bit per channel)."""
    mitigation: Literal["none", "var", "median_shift", "static_shift", "learnable", "var_learnable"] = "none"
    """Error-mitigation hardware priced by the cost model (counted as actions; no extra cycles)."""
    compressor: Compressor | None = None
    """Required unless ``kind: dense``."""
    decoder: Decoder | None = None
    """Required unless ``kind: dense``."""
    metadata_buffer: MetadataBuffer | None = None
    """Required unless ``kind: dense``."""

    @model_validator(mode="after")
    def _consistent(self) -> Sparsity:
        if self.kind == "dense":
            for key in ("n", "m", "density", "compressor", "decoder", "metadata_buffer"):
                if getattr(self, key) is not None:
                    raise ValueError(f"kind 'dense' has no '{key}': remove it")
            if self.weight_fetch != "dense":
                raise ValueError("kind 'dense' reads every weight row: weight_fetch must be 'dense'")
            if self.mitigation != "none":
                raise ValueError("kind 'dense' has no mitigation: mitigation must be 'none'")
            return self
        if self.kind == "nm":
            if self.n is None or self.m is None:
                raise ValueError("kind 'nm' needs 'n' and 'm'")
            if self.n > self.m:
                raise ValueError(f"n must be <= m, got n={self.n} > m={self.m}")
            if self.density is not None:
                raise ValueError("kind 'nm' has no 'density' (that is for 'unstructured')")
        if self.kind == "unstructured":
            if self.density is None:
                raise ValueError("kind 'unstructured' needs 'density' in (0, 1]")
            if self.n is not None or self.m is not None:
                raise ValueError("kind 'unstructured' has no 'n'/'m' (it keeps the top density*K per token)")
            if self.selection != "dynamic":
                raise ValueError("kind 'unstructured' supports selection 'dynamic' only")
        for key in ("compressor", "decoder", "metadata_buffer"):
            if getattr(self, key) is None:
                raise ValueError(f"kind '{self.kind}' needs a '{key}' section")
        assert self.decoder is not None
        allowed = ("mux",) if self.kind == "nm" else ("crossbar", "benes", "none")
        if self.decoder_kind not in allowed:
            raise ValueError(
                f"decoder.kind '{self.decoder_kind}' does not serve kind '{self.kind}' (allowed: {', '.join(allowed)})"
            )
        if self.decoder_kind == "none" and self.weight_fetch != "gather_rows":
            raise ValueError("decoder.kind 'none' (dense array on compacted rows) needs weight_fetch 'gather_rows'")
        return self

    @property
    def decoder_kind(self) -> str:
        """The selection hardware in use: ``dense`` without one, else ``decoder.kind`` or its default."""
        if self.kind == "dense" or self.decoder is None:
            return "dense"
        return self.decoder.kind or ("mux" if self.kind == "nm" else "crossbar")

    @property
    def ratio(self) -> float:
        """Kept fraction: ``n/m``, ``density`` or 1."""
        if self.kind == "nm":
            assert self.n is not None and self.m is not None
            return self.n / self.m
        if self.kind == "unstructured":
            assert self.density is not None
            return self.density
        return 1.0

    @property
    def label(self) -> str:
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        if self.kind == "unstructured":
            return f"unstructured{self.density:g}"
        return "dense"


class HwConfig(_Model):
    """One accelerator: array, clock, buffers, DRAM and sparsity hardware."""

    schema_version: Literal[1] = 1
    """Version of this config schema."""
    name: str = Field(min_length=1, max_length=200)
    """Name shown in reports (e.g. ``nm8_16``)."""
    clock_hz: float = Field(gt=0, le=1e11)
    """Clock of the array, buffers and DRAM interface (cycles are counted at this clock)."""
    precision: Precision = Precision()
    """Bytes per element of each operand."""
    array: Array
    """The compute array and its dataflow."""
    sram: Sram
    """On-chip buffer capacities."""
    dram: Dram
    """The off-chip memory channel."""
    sparsity: Sparsity
    """The sparsity hardware (the only section in which the shipped configs differ)."""
    cost: dict[str, Any] | None = None
    """Per-config overrides of the energy/area tables (see docs/cost-model.md); validated by the cost model."""

    @model_validator(mode="after")
    def _cross(self) -> HwConfig:
        sp = self.sparsity
        if sp.kind == "unstructured" and self.array.dataflow == "ws":
            raise ValueError(
                "sparsity kind 'unstructured' needs a K:1 crossbar per multiplier input, which a "
                "weight-stationary array cannot feed: use dataflow 'mma' or 'os'"
            )
        if sp.selection == "static_first_n" and sp.weight_fetch != "dense":
            raise ValueError("selection 'static_first_n' (SCALE-Sim's static mask) needs weight_fetch 'dense'")
        return self

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM bandwidth in bytes per cycle at the clock (``inf`` when the bandwidth is infinite)."""
        return self.dram.bandwidth_gb_per_s * 1e9 / self.clock_hz

    @property
    def peak_macs_per_cycle(self) -> int:
        a = self.array
        if a.dataflow == "mma":
            assert a.mma is not None
            mm = a.mma
            return math.floor(mm.units * mm.tokens * mm.outputs * mm.reduction / mm.issue_interval_cycles)
        assert a.systolic is not None
        return a.systolic.rows * a.systolic.cols

    def digest(self) -> str:
        """sha256 of the canonical JSON of the validated config (independent of YAML formatting)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load_hw(path: str | Path) -> HwConfig:
    """Read and validate a hardware YAML file. The ``cost:`` section is checked where the cost model is
    applied (``accelsim.cost.check_cost_section``, called by the CLI and the API when they load a config).

    Raises:
        ConfigError: one line naming the file, the key path and what is allowed.
    """
    raw = read_yaml(path)
    try:
        cfg = HwConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    return cfg
