"""Energy and area proxies: pure functions of a validated hardware config and the simulator's action counts.

Energy is the Accelergy method: ``sum over actions of count x price``, where an action's price may fall on
several components (a weight-buffer read also writes the PE's operand registers). Area is an inventory of
the hardware the config describes, each item times a per-unit area. Every number comes from the cost table
(:mod:`accelsim.cost.table`); every formula is written out in ``docs/cost-model.md``.

Vocabulary (``hw`` symbols): ``P`` physical multipliers (``peak_macs_per_cycle``), ``w_a``/``w_w``/``w_acc``
operand bits, ``t x o x k`` the mma instruction, ``R x C`` a systolic array, ``m`` the selection width (``m``
for N:M, ``K_max`` for unstructured), ``b = ceil(log2 m)`` the index bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from accelsim.config.hw import HwConfig
from accelsim.cost.networks import comparators
from accelsim.cost.table import CostError, CostTable, check_cost_section, default_table
from accelsim.sim.actions import ACTIONS, Action
from accelsim.sim.operands import candidate_rows

__all__ = [
    "AREA_COMPONENTS",
    "ENERGY_COMPONENTS",
    "SPARSITY_AREA_COMPONENTS",
    "Hardware",
    "action_prices",
    "area_breakdown",
    "energy_breakdown",
    "energy_by_site",
    "hardware",
    "sparsity_area_overhead",
]

ENERGY_COMPONENTS = (
    "mac",
    "pe_registers",
    "decoder_mux",
    "bitmask_decoder",
    "compressor",
    "metadata_buffer",
    "operand_port",
    "act_sram",
    "weight_sram",
    "out_sram",
    "leakage",
    "dram_weight",
    "dram_activation",
    "dram_metadata",
    "dram_output",
    "mitigation",
)
"""Components of :func:`energy_breakdown` (pJ), in report order."""

AREA_COMPONENTS = (
    "mac",
    "pe_registers",
    "weight_candidate_registers",
    "metadata_registers",
    "decoder_mux",
    "bitmask_decoder",
    "compressor",
    "metadata_buffer",
    "operand_port",
    "act_sram",
    "weight_sram",
    "out_sram",
    "mitigation",
)
"""Components of :func:`area_breakdown` (um^2), in report order."""

SPARSITY_AREA_COMPONENTS = (
    "weight_candidate_registers",
    "metadata_registers",
    "decoder_mux",
    "bitmask_decoder",
    "compressor",
    "metadata_buffer",
    "mitigation",
)
"""The area a dense machine does not have (zero for ``dense.yaml``)."""

_UM2_PER_MM2 = 1e6
_SRAM_REF_BYTES = 8192  # the capacity of energy.sram_read_64b_8kib


def _log2c(x: int) -> int:
    return max(1, math.ceil(math.log2(x))) if x > 1 else 1


@dataclass(frozen=True)
class Hardware:
    """The resolved cost view of one config: its node, datatype, table and hardware inventory."""

    name: str
    table: CostTable
    node_nm: int
    datatype: str
    network: str
    dataflow: str
    lanes: int  # P physical multipliers
    w_a: int
    w_w: int
    w_acc: int
    dynamic: bool  # run-time selection hardware present (compressor, decoder, metadata)
    kind: str
    metadata_format: str
    decoder_kind: str  # dense, mux, crossbar, benes, none
    sel_inputs: int  # m:1 mux width per multiplier (1: no mux)
    benes_stages: int  # stages of the Benes distribution network (decoder kind benes)
    port_bits: int  # operand-buffer read port width in bits (mma)
    port_units: int  # consumers the port crossbar reaches
    sel_bits: int
    n_keep: int  # values kept per selection group
    k_max: int  # widest reduction tile the tiling rule can give (unstructured selection width)
    operand_register_bits: int  # dense operand + accumulator registers of the whole array
    candidate_register_bits: int  # extra weight-candidate registers (sparse)
    metadata_register_bits: int
    bitmask_converters: int
    compressor_lanes: int
    compressor_width: int  # m (N:M) or K_max (unstructured)
    compressor_keep: int
    compressor_latency: int
    compressor_comparators: int
    epilogue_lanes: int
    mitigation: str
    sram_bytes: Mapping[str, int]

    def v(self, key: str) -> float:
        """Table value at this config's node."""
        return self.table.value(key, self.node_nm)

    @property
    def ce_compare_bits(self) -> int:
        """Comparator width of one compare-exchange: magnitude ``w_a - 1`` bits + index tie-break bits."""
        return (self.w_a - 1) + _log2c(self.compressor_width)

    @property
    def ce_payload_bits(self) -> int:
        """Bits a compare-exchange swaps: the value (with sign) and its channel index."""
        return self.w_a + _log2c(self.compressor_width)

    @property
    def elements_per_cycle(self) -> int:
        """Activations entering the compressor per cycle (sizing of the VAR / median front end)."""
        return self.compressor_lanes * self.compressor_width


def _datatype(hw: HwConfig, cost: Mapping) -> str:
    if "datatype" in cost:
        return str(cost["datatype"])
    pr = hw.precision
    if pr.activation_bytes == pr.weight_bytes == 2 and pr.accumulator_bytes == 4:
        return "bf16"  # the shipped configs: bf16 operands, fp32 accumulation
    if pr.activation_bytes == pr.weight_bytes == 1 and pr.accumulator_bytes == 4:
        return "int8"
    raise CostError(
        f"{hw.name}: no MAC entry for precision activation/weight/accumulator bytes "
        f"{pr.activation_bytes:g}/{pr.weight_bytes:g}/{pr.accumulator_bytes:g}: set cost.datatype "
        "(allowed: int8, fp16, bf16)"
    )


def _k_max(hw: HwConfig) -> int:
    """Largest ``K_tile`` of the tiling rule (weight-buffer bound, outputs of one granule)."""
    from accelsim.sim.tiling import granules

    _, g_k, g_o = granules(hw)
    k_fit = math.floor(hw.sram.weight_buffer_bytes / 2 / (g_o * hw.precision.weight_bytes))
    return max(1, k_fit // g_k * g_k if k_fit >= g_k else k_fit)


def hardware(
    hw: HwConfig,
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
    where: str | None = None,
) -> Hardware:
    """Resolve ``hw`` (with its ``cost:`` overrides) into the inventory the prices and areas are built from.

    Args:
        table: the base table (default: the shipped 45 nm table); ``hw.cost`` overrides apply on top.
        node_nm: technology node; default ``hw.cost.node_nm``, else the table's node.
        where: name for error messages (the config's file); default the config's name.
    """
    base = table or default_table()
    where = where or f"config '{hw.name}'"
    cost = dict(hw.cost or {})
    check_cost_section(cost, where, base)
    tab = base.with_overrides(cost, where)
    node = int(node_nm if node_nm is not None else cost.get("node_nm", tab.node_nm))
    tab.factor("energy", "logic", node)  # validates the node
    sp, pr, arr = hw.sparsity, hw.precision, hw.array
    w_a, w_w, w_acc = round(pr.activation_bytes * 8), round(pr.weight_bytes * 8), round(pr.accumulator_bytes * 8)
    dynamic = sp.kind != "dense" and sp.selection == "dynamic"
    dec = sp.decoder_kind if dynamic else "dense"
    k_max = _k_max(hw)
    if sp.kind == "nm":
        assert sp.n is not None and sp.m is not None
        sel, keep = sp.m, sp.n
    elif sp.kind == "unstructured":
        assert sp.density is not None
        keep = min(k_max, max(1, round(sp.density * k_max)))
        sel = k_max
    else:
        sel, keep = 1, 1
    if not dynamic:
        sel, keep = 1, 1
    comp_width = sel  # the compressor selects over a group (N:M) or a whole row (unstructured)
    if dec == "crossbar":  # each multiplier selects among the rows its instruction's tokens use
        mm0 = arr.mma
        lockstep = mm0.tokens * mm0.reduction if mm0 is not None else k_max
        sel = int(cost.get("unstructured_select_inputs", min(k_max, lockstep)))
    elif dec in ("benes", "none"):
        sel = 1
    sel_bits = _log2c(sel) if sel > 1 else 0
    bitmask = dynamic and sp.kind == "nm" and sp.metadata_format == "bitmask"
    # --- registers and selection per dataflow ------------------------------------------------------------
    if arr.dataflow == "mma":
        assert arr.mma is not None
        mm = arr.mma
        t, o, k, units = mm.tokens, mm.outputs, mm.reduction, mm.units
        operand = units * (t * k * w_a + k * o * w_w + t * o * w_acc)
        if dec == "mux":
            rows = candidate_rows(k, keep, sel)  # every real row of the groups an instruction touches
        elif dec == "crossbar":
            rows = sel  # the union of its tokens' rows, up to tokens x reduction
        else:
            rows = k
        cand = units * (rows - k) * o * w_w
        meta = units * t * k * sel_bits
        if dec == "benes":  # the channel index of every stationary activation steers the network
            meta = hw.peak_macs_per_cycle * _log2c(k_max)
        converters = units * t * math.ceil(k / keep) if bitmask else 0
        epilogue = units
    else:
        assert arr.systolic is not None
        R, C = arr.systolic.rows, arr.systolic.cols  # noqa: N806
        operand = R * C * (w_a + w_w + w_acc)
        if dynamic and sp.kind == "nm":
            factor = sel / keep if arr.dataflow == "ws" else max(1.0, arr.systolic.os_weight_link_factor)
            cand = round(R * C * (factor - 1) * w_w)
        elif dynamic:  # unstructured (os only): each column's K_max weights, shared down the column
            cand = C * k_max * w_w
        else:
            cand = 0
        meta = R * C * sel_bits
        converters = math.ceil(R / keep) if bitmask else 0
        epilogue = C
    if not dynamic:
        cand = meta = 0
    comp = sp.compressor if dynamic else None
    network = str(cost.get("compressor_network", "odd_even_merge_top_n"))
    width = comp_width if comp is not None else 1
    mm1 = arr.mma if arr.dataflow == "mma" else None
    return Hardware(
        name=hw.name,
        table=tab,
        node_nm=node,
        datatype=_datatype(hw, cost),
        network=network,
        dataflow=arr.dataflow,
        lanes=hw.peak_macs_per_cycle,
        w_a=w_a,
        w_w=w_w,
        w_acc=w_acc,
        dynamic=dynamic,
        kind=sp.kind,
        metadata_format=sp.metadata_format if sp.kind == "nm" else "index",
        decoder_kind=dec,
        sel_inputs=sel,
        sel_bits=sel_bits,
        benes_stages=2 * _log2c(hw.peak_macs_per_cycle) - 1 if dec == "benes" else 0,
        port_bits=round(mm1.operand_buffer_read_bytes_per_cycle * 8) if mm1 is not None else 0,
        port_units=mm1.units if mm1 is not None else 0,
        n_keep=keep,
        k_max=k_max,
        operand_register_bits=int(operand),
        candidate_register_bits=int(cand),
        metadata_register_bits=int(meta),
        bitmask_converters=int(converters),
        compressor_lanes=comp.groups_per_cycle if comp is not None else 0,
        compressor_width=width,
        compressor_keep=keep if comp is not None else 1,
        compressor_latency=comp.latency_cycles if comp is not None else 0,
        compressor_comparators=comparators(width, keep, network) if comp is not None else 0,
        epilogue_lanes=epilogue,
        mitigation=sp.mitigation,
        sram_bytes={
            "act_sram": hw.sram.activation_buffer_bytes,
            "weight_sram": hw.sram.weight_buffer_bytes,
            "out_sram": hw.sram.output_buffer_bytes,
            "metadata_buffer": sp.metadata_buffer.capacity_bytes if (dynamic and sp.metadata_buffer) else 0,
        },
    )


# --- per-action energies --------------------------------------------------------------------------------------


def _sram_bit(h: Hardware, capacity: int, write: bool) -> float:
    """pJ per bit of one SRAM access: ``E64(C) = E64(8 KiB) (C / 8 KiB)^x`` over 64 bits (x write/read ratio)."""
    e64 = h.v("energy.sram_read_64b_8kib") * (capacity / _SRAM_REF_BYTES) ** h.v("params.sram_energy_exponent")
    return e64 / 64 * (h.v("params.sram_write_read_ratio") if write else 1.0)


def _mac_energy(h: Hardware) -> float:
    return h.v(f"energy.mac_{h.datatype}_acc32")


def compressor_group_energy(h: Hardware) -> float:
    """pJ per group: every compare-exchange once (comparator + 2 payload muxes at activity), plus the
    pipeline registers ``latency x width x payload`` bits."""
    if h.compressor_lanes == 0:
        return 0.0
    if h.network == "bisection_top_k":  # one counting pass per value bit over the row, then the index prefix count
        per_elem = h.w_a * h.v("energy.comparator_bit") + _log2c(h.compressor_width) * h.v("energy.adder_bit")
        return h.v("params.median_bisection_passes") * h.compressor_width * per_elem + h.compressor_width * h.w_a * h.v(
            "energy.register_bit"
        )
    ce = h.ce_compare_bits * h.v("energy.comparator_bit") + 2 * h.ce_payload_bits * h.v("params.activity") * h.v(
        "energy.mux2_bit"
    )
    regs = h.compressor_latency * h.compressor_width * h.ce_payload_bits * h.v("energy.register_bit")
    return h.compressor_comparators * ce + regs


def _converter_bits(h: Hardware) -> tuple[int, int]:
    """(adder bits, comparator bits) of one bitmask -> index converter over ``m`` bits keeping ``n``."""
    b = _log2c(h.sel_inputs + 1)
    return h.sel_inputs * b, h.n_keep * h.sel_inputs * b


def _median_token_energy(h: Hardware) -> float:
    """pJ per token of the median by bisection over ``K_max`` (an upper bound: rows have K <= K_max)."""
    popcount_bits = _log2c(max(2, h.elements_per_cycle))
    per_elem = h.w_a * h.v("energy.comparator_bit") + popcount_bits * h.v("energy.adder_bit")
    load = h.k_max * h.w_a * h.v("energy.register_bit")
    return h.v("params.median_bisection_passes") * h.k_max * per_elem + load


def action_prices(h: Hardware) -> dict[str, dict[str, float] | None]:
    """pJ per action, split by component. ``None``: the config has no hardware for this action (a count of it
    is then an error). Every action of :data:`accelsim.sim.actions.ACTIONS` has an entry."""
    byte = 8
    mac = _mac_energy(h)
    reg = h.v("energy.register_bit")
    cap = h.sram_bytes
    p: dict[str, dict[str, float] | None] = {}
    p[Action.MAC_ACTIVE.value] = {"mac": mac}
    p[Action.MAC_GATED.value] = {"mac": h.v("params.mac_gated_fraction") * mac}
    if h.dynamic:
        if h.decoder_kind == "benes":  # a weight crosses every stage; the forwarding adder network's muxes
            mux_bits = h.benes_stages * h.w_w + 2 * h.w_acc
        else:
            mux_bits = (h.sel_inputs - 1) * h.w_w
        p[Action.MUX_SELECT.value] = (
            {"decoder_mux": h.v("params.activity") * mux_bits * h.v("energy.mux2_bit")} if mux_bits else None
        )
        p[Action.COMPRESSOR_GROUP.value] = {"compressor": compressor_group_energy(h)}
        p[Action.METADATA_WRITE_BIT.value] = {"metadata_buffer": _sram_bit(h, cap["metadata_buffer"], True)}
        read = {"metadata_buffer": _sram_bit(h, cap["metadata_buffer"], False), "pe_registers": reg}
        if h.bitmask_converters:
            add_bits, cmp_bits = _converter_bits(h)
            per_group = add_bits * h.v("energy.adder_bit") + cmp_bits * h.v("energy.comparator_bit")
            read["bitmask_decoder"] = per_group / h.sel_inputs  # a group's m bits are read together
        p[Action.METADATA_READ_BIT.value] = read
    else:
        for a in (Action.MUX_SELECT, Action.COMPRESSOR_GROUP, Action.METADATA_WRITE_BIT, Action.METADATA_READ_BIT):
            p[a.value] = None
    p[Action.ACT_SRAM_WRITE_BYTE.value] = {"act_sram": byte * _sram_bit(h, cap["act_sram"], True)}
    port = {"operand_port": byte * h.v("energy.crossbar_bit")} if h.port_bits else {}
    p[Action.ACT_SRAM_READ_BYTE.value] = {
        "act_sram": byte * _sram_bit(h, cap["act_sram"], False),
        "pe_registers": byte * reg,
        **port,
    }
    p[Action.WEIGHT_SRAM_WRITE_BYTE.value] = {"weight_sram": byte * _sram_bit(h, cap["weight_sram"], True)}
    p[Action.WEIGHT_SRAM_READ_BYTE.value] = {
        "weight_sram": byte * _sram_bit(h, cap["weight_sram"], False),
        "pe_registers": byte * reg,
        **port,
    }
    p[Action.ACC_REGISTER_UPDATE_BYTE.value] = {"pe_registers": 2 * byte * reg}  # read + write
    p[Action.STATIC_CYCLE.value] = {"leakage": static_pj_per_cycle(h)}
    p[Action.OUT_SRAM_UPDATE_BYTE.value] = {
        "out_sram": byte * (_sram_bit(h, cap["out_sram"], False) + _sram_bit(h, cap["out_sram"], True))
    }
    p[Action.OUT_SRAM_READ_BYTE.value] = {"out_sram": byte * _sram_bit(h, cap["out_sram"], False)}
    dram = byte * h.v("energy.dram_bit")
    p[Action.DRAM_READ_BYTE_WEIGHT.value] = {"dram_weight": dram}
    p[Action.DRAM_READ_BYTE_ACTIVATION.value] = {"dram_activation": dram}
    p[Action.DRAM_READ_BYTE_METADATA.value] = {"dram_metadata": dram}
    p[Action.DRAM_WRITE_BYTE_OUTPUT.value] = {"dram_output": dram}
    mit = h.mitigation
    var = mit in ("var", "var_learnable")
    p[Action.MITIGATION_STAT_ELEMENT.value] = (
        {"mitigation": h.v("energy.mul_bf16") + 2 * h.v("energy.add_fp32")} if var else None
    )
    if var:
        p[Action.MITIGATION_TOKEN_OP.value] = {"mitigation": h.v("energy.div_sqrt_fp32")}
    elif mit == "median_shift":
        p[Action.MITIGATION_TOKEN_OP.value] = {"mitigation": _median_token_energy(h)}
    else:
        p[Action.MITIGATION_TOKEN_OP.value] = None
    has_epilogue = mit in ("var", "var_learnable", "median_shift", "learnable")
    p[Action.MITIGATION_OUTPUT_MULT.value] = {"mitigation": h.v("energy.mul_fp32")} if has_epilogue else None
    has_add = mit in ("var_learnable", "median_shift", "learnable")
    p[Action.MITIGATION_OUTPUT_ADD.value] = {"mitigation": h.v("energy.add_fp32")} if has_add else None
    assert set(p) == set(ACTIONS), "every counted action has a price entry"
    return p


def energy_breakdown(
    hw: HwConfig,
    counts: Mapping[str, int],
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
) -> dict[str, float]:
    """Energy in pJ by component (:data:`ENERGY_COMPONENTS`) of a run's action counts.

    Args:
        counts: run totals keyed by :class:`~accelsim.sim.actions.Action` values (``"mac_active"``, ...),
            exactly the actions of ``ACTIONS``: an unknown or missing action is an error, not a zero.

    Raises:
        CostError: unknown / missing / negative counts, or a nonzero count of an action the config has no
            hardware for (e.g. metadata reads on a dense machine).
    """
    h = hardware(hw, table=table, node_nm=node_nm)
    return energy_from_prices(action_prices(h), counts, where=hw.name)


def energy_by_site(
    hw: HwConfig,
    rows: list[Mapping[str, object]],
    *,
    table: CostTable | None = None,
    node_nm: int | None = None,
) -> list[dict[str, float]]:
    """Per-site energy columns for rows with ``<action>_count`` keys (``RunResult.sites``): for each row
    ``{"energy_pj": total, "energy_pj.<component>": ...}``, in row order. Their sum is the run's energy."""
    prices = action_prices(hardware(hw, table=table, node_nm=node_nm))
    out = []
    for i, row in enumerate(rows):
        try:
            counts = {a: int(row[f"{a}_count"]) for a in ACTIONS}  # type: ignore[call-overload]
        except KeyError as exc:
            raise CostError(f"{hw.name}: site row {i} has no count {exc.args[0]}") from None
        e = energy_from_prices(prices, counts, where=f"{hw.name} site {row.get('name', i)}")
        out.append({"energy_pj": sum(e.values()), **{f"energy_pj.{k}": v for k, v in e.items()}})
    return out


def energy_from_prices(
    prices: Mapping[str, Mapping[str, float] | None], counts: Mapping[str, int], *, where: str = ""
) -> dict[str, float]:
    """``sum_a counts[a] * prices[a]`` by component (the checks of :func:`energy_breakdown`)."""
    unknown = sorted(set(counts) - set(ACTIONS))
    if unknown:
        raise CostError(f"{where}: unknown action(s) {', '.join(unknown)} (allowed: {', '.join(ACTIONS)})")
    missing = sorted(set(ACTIONS) - set(counts))
    if missing:
        raise CostError(f"{where}: counts are missing action(s) {', '.join(missing)}")
    out = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    for action in ACTIONS:
        n = counts[action]
        if n < 0:
            raise CostError(f"{where}: negative count {n} of action {action}")
        price = prices[action]
        if price is None:
            if n:
                raise CostError(f"{where}: {n} x {action} counted, but the config has no hardware that does it")
            continue
        for comp, pj in price.items():
            out[comp] += n * pj
    return out


# --- area -------------------------------------------------------------------------------------------------------


def _mitigation_area(h: Hardware) -> float:
    mit = h.mitigation
    if mit in ("none", "static_shift"):  # a static shift is a constant bias: free
        return 0.0
    L = h.elements_per_cycle  # noqa: N806
    a = 0.0
    if mit in ("var", "var_learnable"):  # sum of x and x^2 at the compressor's rate, one div/sqrt, scale
        a += L * (h.v("area.mul_bf16") + 2 * h.v("area.add_fp32")) + h.v("area.div_sqrt_fp32")
        a += h.epilogue_lanes * h.v("area.mul_fp32")
    if mit == "median_shift":  # bisection: a K_max row register, L comparators and a popcount tree; eta*rowsum
        a += h.k_max * h.w_a * h.v("area.register_bit")
        a += L * h.w_a * h.v("area.comparator_bit") + L * _log2c(max(2, L)) * h.v("area.adder_bit")
        a += h.epilogue_lanes * (h.v("area.mul_fp32") + h.v("area.add_fp32"))
    if mit in ("learnable", "var_learnable"):  # epilogue scale and shift
        a += h.epilogue_lanes * (h.v("area.mul_fp32") + h.v("area.add_fp32"))
    return a


def area_from_hardware(h: Hardware) -> dict[str, float]:
    """Area in um^2 by component (:data:`AREA_COMPONENTS`) of a resolved inventory."""
    reg = h.v("area.register_bit")
    sram_um2_per_byte = h.v("area.sram_mib") * _UM2_PER_MM2 / 2**20
    out = dict.fromkeys(AREA_COMPONENTS, 0.0)
    out["mac"] = h.lanes * h.v(f"area.mac_{h.datatype}_acc32")
    out["pe_registers"] = h.operand_register_bits * reg
    out["weight_candidate_registers"] = h.candidate_register_bits * reg
    out["metadata_registers"] = h.metadata_register_bits * reg
    if h.decoder_kind == "benes":  # N/2 2x2 switches (two w-bit 2:1 muxes) per stage; forwarding adder muxes
        out["decoder_mux"] = h.lanes * (h.benes_stages * h.w_w + 2 * h.w_acc) * h.v("area.mux2_bit")
    elif h.dynamic:
        out["decoder_mux"] = h.lanes * (h.sel_inputs - 1) * h.w_w * h.v("area.mux2_bit")
    out["operand_port"] = h.port_bits * h.port_units * h.v("area.crossbar_bit")
    if h.bitmask_converters:
        add_bits, cmp_bits = _converter_bits(h)
        out["bitmask_decoder"] = h.bitmask_converters * (
            add_bits * h.v("area.adder_bit") + cmp_bits * h.v("area.comparator_bit")
        )
    if h.compressor_lanes and h.network == "bisection_top_k":  # a row register, a comparator and a counter per lane
        w = h.compressor_width
        lane = h.w_a * h.v("area.comparator_bit") + h.w_a * reg
        out["compressor"] = h.compressor_lanes * (w * lane + w * _log2c(w) * h.v("area.adder_bit"))
    elif h.compressor_lanes:
        ce = h.ce_compare_bits * h.v("area.comparator_bit") + 2 * h.ce_payload_bits * h.v("area.mux2_bit")
        pipe = h.compressor_latency * h.compressor_width * h.ce_payload_bits * reg
        out["compressor"] = h.compressor_lanes * (h.compressor_comparators * ce + pipe)
    for comp in ("act_sram", "weight_sram", "out_sram", "metadata_buffer"):
        out[comp] = h.sram_bytes[comp] * sram_um2_per_byte
    out["mitigation"] = _mitigation_area(h)
    return out


def static_pj_per_cycle(h: Hardware) -> float:
    """Leakage energy of the whole machine per cycle: logic area and SRAM capacity times their static power."""
    area = area_from_hardware(h)
    sram_keys = ("act_sram", "weight_sram", "out_sram", "metadata_buffer")
    logic = sum(v for c, v in area.items() if c not in sram_keys)
    mib = sum(h.sram_bytes.values()) / 2**20
    static = logic * h.v("energy.leakage_logic_per_um2_cycle") + mib * h.v("energy.leakage_sram_per_mib_cycle")
    return h.v("params.leakage_scale") * static


def area_breakdown(hw: HwConfig, *, table: CostTable | None = None, node_nm: int | None = None) -> dict[str, float]:
    """Area in um^2 by component (:data:`AREA_COMPONENTS`): MACs, registers, sparsity hardware, SRAM buffers.

    Not included: DRAM PHY and controller, control logic, clock tree, wires (docs/cost-model.md).
    """
    return area_from_hardware(hardware(hw, table=table, node_nm=node_nm))


def sparsity_area_overhead(
    hw: HwConfig, dense_hw: HwConfig, *, table: CostTable | None = None, node_nm: int | None = None
) -> float:
    """``(area(hw) - area(dense_hw)) / area(dense_hw)``: the sparsity hardware's share against the dense machine.

    Raises:
        CostError: ``dense_hw`` is not a dense config.
    """
    if dense_hw.sparsity.kind != "dense":
        raise CostError(f"{dense_hw.name}: sparsity.kind is '{dense_hw.sparsity.kind}'; the baseline must be dense")
    a = sum(area_breakdown(hw, table=table, node_nm=node_nm).values())
    d = sum(area_breakdown(dense_hw, table=table, node_nm=node_nm).values())
    return (a - d) / d
