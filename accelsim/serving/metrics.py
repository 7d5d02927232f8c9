"""Serving metrics of one scenario on one hardware config: TTFT, TPOT, tokens/s, energy per token, breakdown.

* **Decode step** (both modes): the decode trace's steps, cut into groups of ``batch`` distinct sequences
  (``view.DecodeBatchView``), run the linear sites (q k v o gate up down lm_head) with the per-token masks and
  the union of kept rows per tile; their mean per group is one step's linear cost. Attention (``attention.py``)
  is added at the step's context: ``context_tokens``, or for a request the mean context of its decode steps
  ``prompt_tokens + ceil(generated_tokens / 2)`` (attention grows linearly in the context).
* **Prefill** (request mode): one request's prompt in chunks of ``prefill_chunk_tokens``. Each chunk's linear
  sites run on the prefill trace's first ``chunk`` tokens of sequence 0 (the activations of one chunk stand for
  every chunk; the remainder chunk on its first tokens); ``lm_head`` runs once, on the prompt's last token.
  Each chunk's attention reads the cache written so far. Requests prefill one after another.

``ttft_ms`` = one request's prefill time (``ttft_last_ms``: the batch's last request, after ``batch`` prefills);
``tpot_ms`` = one decode step; ``tokens_per_s`` = generated tokens
over the whole batch's time (``batch`` prefills + ``generated_tokens`` steps), or ``batch / tpot`` for a
decode step; ``uj_per_token`` = energy of that time over its generated tokens (dynamic + leakage + the
dequantiser).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from accelsim.config.hw import HwConfig
from accelsim.serving import attention as att
from accelsim.serving.dtypes import dequant_cost, dequant_elements, scenario_hw, weight_scales
from accelsim.serving.scenario import Scenario
from accelsim.serving.view import DecodeBatchView, PrefillChunkView
from accelsim.sim.actions import ACTIONS
from accelsim.sim.run import simulate
from accelsim.trace.format import KINDS
from accelsim.trace.serving_meta import LM_HEAD_KIND

#: Breakdown kinds, in report order (``attention`` = ``attn_qk`` + ``attn_pv``).
BREAKDOWN_KINDS = (*KINDS, "attention", LM_HEAD_KIND)
_SUM = ("cycles", "dram_weight_bytes", "dram_activation_bytes", "dram_metadata_bytes", "dram_output_bytes")
MAX_EXACT_CHUNKS = 16


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(_SUM, 0.0), "counts": dict.fromkeys(ACTIONS, 0.0)}


def _add(acc: dict[str, Any], part: dict[str, Any], scale: float = 1.0) -> None:
    for k in _SUM:
        acc[k] += part.get(k, 0) * scale
    for a in ACTIONS:
        acc["counts"][a] += part["counts"][a] * scale


def _by_kind(res: Any, scale: float) -> dict[str, dict[str, Any]]:
    """Site rows of a ``RunResult`` summed by kind, times ``scale``."""
    out: dict[str, dict[str, Any]] = {}
    for r in res.sites:
        part = {k: r[k] for k in _SUM}
        part["counts"] = {a: r[f"{a}_count"] for a in ACTIONS}
        _add(out.setdefault(r["kind"], _empty()), part, scale)
    return out


def _merge(into: dict[str, dict[str, Any]], parts: dict[str, dict[str, Any]], scale: float = 1.0) -> None:
    for kind, part in parts.items():
        _add(into.setdefault(kind, _empty()), part, scale)


def _attention(hw_att: HwConfig, arch, memo, *, batch: int, past: int, queries: int) -> dict[str, dict[str, Any]]:
    parts = att.simulate_attention(hw_att, att.attention_shapes(arch, batch=batch, past=past, queries=queries), memo)
    return {k: {**{s: v.get(s, 0) for s in _SUM}, "counts": v["counts"]} for k, v in parts.items()}


class Server:
    """One scenario on one config; simulations are memoised so that related points share them."""

    def __init__(self, hw: HwConfig, sc: Scenario, decode: Any, prefill: Any | None = None, *, attn_memo=None):
        self.hw, self.sc, self.decode, self.prefill = hw, sc, decode, prefill
        self.hw_s = scenario_hw(hw, sc)
        self.scales = weight_scales(sc)
        self.arch = decode.require_architecture()
        self.hw_att = att.attention_hw(hw, sc.bytes_of("kv_cache_datatype"), sc.bytes_of("activation_datatype"))
        self.attn_memo = {} if attn_memo is None else attn_memo

    # -- decode -----------------------------------------------------------------------------------------
    def decode_linear(self) -> dict[str, dict[str, Any]]:
        """One decode step's linear sites by kind (mean over the trace's groups of ``batch`` sequences)."""
        view = DecodeBatchView(self.decode, self.sc.batch)
        res = simulate(self.hw_s, view, weight_scales=self.scales)
        return _by_kind(res, 1.0 / view.groups)

    def decode_step(self, context: int, linear: dict | None = None) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        _merge(parts, linear if linear is not None else self.decode_linear())
        _merge(
            parts, _attention(self.hw_att, self.arch, self.attn_memo, batch=self.sc.batch, past=context - 1, queries=1)
        )
        return parts

    # -- prefill ----------------------------------------------------------------------------------------
    def _chunk_linear(self, tokens: int) -> dict[str, dict[str, Any]]:
        view = PrefillChunkView(self.prefill, tokens, kinds=KINDS)
        return _by_kind(simulate(self.hw_s, view, weight_scales=self.scales), 1.0)

    def prefill_request(self) -> dict[str, dict[str, Any]]:
        """One request's prefill by kind: chunks of linear sites, each chunk's attention, one lm_head token."""
        sc = self.sc
        assert sc.prompt_tokens is not None and self.prefill is not None
        c = min(sc.prefill_chunk_tokens, sc.prompt_tokens)
        sizes = [c] * (sc.prompt_tokens // c) + ([sc.prompt_tokens % c] if sc.prompt_tokens % c else [])
        parts: dict[str, dict[str, Any]] = {}
        for size in sorted(set(sizes)):
            _merge(parts, self._chunk_linear(size), sizes.count(size))
        starts = np.cumsum([0, *sizes[:-1]])
        _merge(parts, self._chunk_attention(list(zip(starts.tolist(), sizes, strict=True))))
        if any(s.kind == LM_HEAD_KIND for s in self.prefill.sites):
            view = PrefillChunkView(self.prefill, 1, start=sizes[-1] - 1, kinds=(LM_HEAD_KIND,))
            _merge(parts, _by_kind(simulate(self.hw_s, view, weight_scales=self.scales), 1.0))
        return parts

    def _chunk_attention(self, chunks: list[tuple[int, int]]) -> dict[str, dict[str, Any]]:
        """Attention of every chunk; beyond ``MAX_EXACT_CHUNKS`` full chunks, simulated at that many evenly spaced
        chunks and interpolated linearly in the chunk's start (attention is affine in the cached length)."""
        full = [ch for ch in chunks if ch[1] == chunks[0][1]]
        rest = [ch for ch in chunks if ch[1] != chunks[0][1]]
        out: dict[str, dict[str, Any]] = {}
        if len(full) <= MAX_EXACT_CHUNKS:
            picked, weights = full, None
        else:
            idx = np.unique(np.linspace(0, len(full) - 1, MAX_EXACT_CHUNKS).round().astype(int))
            picked = [full[i] for i in idx]
            weights = _interp_weights(idx, len(full))
        for j, (p, q) in enumerate(picked):
            w = 1.0 if weights is None else weights[j]
            _merge(out, _attention(self.hw_att, self.arch, self.attn_memo, batch=1, past=p, queries=q), w)
        for p, q in rest:
            _merge(out, _attention(self.hw_att, self.arch, self.attn_memo, batch=1, past=p, queries=q))
        return out

    # -- the record ---------------------------------------------------------------------------------------
    def run(self, linear: dict | None = None) -> dict[str, Any]:
        sc, hw = self.sc, self.hw
        clock = hw.clock_hz
        if sc.mode == "decode_step":
            assert sc.context_tokens is not None
            ctx = sc.context_tokens
        else:
            assert sc.prompt_tokens is not None and sc.generated_tokens is not None
            ctx = sc.prompt_tokens + math.ceil(sc.generated_tokens / 2)
        step = self.decode_step(ctx, linear)
        rec: dict[str, Any] = _header(hw, sc)
        rec["decode_context_tokens"] = ctx
        step_cyc = _total(step, "cycles")
        rec["tpot_ms"] = step_cyc / clock * 1e3
        e_step = self._energy(step)
        rec["decode_step"] = self._breakdown(step, e_step)
        kv_read = (
            step.get("attn_qk", _empty())["dram_weight_bytes"] + step.get("attn_pv", _empty())["dram_weight_bytes"]
        )
        rec["kv_cache_read_bytes_per_step"] = kv_read
        rec["kv_cache_write_bytes_per_step"] = sum(step.get(k, _empty())["dram_output_bytes"] for k in ("k", "v"))
        rec["weight_bytes_per_step"] = sum(step[k]["dram_weight_bytes"] for k in step if not k.startswith("attn"))
        if sc.mode == "decode_step":
            rec["ttft_ms"] = rec["ttft_last_ms"] = None
            rec["tokens_per_s"] = sc.batch / (step_cyc / clock)
            rec["uj_per_token"] = e_step["total"] / sc.batch / 1e6
            rec["prefill_time_share"] = None
        else:
            pre = self.prefill_request()
            pre_cyc = _total(pre, "cycles")
            e_pre = self._energy(pre)
            rec["prefill"] = self._breakdown(pre, e_pre)
            rec["ttft_ms"] = pre_cyc / clock * 1e3
            rec["ttft_last_ms"] = sc.batch * pre_cyc / clock * 1e3  # the batch's last prompt waits for the others
            g = sc.generated_tokens
            total_cyc = sc.batch * pre_cyc + g * step_cyc
            rec["request_time_ms"] = total_cyc / clock * 1e3
            rec["prefill_time_share"] = sc.batch * pre_cyc / total_cyc
            rec["tokens_per_s"] = sc.batch * g / (total_cyc / clock)
            rec["uj_per_token"] = (sc.batch * e_pre["total"] + g * e_step["total"]) / (sc.batch * g) / 1e6
        rec["decode_tokens_per_s"] = sc.batch / (step_cyc / clock)
        rec.update(dequant_cost(hw, sc))
        return rec

    def _energy(self, parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Energy in pJ per kind (priced on the config itself: its multipliers keep their width)."""
        from accelsim.cost.model import action_prices, energy_from_prices, hardware

        h = hardware(self.hw)
        prices = action_prices(h)
        sc = self.sc
        e_deq = 0.0
        out: dict[str, Any] = {"by_kind": {}}
        deq_price = h.v("energy.dequant_bf16")
        for kind, p in parts.items():
            counts = {a: int(round(v)) for a, v in p["counts"].items()}
            e = sum(energy_from_prices(prices, counts, where=self.hw.name).values())
            w_b = sc.bytes_of("kv_cache_datatype") if kind.startswith("attn") else sc.bytes_of("weight_datatype")
            n = dequant_elements(p["counts"], self.hw, w_b, sc.bytes_of("activation_datatype"))
            d = (n["weight"] + n["activation"]) * deq_price
            e_deq += d
            out["by_kind"][kind] = e + d
        out["dequant_pj"] = e_deq
        out["total"] = sum(out["by_kind"].values())
        return out

    def _breakdown(self, parts: dict[str, dict[str, Any]], energy: dict[str, Any]) -> dict[str, Any]:
        cyc = _total(parts, "cycles")
        rows = {}
        for kind in BREAKDOWN_KINDS:
            names = att.ATTENTION_KINDS if kind == "attention" else (kind,)
            if not any(n in parts for n in names):
                continue
            c = sum(parts[n]["cycles"] for n in names if n in parts)
            rows[kind] = {
                "cycles": c,
                "share": c / cyc if cyc else 0.0,
                "dram_bytes": sum(parts[n][k] for n in names if n in parts for k in _SUM[1:]),
                "energy_pj": sum(energy["by_kind"][n] for n in names if n in parts),
            }
        return {
            "cycles": cyc,
            "time_ms": cyc / self.hw.clock_hz * 1e3,
            "energy_pj": energy["total"],
            "dequant_energy_pj": energy["dequant_pj"],
            "dram_total_bytes": sum(_total(parts, k) for k in _SUM[1:]),
            "by_kind": rows,
        }


def _interp_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Weights ``w_j`` such that ``sum_j w_j f(idx_j)`` is the sum over ``0..n-1`` of the piecewise-linear
    interpolation of ``f`` through the points ``idx``."""
    w = np.zeros(len(idx))
    for i in range(n):
        j = min(np.searchsorted(idx, i, side="right") - 1, len(idx) - 2)
        a, b = idx[j], idx[j + 1]
        t = (i - a) / (b - a)
        w[j] += 1 - t
        w[j + 1] += t
    return w


def _total(parts: dict[str, dict[str, Any]], key: str) -> float:
    return float(sum(p[key] for p in parts.values()))


def _header(hw: HwConfig, sc: Scenario) -> dict[str, Any]:
    return {
        "scenario": sc.name,
        "config": hw.name,
        "pattern": hw.sparsity.label,
        "mode": sc.mode,
        "batch": sc.batch,
        "prompt_tokens": sc.prompt_tokens,
        "generated_tokens": sc.generated_tokens,
        "context_tokens": sc.context_tokens,
        "prefill_chunk_tokens": sc.prefill_chunk_tokens,
        "weight_datatype": sc.weight_datatype,
        "weight_group_size": sc.group_size,
        "activation_datatype": sc.activation_datatype,
        "kv_cache_datatype": sc.kv_cache_datatype,
    }


def with_baseline(rec: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Add the speedups and energy ratio against the dense baseline's record of the same scenario."""
    rec["baseline_config"] = base["config"]
    rec["speedup_tpot_vs_dense"] = base["tpot_ms"] / rec["tpot_ms"]
    rec["speedup_ttft_vs_dense"] = base["ttft_ms"] / rec["ttft_ms"] if rec.get("ttft_ms") else None
    rec["speedup_tokens_per_s_vs_dense"] = rec["tokens_per_s"] / base["tokens_per_s"]
    rec["energy_per_token_vs_dense"] = rec["uj_per_token"] / base["uj_per_token"]
    return rec
