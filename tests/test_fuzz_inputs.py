"""Fuzzing (issue 13): mutated configs, trace members and headers, and command lines. The only allowed failure
is accelsim's own error (ConfigError / TraceError, or exit 2 with one ``error:`` line).

Short budget here (CI); the long budget is ``ACCELSIM_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_inputs.py``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config import ConfigError, load_hw
from accelsim.trace.format import Trace, TraceError
from tests.helpers import smollm2_shaped_trace
from tests.hostile_cases import GOOD_YAML, HW, meta_member, meta_of, npy_with_header, rewrite
from tests.test_hostile_inputs import invoke

EXAMPLES = int(os.environ.get("ACCELSIM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 100,  # CI: the same examples every run; the long budget explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return smollm2_shaped_trace(tmp_path_factory.mktemp("fz") / "good.npz", tokens=2, layers=1)


def _read_everything(path: Path) -> None:
    with Trace(path) as tr:
        for _site, x in tr.iter_sites():
            assert x.dtype == np.float16 and np.isfinite(x).all()


# -- configs ----------------------------------------------------------------------------------------------
_YAML_BITS = st.sampled_from(
    ["", " ", "\n", ":", "- ", "[", "]", "{", "}", "&a ", "*a", "'", '"', "#", "\t", "!!python/object:os.system ",
     "0x10", "1e308", "-1", ".nan", "true", "null", "~", "8", '"8"', "?", "|", ">", "%YAML 1.1\n", "\x00", "\ufeff"]
)  # fmt: skip


@FUZZ
@given(data=st.data())
def test_fuzzed_config_is_valid_or_one_config_error(data, tmp_path):
    text = GOOD_YAML
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 40)))
        text = text[:i] + data.draw(st.one_of(_YAML_BITS, st.text(max_size=8))) + text[j:]
    p = tmp_path / "fz.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_hw(p)
    except ConfigError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and str(p) in msg and len(msg) < 2500


# -- traces -----------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_fuzzed_trace_bytes_are_read_or_one_trace_error(data, good, tmp_path):
    raw = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    p = tmp_path / "fz.npz"
    p.write_bytes(bytes(raw))
    try:
        _read_everything(p)
    except TraceError as exc:
        assert str(exc) and "\n" not in str(exc) and str(p) in str(exc)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_KEYS = ["name", "layer", "kind", "K", "O", "input_id", "has_weight"]


@FUZZ
@given(data=st.data())
def test_fuzzed_trace_metadata_is_read_or_one_trace_error(data, good, tmp_path):
    meta = meta_of(good)
    for _ in range(data.draw(st.integers(0, 3))):  # site entries first, while "sites" is still the list
        site = meta["sites"][data.draw(st.integers(0, len(meta["sites"]) - 1))]
        site[data.draw(st.sampled_from(_KEYS))] = data.draw(_JSON)
    for _ in range(data.draw(st.integers(0, 2))):
        meta[data.draw(st.sampled_from(sorted(meta) + ["tokens", "prompt_tokens"]))] = data.draw(_JSON)
    p = rewrite(good, tmp_path / "fzm.npz", {"meta.npy": meta_member(meta)})
    try:
        _read_everything(p)
    except TraceError as exc:
        assert str(exc) and "\n" not in str(exc) and str(p) in str(exc)


@FUZZ
@given(
    descr=st.sampled_from(["<f2", ">f2", "<f4", "|u1", "|O", "<c8", "|V8", "<U4", "xx", "<f2\x00"]),
    shape=st.lists(st.integers(-2, 2**62), max_size=3).map(tuple),
    fortran=st.booleans(),
    n_bytes=st.integers(0, 20_000),
)
def test_fuzzed_npy_headers_are_read_or_one_trace_error(descr, shape, fortran, n_bytes, good, tmp_path):
    with zipfile.ZipFile(good) as z:
        member = next(n for n in z.namelist() if n.startswith("input/"))
    body = npy_with_header({"descr": descr, "fortran_order": fortran, "shape": shape}, bytes(n_bytes))
    p = rewrite(good, tmp_path / "fzh.npz", {member: body})
    try:
        _read_everything(p)
    except TraceError as exc:
        assert str(exc) and "\n" not in str(exc) and str(p) in str(exc)


# -- command lines ----------------------------------------------------------------------------------------
_WORDS = [
    "run", "compare", "validate", "cost", "tradeoff", "trace", "--hw", "--trace", "--out", "--criterion",
    "--accuracy", "--runs", "--tokens", "--phase", "--synthetic", "--stats-from", "--json", "--bogus", "--hw-dir",
    "--node", "--scale", "1e8", "-1", "0", "decode", "magnitude", "[bold]x[/]", "", "/proc/x", "/nonexistent",
]  # fmt: skip


@settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
@given(words=st.lists(st.sampled_from(_WORDS + ["@cfg", "@trace", "@dir", "@json"]), min_size=1, max_size=6))
def test_fuzzed_command_lines_exit_0_or_one_error_line(words, good, tmp_path):
    (tmp_path / "j.json").write_text(json.dumps({"runs": [1]}))
    subst = {
        "@cfg": str(HW / "dense.yaml"),
        "@trace": str(good),
        "@dir": str(tmp_path),
        "@json": str(tmp_path / "j.json"),
    }
    args = [subst.get(w, w) for w in words]
    if "trace" in args and "--synthetic" not in args:
        args = ["validate" if a == "trace" else a for a in args]  # a real-model trace needs torch: not fuzzed here
    code, out, err = invoke(args)
    assert "Traceback" not in out + err
    assert code in (0, 2), (args, code, err)
    if code == 2 and "Usage:" not in err:  # click prints usage for a missing command ("accelsim" alone)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
