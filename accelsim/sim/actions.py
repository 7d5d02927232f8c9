"""Names of the actions the simulator counts; the cost model prices exactly these (and no others).

Counts are integers per site, summed over the run. A test checks that every action counted here has a price
in the energy table and every priced action is counted (``tests/test_cost.py``).
"""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """One countable hardware action. The value is the column name in reports (``<name>`` count)."""

    MAC_ACTIVE = "mac_active"
    """A multiply-accumulate on a kept activation (useful work)."""
    MAC_GATED = "mac_gated"
    """An issued MAC lane with nothing to do (instruction/fold padding, lockstep imbalance): clock-gated."""
    MUX_SELECT = "mux_select"
    """One m:1 (N:M) or K_tile:1 (unstructured) operand selection of the weight's data width."""
    COMPRESSOR_GROUP = "compressor_group"
    """One top-n-of-m selection over a group of m activations (a token row of K for unstructured)."""
    METADATA_WRITE_BIT = "metadata_write_bit"
    METADATA_READ_BIT = "metadata_read_bit"
    ACT_SRAM_WRITE_BYTE = "act_sram_write_byte"
    ACT_SRAM_READ_BYTE = "act_sram_read_byte"
    WEIGHT_SRAM_WRITE_BYTE = "weight_sram_write_byte"
    WEIGHT_SRAM_READ_BYTE = "weight_sram_read_byte"
    OUT_SRAM_UPDATE_BYTE = "out_sram_update_byte"
    """Accumulator read-modify-write traffic in the output buffer (accumulator bytes)."""
    ACC_REGISTER_UPDATE_BYTE = "acc_register_update_byte"
    """Accumulator read-modify-write that stays in the unit's accumulator registers (``accumulator_registers``)."""
    OUT_SRAM_READ_BYTE = "out_sram_read_byte"
    """Output-buffer reads for write-back."""
    DRAM_READ_BYTE_WEIGHT = "dram_read_byte_weight"
    DRAM_READ_BYTE_ACTIVATION = "dram_read_byte_activation"
    DRAM_READ_BYTE_METADATA = "dram_read_byte_metadata"
    DRAM_WRITE_BYTE_OUTPUT = "dram_write_byte_output"
    STATIC_CYCLE = "static_cycle"
    """One simulated cycle of the whole machine: leakage power x time (counted by ``simulate``, not per tile)."""
    MITIGATION_STAT_ELEMENT = "mitigation_stat_element"
    """VAR: one element folded into the per-token sum of x and x^2 (1 multiply, 2 adds)."""
    MITIGATION_TOKEN_OP = "mitigation_token_op"
    """VAR: one square root and one divide per token; median shift: one K-wide median selection per token."""
    MITIGATION_OUTPUT_MULT = "mitigation_output_mult"
    """One multiply per output element (VAR scale, learnable scale, or median shift's eta*rowsum(W) MAC)."""
    MITIGATION_OUTPUT_ADD = "mitigation_output_add"
    """One add per output element (learnable shift, median shift's correction)."""


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)
