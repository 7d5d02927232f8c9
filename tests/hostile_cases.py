"""Builders of hostile inputs for tests/test_hostile_inputs.py (issue 13): traces, configs and command lines.

Each case is ``(id, build, expect)``: ``build(tmp, good_trace)`` writes whatever files it needs under ``tmp`` and
returns the command line; ``expect`` are substrings the one error line must contain (the file and the key).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HW = REPO / "hw_configs"
GOOD_YAML = (HW / "nm8_16.yaml").read_text()
ACCURACY = REPO / "docs" / "accuracy_smollm2-135m.json"


# -- zip / npy surgery ----------------------------------------------------------------------------------------
def npy_with_header(header: dict, data: bytes = b"") -> bytes:
    """A ``.npy`` member with a hand-written header (version 1.0), padded as numpy pads it."""
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def pickled_npy(objs: list) -> bytes:
    """A hostile ``.npy`` member: an object-dtype header followed by a pickle payload, built by hand (the
    reader under test must refuse it from the header alone; nothing here or there ever unpickles it)."""
    import pickle

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (len(objs),)})
    buf.write(pickle.dumps(objs))
    return buf.getvalue()


def meta_of(good: Path) -> dict:
    with zipfile.ZipFile(good) as z:
        raw = z.read("meta.npy")
    # the header of meta.npy is plain uint8; skip it by its declared length
    hlen = struct.unpack("<H", raw[8:10])[0]
    return json.loads(raw[10 + hlen :].decode())


def meta_member(meta: object) -> bytes:
    return npy(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def rewrite(good: Path, dst: Path, replace: dict[str, bytes | None], compress: int = zipfile.ZIP_DEFLATED) -> Path:
    """Copy the trace ``good`` to ``dst`` with members replaced (``None`` drops one, new names are added)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dst, "w") as out:
        names = [i.filename for i in src.infolist()]
        for name in names + [n for n in replace if n not in names]:
            if name in replace:
                if replace[name] is None:
                    continue
                out.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), replace[name], compress_type=compress)
            else:
                out.writestr(src.getinfo(name), src.read(name))
    return dst


def with_meta(good: Path, dst: Path, change: Callable[[dict], object]) -> Path:
    meta = meta_of(good)
    new = change(meta)
    return rewrite(good, dst, {"meta.npy": meta_member(meta if new is None else new)})


def set_flag_bits(path: Path, bits: int) -> Path:
    """Set general-purpose flag bits of every local and central header (bit 0 = encrypted)."""
    raw = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            flags = struct.unpack_from("<H", raw, i + off)[0]
            struct.pack_into("<H", raw, i + off, flags | bits)
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path


def input_name(good: Path) -> str:
    with zipfile.ZipFile(good) as z:
        return next(n for n in z.namelist() if n.startswith("input/") and "attn_in" in n)


# -- traces -----------------------------------------------------------------------------------------------
def run_trace(trace: Path | str, tmp: Path) -> list[str]:
    return ["run", "--hw", str(HW / "dense.yaml"), "--trace", str(trace), "--out", str(tmp / "out")]


def _t(build: Callable[[Path, Path], Path]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, good: run_trace(build(tmp, good), tmp)


def _bytes(name: str, data: bytes) -> Callable[[Path, Path], Path]:
    def b(tmp: Path, good: Path) -> Path:
        p = tmp / name
        p.write_bytes(data)
        return p

    return b


def _truncated(tmp: Path, good: Path) -> Path:
    p = tmp / "cut.npz"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return p


def _dir(tmp: Path, good: Path) -> Path:
    (tmp / "adir.npz").mkdir()
    return tmp / "adir.npz"


def _encrypted(tmp: Path, good: Path) -> Path:
    return set_flag_bits(rewrite(good, tmp / "enc.npz", {}), 1)


def _bzip2(tmp: Path, good: Path) -> Path:
    return rewrite(good, tmp / "bz.npz", {"meta.npy": meta_member(meta_of(good))}, compress=zipfile.ZIP_BZIP2)


def _bomb(tmp: Path, good: Path) -> Path:
    # 64 MB of zeros deflate to ~64 kB: a ratio of ~1000 with a declared size far beyond a trace's input
    member = npy_with_header({"descr": "<f2", "fortran_order": False, "shape": (4, 576)}) + bytes(64 << 20)
    return rewrite(good, tmp / "bomb.npz", {input_name(good): member})


def _member(name_fn: Callable[[Path], str], data_fn: Callable[[Path], bytes], fname: str):
    def b(tmp: Path, good: Path) -> Path:
        return rewrite(good, tmp / fname, {name_fn(good): data_fn(good)})

    return b


def _inp(good: Path) -> str:
    return input_name(good)


TRACE_CASES = [
    ("trace-empty", _t(_bytes("empty.npz", b"")), ["empty.npz", "empty"]),
    ("trace-text", _t(_bytes("text.npz", b"hello, not a zip\n")), ["text.npz", "not an accelsim trace"]),
    ("trace-png", _t(_bytes("img.npz", b"\x89PNG\r\n\x1a\n" + bytes(100))), ["img.npz", "not an accelsim trace"]),
    ("trace-missing", lambda tmp, good: run_trace(tmp / "nope.npz", tmp), ["nope.npz", "no such"]),
    ("trace-directory", _t(_dir), ["adir.npz", "is a directory"]),
    ("trace-truncated-zip", _t(_truncated), ["cut.npz", "not an accelsim trace"]),
    ("trace-encrypted", _t(_encrypted), ["enc.npz", "encrypted"]),
    ("trace-bzip2", _t(_bzip2), ["bz.npz", "compression"]),
    ("trace-zip-bomb", _t(_bomb), ["bomb.npz", "input/L0.attn_in"]),
    (
        "trace-npy-huge-shape",
        _t(
            _member(
                _inp,
                lambda g: npy_with_header({"descr": "<f2", "fortran_order": False, "shape": (10**9, 576)}, bytes(64)),
                "huge.npz",
            )
        ),
        ["huge.npz", "input/L0.attn_in"],
    ),
    (
        "trace-npy-bad-magic",
        _t(_member(_inp, lambda g: b"NOTNUMPY" + bytes(200), "magic.npz")),
        ["magic.npz", "input/L0.attn_in"],
    ),
    (
        "trace-npy-header-garbage",
        _t(_member(_inp, lambda g: b"\x93NUMPY\x01\x00" + struct.pack("<H", 16) + b"__import__('os')", "hdr.npz")),
        ["hdr.npz", "input/L0.attn_in"],
    ),
    (
        "trace-wrong-dtype-f8",
        _t(_member(_inp, lambda g: npy(np.zeros((4, 576), np.float64)), "f8.npz")),
        ["f8.npz", "input/L0.attn_in", "float16"],
    ),
    (
        "trace-wrong-dtype-int",
        _t(_member(_inp, lambda g: npy(np.zeros((4, 576), np.int16)), "i2.npz")),
        ["i2.npz", "input/L0.attn_in", "float16"],
    ),
    (
        "trace-pickled-object-array",
        _t(_member(_inp, lambda g: pickled_npy([{"a": 1}, None]), "pkl.npz")),
        ["pkl.npz", "input/L0.attn_in"],
    ),
    (
        "trace-pickled-meta",
        _t(_member(lambda g: "meta.npy", lambda g: pickled_npy([1, "x"]), "pm.npz")),
        ["pm.npz", "meta"],
    ),
    (
        "trace-shape-mismatch",
        _t(_member(_inp, lambda g: npy(np.zeros((4, 100), np.float16)), "shape.npz")),
        ["shape.npz", "input/L0.attn_in", "576"],
    ),
    (
        "trace-rows-mismatch",
        _t(_member(_inp, lambda g: npy(np.zeros((5, 576), np.float16)), "rows.npz")),
        ["rows.npz", "rows"],
    ),
    (
        "trace-nan-input",
        _t(_member(_inp, lambda g: npy(np.full((4, 576), np.nan, np.float16)), "nan.npz")),
        ["nan.npz", "input/L0.attn_in", "NaN"],
    ),
    (
        "trace-inf-input",
        _t(_member(_inp, lambda g: npy(np.full((4, 576), np.inf, np.float16)), "inf.npz")),
        ["inf.npz", "input/L0.attn_in"],
    ),
    ("trace-missing-input", _t(lambda tmp, g: rewrite(g, tmp / "noin.npz", {_inp(g): None})), ["noin.npz", "input"]),
    (
        "trace-missing-meta",
        _t(lambda tmp, g: rewrite(g, tmp / "nometa.npz", {"meta.npy": None})),
        ["nometa.npz", "meta"],
    ),
    (
        "trace-meta-not-json",
        _t(_member(lambda g: "meta.npy", lambda g: npy(np.frombuffer(b"{not json", np.uint8)), "mj.npz")),
        ["mj.npz", "meta", "not JSON"],
    ),
    (
        "trace-meta-not-object",
        _t(lambda tmp, g: with_meta(g, tmp / "mlist.npz", lambda m: [1, 2, 3])),
        ["mlist.npz", "meta", "object"],
    ),
    (
        "trace-meta-deep",
        _t(
            _member(
                lambda g: "meta.npy",
                lambda g: npy(np.frombuffer(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", np.uint8)),
                "deep.npz",
            )
        ),
        ["deep.npz", "meta", "nested"],
    ),
    (
        "trace-meta-huge",
        _t(
            _member(
                lambda g: "meta.npy",
                lambda g: npy_with_header({"descr": "|u1", "fortran_order": False, "shape": (1 << 40,)}, b"{}"),
                "hugemeta.npz",
            )
        ),
        ["hugemeta.npz", "meta"],
    ),
    (
        "trace-meta-nan",
        _t(
            _member(
                lambda g: "meta.npy",
                lambda g: npy(np.frombuffer(json.dumps(meta_of(g)).replace('"tests"', "NaN").encode(), np.uint8)),
                "mnan.npz",
            )
        ),
        ["mnan.npz", "NaN"],
    ),
    (
        "trace-meta-wrong-dtype",
        _t(_member(lambda g: "meta.npy", lambda g: npy(np.zeros(8, np.float32)), "mdt.npz")),
        ["mdt.npz", "meta", "uint8"],
    ),
]


def _site(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def c(meta: dict) -> None:
        change(meta["sites"][0])

    return c


def _meta_case(name: str, change: Callable[[dict], object], expect: list[str]):
    fname = f"{name}.npz"
    return (f"trace-{name}", _t(lambda tmp, g: with_meta(g, tmp / fname, change)), [fname, *expect])


TRACE_CASES += [
    _meta_case("site-kind", _site(lambda s: s.update(kind="attention")), ["kind", "attention", "gate"]),
    _meta_case("site-O-huge", _site(lambda s: s.update(O=10**12)), ["sites[0]", "O"]),
    _meta_case("site-K-string", _site(lambda s: s.update(K="576")), ["sites[0]", "K"]),
    _meta_case("site-layer-bool", _site(lambda s: s.update(layer=True)), ["sites[0]", "layer"]),
    _meta_case("site-missing-key", _site(lambda s: s.pop("input_id")), ["sites[0]", "input_id"]),
    _meta_case("sites-not-list", lambda m: m.update(sites={"a": 1}), ["sites"]),
    _meta_case("sites-empty", lambda m: m.update(sites=[]), ["sites"]),
    _meta_case("phase-bogus", lambda m: m.update(phase="training"), ["phase", "prefill", "decode"]),
    _meta_case("schema-bogus", lambda m: m.update(schema_version="other/9"), ["schema_version"]),
    _meta_case("meta-missing-key", lambda m: m.pop("model") and None, ["model"]),
    _meta_case("tokens-mismatch", lambda m: m.update(tokens=99), ["tokens", "99"]),
    _meta_case(
        "decode-rows",
        lambda m: m.update(phase="decode", prompt_tokens=7),
        ["prompt_tokens", "token_ids"],
    ),
    _meta_case("markup-name", _site(lambda s: s.update(kind="[bold]q[/]")), ["[bold]q[/]"]),
]


# -- configs ----------------------------------------------------------------------------------------------
def run_config(cfg: Path, good: Path, tmp: Path) -> list[str]:
    return ["run", "--hw", str(cfg), "--trace", str(good), "--out", str(tmp / "out")]


def _cfg(name: str, text: str | bytes | Callable[[str], str], expect: list[str]):
    fname = f"{name}.yaml"

    def build(tmp: Path, good: Path) -> list[str]:
        p = tmp / fname
        body = text(GOOD_YAML) if callable(text) else text
        p.write_bytes(body if isinstance(body, bytes) else body.encode())
        return run_config(p, good, tmp)

    return (f"config-{name}", build, [fname, *expect])


def _sub(old: str, new: str) -> Callable[[str], str]:
    def f(t: str) -> str:
        assert old in t, old
        return t.replace(old, new, 1)

    return f


# billion laughs: nine levels of ten aliases each expand to 10**9 values
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CONFIG_CASES = [
    _cfg("syntax", "name: x\narray: [unclosed\n", ["not valid YAML"]),
    _cfg("tab-indent", "name: x\narray:\n\tdataflow: mma\n", ["YAML"]),
    _cfg("empty", "", ["mapping"]),
    _cfg("top-list", "- 1\n- 2\n", ["mapping", "list"]),
    _cfg("binary", b"\xff\xfe\x00garbage", ["UTF-8"]),
    _cfg("nul", "name: x\x00\n", ["NUL"]),
    _cfg("unknown-key", lambda t: t + "bogus_key: 1\n", ["bogus_key"]),
    _cfg("unknown-nested-key", _sub("  units: 8\n", "  units: 8\n    unitz: 8\n"), ["unitz"]),
    _cfg("duplicate-key", lambda t: t + "clock_hz: 2.0e9\n", ["duplicate", "clock_hz"]),
    _cfg("alias-bomb", _BOMB, ["aliases"]),
    _cfg("alias-recursive", "a: &a [*a]\n", ["alias"]),
    _cfg("deep-flow", "a: " + "[" * 5000 + "]" * 5000 + "\n", ["nest"]),
    _cfg("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n", ["nest"]),
    _cfg("int-as-string", _sub("units: 8", 'units: "8"'), ["array.mma.units", "integer"]),
    _cfg("int-as-bool", _sub("units: 8", "units: true"), ["array.mma.units", "integer"]),
    _cfg("int-as-float", _sub("units: 8", "units: 8.5"), ["array.mma.units"]),
    _cfg("int-huge", _sub("units: 8", "units: " + "9" * 400), ["array.mma.units"]),
    _cfg("bandwidth-tiny", _sub("bandwidth_gb_per_s: 256.0", "bandwidth_gb_per_s: 1.0e-300"), ["bandwidth_gb_per_s"]),
    _cfg("bandwidth-nan", _sub("bandwidth_gb_per_s: 256.0", "bandwidth_gb_per_s: .nan"), ["bandwidth_gb_per_s"]),
    _cfg("clock-inf", _sub("clock_hz: 1.0e9", "clock_hz: .inf"), ["clock_hz"]),
    _cfg("clock-negative", _sub("clock_hz: 1.0e9", "clock_hz: -1.0e9"), ["clock_hz"]),
    _cfg(
        "size-1e308",
        _sub("activation_buffer_bytes: 524288", "activation_buffer_bytes: 1.0e308"),
        ["activation_buffer_bytes"],
    ),
    _cfg("n-gt-m", _sub("  n: 8\n", "  n: 17\n"), ["n must be <= m"]),
    _cfg("dataflow-bogus", _sub("dataflow: mma", "dataflow: magic"), ["dataflow", "mma"]),
    _cfg("markup-key", lambda t: t + "'[bold]x[/]': 1\n", ["[bold]x[/]"]),
    _cfg("long-value", _sub("dataflow: mma", "dataflow: " + "z" * 5000), ["dataflow"]),
]


def _cfg_path(name: str, path_fn: Callable[[Path], Path], expect: list[str]):
    return (f"config-{name}", lambda tmp, good: run_config(path_fn(tmp), good, tmp), expect)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


CONFIG_CASES += [
    _cfg_path("missing", lambda tmp: tmp / "none.yaml", ["none.yaml", "no such file"]),
    _cfg_path("directory", lambda tmp: _mkdir(tmp / "cfgdir.yaml"), ["cfgdir.yaml", "is a directory"]),
]


# -- command-line misuse and output paths --------------------------------------------------------------------
def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _tradeoff_runs(text: str, name: str) -> Callable[[Path, Path], list[str]]:
    def build(tmp: Path, good: Path) -> list[str]:
        runs = _write(tmp / name, text)
        return ["tradeoff", "--accuracy", str(ACCURACY), "--runs", str(runs), "--out", str(tmp / "out")]

    return build


def _out_file(tmp: Path, good: Path) -> list[str]:
    _write(tmp / "out", "I am a file\n")
    return ["run", "--hw", str(HW / "dense.yaml"), "--trace", str(good), "--out", str(tmp / "out")]


def _out_member_dir(tmp: Path, good: Path) -> list[str]:
    (tmp / "res" / "summary.json").mkdir(parents=True)
    return ["run", "--hw", str(HW / "dense.yaml"), "--trace", str(good), "--out", str(tmp / "res")]


CLI_CASES = [
    (
        "cli-bogus-criterion",
        lambda tmp, good: [
            "run",
            "--hw",
            str(HW / "nm8_16.yaml"),
            "--trace",
            str(good),
            "--accuracy",
            str(ACCURACY),
            "--criterion",
            "bogus",
            "--out",
            str(tmp / "out"),
        ],
        ["criterion", "bogus", "magnitude"],
    ),
    ("cli-runs-list-of-ints", _tradeoff_runs("[1, 2]", "ints.json"), ["ints.json", "runs[0]"]),
    ("cli-runs-dict", _tradeoff_runs('{"a": 1}', "dict.json"), ["dict.json", "runs"]),
    ("cli-runs-not-json", _tradeoff_runs("{not json", "nj.json"), ["nj.json", "JSON"]),
    ("cli-runs-missing-keys", _tradeoff_runs('[{"config": "x"}]', "mk.json"), ["mk.json", "runs[0]", "missing"]),
    (
        "cli-runs-bad-hw",
        _tradeoff_runs(
            json.dumps(
                [
                    {
                        "config": "x",
                        "hw": {"name": 3},
                        "trace": "t",
                        "phase": "prefill",
                        "tokens": 1,
                        "cycles": 1,
                        "dense_macs": 1,
                        "action_counts": {},
                    }
                ]
            ),
            "bh.json",
        ),
        ["bh.json", "runs[0]"],
    ),
    (
        "cli-accuracy-not-json",
        lambda tmp, good: [
            "tradeoff",
            "--accuracy",
            str(_write(tmp / "acc.json", "][")),
            "--trace",
            str(good),
            "--out",
            str(tmp / "out"),
        ],
        ["acc.json"],
    ),
    (
        "cli-tokens-float",
        lambda tmp, good: ["trace", "--tokens", "1e8", "--out", str(tmp / "out")],
        ["--tokens", "integer"],
    ),
    (
        "cli-tokens-zero",
        lambda tmp, good: (
            ["trace", "--synthetic", "smollm2-135m", "--stats-from", str(good), "--tokens", "0"]
            + ["--out", str(tmp / "out")]
        ),
        ["--tokens"],
    ),
    ("cli-unknown-option", lambda tmp, good: ["run", "--trace", str(good), "--bogus"], ["--bogus"]),
    ("cli-unknown-command", lambda tmp, good: ["frobnicate"], ["frobnicate"]),
    ("cli-missing-trace-option", lambda tmp, good: ["run", "--out", str(tmp / "out")], ["--trace"]),
    (
        "cli-phase-bogus",
        lambda tmp, good: ["trace", "--phase", "train", "--out", str(tmp / "out")],
        ["--phase", "prefill", "decode"],
    ),
    (
        "cli-synthetic-bogus",
        lambda tmp, good: ["trace", "--synthetic", "gpt9", "--stats-from", str(good), "--out", str(tmp / "out")],
        ["--synthetic", "gpt9", "llama2-7b"],
    ),
    (
        "cli-synthetic-too-many-tokens",
        lambda tmp, good: (
            ["trace", "--synthetic", "llama2-7b", "--stats-from", str(good), "--tokens", "100000000"]
            + ["--out", str(tmp / "out")]
        ),
        ["--tokens", "memory"],
    ),
    (
        "cli-compare-empty-dir",
        lambda tmp, good: (
            ["compare", "--trace", str(good), "--hw-dir", str(_mkdir(tmp / "nohw"))] + ["--out", str(tmp / "out")]
        ),
        ["nohw", "yaml"],
    ),
    (
        "cli-tradeoff-neither",
        lambda tmp, good: ["tradeoff", "--accuracy", str(ACCURACY), "--out", str(tmp / "out")],
        ["--trace", "--runs"],
    ),
    ("out-is-file", _out_file, ["--out", "is a file"]),
    ("out-member-is-dir", _out_member_dir, ["--out", "summary.json", "directory"]),
    (
        "out-on-proc",
        lambda tmp, good: ["run", "--hw", str(HW / "dense.yaml"), "--trace", str(good), "--out", "/proc/accelsim-out"],
        ["--out", "/proc", "pseudo"],
    ),
    (
        "out-compare-is-file",
        lambda tmp, good: ["compare", "--trace", str(good), "--out", str(_write(tmp / "out", "x"))],
        ["--out", "is a file"],
    ),
    (
        "out-trace-is-dir",
        lambda tmp, good: (
            ["trace", "--synthetic", "smollm2-135m", "--stats-from", str(good)] + ["--out", str(_mkdir(tmp / "out"))]
        ),
        ["--out", "is a directory"],
    ),
    (
        "out-assumptions-is-dir",
        lambda tmp, good: ["assumptions", "--trace", str(good), "--out", str(_mkdir(tmp / "a.md"))],
        ["--out", "a.md", "is a directory"],
    ),
    (
        "out-sweep-is-file",
        lambda tmp, good: (
            ["sweep", "--trace", str(good), "--set", "dram.latency_cycles=100,200"]
            + ["--out", str(_write(tmp / "sw", "x"))]
        ),
        ["--out", "sw", "is a file"],
    ),
    (
        "out-tradeoff-on-proc",
        lambda tmp, good: ["tradeoff", "--accuracy", str(ACCURACY), "--trace", str(good), "--out", "/proc/x/y"],
        ["--out", "/proc"],
    ),
]

ALL_CASES = TRACE_CASES + CONFIG_CASES + CLI_CASES
