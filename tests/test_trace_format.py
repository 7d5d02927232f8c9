"""Trace format v1: round trip, determinism, lazy per-site reading, validation errors."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest

from accelsim.trace.format import (
    STORE_INPUTS_FROM_BYTES,
    Site,
    Trace,
    TraceData,
    TraceError,
    file_sha256,
    write_trace,
)
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


def test_large_inputs_are_stored_small_members_deflated(tmp_path):
    """Inputs of STORE_INPUTS_FROM_BYTES or more are stored (no inflate on read), the rest deflated; the values
    read back are the same either way, and compress=False stores every member."""
    p = smollm2_shaped_trace(tmp_path / "t.npz", tokens=128, layers=1)  # down input 128 x 1536: 384 KiB
    with zipfile.ZipFile(p) as zf:
        kinds = {i.filename: (i.compress_type, i.file_size) for i in zf.infolist()}
    for name, (how, size) in kinds.items():
        big = name.startswith("input/") and size >= STORE_INPUTS_FROM_BYTES
        assert how == (zipfile.ZIP_STORED if big else zipfile.ZIP_DEFLATED), name
    assert sum(how == zipfile.ZIP_STORED for how, _ in kinds.values()) == 1  # the down input only
    with Trace(p) as tr:
        data = TraceData(
            meta=dict(tr.meta),
            sites=tr.sites,
            inputs={i: tr.site_input(next(s for s in tr.sites if s.input_id == i)) for i in tr.input_ids()},
            token_ids=tr.token_ids(),
        )
    flat = write_trace(tmp_path / "flat.npz", data, compress=False)
    with zipfile.ZipFile(flat) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    with Trace(p) as a, Trace(flat) as b:
        for (sa, xa), (sb, xb) in zip(a.iter_sites(), b.iter_sites(), strict=True):
            assert sa == sb and np.array_equal(xa, xb)


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


# -- v2: sequences, architecture, lm_head; v1 still read ------------------------------------------------
def _arch(**over):
    a = {
        "n_layers": 1, "hidden": 8, "intermediate": 16, "n_heads": 2, "n_kv_heads": 1, "head_dim": 4,
        "vocab_size": 10, "tie_word_embeddings": True, "lm_head": {"K": 8, "O": 10},
        "layer_types": ["sliding_attention"], "sliding_window": 4, "mlp": "gated",
    }  # fmt: skip
    a.update(over)
    return a


def test_v2_writes_sequences_and_architecture_and_v1_files_still_read(tmp_path):
    site = Site(0, "l.q", 0, "q", 8, 8, "a")
    x = np.ones((6, 8), np.float16)
    p = write_trace(tmp_path / "v2.npz", TraceData(_meta(sequences=2, architecture=_arch()), [site], {"a": x},
                                                   np.arange(6).reshape(2, 3)))  # fmt: skip
    with Trace(p) as tr:
        assert tr.meta["schema_version"] == "accelsim-trace/2" and tr.n_sequences == 2
        assert tr.architecture == _arch() and tr.sequence_token_ids().shape == (2, 3)
    p1 = write_trace(tmp_path / "one.npz", TraceData(_meta(), [site], {"a": x}, np.arange(6)))
    with Trace(p1) as tr:  # sequences defaults to 1 on write
        assert tr.n_sequences == 1 and tr.architecture is None
        with pytest.raises(TraceError, match="key 'architecture' is missing"):
            tr.require_architecture()
    from pathlib import Path

    for name in ("smollm2-135m_prefill32.npz", "smollm2-135m_decode16.npz"):  # the committed v1 files
        with Trace(Path(__file__).resolve().parents[1] / "traces" / name) as tr:
            assert tr.meta["schema_version"] == "accelsim-trace/1" and tr.n_sequences == 1
            arch = tr.require_architecture()  # derived from model_config
            assert (arch["n_heads"], arch["n_kv_heads"], arch["head_dim"], arch["vocab_size"]) == (9, 3, 64, 49152)
            assert tr.require_sequences(1) == 1
            with pytest.raises(TraceError, match="key 'sequences' is 1, fewer than the scenario's batch 2"):
                tr.require_sequences(2)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"sequences": 0}, "key 'sequences' must be an integer >= 1"),
        ({"sequences": True}, "key 'sequences'"),
        ({"architecture": "x"}, "key 'architecture' must be an object"),
        ({"architecture": _arch(head_dim=0)}, "key 'architecture.head_dim'"),
        ({"architecture": _arch(n_kv_heads=3)}, "key 'architecture.n_kv_heads' is 3; it must divide n_heads 2"),
        ({"architecture": _arch(tie_word_embeddings=1)}, "tie_word_embeddings"),
        ({"architecture": _arch(lm_head={"K": 8, "O": 11})}, "key 'architecture.lm_head'"),
        ({"architecture": _arch(layer_types=["full_attention"] * 2)}, "key 'architecture.layer_types'"),
        ({"architecture": _arch(layer_types=["local"])}, "key 'architecture.layer_types'"),
        ({"architecture": _arch(sliding_window=None)}, "key 'architecture.sliding_window'"),
    ],
)
def test_v2_metadata_errors_name_the_key(tmp_path, over, message):
    site = Site(0, "l.q", 0, "q", 8, 8, "a")
    data = TraceData(_meta(**over), [site], {"a": np.ones((2, 8), np.float16)}, np.arange(2))
    with pytest.raises(TraceError) as exc:
        write_trace(tmp_path / "bad.npz", data)
    assert message in str(exc.value) and "bad.npz" in str(exc.value) and "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_v2_writer_checks_batch_shapes(tmp_path):
    site = Site(0, "l.q", 0, "q", 8, 8, "a")
    head = [site, Site(1, "lm_head", 1, "lm_head", 8, 10, "b"), Site(2, "lm_head", 1, "lm_head", 8, 10, "b")]
    x = np.ones((3, 8), np.float16)
    cases = [
        (TraceData(_meta(sequences=2), [site], {"a": x}, np.arange(3)), "3 rows, not a multiple of sequences 2"),
        (
            TraceData(_meta(sequences=3), [site], {"a": x}, np.arange(3)),
            ("member 'token_ids.npy' has shape (3,); key 'sequences' 3 needs [3, L]"),
        ),
        (TraceData(_meta(), head, {"a": x, "b": x}, np.arange(3)), "more than one site of kind 'lm_head'"),
    ]
    for data, message in cases:
        with pytest.raises(TraceError, match=re.escape(message)):
            write_trace(tmp_path / "bad.npz", data)
    assert list(tmp_path.iterdir()) == []


def test_memory_check_only_for_large_members(tmp_path, monkeypatch):
    """A member of MEMORY_CHECK_BYTES or more that exceeds the available memory is refused with one line naming
    it; smaller members are read without asking the system (that check cost more than reading them)."""
    import accelsim.trace.safe_npz as safe_npz

    p = smollm2_shaped_trace(tmp_path / "t.npz", tokens=4, layers=1)
    calls = []

    def tiny_memory() -> int:
        calls.append(1)
        return 10

    monkeypatch.setattr(safe_npz, "available_memory_bytes", tiny_memory)
    with Trace(p) as tr:
        site = tr.sites[0]
        assert tr.site_input(site).shape == (4, 576)  # 4.5 KiB: below the threshold, never checked
        assert not calls
    monkeypatch.setattr(safe_npz, "MEMORY_CHECK_BYTES", 1)
    with pytest.raises(TraceError, match=r"t\.npz: member '.*' needs .* GB of memory; only .* GB is available"):
        with Trace(p) as tr:
            tr.site_input(tr.sites[0])
    assert calls
