"""Validation group 2: the event model against the independent per-cycle reference model.

``tests/reference_model.py`` steps every cycle of small machines (systolic arrays up to 8x8, small mma units)
and computes the outputs. Here, on many random configs and shapes, the event model
(``simulate_site(build_site_work(...))``) must give exactly the reference's cycles (and the same DRAM,
compressor and PE busy cycles), and the reference's outputs must equal ``prune(x) @ w`` with the selection
rule of ``accelsim.nm``.
"""

from __future__ import annotations

import ast
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from accelsim.config.hw import HwConfig
from accelsim.sim.engine import STALL_PARTS, simulate_site
from accelsim.sim.tiling import TilingError, choose_tiling
from accelsim.sim.work import TILE_PARTS, build_site_work
from tests.reference_model import pruned, run_reference

PATTERNS = [(1, 2), (2, 4), (3, 4), (1, 4), (2, 3), (3, 8), (4, 8), (2, 8), (5, 8), (1, 3), (3, 5)]


def make_hw(
    dataflow: str,
    *,
    rows: int = 4,
    cols: int = 4,
    sparsity: dict | None = None,
    bw: float = 4.0,
    lat: int = 3,
    act_buf: int = 256,
    w_buf: int = 256,
    out_buf: int = 512,
    max_tokens: int = 8,
    compat: bool = False,
    rows_per_cycle: int = 1,
    link: float = 1.0,
    mma: dict | None = None,
    burst: int = 8,
    w_bytes: float = 2,
) -> HwConfig:
    arr: dict = {"dataflow": dataflow, "scalesim_compat": compat}
    if dataflow == "mma":
        arr["mma"] = mma or {
            "units": 2,
            "tokens": 2,
            "outputs": 3,
            "reduction": 4,
            "issue_interval_cycles": 2,
            "latency_cycles": 3,
            "operand_buffer_read_bytes_per_cycle": 64,
        }
    else:
        arr["systolic"] = {
            "rows": rows,
            "cols": cols,
            "weight_load_rows_per_cycle": rows_per_cycle,
            "os_weight_link_factor": link,
        }
    return HwConfig.model_validate(
        {
            "name": "ref",
            "clock_hz": 1e9,  # so bandwidth_gb_per_s is bytes per cycle
            "precision": {"activation_bytes": 2, "weight_bytes": w_bytes, "accumulator_bytes": 4, "output_bytes": 2},
            "array": arr,
            "sram": {
                "activation_buffer_bytes": act_buf,
                "weight_buffer_bytes": w_buf,
                "output_buffer_bytes": out_buf,
                "max_tokens_per_tile": max_tokens,
            },
            "dram": {"bandwidth_gb_per_s": bw, "latency_cycles": lat, "burst_bytes": burst},
            "sparsity": sparsity or {"kind": "dense"},
        }
    )


def nm_sp(
    n, m, *, selection="dynamic", fetch="dense", gpc=2, clat=2, dlat=1, placement="consumer", fmt="index", meta_bw=64.0
) -> dict:
    return {
        "kind": "nm",
        "n": n,
        "m": m,
        "selection": selection,
        "weight_fetch": fetch,
        "metadata_format": fmt,
        "compressor": {"groups_per_cycle": gpc, "latency_cycles": clat, "placement": placement},
        "decoder": {"latency_cycles": dlat},
        "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": meta_bw},
    }


def unstructured_sp(density, *, fetch="dense", gpc=1, clat=1, dlat=1, placement="consumer", meta_bw=64.0) -> dict:
    return {
        "kind": "unstructured",
        "density": density,
        "weight_fetch": fetch,
        "compressor": {"groups_per_cycle": gpc, "latency_cycles": clat, "placement": placement},
        "decoder": {"latency_cycles": dlat},
        "metadata_buffer": {"capacity_bytes": 1 << 20, "read_bytes_per_cycle": meta_bw},
    }


def random_case(rng: np.random.Generator):
    """A random small machine and site; ``None`` when its tiling is outside what the rule supports."""
    df = str(rng.choice(["ws", "os", "mma"]))
    kinds = ["dense", "nm", "nm", "static"] + (["unstructured"] if df != "ws" else [])
    kind = str(rng.choice(kinds))
    R, C = int(rng.integers(1, 9)), int(rng.integers(1, 9))  # noqa: N806
    sp = None
    if kind in ("nm", "static"):
        n, m = PATTERNS[int(rng.integers(len(PATTERNS)))]
        sp = nm_sp(
            n,
            m,
            selection="dynamic" if kind == "nm" else "static_first_n",
            fetch="gather_rows" if (kind == "nm" and rng.random() < 0.5) else "dense",
            gpc=int(rng.integers(1, 6)),
            clat=int(rng.integers(0, 5)),
            dlat=int(rng.integers(0, 4)),
            placement="producer" if rng.random() < 0.25 else "consumer",
            fmt=str(rng.choice(["index", "bitmask"])),
            meta_bw=float(rng.choice([1, 2.5, 8, 64])),
        )
    elif kind == "unstructured":
        sp = unstructured_sp(
            float(rng.choice([0.25, 0.4, 0.5, 0.7])),
            fetch="gather_rows" if rng.random() < 0.5 else "dense",
            gpc=int(rng.integers(1, 4)),
            clat=int(rng.integers(0, 4)),
            dlat=int(rng.integers(0, 3)),
            placement="producer" if rng.random() < 0.25 else "consumer",
            meta_bw=float(rng.choice([1, 4, 64])),
        )
    mma = None
    if df == "mma":
        mma = {
            "units": int(rng.integers(1, 4)),
            "tokens": int(rng.integers(1, 5)),
            "outputs": int(rng.integers(1, 5)),
            "reduction": int(rng.integers(1, 7)),
            "issue_interval_cycles": int(rng.integers(1, 4)),
            "latency_cycles": int(rng.integers(0, 6)),
            "operand_buffer_read_bytes_per_cycle": float(rng.choice([8, 24, 100, 1000])),
        }
    T = int(rng.choice([1, 2, int(rng.integers(1, 20))]))  # noqa: N806
    K, O = int(rng.integers(1, 40)), int(rng.integers(1, 20))  # noqa: N806
    hw = make_hw(
        df,
        rows=R,
        cols=C,
        sparsity=sp,
        bw=float(rng.choice([0.5, 1, 2, 3, 7.5, 16, 64, math.inf])),
        lat=int(rng.choice([0, 1, 4, 13])),
        act_buf=int(rng.choice([64, 128, 256, 4096])),
        w_buf=int(rng.choice([64, 96, 200, 400, 4096])),
        out_buf=int(rng.choice([64, 128, 512, 4096])),
        max_tokens=int(rng.integers(1, 12)),
        compat=df != "mma" and rng.random() < 0.2,
        rows_per_cycle=int(rng.choice([1, 1, 2, 3])),
        link=float(rng.choice([1, 1.5, 2, 3, 4])),
        mma=mma,
        burst=int(rng.choice([1, 4, 8, 64])),
        w_bytes=float(rng.choice([0.5, 1, 2])),
    )
    try:
        til = choose_tiling(hw, T, K, O)
    except TilingError:
        return None
    if hw.sparsity.kind == "nm" and til.K_tile < K:
        assert til.K_tile % hw.sparsity.m == 0, "the tiling rule never splits an N:M group"
    return hw, T, K, O, bool(rng.random() < 0.1)


def compare(hw: HwConfig, T: int, K: int, O: int, *, seed: int, reuse: bool = False) -> dict:  # noqa: N803
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, K)).astype(np.float16)
    if rng.random() < 0.3:  # many ties: the selection rule's tie-break decides the mask
        x = rng.integers(-2, 3, size=(T, K)).astype(np.float16)
    w = rng.normal(size=(K, O))
    work = build_site_work(hw, x, O, reuse_input=reuse)
    ev = simulate_site(work, hw.dram_bytes_per_cycle, hw.dram.latency_cycles)
    ref = run_reference(hw, x, w, reuse_input=reuse)
    where = f"{hw.model_dump_json(exclude={'name', 'clock_hz', 'schema_version', 'cost'})} T={T} K={K} O={O}"
    assert ev.cycles == ref.cycles, f"cycles event {ev.cycles} != reference {ref.cycles}: {where}"
    assert (ev.dram_busy_cycles, ev.compressor_busy_cycles, ev.pe_busy_cycles) == (
        ref.dram_busy_cycles,
        ref.compressor_busy_cycles,
        ref.pe_busy_cycles,
    ), where
    # the cycle breakdown: tile parts sum to the PE's busy cycles, each stall column to the reference's idle
    # cycles of that cause (operands missing > not compressed > no output slot / drain)
    assert sum(ev.breakdown[p] for p in TILE_PARTS) == ref.pe_busy_cycles, where
    assert {p: ev.breakdown[p] for p in STALL_PARTS} == ref.stalls, (ev.breakdown, ref.stalls, where)
    np.testing.assert_allclose(ref.y, pruned(hw, x) @ w, rtol=1e-9, atol=1e-9, err_msg=where)
    a = work.actions
    assert ref.dram_bytes == {
        "act": a["dram_read_byte_activation"],
        "meta": a["dram_read_byte_metadata"],
        "weight": a["dram_read_byte_weight"],
        "out": a["dram_write_byte_output"],
    }, where
    return {"work": work, "ref": ref}


def _features(hw: HwConfig, T: int, K: int, work) -> set[str]:  # noqa: N803
    sp, a = hw.sparsity, hw.array
    f = {f"{a.dataflow}/{sp.kind if sp.selection == 'dynamic' else 'static'}"}
    if a.dataflow != "mma":
        R = a.systolic.rows  # noqa: N806
        if T < R:
            f.add("T<R")
        if sp.kind == "nm" and R % sp.n:
            f.add("R%n!=0")
    if sp.kind == "nm" and K % sp.m:
        f.add("K%m!=0")
    if not math.isinf(hw.dram_bytes_per_cycle) and hw.dram.latency_cycles > 0:
        f.add("finite bw + latency")
    if math.isinf(hw.dram_bytes_per_cycle):
        f.add("infinite bw")
    for name, v in (("n_t>2", work.n_t > 2), ("n_o>2", work.n_o > 2), ("n_k>1", work.n_k > 1)):
        if v:
            f.add(name)
    if sp.weight_fetch == "gather_rows":
        f.add("gather_rows")
    if sp.compressor is not None and sp.compressor.placement == "producer":
        f.add("producer")
    if a.scalesim_compat:
        f.add("compat")
    return f


N_PER_CHUNK = 40
CHUNKS = 8  # 320 random cases in the default run (about 10 s)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_event_model_equals_reference_on_random_cases(chunk, _coverage):
    rng = np.random.default_rng(1000 + chunk)
    done = 0
    while done < N_PER_CHUNK:
        case = random_case(rng)
        if case is None:
            continue
        hw, T, K, O, reuse = case  # noqa: N806
        res = compare(hw, T, K, O, seed=int(rng.integers(1 << 30)), reuse=reuse)
        _coverage.update(_features(hw, T, K, res["work"]))
        _coverage["cases"] += 1
        done += 1


@pytest.fixture(scope="module")
def _coverage():
    cov: Counter = Counter()
    yield cov
    if cov["cases"] == CHUNKS * N_PER_CHUNK:  # the whole random sample ran: it must cover every feature
        for feature in (
            "ws/dense",
            "ws/nm",
            "ws/static",
            "os/dense",
            "os/nm",
            "os/static",
            "os/unstructured",
            "mma/dense",
            "mma/nm",
            "mma/static",
            "mma/unstructured",
            "T<R",
            "R%n!=0",
            "K%m!=0",
            "finite bw + latency",
            "infinite bw",
            "n_t>2",
            "n_o>2",
            "n_k>1",
            "gather_rows",
            "producer",
            "compat",
        ):
            assert cov[feature] >= 5, (feature, dict(cov))


# --- targeted cases: the corners the design page names -------------------------------------------------------
TARGETED = [
    # (id, hw kwargs, T, K, O)
    ("ws 8x8 dense", {"dataflow": "ws", "rows": 8, "cols": 8, "w_buf": 4096, "act_buf": 4096}, 11, 37, 19),
    ("os 8x8 dense", {"dataflow": "os", "rows": 8, "cols": 8, "w_buf": 4096, "act_buf": 4096}, 11, 37, 19),
    ("ws R%n: 5 rows 2:4", {"dataflow": "ws", "rows": 5, "cols": 3, "sparsity": nm_sp(2, 4)}, 6, 24, 7),
    ("ws R%n: 7 rows 3:8", {"dataflow": "ws", "rows": 7, "cols": 2, "sparsity": nm_sp(3, 8)}, 3, 33, 5),
    ("ws R%n gather", {"dataflow": "ws", "rows": 3, "cols": 4, "sparsity": nm_sp(2, 4, fetch="gather_rows")}, 4, 26, 9),
    ("ws T<R load-bound 2:4", {"dataflow": "ws", "rows": 8, "cols": 4, "sparsity": nm_sp(2, 4)}, 1, 32, 8),
    (
        "ws load 3 rows/cycle",
        {"dataflow": "ws", "rows": 6, "cols": 4, "rows_per_cycle": 3, "sparsity": nm_sp(1, 3)},
        2,
        30,
        8,
    ),
    ("ws compat finite bw", {"dataflow": "ws", "rows": 4, "cols": 4, "compat": True, "bw": 2.0, "lat": 5}, 7, 20, 9),
    ("os T<R 2:4 wide links", {"dataflow": "os", "rows": 8, "cols": 4, "link": 2.0, "sparsity": nm_sp(2, 4)}, 3, 22, 9),
    ("os 2:4 narrow links", {"dataflow": "os", "rows": 4, "cols": 4, "link": 1.5, "sparsity": nm_sp(2, 4)}, 6, 22, 9),
    (
        "os unstructured crossbar",
        {"dataflow": "os", "rows": 4, "cols": 3, "link": 4.0, "sparsity": unstructured_sp(0.3, fetch="gather_rows")},
        9,
        21,
        7,
    ),
    ("mma unstructured", {"dataflow": "mma", "sparsity": unstructured_sp(0.4)}, 7, 30, 8),
    ("mma 2:4 K%m", {"dataflow": "mma", "sparsity": nm_sp(2, 4, fetch="gather_rows")}, 5, 13, 7),
    ("mma 5:8 K%m<n", {"dataflow": "mma", "sparsity": nm_sp(5, 8)}, 2, 9, 7),
    ("mma decode", {"dataflow": "mma", "sparsity": nm_sp(2, 4, fetch="gather_rows"), "bw": 1.0, "lat": 20}, 1, 32, 12),
    (
        "mma producer bitmask",
        {"dataflow": "mma", "sparsity": nm_sp(2, 4, placement="producer", fmt="bitmask", meta_bw=1.0)},
        6,
        24,
        6,
    ),
    (
        "slow compressor",
        {"dataflow": "ws", "rows": 4, "cols": 4, "sparsity": nm_sp(1, 4, gpc=1, clat=9), "max_tokens": 3},
        10,
        16,
        4,
    ),
    ("write-back bound", {"dataflow": "os", "rows": 2, "cols": 2, "bw": 0.5, "lat": 7, "out_buf": 64}, 6, 4, 12),
    ("fractional bandwidth", {"dataflow": "mma", "bw": 3.5, "lat": 2, "w_bytes": 0.5, "burst": 1}, 9, 17, 11),
]


@pytest.mark.parametrize(("hw_kwargs", "T", "K", "O"), [c[1:] for c in TARGETED], ids=[c[0] for c in TARGETED])
def test_event_model_equals_reference_on_corner_cases(hw_kwargs, T, K, O):  # noqa: N803
    kw = dict(hw_kwargs)
    hw = make_hw(kw.pop("dataflow"), **kw)
    for seed in range(3):
        compare(hw, T, K, O, seed=seed)


def test_reuse_input_on_chip():
    hw = make_hw("ws", rows=4, cols=3, sparsity=nm_sp(2, 4, fetch="gather_rows"), act_buf=4096)
    res = compare(hw, 6, 16, 9, seed=5, reuse=True)
    assert res["ref"].dram_bytes["act"] == 0 and res["ref"].compressor_busy_cycles == 0


def test_reference_catches_a_changed_event_model(monkeypatch):
    """The comparison has teeth: one cycle more in one compute tile shows as a mismatch."""
    import accelsim.sim.work as work_mod

    orig = work_mod.build_site_work

    def plus_one(*a, **k):
        w = orig(*a, **k)
        w.tile_parts["pipeline"][0] += 1
        return w

    monkeypatch.setattr(sys.modules[__name__], "build_site_work", plus_one)
    hw = make_hw("os", rows=3, cols=3)
    with pytest.raises(AssertionError, match="cycles event"):
        compare(hw, 5, 9, 4, seed=0)


def test_reference_model_is_independent_of_the_event_model():
    """No shared timing code: the reference imports neither the engine nor the per-tile work formulas."""
    src = (Path(__file__).parent / "reference_model.py").read_text()
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module or "")
    accelsim_mods = {m for m in mods if m.startswith("accelsim")}
    assert accelsim_mods <= {"accelsim.nm", "accelsim.config.hw", "accelsim.sim.tiling"}, accelsim_mods


@pytest.mark.slow
def test_event_model_equals_reference_on_many_random_cases():
    rng = np.random.default_rng(7)
    done = 0
    while done < 3000:
        case = random_case(rng)
        if case is None:
            continue
        hw, T, K, O, reuse = case  # noqa: N806
        compare(hw, T, K, O, seed=int(rng.integers(1 << 30)), reuse=reuse)
        done += 1
