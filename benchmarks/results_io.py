"""Shared ``benchmarks/results.json``: several benchmarks write into it, each only its own top-level keys.

:func:`update_results` reads the file, replaces the given keys, and writes it back atomically (temporary file
plus rename) under an exclusive lock, so writers of other keys (e.g. the accuracy benchmark's ``accuracy``)
keep theirs.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
SMOKE_RESULTS = ROOT / "benchmarks" / ".cache" / "smoke_results.json"


def add_common_args(ap, smoke_help: str) -> None:
    """``--smoke`` and ``--out``, the same in every simulator-speed benchmark and in ``run_all.py``."""
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default benchmarks/results.json; smoke: benchmarks/.cache/smoke_results.json)",
    )


def out_path(args) -> Path:
    """The results file of parsed :func:`add_common_args` arguments."""
    return args.out or (SMOKE_RESULTS if args.smoke else RESULTS)


def update_results(path: Path, entries: dict[str, Any]) -> dict[str, Any]:
    """Set ``entries``' top-level keys in the JSON file ``path`` (created if absent); return the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
        data.update(entries)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, path)
    return data


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import numpy

    from accelsim import __version__

    return {
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "accelsim": __version__,
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }


def wall_stats(values: list[float], scale: float = 1.0) -> dict[str, Any]:
    """min / median / max of ``values`` (times ``scale``) and the number of repeats."""
    s = sorted(v * scale for v in values)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"min": s[0], "median": med, "max": s[-1], "repeats": n}
