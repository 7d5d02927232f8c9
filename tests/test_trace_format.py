"""Trace format v1: round trip, determinism, lazy per-site reading, validation errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from accelsim.trace.format import Site, Trace, TraceData, TraceError, file_sha256, write_trace
from tests.helpers import smollm2_shaped_trace


def test_round_trip_and_shared_inputs_stored_once(tmp_path):
    p = smollm2_shaped_trace(tmp_path / "t.npz", tokens=4, layers=2)
    with Trace(p) as tr:
        assert tr.phase == "prefill" and tr.synthetic
        assert len(tr.sites) == 14
        assert len(tr.input_ids()) == 8  # q/k/v share one input, gate/up another
        q, k = tr.sites[0], tr.sites[1]
        assert q.input_id == k.input_id
        assert np.array_equal(tr.site_input(q), tr.site_input(k))
        assert tr.site_input(tr.sites[6]).shape == (4, 1536)
    names = zipfile.ZipFile(p).namelist()
    assert sum(n.startswith("input/") for n in names) == 8


def test_same_content_same_bytes(tmp_path):
    a = smollm2_shaped_trace(tmp_path / "a.npz", tokens=3)
    b = smollm2_shaped_trace(tmp_path / "b.npz", tokens=3)
    assert file_sha256(a) == file_sha256(b)


def _meta(**over):
    m = {
        "model": "x",
        "model_sha256": "",
        "phase": "prefill",
        "text_source": "t",
        "text_sha256": "",
        "tool_version": "t",
        "synthetic": True,
    }
    m.update(over)
    return m


def test_writer_rejects_inconsistent_data_and_leaves_no_file(tmp_path):
    site = Site(0, "l.q", 0, "q", 8, 4, "a")
    with pytest.raises(TraceError, match="needs \\[T, 8\\]"):
        write_trace(tmp_path / "bad.npz", TraceData(_meta(), [site], {"a": np.zeros((2, 7), np.float16)}, np.arange(2)))
    with pytest.raises(TraceError, match="phase"):
        write_trace(
            tmp_path / "bad.npz", TraceData(_meta(phase="train"), [site], {"a": np.zeros((2, 8))}, np.arange(2))
        )
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_file_and_key(tmp_path):
    with pytest.raises(TraceError, match="no such trace file"):
        Trace(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(TraceError, match="junk.npz: not a readable"):
        Trace(junk)
    # a pickled object array is refused (never unpickled)
    pk = tmp_path / "pickled.npz"
    np.savez(pk, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TraceError, match="pickled.npz"):
        Trace(pk)
    # wrong schema version
    p = smollm2_shaped_trace(tmp_path / "v.npz", tokens=2)
    with zipfile.ZipFile(p) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    import io

    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())
    meta["schema_version"] = "accelsim-trace/9"
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    members["meta.npy"] = buf.getvalue()
    bad = tmp_path / "v9.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(TraceError, match="schema_version"):
        Trace(bad)


def test_non_finite_values_are_reported_when_read(tmp_path):
    site = Site(0, "l.q", 0, "q", 4, 4, "a")
    x = np.array([[1, np.inf, 0, 0]], dtype=np.float16)
    p = write_trace(tmp_path / "inf.npz", TraceData(_meta(), [site], {"a": x}, np.arange(1)))
    with Trace(p) as tr, pytest.raises(TraceError, match="NaN or inf"):
        tr.site_input(0)
