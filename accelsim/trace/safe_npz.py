"""Reading ``.npy`` members of an untrusted ``.npz`` with bounded memory and without ever unpickling.

Every member is checked from the zip directory before a byte is inflated (not encrypted, stored or deflated,
inside the file, a sane inflation ratio) and from its ``.npy`` header before its data is allocated (plain
numeric dtype, a shape whose bytes equal the member's bytes). Data is inflated in chunks straight into the
result array, so reading a member costs its own size plus one chunk. Errors are :class:`ArchiveError` with a
message that names the member; ``accelsim.trace.format`` prefixes the file and says "not an accelsim trace".
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.safeio import TooLargeError, available_memory_bytes

#: A member inflating to more than this many times its compressed size is a zip bomb ...
MAX_RATIO = 200
#: ... when it inflates to more than this (tiny members such as zero token ids compress without bound).
RATIO_FLOOR_BYTES = 1 << 20
MAX_MEMBERS = 100_000
MAX_HEADER_BYTES = 10_000
CHUNK_BYTES = 1 << 22
#: members at least this large are checked against the memory still available (/proc/meminfo and the cgroup)
#: before they are allocated; smaller ones are not (the check costs more than a trace site's whole read)
MEMORY_CHECK_BYTES = 1 << 24
COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ALLOWED_KINDS = "biuf"


class ArchiveError(ValueError):
    """A member of the archive is unsafe or malformed (message names the member, not the file)."""


@dataclass(frozen=True)
class Header:
    """What a member's ``.npy`` header declares, checked against the member's size."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_bytes: int


def _zip_problem(path: Path) -> str | None:
    """Why ``path`` is not a zip archive at all (``None`` when it looks like one)."""
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    with path.open("rb") as fh:
        head = fh.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        return "not a zip archive (.npz)"
    return None


class SafeNpz:
    """The ``.npy`` members of one archive, keyed by name without ``.npy`` (``meta``, ``input/L0.q_k_v``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        problem = _zip_problem(self.path)
        if problem:
            raise ArchiveError(problem)
        self._size = self.path.stat().st_size
        try:
            self._zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise ArchiveError(f"not a readable zip archive ({_short(exc)})") from None
        try:
            self.members = self._index()
        except Exception:
            self._zf.close()
            raise
        self._headers: dict[str, Header] = {}

    def _index(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"{len(infos)} members; an accelsim trace has at most {MAX_MEMBERS}")
        out: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if name.endswith("/") and info.file_size == 0:
                continue  # a directory entry written by some zip tools
            if not name.endswith(".npy"):
                raise ArchiveError(f"member {_q(name)} is not a .npy array")
            key = name[: -len(".npy")]
            if key in out:
                raise ArchiveError(f"member {_q(name)} appears twice")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"member {_q(name)} is encrypted")
            if info.compress_type not in COMPRESSION:
                raise ArchiveError(
                    f"member {_q(name)} uses compression method {info.compress_type}; allowed: stored (0), deflated (8)"
                )
            if info.header_offset + info.compress_size > self._size:
                raise ArchiveError(f"member {_q(name)} extends past the end of the file (truncated archive)")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise ArchiveError(f"member {_q(name)} is stored but its sizes disagree")
            if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise ArchiveError(
                    f"member {_q(name)} would inflate {info.compress_size} bytes to {info.file_size} "
                    f"(ratio > {MAX_RATIO}: a zip bomb)"
                )
            out[key] = info
        return out

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def keys(self) -> list[str]:
        return list(self.members)

    def _open(self, key: str):
        try:
            return self._zf.open(self.members[key])
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise ArchiveError(f"member {_q(key + '.npy')} cannot be opened ({_short(exc)})") from None

    def header(self, key: str) -> Header:
        """The member's declared dtype and shape, checked: plain numbers (never objects) and exact size."""
        if key in self._headers:
            return self._headers[key]
        info = self.members[key]
        name = _q(key + ".npy")
        with self._open(key) as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
                else:
                    raise ArchiveError(f"member {name} uses .npy format {version}; allowed: 1.0, 2.0")
                offset = fh.tell()
            except ArchiveError:
                raise
            except Exception as exc:  # numpy's header parser: ValueError, SyntaxError, TypeError, EOFError ...
                raise ArchiveError(
                    f"member {name} has no valid .npy header (a .npy member starts with the magic b'\\x93NUMPY', a "
                    f"version and a dict of 'descr', 'fortran_order' and 'shape'; {type(exc).__name__} reading it)"
                ) from None
        dtype = np.dtype(dtype)
        if (
            dtype.hasobject
            or dtype.fields is not None
            or dtype.subdtype is not None
            or dtype.kind not in _ALLOWED_KINDS
        ):
            raise ArchiveError(
                f"member {name} has dtype {_short(dtype)}; allowed: plain numbers (never pickled objects)"
            )
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ArchiveError(f"member {name} declares an invalid shape {_short(shape)}")
        want = math.prod(shape) * dtype.itemsize
        have = info.file_size - offset
        if want != have:
            raise ArchiveError(
                f"member {name} header declares shape {_short(shape)} of {dtype} = {want} bytes, "
                f"but the member holds {have} bytes"
            )
        h = Header(dtype=dtype, shape=tuple(shape), fortran_order=bool(fortran), data_bytes=want)
        self._headers[key] = h
        return h

    def read(self, key: str, *, max_bytes: int | None = None) -> np.ndarray:
        """The member's array, inflated chunk by chunk into one preallocated buffer."""
        h = self.header(key)
        name = _q(key + ".npy")
        if max_bytes is not None and h.data_bytes > max_bytes:
            raise ArchiveError(f"member {name} holds {h.data_bytes} bytes; at most {max_bytes} are allowed")
        if h.data_bytes >= MEMORY_CHECK_BYTES and h.data_bytes > (avail := available_memory_bytes()):
            raise TooLargeError(
                f"member {name} needs {h.data_bytes / 1e9:.3g} GB of memory; only {avail / 1e9:.3g} GB is available"
            )
        flat = np.empty(math.prod(h.shape), dtype=h.dtype)
        view = memoryview(flat).cast("B") if flat.nbytes else memoryview(b"")
        with self._open(key) as fh:
            try:
                fh.read(self.members[key].file_size - h.data_bytes)  # skip the header checked above
                pos = 0
                while pos < h.data_bytes:
                    n = fh.readinto(view[pos : pos + CHUNK_BYTES])
                    if not n:
                        raise ArchiveError(f"member {name} ends after {pos} of {h.data_bytes} bytes")
                    pos += n
            except ArchiveError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
                raise ArchiveError(f"member {name} is corrupt ({_short(exc)})") from None
        return flat.reshape(h.shape, order="F" if h.fortran_order else "C")

    def close(self) -> None:
        self._zf.close()


def _q(text: str, limit: int = 80) -> str:
    """A member name quoted and truncated for an error line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _short(obj: object, limit: int = 120) -> str:
    s = " ".join(str(obj).split())
    return s if len(s) <= limit else s[:limit] + "..."
