"""Trace format v2 (reads v1 too): activations entering the linear sites of a model's forward passes, as a ``.npz``.

Layout of the zip archive (every member is a ``.npy`` array; nothing is pickled):

* ``meta.npy``: ``uint8`` bytes of a UTF-8 JSON object (the metadata and the site table, see below);
* ``token_ids.npy``: ``int64`` token ids of the text the activations come from (``[B, L]`` for B > 1 sequences);
* ``input/<input_id>.npy``: ``float16`` ``[rows, K]`` activations, one per *distinct* input tensor;
  sites that read the same tensor (q/k/v; gate/up) share one ``input_id``. With ``sequences = B`` (v2) the
  rows are the passes stacked, each flattened as ``[B, T_pass]`` (``accelsim.trace.serving_meta``);
* ``weight/<site_index>.npy`` (optional): ``[O, K]`` weight in ``nn.Linear`` layout, ``y = x @ W.T + b``;
* ``bias/<site_index>.npy`` (optional).

Writing fixes every zip timestamp, so the same content gives the same bytes. Reading is lazy: ``Trace`` opens
the archive and reads one input at a time (``Trace.site_input``), so a multi-GB trace is never loaded whole.
v2 adds the metadata keys ``sequences`` (required) and ``architecture`` (heads, KV heads, head dim, vocabulary,
``lm_head`` shape) and the optional site kind ``lm_head``; see ``docs/trace-format.md``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.safeio import TooLargeError, finite_or_null
from accelsim.trace import serving_meta
from accelsim.trace.safe_npz import ArchiveError, Header, SafeNpz

SCHEMA_VERSION = "accelsim-trace/2"
READ_VERSIONS = ("accelsim-trace/1", SCHEMA_VERSION)  # v1 has no 'sequences' (1) nor 'architecture' keys
PHASES = ("prefill", "decode")
KINDS = ("q", "k", "v", "o", "gate", "up", "down")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Input members of at least this many bytes are stored, not deflated: zlib saves about 5 % on float16
#: activations and every read of a large trace would pay the inflate (docs/trace-format.md, "Compression").
STORE_INPUTS_FROM_BYTES = 256 * 1024
_REQUIRED_META = (
    "schema_version",
    "model",
    "model_sha256",
    "phase",
    "dtype",
    "text_source",
    "text_sha256",
    "tool_version",
    "synthetic",
    "sites",
)
_REQUIRED_SITE = ("name", "layer", "kind", "K", "O", "input_id")


class TraceError(ValueError):
    """A trace file is missing, malformed, or inconsistent. The message names the file and the key."""


@dataclass(frozen=True)
class Site:
    """One linear site ``y[T, O] = x[T, K] @ W[K, O]`` of the traced forward pass."""

    index: int
    name: str
    layer: int
    kind: str
    K: int  # noqa: N815 - the design page's symbols
    O: int  # noqa: E741, N815
    input_id: str
    has_weight: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "kind": self.kind,
            "K": self.K,
            "O": self.O,
            "input_id": self.input_id,
            "has_weight": self.has_weight,
        }


@dataclass
class TraceData:
    """An in-memory trace, the writer's input. ``inputs`` maps ``input_id`` to ``[T, K]`` arrays."""

    meta: dict[str, Any]
    sites: list[Site]
    inputs: dict[str, np.ndarray]
    token_ids: np.ndarray
    weights: dict[int, np.ndarray] = field(default_factory=dict)
    biases: dict[int, np.ndarray] = field(default_factory=dict)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_trace(path: str | Path, data: TraceData, *, compress: bool = True) -> Path:
    """Validate ``data`` and write it to ``path`` atomically (a temporary file renamed at the end).

    Same content, same bytes: zip members are written in a fixed order with a fixed timestamp. ``compress``:
    deflate the members, except ``input/*`` members of ``STORE_INPUTS_FROM_BYTES`` or more, which are stored
    (float16 activations barely compress, and inflating them dominated reading a large trace);
    ``compress=False`` stores every member.
    """
    path = Path(path)
    meta = dict(data.meta)
    meta["schema_version"] = SCHEMA_VERSION
    meta["sites"] = [s.to_json() for s in data.sites]
    meta.setdefault("dtype", "float16")
    meta.setdefault("sequences", 1)
    _validate_meta(meta, str(path))
    serving_meta.check_write_shapes(meta, data, str(path))
    ids = {s.input_id for s in data.sites}
    missing = sorted(ids - set(data.inputs))
    if missing:
        raise TraceError(f"{path}: sites reference input_id(s) {missing} that have no array")
    extra = sorted(set(data.inputs) - ids)
    if extra:
        raise TraceError(f"{path}: input arrays {extra} are used by no site")
    for s in data.sites:
        arr = data.inputs[s.input_id]
        if arr.ndim != 2 or arr.shape[1] != s.K:
            raise TraceError(f"{path}: input '{s.input_id}' has shape {arr.shape}, site {s.name} needs [T, {s.K}]")
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=mode) as zf:

            def put(name: str, payload: bytes) -> None:
                info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
                big_input = name.startswith("input/") and len(payload) >= STORE_INPUTS_FROM_BYTES
                info.compress_type = zipfile.ZIP_STORED if big_input else mode
                info.external_attr = 0o644 << 16
                zf.writestr(info, payload)

            meta_bytes = json.dumps(finite_or_null(meta), sort_keys=True, indent=1, allow_nan=False).encode()
            put("meta.npy", _npy_bytes(np.frombuffer(meta_bytes, dtype=np.uint8)))
            put("token_ids.npy", _npy_bytes(np.asarray(data.token_ids, dtype=np.int64)))
            for input_id in sorted(data.inputs):
                put(f"input/{input_id}.npy", _npy_bytes(np.asarray(data.inputs[input_id], dtype=np.float16)))
            for idx in sorted(data.weights):
                put(f"weight/{idx}.npy", _npy_bytes(np.asarray(data.weights[idx])))
            for idx in sorted(data.biases):
                put(f"bias/{idx}.npy", _npy_bytes(np.asarray(data.biases[idx])))
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _validate_meta(meta: Mapping[str, Any], where: str) -> None:
    for key in _REQUIRED_META:
        if key not in meta:
            raise TraceError(f"{where}: metadata key '{key}' is missing (required: {', '.join(_REQUIRED_META)})")
    if meta["schema_version"] not in READ_VERSIONS:
        raise TraceError(
            f"{where}: schema_version is {_echo(meta['schema_version'])}; "
            f"this accelsim reads {', '.join(READ_VERSIONS)}"
        )
    if meta["schema_version"] != READ_VERSIONS[0]:
        serving_meta.validate_serving_meta(meta, where)
    if not isinstance(meta["phase"], str) or meta["phase"] not in PHASES:
        raise TraceError(f"{where}: key 'phase' is {_echo(meta['phase'])}; allowed: {', '.join(PHASES)}")
    if meta["dtype"] != "float16":
        raise TraceError(f"{where}: key 'dtype' is {_echo(meta['dtype'])}; allowed: float16")
    if not isinstance(meta["synthetic"], bool):
        raise TraceError(f"{where}: key 'synthetic' must be true or false, got {_echo(meta['synthetic'])}")
    sites = meta["sites"]
    if not isinstance(sites, list) or not sites:
        raise TraceError(f"{where}: key 'sites' must be a non-empty list")
    for i, s in enumerate(sites):
        if not isinstance(s, dict):
            raise TraceError(f"{where}: sites[{i}] must be an object")
        for key in _REQUIRED_SITE:
            if key not in s:
                raise TraceError(f"{where}: sites[{i}].{key} is missing (required: {', '.join(_REQUIRED_SITE)})")
        for key in ("layer", "K", "O"):
            if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < (0 if key == "layer" else 1):
                raise TraceError(f"{where}: sites[{i}].{key} must be a positive integer, got {_echo(s[key])}")
    _check_site_entries(meta, where)


#: Bounds of the reader (a hostile file cannot make accelsim allocate or loop without limit).
MAX_DIM = 1 << 24
MAX_LAYER = 1 << 20
MAX_SITES = 100_000
MAX_NAME_CHARS = 500
MAX_META_BYTES = 16 << 20
MAX_META_DEPTH = 32


def _echo(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from a file, truncated for a one-line error."""
    text = repr(value) if not isinstance(value, (dict, list)) or len(value) < 20 else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _check_site_entries(meta: Mapping[str, Any], where: str) -> None:
    """Bounds and allowed values of the site table and of the optional integer keys."""
    sites = meta["sites"]
    if len(sites) > MAX_SITES:
        raise TraceError(f"{where}: key 'sites' lists {len(sites)} sites; at most {MAX_SITES}")
    for i, s in enumerate(sites):
        if s["kind"] not in (*KINDS, serving_meta.LM_HEAD_KIND):
            allowed = ", ".join((*KINDS, serving_meta.LM_HEAD_KIND))
            raise TraceError(f"{where}: sites[{i}].kind is {_echo(s['kind'])}; allowed: {allowed}")
        for key, top in (("K", MAX_DIM), ("O", MAX_DIM), ("layer", MAX_LAYER)):
            if s[key] > top:
                raise TraceError(f"{where}: sites[{i}].{key} is {s[key]}; allowed: at most {top}")
        for key in ("name", "input_id"):
            v = s[key]
            if not isinstance(v, str) or not v or len(v) > MAX_NAME_CHARS or "\x00" in v:
                raise TraceError(f"{where}: sites[{i}].{key} must be a non-empty string, got {_echo(v)}")
        if not isinstance(s.get("has_weight", False), bool):
            raise TraceError(f"{where}: sites[{i}].has_weight must be true or false, got {_echo(s['has_weight'])}")
    for key in ("tokens", "prompt_tokens"):
        v = meta.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_DIM * 64):
            raise TraceError(f"{where}: key '{key}' must be a non-negative integer, got {_echo(v)}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in trace metadata")


def _json_depth(obj: Any) -> int:
    depth, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            depth = max(depth, d)
            if depth > MAX_META_DEPTH:
                return depth
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return depth


def _open_archive(path: Path) -> SafeNpz:
    where = str(path)
    if path.is_dir():
        raise TraceError(f"{where}: is a directory; give a trace file (.npz)")
    if not path.exists():
        raise TraceError(f"{where}: no such trace file")
    if not path.is_file():
        raise TraceError(f"{where}: not a regular file, so not an accelsim trace")
    try:
        return SafeNpz(path)
    except ArchiveError as exc:
        raise TraceError(f"{where}: not a readable .npz file, so not an accelsim trace ({exc})") from None
    except OSError as exc:
        raise TraceError(f"{where}: cannot be read ({exc.strerror or exc})") from None


def _read_meta(npz: SafeNpz, where: str) -> dict[str, Any]:
    """The metadata JSON object, bounded in size and depth, NaN/Infinity refused."""
    if "meta" not in npz:
        raise TraceError(f"{where}: member 'meta.npy' is missing; not an accelsim trace")
    h = _header(npz, "meta", where)
    if h.dtype != np.uint8 or len(h.shape) != 1:
        raise TraceError(f"{where}: member 'meta.npy' must be 1-D uint8 JSON bytes; not an accelsim trace")
    if h.data_bytes > MAX_META_BYTES:
        raise TraceError(f"{where}: member 'meta.npy' holds {h.data_bytes} bytes; at most {MAX_META_BYTES} allowed")
    raw = _read(npz, "meta", where)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise TraceError(f"{where}: member 'meta.npy' is nested too deeply (at most {MAX_META_DEPTH})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise TraceError(f"{where}: member 'meta.npy' is not JSON ({str(exc)[:120]}); not an accelsim trace") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{where}: member 'meta.npy' must hold a JSON object; not an accelsim trace")
    if _json_depth(meta) > MAX_META_DEPTH:
        raise TraceError(f"{where}: member 'meta.npy' is nested too deeply (at most {MAX_META_DEPTH})")
    return meta


def _header(npz: SafeNpz, key: str, where: str) -> Header:
    try:
        return npz.header(key)
    except ArchiveError as exc:
        raise TraceError(f"{where}: not an accelsim trace: {exc}") from None


def _read(npz: SafeNpz, key: str, where: str) -> np.ndarray:
    try:
        return npz.read(key)
    except ArchiveError as exc:
        raise TraceError(f"{where}: not an accelsim trace: {exc}") from None
    except TooLargeError as exc:
        raise TraceError(f"{where}: {exc}") from None


def _check_inputs(npz: SafeNpz, meta: Mapping[str, Any], sites: Sequence[Site], where: str) -> int:
    """Headers of every input (dtype, [T, K] of each site reading it, the same T everywhere, T equal to the
    metadata's token/step count) and of token_ids; returns T. No input data is read."""
    rows: dict[str, int] = {}
    for s in sites:
        key = f"input/{s.input_id}"
        if key not in npz:
            raise TraceError(f"{where}: sites[{s.index}].input_id '{s.input_id}' has no member {key}.npy")
        h = _header(npz, key, where)
        if h.dtype != np.float16:
            raise TraceError(f"{where}: {key} has dtype {h.dtype}; allowed: float16")
        if len(h.shape) != 2 or h.shape[1] != s.K or h.shape[0] < 1:
            raise TraceError(f"{where}: {key} has shape {h.shape}; site {s.name} needs [T >= 1, {s.K}]")
        rows[key] = h.shape[0]
    counts = sorted(set(rows.values()))
    if len(counts) > 1:
        first = min(rows, key=lambda k: (rows[k], k))
        last = max(rows, key=lambda k: (rows[k], k))
        raise TraceError(
            f"{where}: {first} has {rows[first]} rows but {last} has {rows[last]}; every input holds the same tokens"
        )
    t = counts[0]
    unit = "decode steps" if meta["phase"] == "decode" else "tokens"
    want, seqs = serving_meta.expected_rows(meta), int(meta.get("sequences", 1))
    if want is not None and want != t:
        raise TraceError(
            f"{where}: key 'tokens' says {meta['tokens']} {unit} x sequences {seqs} but the inputs hold {t} rows"
        )
    if "token_ids" in npz:
        h = _header(npz, "token_ids", where)
        if h.dtype.kind not in "iu":
            raise TraceError(f"{where}: member 'token_ids.npy' must be an integer array, got {h.dtype} {h.shape}")
        serving_meta.check_token_ids_shape(meta, h.shape, where)
        prompt = meta.get("prompt_tokens")
        if meta["phase"] == "decode" and isinstance(prompt, int) and h.shape[-1] != prompt + t // seqs:
            raise TraceError(
                f"{where}: decode trace has {t // seqs} steps and key 'prompt_tokens' {prompt}, so token_ids needs "
                f"{prompt + t // seqs} ids per sequence, but it has {h.shape[-1]}"
            )
    return t


class Trace:
    """A validated, lazily read trace file.

    Use as a context manager or call :meth:`close`. Only the metadata is read when the file is opened;
    :meth:`site_input` reads one input array on demand and checks its dtype, shape and values.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        where = str(self.path)
        self._npz = _open_archive(self.path)
        try:
            self._members = set(self._npz.keys())
            meta = _read_meta(self._npz, where)
            _validate_meta(meta, where)
            self.meta: dict[str, Any] = meta
            self.sites: list[Site] = [
                Site(
                    index=i,
                    name=str(s["name"]),
                    layer=int(s["layer"]),
                    kind=str(s["kind"]),
                    K=int(s["K"]),
                    O=int(s["O"]),
                    input_id=str(s["input_id"]),
                    has_weight=bool(s.get("has_weight", False)),
                )
                for i, s in enumerate(meta["sites"])
            ]
            self._rows = _check_inputs(self._npz, meta, self.sites, where)
        except Exception:
            self._npz.close()
            raise
        self._cache: dict[str, np.ndarray] = {}

    def _member(self, key: str) -> np.ndarray:
        """One array of the archive; object (pickled) arrays and corrupt members are TraceErrors."""
        return _read(self._npz, key, str(self.path))

    def site_sizes(self) -> list[tuple[str, int, int, int]]:
        """``(name, T, K, O)`` of every site from the headers alone (for estimates before a run)."""
        return [(s.name, self._rows, s.K, s.O) for s in self.sites]

    # -- metadata -------------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return str(self.meta["phase"])

    @property
    def synthetic(self) -> bool:
        return bool(self.meta["synthetic"])

    @property
    def n_tokens(self) -> int:
        """Rows of every input: tokens of the prefill GEMM, or decode steps (from the headers)."""
        return int(self._rows)

    def token_ids(self) -> np.ndarray:
        if "token_ids" not in self._members:
            raise TraceError(f"{self.path}: member 'token_ids.npy' is missing")
        return np.asarray(self._member("token_ids"))

    def input_ids(self) -> list[str]:
        return sorted({s.input_id for s in self.sites})

    @property
    def n_sequences(self) -> int:
        """Sequences in the batch (``sequences``; 1 for a v1 trace). Rows: see ``serving_meta.ROW_LAYOUT``."""
        return int(self.meta.get("sequences", 1))

    @property
    def architecture(self) -> dict[str, Any] | None:
        """Heads, KV heads, head dim, vocabulary, lm_head shape ... (``serving_meta``); derived from
        ``model_config`` for v1 traces; ``None`` if unknown."""
        return serving_meta.trace_architecture(self.meta)

    def require_sequences(self, batch: int) -> int:
        """One-line ``TraceError`` naming ``sequences`` if the trace holds fewer than ``batch`` sequences."""
        return serving_meta.require_sequences(self.meta, batch, str(self.path))

    def require_architecture(self) -> dict[str, Any]:
        """The architecture, or a one-line ``TraceError`` naming the key."""
        return serving_meta.require_architecture(self.meta, str(self.path))

    def sequence_token_ids(self) -> np.ndarray:
        """Token ids as ``[n_sequences, L]`` whatever the stored layout (``[L]`` for one sequence)."""
        ids = self.token_ids()
        return ids.reshape(self.n_sequences, -1) if ids.ndim == 1 else ids

    # -- arrays ---------------------------------------------------------------------------------------
    def site_input(self, site: Site | int, *, cache: bool = False) -> np.ndarray:
        """The ``[T, K]`` float16 input of one site, read from the archive and validated."""
        s = self.sites[site] if isinstance(site, int) else site
        if s.input_id in self._cache:
            return self._cache[s.input_id]
        arr = self._member(f"input/{s.input_id}")  # dtype and [T, K] were checked from the header at open
        where = f"{self.path}: input/{s.input_id}"
        step = max(1, (1 << 22) // max(1, arr.shape[1]))
        for r0 in range(0, arr.shape[0], step):  # bounded temporaries on multi-GB inputs
            if not np.isfinite(arr[r0 : r0 + step]).all():
                raise TraceError(f"{where} holds NaN or inf values")
        if cache:
            self._cache[s.input_id] = arr
        return arr

    def site_weight(self, site: Site | int) -> np.ndarray | None:
        """The ``[O, K]`` weight of a site if the trace stores it, else ``None``."""
        s = self.sites[site] if isinstance(site, int) else site
        key = f"weight/{s.index}"
        if key not in self._members:
            return None
        h = _header(self._npz, key, str(self.path))
        if h.shape != (s.O, s.K) or h.dtype.kind != "f":
            raise TraceError(
                f"{self.path}: {key} has {h.dtype} shape {h.shape}; site {s.name} needs float [{s.O}, {s.K}]"
            )
        return self._member(key)

    def site_bias(self, site: Site | int) -> np.ndarray | None:
        s = self.sites[site] if isinstance(site, int) else site
        key = f"bias/{s.index}"
        if key not in self._members:
            return None
        h = _header(self._npz, key, str(self.path))
        if h.shape != (s.O,) or h.dtype.kind != "f":
            raise TraceError(f"{self.path}: {key} has {h.dtype} shape {h.shape}; site {s.name} needs float [{s.O}]")
        return self._member(key)

    def iter_sites(self) -> Iterator[tuple[Site, np.ndarray]]:
        """Sites in trace order with their inputs; each shared input is read once and kept while in use."""
        last_use = {s.input_id: s.index for s in self.sites}
        for s in self.sites:
            x = self.site_input(s, cache=True)
            yield s, x
            if last_use[s.input_id] == s.index:
                self._cache.pop(s.input_id, None)

    def to_data(self) -> TraceData:
        """Read everything into memory (small traces, tests and the writer's round trip)."""
        return TraceData(
            meta={k: v for k, v in self.meta.items() if k not in ("sites", "schema_version")},
            sites=list(self.sites),
            inputs={i: np.asarray(self._member(f"input/{i}")) for i in self.input_ids()},
            token_ids=self.token_ids(),
            weights={s.index: w for s in self.sites if (w := self.site_weight(s)) is not None},
            biases={s.index: b for s in self.sites if (b := self.site_bias(s)) is not None},
        )

    def close(self) -> None:
        self._cache.clear()
        self._npz.close()

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (trace and config hashes in run records)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sites_by_kind(sites: Sequence[Site]) -> dict[str, list[Site]]:
    out: dict[str, list[Site]] = {}
    for s in sites:
        out.setdefault(s.kind, []).append(s)
    return out
