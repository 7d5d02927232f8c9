"""``accelsim eval``: one record per spec (perplexity, generative fidelity, timings, provenance).

``Evaluator(settings).run(spec)`` returns one record (a flat JSON-able dict); ``write_records``
(``accelsim.accuracy.records``) merges records into a results file. The metrics are those of
``accelsim.accuracy.metrics`` (perplexity, top-1, token, prefix and teacher-forced agreement); their
definitions are in that module and in ``docs/accuracy.md``. The names of both modules are re-exported here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from accelsim.accuracy.calibrate import bos_id, fit_learnable, make_windows, static_shifts, tokenize, with_bos
from accelsim.accuracy.metrics import PROMPTS, agreement, forced_agreement, greedy_continuations, perplexity
from accelsim.accuracy.records import SCHEMA, load_records, write_records
from accelsim.accuracy.sparsify import Sparsifier
from accelsim.accuracy.spec import KINDS, RunSpec

__all__ = [
    "PROMPTS",
    "SCHEMA",
    "EvalSettings",
    "Evaluator",
    "perplexity",
    "greedy_continuations",
    "forced_agreement",
    "agreement",
    "load_records",
    "write_records",
]

ProgressFactory = Callable[[str], Any]  # label -> callable(done, total) with an optional .close()


def _none_progress(label: str) -> None:
    return None


@dataclass
class EvalSettings:
    """Everything that defines an evaluation besides the spec (recorded with every result)."""

    model: str = "smollm2-135m"
    text: str = "pydoc"
    windows: int = 16
    seq_len: int = 512
    calib_windows: int = 8
    kinds: tuple[str, ...] = KINDS
    layers: tuple[int, ...] | None = None
    gen_tokens: int = 32
    prompts: tuple[str, ...] = PROMPTS
    fit_epochs: int = 2
    fit_lr: float = 2e-3
    greedy_windows: int = 1
    greedy_step: float = 0.1
    dtype: str = "float32"

    def layers_label(self) -> str:
        return "all" if self.layers is None else ",".join(map(str, self.layers))


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    name: str
    sha256: str
    source: str
    text_sha256: str
    text_label: str
    eval_windows: torch.Tensor
    calib_windows: torch.Tensor
    load_s: float
    bos: int | None = None  # prepended to every window and prompt (tokenizers that add a BOS by default)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> int:
        return 0 if self.bos is None else 1


class Evaluator:
    """Loads the model and the windows once; ``run(spec)`` evaluates one spec and returns its record."""

    def __init__(
        self,
        settings: EvalSettings,
        progress: ProgressFactory | None = None,
        log: Callable[[str], None] | None = None,
        loaded_model: Any = None,
    ):
        self.s = settings
        self.progress = progress or _none_progress
        self.log = log or (lambda msg: None)
        self._lm = loaded_model
        self._state: _Loaded | None = None

    # -- set-up ---------------------------------------------------------------------------------------
    def state(self) -> _Loaded:
        if self._state is None:
            from accelsim.hf import load_model, read_text

            t0 = time.perf_counter()
            lm = self._lm if self._lm is not None else load_model(self.s.model, dtype=self.s.dtype)
            load_s = time.perf_counter() - t0
            text, text_sha, label = read_text(self.s.text)
            ids = tokenize(lm.tokenizer, text)
            ev, ca = make_windows(ids, self.s.windows, self.s.seq_len, max(self.s.calib_windows, self.s.greedy_windows))
            bos = bos_id(lm.tokenizer)
            self._state = _Loaded(
                lm.model,
                lm.tokenizer,
                lm.name,
                lm.sha256,
                lm.source,
                text_sha,
                label,
                with_bos(ev, bos),
                with_bos(ca, bos),
                load_s,
                bos,
            )
            self.log(
                f"model {lm.name} ({load_s:.1f} s), {ids.numel()} text tokens, {ev.shape[0]}x{ev.shape[1]} eval, "
                f"{ca.shape[0]}x{ca.shape[1]} calibration"
            )
        return self._state

    def _bar(self, label: str) -> Any:
        return self.progress(label)

    @staticmethod
    def _close(bar: Any) -> None:
        if bar is not None and hasattr(bar, "close"):
            bar.close()

    def _prompts_sha(self) -> str:
        return hashlib.sha256("\x00".join(self.s.prompts).encode()).hexdigest()

    def dense(self) -> dict[str, Any]:
        """Dense perplexity, top-1 predictions and continuations (computed once per evaluator)."""
        st = self.state()
        if "dense" in st.cache:
            return st.cache["dense"]
        t0 = time.perf_counter()
        bar = self._bar("dense ppl")
        ppl = perplexity(st.model, st.eval_windows, bar, st.prefix)
        self._close(bar)
        t1 = time.perf_counter()
        cont = self._generate(st)
        t2 = time.perf_counter()
        st.cache["dense"] = {
            "ppl": ppl["ppl"],
            "top1": ppl["top1"],
            "continuations": cont,
            "ppl_s": t1 - t0,
            "generate_s": t2 - t1,
        }
        return st.cache["dense"]

    def _static_shifts(self, sites: Any) -> dict[str, float]:
        st = self.state()
        if "eta" not in st.cache:
            t0 = time.perf_counter()
            bar = self._bar("static shift calibration")
            st.cache["eta"] = static_shifts(st.model, sites, st.calib_windows[: self.s.calib_windows], bar)
            self._close(bar)
            st.cache["eta_s"] = time.perf_counter() - t0
        return st.cache["eta"]

    def _histograms(self, sites: Any) -> dict[str, Any]:
        from accelsim.accuracy.teal import collect_histograms

        st = self.state()
        if "hist" not in st.cache:
            t0 = time.perf_counter()
            bar = self._bar("TEAL histograms")
            st.cache["hist"] = collect_histograms(st.model, sites, st.calib_windows[: self.s.calib_windows], bar)
            self._close(bar)
            st.cache["hist_s"] = time.perf_counter() - t0
        return st.cache["hist"]

    def _generate(self, st: _Loaded) -> list[list[int]]:
        """Greedy continuations of the prompts, or none when ``gen_tokens`` is 0 (perplexity-only rows)."""
        if not self.s.gen_tokens:
            return []
        return greedy_continuations(st.model, st.tokenizer, self.s.prompts, self.s.gen_tokens, st.bos)

    # -- one spec -------------------------------------------------------------------------------------
    def run(self, spec: RunSpec) -> dict[str, Any]:
        st = self.state()
        dense = self.dense()
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        extra: dict[str, Any] = {}
        if spec.is_dense:
            ppl_val = dense["ppl"]
            cont = dense["continuations"]
            timings["ppl"] = dense.get("ppl_s", 0.0)
            timings["generate"] = dense.get("generate_s", 0.0)
            realized = {"mean": 1.0, "param_weighted": 1.0}
            top1_agree = forced = 1.0
        else:
            sp = Sparsifier(st.model, spec, self.s.kinds, self.s.layers)
            calib_s = 0.0
            if spec.mitigation == "static-shift":
                already = "eta" in st.cache
                eta = self._static_shifts(sp.sites)
                for s in sp.sites:
                    s.eta = eta[s.name]
                calib_s = 0.0 if already else st.cache["eta_s"]
                extra["static_eta_mean"] = sum(eta.values()) / len(eta)
            if spec.pattern.kind == "teal":
                from accelsim.accuracy.teal import greedy_allocation, uniform_thresholds

                already = "hist" in st.cache
                hists = self._histograms(sp.sites)
                calib_s += 0.0 if already else st.cache["hist_s"]
                target = spec.pattern.sparsity
                if spec.pattern.greedy:
                    gkey = f"greedy{target}"
                    if gkey not in st.cache:
                        bar = self._bar("TEAL greedy allocation")
                        with sp:
                            st.cache[gkey] = greedy_allocation(
                                st.model,
                                sp,
                                hists,
                                st.calib_windows[: self.s.greedy_windows],
                                target,
                                base_step=self.s.greedy_step,
                                progress=bar,
                            )
                        self._close(bar)
                        calib_s += st.cache[gkey]["seconds"]
                    alloc = st.cache[gkey]
                    for s in sp.sites:
                        s.threshold = alloc["thresholds"][s.name]
                    extra["teal_allocation"] = _mean_by_kind(sp.sites, alloc["sparsity"])
                    extra["teal_greedy_error_ratio"] = _median_ratio(alloc["error"], alloc["uniform_error"])
                    extra["teal_base_step"] = alloc["base_step"]
                    extra["teal_greedy_windows"] = self.s.greedy_windows
                else:
                    for name, t in uniform_thresholds(sp.sites, hists, target).items():
                        next(s for s in sp.sites if s.name == name).threshold = t
            if spec.criterion == "larosa":
                from accelsim.accuracy.rotation import collect_rotations, install_rotations

                if "rot" not in st.cache:
                    bar = self._bar("LaRoSA rotations")
                    st.cache["rot"] = collect_rotations(
                        st.model, sp.sites, st.calib_windows[: self.s.calib_windows], bar
                    )
                    self._close(bar)
                    calib_s += st.cache["rot"]["seconds"]
                install_rotations(sp.sites, st.cache["rot"]["rotations"], spec.pattern.m)
                extra["rotation_tokens"] = st.cache["rot"]["tokens"]
            timings["calibrate"] = calib_s
            with sp:
                if spec.mitigation in ("learnable", "var-learnable"):
                    bar = self._bar(f"fit {spec.pattern.label} {spec.mitigation}")
                    rep = fit_learnable(
                        st.model,
                        sp,
                        st.calib_windows[: self.s.calib_windows],
                        epochs=self.s.fit_epochs,
                        lr=self.s.fit_lr,
                        progress=bar,
                    )
                    self._close(bar)
                    timings["fit"] = rep["seconds"]
                    extra["fit"] = {
                        "windows": rep["windows"],
                        "epochs": rep["epochs"],
                        "lr": rep["lr"],
                        "steps": rep["steps"],
                        "block_mse_before_mean": sum(rep["mse_before"]) / len(rep["mse_before"]),
                        "block_mse_after_mean": sum(rep["mse_after"]) / len(rep["mse_after"]),
                        "layers_improved": sum(a < b for a, b in zip(rep["mse_after"], rep["mse_before"], strict=True)),
                        "layers_fitted": len(rep["layers"]),
                        "layers_reverted": len(rep["reverted"]),
                    }
                sp.reset_stats()
                t1 = time.perf_counter()
                bar = self._bar(f"{spec.pattern.label} {spec.criterion_label} {spec.mitigation_label}")
                res = perplexity(st.model, st.eval_windows, bar, st.prefix)
                self._close(bar)
                ppl_val = res["ppl"]
                top1_agree = float((res["top1"] == dense["top1"]).double().mean())
                realized = sp.realized_density()
                t2 = time.perf_counter()
                cont = self._generate(st)
                forced = (
                    forced_agreement(st.model, st.tokenizer, self.s.prompts, dense["continuations"], st.bos)
                    if self.s.gen_tokens
                    else None
                )
                t3 = time.perf_counter()
            timings["ppl"] = t2 - t1
            timings["generate"] = t3 - t2
        tok_agree, prefix_agree = agreement(dense["continuations"], cont) if self.s.gen_tokens else (None, None)
        timings["total"] = time.perf_counter() - t_start
        if spec.is_dense:  # measured once in dense(), before t_start
            timings["total"] += timings["ppl"] + timings["generate"]
        timings["load_model"] = st.load_s
        pat = spec.pattern
        rec: dict[str, Any] = {
            "key": spec.key(st.name),
            "model": st.name,
            "pattern": pat.label,
            "criterion": spec.criterion_label,
            "mitigation": spec.mitigation_label,
            "sparsity_kind": pat.kind,
            "n": pat.n,
            "m": pat.m,
            "density": pat.density,
            "hw_config": pat.hw_config,
            "ppl": ppl_val,
            "dense_ppl": dense["ppl"],
            "delta_ppl": ppl_val - dense["ppl"],
            "token_agreement": tok_agree,
            "prefix_agreement": prefix_agree,
            "forced_agreement": forced,
            "top1_agreement": top1_agree,
            "realized_density": realized,
            "windows": self.s.windows,
            "seq_len": self.s.seq_len,
            "eval_tokens": self.s.windows * (self.s.seq_len - 1),
            "bos_prefix": st.bos is not None,
            "calib_windows": self.s.calib_windows,
            "text": st.text_label,
            "text_sha256": st.text_sha256,
            "model_sha256": st.sha256,
            "model_source": os.path.basename(st.source),
            "dtype": self.s.dtype,
            "kinds": list(self.s.kinds),
            "layers": self.s.layers_label(),
            "gen_tokens": self.s.gen_tokens,
            "prompts_sha256": self._prompts_sha(),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "versions": _versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **extra,
            "continuations": cont,
        }
        return rec


def _mean_by_kind(sites: Any, sparsity: dict[str, float]) -> dict[str, float]:
    acc: dict[str, list[float]] = {}
    for s in sites:
        acc.setdefault(s.kind, []).append(sparsity[s.name])
    return {k: round(sum(v) / len(v), 4) for k, v in acc.items()}


def _median_ratio(a: dict[int, float], b: dict[int, float]) -> float | None:
    r = sorted(a[k] / b[k] for k in a if b.get(k))
    return r[len(r) // 2] if r else None


def _versions() -> dict[str, str]:
    import transformers

    from accelsim import __version__

    return {
        "accelsim": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
