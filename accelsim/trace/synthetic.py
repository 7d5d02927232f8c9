"""Synthetic traces: real model shapes, sampled activation values (numpy only; ``synthetic: true``).

Two uses:

* :func:`make_test_trace` writes a small seeded trace with SmolLM2-135M's shapes for fast simulator tests;
* :func:`synthesize` writes a trace with another model's shapes (Llama-2-7B) whose values are sampled per
  site kind from distributions fitted to a real trace (see ``docs/tracing.md``).

Every input array is generated from its own seed (derived from the run seed and the input's position), so
the same arguments give the same bytes, and inputs are generated one at a time while the file is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.trace.format import PHASES, Site, TraceData, write_trace

# Input groups of a Llama-style decoder layer: which kinds read one tensor, in forward order.
GROUPS: tuple[tuple[str, ...], ...] = (("q", "k", "v"), ("o",), ("gate", "up"), ("down",))


@dataclass(frozen=True)
class ModelShape:
    """The linear-site shapes of a Llama-style decoder (``nn.Linear`` names as in transformers)."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int = 32000
    tied_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def site_shapes(self) -> dict[str, tuple[int, int]]:
        """``kind -> (K, O)`` of one decoder layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return {"q": (h, h), "k": (h, kv), "v": (h, kv), "o": (h, h), "gate": (h, i), "up": (h, i), "down": (i, h)}

    def to_json(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "num_hidden_layers": self.layers,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab,
            "tie_word_embeddings": self.tied_embeddings,
        }

    def architecture(self, layers: int | None = None) -> dict[str, object]:
        """The v2 ``architecture`` metadata (``accelsim.trace.serving_meta``) of ``layers`` (default all) layers."""
        n = self.layers if layers is None else layers
        return {
            "n_layers": n,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
            "n_heads": self.heads,
            "n_kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab,
            "tie_word_embeddings": self.tied_embeddings,
            "lm_head": {"K": self.hidden, "O": self.vocab},
            "layer_types": ["full_attention"] * n,
            "sliding_window": None,
            "mlp": "gated, silu(gate) * up",
        }

    def linear_weight_share(self) -> tuple[float, int, int]:
        """``(share, linear_params, model_params)`` of a bias-free Llama-style model with these shapes."""
        per_layer = sum(k * o for k, o in self.site_shapes().values())
        linear = self.layers * per_layer
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        norms = (2 * self.layers + 1) * self.hidden
        total = linear + embed + norms
        return linear / total, linear, total


SHAPES: dict[str, ModelShape] = {
    "smollm2-135m": ModelShape(
        "smollm2-135m", layers=30, hidden=576, intermediate=1536, heads=9, kv_heads=3, vocab=49152, tied_embeddings=True
    ),
    # Llama-2-7B: multi-head attention (k/v are 4096 -> 4096)
    "llama2-7b": ModelShape("llama2-7b", layers=32, hidden=4096, intermediate=11008, heads=32, kv_heads=32),
}

_MODULE = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
           "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}  # fmt: skip


def input_id(layer: int, kinds: tuple[str, ...] | list[str]) -> str:
    """Name of a (possibly shared) input: ``L<layer>.<kinds joined by '_'>``, e.g. ``L3.q_k_v``, ``L3.down``.

    The tracer uses the same rule, with the kinds it found reading one tensor."""
    return f"L{layer}.{'_'.join(kinds)}"


def shape_sites(shape: ModelShape, layers: int | None = None, *, lm_head: bool = False) -> list[Site]:
    """The ordered site table of ``layers`` (default: all) decoder layers of ``shape``, then (``lm_head``) the
    output projection as a site of kind ``lm_head`` at layer ``layers``."""
    n = shape.layers if layers is None else layers
    ks = shape.site_shapes()
    sites: list[Site] = []
    for layer in range(n):
        for group in GROUPS:
            iid = input_id(layer, group)
            for kind in group:
                K, O = ks[kind]
                sites.append(Site(len(sites), f"model.layers.{layer}.{_MODULE[kind]}", layer, kind, K, O, iid))
    if lm_head:
        sites.append(Site(len(sites), "lm_head", n, "lm_head", shape.hidden, shape.vocab, input_id(n, ["lm_head"])))
    return sites


def _tool_version() -> str:
    from accelsim import __version__

    return str(__version__)


def make_test_trace(
    path: str | Path, *, tokens: int = 16, phase: str = "prefill", layers: int = 2, seed: int = 0
) -> Path:
    """Write a small SmolLM2-135M-shaped synthetic trace for fast tests and return its path.

    Values: standard Gaussian before q/k/v and gate/up, standard Laplacian before o and down (TEAL's shapes),
    seeded and deterministic (same arguments -> same bytes). Metadata says ``synthetic: true``.
    """
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: allowed {', '.join(PHASES)}")
    if tokens < 1 or layers < 1:
        raise ValueError(f"tokens and layers must be >= 1 (got tokens={tokens}, layers={layers})")
    shape = SHAPES["smollm2-135m"]
    sites = shape_sites(shape, layers)
    inputs: dict[str, np.ndarray] = {}
    for s in sites:
        if s.input_id in inputs:
            continue
        rng = np.random.default_rng([seed, len(inputs)])
        draw = rng.laplace if s.kind in ("o", "down") else rng.normal
        inputs[s.input_id] = draw(size=(tokens, s.K)).astype(np.float16)
    meta = {
        "model": "smollm2-135m",
        "model_sha256": "",
        "phase": phase,
        "text_source": "none (synthetic)",
        "text_sha256": "",
        "tool_version": _tool_version(),
        "synthetic": True,
        "synthetic_info": {
            "generator": "accelsim.trace.synthetic.make_test_trace",
            "seed": seed,
            "distributions": {
                "q_k_v": "normal(0, 1)",
                "o": "laplace(0, 1)",
                "gate_up": "normal(0, 1)",
                "down": "laplace(0, 1)",
            },  # fmt: skip
        },
        "tokens": tokens,
        "sequences": 1,
        "model_config": shape.to_json() | {"num_hidden_layers": layers},
        "architecture": shape.architecture(layers),
    }
    token_ids = np.zeros(tokens, dtype=np.int64)
    return write_trace(path, TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=token_ids))


# --------------------------------------------------------------------------------------------------------
# Fitting a real trace and sampling another model's shapes from the fit
# --------------------------------------------------------------------------------------------------------

# An input is classified by the first kind that reads it; TEAL's expected shape of each class.
CLASSES = {"q": "attn_in", "o": "attn_out", "gate": "mlp_in", "down": "mlp_mid"}
LM_HEAD_CLASS = "mlp_in"  # lm_head reads the final RMSNorm's output: sampled like gate/up's (a norm's output)
TEAL_FAMILY = {
    "attn_in": "Gaussian-like (input of q/k/v)",
    "attn_out": "Laplacian-like, heavy-tailed (input of o)",
    "mlp_in": "Gaussian-like (input of gate/up)",
    "mlp_mid": "Laplacian-like, heavy-tailed (input of down)",
}
_FIT_SAMPLE = 400_000  # pooled values per class used for the shape fit (strided, deterministic)
_BETA_GRID = (0.2, 3.0)


def _gennorm_loglik(a: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean log-likelihood and MLE scale of a zero-mean generalized normal for each shape in ``betas``.

    Density ``beta / (2 alpha Gamma(1/beta)) exp(-(|x|/alpha)^beta)``: ``beta = 2`` is a Gaussian,
    ``beta = 1`` a Laplacian. For a fixed ``beta`` the MLE scale is ``(beta * mean(|x|^beta))^(1/beta)``."""
    from math import lgamma

    la = np.log(np.maximum(a, np.finfo(np.float64).tiny))
    ll = np.empty(len(betas))
    alpha = np.empty(len(betas))
    for i, b in enumerate(betas):
        mb = float(np.mean(np.exp(b * la)))
        alpha[i] = (b * mb) ** (1.0 / b)
        ll[i] = np.log(b) - np.log(2 * alpha[i]) - lgamma(1.0 / b) - 1.0 / b
    return ll, alpha


def fit_gennorm(x: np.ndarray) -> tuple[float, float]:
    """``(beta, alpha)``: maximum-likelihood generalized-normal shape and scale of zero-mean data ``x``
    (coarse grid over ``beta`` in [0.2, 3], then a fine one around the best)."""
    a = np.abs(np.asarray(x, dtype=np.float64).ravel())
    a = a[a > 0]
    if a.size < 16:
        raise ValueError(f"need at least 16 non-zero values to fit a distribution, got {a.size}")
    coarse = np.round(np.arange(_BETA_GRID[0], _BETA_GRID[1] + 1e-9, 0.05), 4)
    ll, _ = _gennorm_loglik(a, coarse)
    b0 = coarse[int(np.argmax(ll))]
    fine = np.round(np.arange(max(_BETA_GRID[0], b0 - 0.05), min(_BETA_GRID[1], b0 + 0.05) + 1e-9, 0.005), 4)
    ll, alpha = _gennorm_loglik(a, fine)
    i = int(np.argmax(ll))
    return float(fine[i]), float(alpha[i])


def sample_gennorm(rng: np.random.Generator, beta: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Unit-scale zero-mean generalized-normal samples (float32): ``sign * Gamma(1/beta)^(1/beta)``."""
    g = rng.standard_gamma(1.0 / beta, size=size, dtype=np.float32)
    mag = np.power(g, np.float32(1.0 / beta), dtype=np.float32)
    sign = rng.integers(0, 2, size=size, dtype=np.int8).astype(np.float32) * 2 - 1
    return mag * sign


def _rank1_scales(a: np.ndarray, iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Token and channel scale factors ``r[T], u[K]`` (mean 1 each) with ``|x[t,k]| ~ r[t] u[k] * const``,
    by alternating means of ``|x|`` (a few Sinkhorn-style rounds)."""
    eps = 1e-12
    r = np.ones(a.shape[0])
    u = np.ones(a.shape[1])
    for _ in range(iters):
        u = (a / r[:, None]).mean(axis=0)
        u /= max(u.mean(), eps)
        r = (a / np.maximum(u, eps)[None, :]).mean(axis=1)
        r /= max(r.mean(), eps)
    # Each u[k] is a mean of only T values (each r[t] of K): part of its spread is sampling noise, which
    # resampling would add on top of the real spread. Shrink towards 1 by the noise share of the variance.
    w = a / r[:, None]
    u = _shrink(u, w.var(axis=0) / w.mean() ** 2 / a.shape[0])
    w = a / np.maximum(u, eps)[None, :]
    r = _shrink(r, w.var(axis=1) / w.mean() ** 2 / a.shape[1])
    return np.maximum(r, eps), np.maximum(u, eps)


def _shrink(est: np.ndarray, noise_var: np.ndarray) -> np.ndarray:
    """``1 + lam (est - 1)`` with ``lam = 1 - mean(noise_var) / var(est)`` clipped to [0, 1] (mean stays 1)."""
    total = float(est.var())
    lam = 0.0 if total <= 0 else min(1.0, max(0.0, 1.0 - float(noise_var.mean()) / total))
    return 1.0 + lam * (est - 1.0)


@dataclass
class ClassFit:
    """The fit of one input class (e.g. ``attn_in``) of a real trace, layer by layer."""

    name: str
    beta: float  # generalized-normal shape of the normalized values (2 Gaussian, 1 Laplacian)
    alpha: float  # its scale
    layer_scale: list[float]  # per source layer: mean |x| / (mean r * mean u) (mean r = mean u = 1)
    token_scales: list[np.ndarray]  # per source layer: r[T], resampled for synthetic rows
    channel_scales: list[np.ndarray]  # per source layer: u[K], resampled for synthetic channels
    kurtosis: float  # of the pooled normalized values (Pearson; 3 Gaussian, 6 Laplacian)

    def summary(self) -> dict[str, object]:
        def q(v: np.ndarray) -> list[float]:
            return [round(float(x), 4) for x in np.quantile(v, [0.01, 0.5, 0.99])]

        return {
            "teal_expected": TEAL_FAMILY.get(self.name, "?"),
            "gennorm_beta": self.beta,
            "gennorm_alpha": round(self.alpha, 6),
            "normalized_kurtosis": round(self.kurtosis, 3),
            "layer_scale": [round(s, 6) for s in self.layer_scale],
            "token_scale_q01_q50_q99": q(np.concatenate(self.token_scales)),
            "channel_scale_q01_q50_q99": q(np.concatenate(self.channel_scales)),
        }


@dataclass
class TraceFit:
    """Distributions fitted to a real trace, per input class."""

    source: str
    source_sha256: str
    source_model: str
    source_phase: str
    layers: int
    classes: dict[str, ClassFit]


def fit_trace(path: str | Path) -> TraceFit:
    """Fit each input class of a real trace (classified by the first kind reading the input: q, o, gate, down).

    Per class and source layer: token scales ``r`` and channel scales ``u`` (``|x| ~ s_l r_t u_k``), and the
    layer scale ``s_l``; the values normalized by them, pooled over layers, get a maximum-likelihood
    generalized-normal shape ``beta`` and scale ``alpha``."""
    from accelsim.trace.format import Trace, file_sha256

    path = Path(path)
    with Trace(path) as tr:
        if tr.synthetic:
            raise ValueError(f"{path}: is synthetic; fit a recorded trace (synthetic: false)")
        first: dict[str, Site] = {}
        for s in tr.sites:
            first.setdefault(s.input_id, s)
        layers = max(s.layer for s in tr.sites if s.kind in CLASSES) + 1
        raw: dict[str, dict[int, np.ndarray]] = {}
        for s in first.values():
            cls = CLASSES.get(s.kind)
            if cls is None:
                continue
            raw.setdefault(cls, {})[s.layer] = tr.site_input(s).astype(np.float64)
        meta = tr.meta
    missing = [c for c in CLASSES.values() if c not in raw]
    if missing:
        raise ValueError(f"{path}: no inputs of class(es) {', '.join(missing)} (needs q, o, gate and down sites)")
    classes: dict[str, ClassFit] = {}
    for cls, by_layer in raw.items():
        if sorted(by_layer) != list(range(layers)):
            raise ValueError(f"{path}: class {cls} lacks some layers (has {sorted(by_layer)})")
        scales, rs, us, pooled = [], [], [], []
        per_layer = max(1, _FIT_SAMPLE // layers)
        for layer in range(layers):
            x = by_layer[layer]
            a = np.abs(x)
            r, u = _rank1_scales(a)
            z = x / (r[:, None] * u[None, :])
            s_l = float(np.abs(z).mean())
            scales.append(s_l)
            rs.append(r)
            us.append(u)
            zn = (z / s_l).ravel()
            pooled.append(zn[:: max(1, -(-zn.size // per_layer))])
        z = np.concatenate(pooled)
        beta, alpha = fit_gennorm(z)
        m2 = float(np.mean(z**2))
        kurt = float(np.mean(z**4) / m2**2) if m2 > 0 else float("nan")
        classes[cls] = ClassFit(cls, beta, alpha, scales, rs, us, kurt)
    return TraceFit(
        source=path.name,
        source_sha256=file_sha256(path),
        source_model=str(meta.get("model")),
        source_phase=str(meta.get("phase")),
        layers=layers,
        classes=classes,
    )


class _LazyInput:
    """A ``[T, K]`` float16 input generated when the writer asks for it (``np.asarray``), then dropped.

    ``write_trace`` checks ``.ndim``/``.shape`` first and converts each input once, so at most one
    generated input lives in memory at a time."""

    def __init__(self, shape: tuple[int, int], make: Callable[[], np.ndarray]):
        self.shape = shape
        self.ndim = 2
        self.size = shape[0] * shape[1]
        self._make = make

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        arr = self._make()
        return arr if dtype is None else arr.astype(dtype, copy=False)


def _source_layer(layer: int, n_target: int, n_source: int) -> int:
    """Source layer at the same relative depth (first -> first, last -> last)."""
    if n_target <= 1:
        return 0
    return int(round(layer * (n_source - 1) / (n_target - 1)))


def synthesize_data(
    shape: ModelShape | str,
    fit: TraceFit,
    *,
    tokens: int,
    phase: str = "prefill",
    seed: int = 0,
    layers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    lm_head: bool = True,
    sequences: int = 1,
) -> TraceData:
    """A :class:`TraceData` with ``shape``'s sites whose inputs are sampled lazily from ``fit``.

    Input ``i`` (in site order) of target layer ``l`` uses source layer ``round(l (L_src - 1) / (L - 1))`` of
    its class and the generator ``default_rng([seed, i])``: token scales and channel scales resampled (with
    replacement) from that source layer's, times ``s_l * alpha * GenNormal(beta)``. ``lm_head``: add the output
    projection's input as the last site, sampled like the last layer's gate/up input. ``sequences``: a batch of
    ``B`` sequences of ``tokens`` each (``tokens * B`` rows, every row sampled alike; the row layout of
    ``serving_meta.ROW_LAYOUT``); ``B = 1`` draws exactly what a one-sequence trace always drew."""
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ValueError(f"unknown model shape {shape!r}; known: {', '.join(SHAPES)}")
        shape = SHAPES[shape]
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: allowed {', '.join(PHASES)}")
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, got {tokens}")
    if sequences < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    rows = tokens * sequences
    sites = shape_sites(shape, layers, lm_head=lm_head)
    n_layers = shape.layers if layers is None else layers
    inputs: dict[str, _LazyInput] = {}
    n_inputs = len({s.input_id for s in sites})
    made = [0]
    for s in sites:
        if s.input_id in inputs:
            continue
        cf = fit.classes[LM_HEAD_CLASS if s.kind == "lm_head" else CLASSES[s.kind]]
        src = fit.layers - 1 if s.kind == "lm_head" else _source_layer(s.layer, shape.layers, fit.layers)
        index = len(inputs)

        def make(cf: ClassFit = cf, src: int = src, index: int = index, K: int = s.K) -> np.ndarray:
            rng = np.random.default_rng([seed, index])
            r = rng.choice(cf.token_scales[src], size=rows).astype(np.float32)
            u = rng.choice(cf.channel_scales[src], size=K).astype(np.float32)
            z = sample_gennorm(rng, cf.beta, (rows, K))
            z *= np.float32(cf.layer_scale[src] * cf.alpha)
            z *= r[:, None]
            z *= u[None, :]
            np.clip(z, -65504.0, 65504.0, out=z)
            made[0] += 1
            if progress is not None:
                progress(made[0], n_inputs)
            return z.astype(np.float16)

        inputs[s.input_id] = _LazyInput((rows, s.K), make)
    share, lin, total = shape.linear_weight_share()
    method = (
        "per input class (q/k/v input, o input, gate/up input, down input): x[t,k] = s_l * r_t * u_k * alpha * z, "
        "z ~ generalized normal(beta) (zero-mean, unimodal; beta=2 Gaussian, beta=1 Laplacian), beta and alpha "
        "fitted by maximum likelihood to the real trace's values normalized by their token scales r, channel "
        "scales u and layer scale s_l; r and u resampled with replacement from the real trace's layer at the "
        "same relative depth; every input from default_rng([seed, input index])"
    )
    meta = {
        "model": shape.name,
        "model_sha256": "",
        "model_config": shape.to_json() | {"num_hidden_layers": n_layers},
        "phase": phase,
        "text_source": "none (synthetic)",
        "text_sha256": "",
        "tokens": tokens,
        "sequences": sequences,
        "architecture": shape.architecture(n_layers),
        "token_ids": "placeholders (zeros): synthetic values come from no text",
        "tool_version": _tool_version(),
        "synthetic": True,
        "linear_weight_share": round(share, 6),
        "linear_params": lin,
        "model_params": total,
        "synthetic_info": {
            "generator": "accelsim.trace.synthetic.synthesize",
            "seed": seed,
            "stats_from": fit.source,
            "stats_from_sha256": fit.source_sha256,
            "stats_from_model": fit.source_model,
            "stats_from_phase": fit.source_phase,
            "method": method,
            "classes": {name: cf.summary() for name, cf in fit.classes.items()},
            "caveat": "values follow the small model's statistics and absolute scale, not Llama-2-7B's own",
        },
    }
    token_ids = np.zeros(tokens if sequences == 1 else (sequences, tokens), dtype=np.int64)
    return TraceData(meta=meta, sites=sites, inputs=inputs, token_ids=token_ids)  # type: ignore[arg-type]


def synthesize(
    out: str | Path,
    shape: ModelShape | str,
    stats_from: str | Path,
    *,
    tokens: int,
    phase: str = "prefill",
    seed: int = 0,
    layers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    lm_head: bool = True,
    sequences: int = 1,
) -> Path:
    """Fit ``stats_from`` (a real trace) and write a synthetic trace with ``shape``'s sites to ``out``."""
    fit = fit_trace(stats_from)
    kw = {"phase": phase, "seed": seed, "layers": layers, "progress": progress, "lm_head": lm_head}
    data = synthesize_data(shape, fit, tokens=tokens, sequences=sequences, **kw)
    return write_trace(out, data)
