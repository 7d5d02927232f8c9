"""Run ONE dense GEMM through SCALE-Sim v3 and print its cycles and wall time as one JSON line.

Runs inside SCALE-Sim's own virtual environment (``benchmarks/.scalesim-venv``, made by ``bench_scalesim.py``),
so it imports nothing from accelsim. The setting is the one of ``shared/reference/scalesim-cycle-model.md``
section 7: CALC bandwidth mode (stall-free), 256 kB per operand SRAM, traces off, Python API (the CLI always
writes traces). ``wall_s`` is the time inside ``run_scale`` and ``cpu_s`` its process CPU time (user + system;
robust to other load on a shared machine); the package import is timed apart as ``import_s``.

Usage: python scalesim_driver.py --M 128 --K 576 --N 1536 --rows 32 --cols 32 --dataflow ws --workdir DIR
Output (last stdout line): ``SCALESIM_RESULT {"cycles": ..., "wall_s": ..., "import_s": ..., "peak_rss_mb": ...}``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import resource
import time
from pathlib import Path

CFG = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 256
FilterSramSzkB: 256
OfmapSramSzkB: 256
IfmapOffset: 0
FilterOffset: 100000000
OfmapOffset: 200000000
Bandwidth: 64
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 64
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 64
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    for k in ("M", "K", "N", "rows", "cols"):
        ap.add_argument(f"--{k}", type=int, required=True)
    ap.add_argument("--dataflow", choices=("ws", "os", "is"), required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    a = ap.parse_args()
    run_name = f"gemm_{a.M}x{a.K}x{a.N}_{a.rows}x{a.cols}_{a.dataflow}"
    a.workdir.mkdir(parents=True, exist_ok=True)
    cfg = a.workdir / "case.cfg"
    cfg.write_text(CFG.format(run_name=run_name, rows=a.rows, cols=a.cols, dataflow=a.dataflow))
    topo = a.workdir / "topo.csv"
    # SCALE-Sim's GEMM topology: M = tokens, N = outputs, K = reduction; every row ends with a comma
    topo.write_text(f"Layer Name, M, N, K,\n{run_name}, {a.M}, {a.N}, {a.K},\n")
    layout = a.workdir / "layout.csv"  # required by the loader even with custom layouts off
    layout.write_text("Layer name, unused,\n")

    t0 = time.perf_counter()
    from scalesim.scale_sim import scalesim

    import_s = time.perf_counter() - t0
    sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=str(cfg),
        topology=str(topo),
        layout=str(layout),
        input_type_gemm=True,
    )
    chatter = io.StringIO()
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(chatter):
        sim.run_scale(top_path=str(a.workdir / "out"))
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    report = a.workdir / "out" / run_name / "COMPUTE_REPORT.csv"
    with report.open() as fh:
        rows = [{k.strip(): v.strip() for k, v in r.items() if k is not None} for r in csv.DictReader(fh)]
    cycles = int(float(rows[0]["Total Cycles"]))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    result = {"cycles": cycles, "wall_s": wall_s, "cpu_s": cpu_s, "import_s": import_s, "peak_rss_mb": peak_rss_mb}
    print("SCALESIM_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
