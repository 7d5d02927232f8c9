"""Safe outputs: ``--out`` checked before any work, whole output directories renamed into place, JSON without
NaN/Infinity, and a size estimate that refuses runs which cannot fit in memory.

Every check raises :class:`OutputPathError` or :class:`TooLargeError` (both ``ValueError``) with one line that
names the path or the quantity; the CLI prints it with ``fail`` and exits 2. See ``docs/robustness.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OutputPathError",
    "TooLargeError",
    "NonFiniteJsonError",
    "check_out_dir",
    "check_out_file",
    "atomic_output_dir",
    "clean_stale_temporaries",
    "dump_json",
    "finite_or_null",
    "available_memory_bytes",
    "RunEstimate",
    "estimate_run",
    "check_fits",
    "check_sweep_fits",
]

#: Temporary siblings are hidden and carry this tag, the writer's pid and a random suffix.
TMP_TAG = ".accelsim-tmp-"
#: File systems that are not storage: writing a result there is always a mistake.
PSEUDO_FS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "efivarfs",
        "binfmt_misc",
        "autofs",
        "hugetlbfs",
        "nsfs",
    }
)
_ST_RDONLY = 1


class OutputPathError(ValueError):
    """An output path cannot be written. One line: the option, the path and why."""


class TooLargeError(ValueError):
    """A run, trace member or sweep would not fit in memory (or time). One line with the estimate."""


class NonFiniteJsonError(ValueError):
    """A value about to be written to JSON is NaN or +-Infinity. One line naming the key path."""


# -- output paths -------------------------------------------------------------------------------------------
def _mount_of(path: Path) -> tuple[str, str]:
    """``(mount point, fs type)`` of the deepest mount containing ``path`` (Linux ``/proc/self/mounts``)."""
    best = ("/", "")
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return best
    s = str(path)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (s == mnt or s.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
            best = (mnt, parts[2])
    return best


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_location(path: Path, option: str) -> None:
    """The nearest existing ancestor is a writable directory on a real, writable file system."""
    path = Path(os.path.abspath(path))
    anc = _existing_ancestor(path.parent)
    if not anc.is_dir():
        raise OutputPathError(f"{option} {path}: {anc} exists and is not a directory")
    mnt, fstype = _mount_of(anc.resolve())
    if fstype in PSEUDO_FS:
        raise OutputPathError(f"{option} {path}: lies on the pseudo file system {mnt} ({fstype}); choose a real disk")
    try:
        ro = os.statvfs(anc).f_flag & _ST_RDONLY
    except OSError:
        ro = 0
    if ro:
        raise OutputPathError(f"{option} {path}: {mnt} is a read-only file system")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {path}: the directory {anc} is not writable")


def check_out_dir(path: str | Path, files: Iterable[str] = (), option: str = "--out") -> None:
    """Check an output *directory* before any work: not an existing file, every file of ``files`` that would
    be written inside is not an existing directory, and the location is writable on a real file system."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{option} {p}: exists and is a file; give a directory (it holds several files)")
    for name in files:
        target = p / name
        if target.is_dir():
            raise OutputPathError(f"{option} {p}: {target} would be written as a file but is a directory")
    _check_location(p, option)


def check_out_file(path: str | Path, option: str = "--out") -> None:
    """Check an output *file* before any work: not an existing directory, the location writable."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{option} {p}: is a directory; give a file name such as {p / 'out'}")
    _check_location(p, option)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` left by killed runs (their pid is gone); returns them."""
    p = Path(os.path.abspath(path))
    removed = []
    if not p.parent.is_dir():
        return removed
    prefix = f".{p.name}{TMP_TAG}"
    for cand in p.parent.iterdir():
        if not cand.name.startswith(prefix):
            continue
        pid_text = cand.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(cand, ignore_errors=True) if cand.is_dir() else cand.unlink(missing_ok=True)
            removed.append(cand)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


@contextlib.contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """``with atomic_output_dir(out) as tmp:`` write every file into ``tmp``; at the end it becomes ``out``.

    ``tmp`` is a hidden sibling ``.<name>.accelsim-tmp-<pid>-<random>`` (ignored by globs such as ``*.yaml``;
    stale ones of dead processes are removed on entry). On success a missing ``out`` is created by one rename;
    an ``out`` holding only files this run rewrites (a previous result) is swapped atomically; an ``out`` with
    other files of the user keeps them and each new file replaces its old one by a rename. On an exception the
    temporary is removed and ``out`` is untouched. A killed run leaves the previous result or the new one.
    """
    out = Path(os.path.abspath(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{TMP_TAG}{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not out.exists():
            os.rename(tmp, out)
            return
        new = {c.name for c in tmp.iterdir()}
        old = {c.name for c in out.iterdir()}
        if old <= new and _exchange(tmp, out):
            return  # tmp now holds the previous result and is removed below
        for name in sorted(new):
            src, dst = tmp / name, out / name
            if dst.is_dir() and not src.is_dir():
                raise OutputPathError(f"--out {out}: {dst} would be written as a file but is a directory")
            if src.is_dir() and dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- JSON -------------------------------------------------------------------------------------------------
def _find_non_finite(obj: Any, where: str = "") -> str | None:
    stack: list[tuple[str, Any]] = [(where, obj)]
    while stack:
        key, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return f"{key or '<top>'} is {v}"
        if isinstance(v, dict):
            stack.extend((f"{key}.{k}" if key else str(k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{key}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def _json_default(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def dump_json(obj: Any, path: str | Path | None = None, *, indent: int | None = 2, nan_as_null: bool = False) -> str:
    """Canonical JSON text (sorted keys, ``\\n`` at the end) with no NaN or Infinity; written to ``path`` if
    given. A non-finite number raises :class:`NonFiniteJsonError` naming its key path, or becomes ``null``
    with ``nan_as_null=True`` (for "no value" fields such as a missing perplexity)."""
    if nan_as_null:
        obj = _nan_to_none(obj)
    try:
        text = json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False, default=_json_default) + "\n"
    except ValueError:
        bad = _find_non_finite(_nan_to_none(obj, probe=True))
        where = f"{path}: " if path is not None else ""
        raise NonFiniteJsonError(
            f"{where}key {bad}; accelsim never writes NaN or Infinity to JSON (null marks a missing value)"
        ) from None
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or +-Infinity float (nested in dicts, lists, tuples) replaced by ``None``."""
    return _nan_to_none(obj)


def _nan_to_none(obj: Any, probe: bool = False) -> Any:
    import numpy as np

    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if (math.isfinite(f) or probe) else None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v, probe) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v, probe) for v in obj]
    return obj


# -- sizes ------------------------------------------------------------------------------------------------
def available_memory_bytes() -> int:
    """Memory this process may still use: the smaller of ``MemAvailable`` and the cgroup limit minus usage."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 40
    for limit_f, usage_f in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            lim_text = Path(limit_f).read_text().strip()
            if lim_text == "max":
                continue
            lim, use = int(lim_text), int(Path(usage_f).read_text().strip())
            if lim < 1 << 60:
                avail = min(avail, max(0, lim - use))
        except (OSError, ValueError):
            continue
    return int(avail)


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def _fmt_seconds(s: float) -> str:
    for unit, scale in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.3g} s"


#: Bytes held per activation element while a site runs: float16 input, float32 |x|, keep-mask, selection temps.
BYTES_PER_ACTIVATION = 24
#: Bytes per compute tile: per-tile arrays of the work model plus the event objects of the pipeline.
BYTES_PER_TILE = 2048
#: Seconds per compute tile of the event model, plus per token row of the tile: measured with nm8_16 on
#: SmolLM2-shaped traces on a shared 2-core machine (decode 1-row tiles 0.45 ms, prefill 128-row tiles 2.5 ms;
#: docs/robustness.md). An order-of-magnitude estimate for refusing runs of days, not a benchmark.
SECONDS_PER_TILE = 4.5e-4
SECONDS_PER_TILE_ROW = 1.6e-5
#: Runs estimated to take longer than this are refused unless the caller passes a larger ``max_seconds``.
DEFAULT_MAX_SECONDS = 7 * 86400.0
#: Fixed overhead of the interpreter and libraries.
BASE_BYTES = 200_000_000


@dataclass(frozen=True)
class RunEstimate:
    """Peak memory (bytes) and run time (seconds) of one simulated run, with the site that sets the peak."""

    peak_bytes: int
    seconds: float
    tiles: int
    largest_site: str

    def describe(self) -> str:
        text = f"estimated peak memory {_fmt_bytes(self.peak_bytes)} (largest site {self.largest_site})"
        if self.tiles:
            text += f", {self.tiles:.3g} compute tiles, about {_fmt_seconds(self.seconds)}"
        return text


def estimate_run(
    hw: Any, sites: Sequence[tuple[str, int, int, int]], tiling: Callable[..., Any], *, decode: bool = False
) -> RunEstimate:
    """Estimate one run of ``sites`` = ``[(name, T, K, O), ...]`` on config ``hw`` before simulating.

    ``tiling(hw, T, K, O)`` is the simulator's tile chooser (``accelsim.sim.tiling.choose_tiling``, passed in so
    that this base module imports nothing of accelsim). Memory is that of the largest site (sites run one after
    another and only one input is held); time is proportional to the compute tiles of the event model (decode:
    one step of one token per row).
    """
    peak, tiles, seconds, largest = 0, 0, 0.0, ""
    for name, T, K, O in sites:  # noqa: N806
        t_rows = 1 if decode else T
        tl = tiling(hw, t_rows, K, O)  # a TilingError here is the run's own error, raised early
        per_step = math.ceil(t_rows / tl.T_tile) * math.ceil(O / tl.O_tile) * math.ceil(K / tl.K_tile)
        steps = T if decode else 1
        site_tiles = per_step * steps
        site_bytes = T * K * BYTES_PER_ACTIVATION + per_step * BYTES_PER_TILE
        tiles += site_tiles
        seconds += site_tiles * (SECONDS_PER_TILE + SECONDS_PER_TILE_ROW * min(t_rows, tl.T_tile))
        if site_bytes > peak:
            peak, largest = site_bytes, f"{name} T={T} K={K} O={O}"
    return RunEstimate(peak_bytes=int(BASE_BYTES + peak), seconds=seconds, tiles=int(tiles), largest_site=largest)


def check_fits(
    est: RunEstimate,
    *,
    what: str,
    available: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> None:
    """Raise :class:`TooLargeError` (estimate in the message) when ``est`` exceeds memory or ``max_seconds``."""
    avail = available_memory_bytes() if available is None else available
    if est.peak_bytes > avail:
        raise TooLargeError(f"{what}: {est.describe()}; only {_fmt_bytes(avail)} of memory is available")
    if max_seconds is not None and est.seconds > max_seconds:
        raise TooLargeError(f"{what}: {est.describe()}; the limit is {_fmt_seconds(max_seconds)}")


#: Bytes kept per finished sweep point (its summary record in the result frame).
BYTES_PER_SWEEP_POINT = 20_000


def check_sweep_fits(
    n_points: int,
    point: RunEstimate,
    *,
    what: str = "sweep",
    available: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> RunEstimate:
    """A sweep of ``n_points`` runs like ``point`` (one at a time per worker): records plus one run in memory."""
    est = RunEstimate(
        peak_bytes=point.peak_bytes + n_points * BYTES_PER_SWEEP_POINT,
        seconds=point.seconds * n_points,
        tiles=point.tiles * n_points,
        largest_site=point.largest_site,
    )
    check_fits(est, what=f"{what} of {n_points:,} points", available=available, max_seconds=max_seconds)
    return est
