"""The serving curves of ``docs/serving.md``: speedup and energy per token versus batch (both real models) and
versus context (the 7B-shaped model), and the prefill/decode time mix of a typical request.

``accelsim serving-curves --out docs`` recomputes all of them (a few minutes on 2 cores): it writes
``serving_curves.json`` (every point) and three PNG figures. The 7B-shaped decode trace is synthesised on the
fly (``synthetic: true``, seed 0, fitted to the SmolLM2 prefill trace) into a temporary directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelsim.config.hw import HwConfig, load_hw
from accelsim.serving.metrics import Server, with_baseline
from accelsim.serving.scenario import Scenario
from accelsim.trace.format import Trace

BATCHES = (1, 2, 4, 8, 16, 32)
CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
BATCH_CONTEXT = 512  # KV-cache length of the batch curve's decode steps
MODELS = {
    "smollm2-135m": ("traces/smollm2-135m_decode1_b32.npz", "traces/smollm2-135m_prefill32.npz"),
    "gemma3-270m": ("traces/gemma3-270m_decode1_b32.npz", "traces/gemma3-270m_prefill32.npz"),
}
MIX = {"batch": (1, 8), "prompt_tokens": 256, "generated_tokens": 128, "prefill_chunk_tokens": 32}
MIX_CONFIGS = ("dense", "nm8_16", "nm16_32")


def _configs(hw_dir: Path) -> list[HwConfig]:
    cfgs = [load_hw(p) for p in sorted(hw_dir.glob("*.yaml"))]
    if not any(c.name == "dense" for c in cfgs):
        raise ValueError(f"{hw_dir}: no dense.yaml (the baseline of every speedup)")
    return cfgs


def _point(rec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keep = ("config", "pattern", "batch", "tpot_ms", "ttft_ms", "tokens_per_s", "uj_per_token",
            "speedup_tpot_vs_dense", "speedup_tokens_per_s_vs_dense", "energy_per_token_vs_dense",
            "kv_cache_read_bytes_per_step", "weight_bytes_per_step", "prefill_time_share",
            "request_time_ms")  # fmt: skip
    out = {k: rec.get(k) for k in keep}
    out["attention_share"] = rec["decode_step"]["by_kind"]["attention"]["share"]
    out["lm_head_share"] = rec["decode_step"]["by_kind"].get("lm_head", {}).get("share")
    if "prefill" in rec:
        out["prefill_ms"] = rec["prefill"]["time_ms"]
    out.update(extra)
    return out


def _sweep(cfgs: list[HwConfig], trace: Any, scenarios: list[Scenario], prefill: Any = None, **extra: Any):
    """Records of every scenario on every config (dense first, for the speedups); linear sites are simulated
    once per (config, batch) and attention once per shape (the configs share the array, buffers and DRAM)."""
    dense = next(c for c in cfgs if c.name == "dense")
    order = [dense] + [c for c in cfgs if c is not dense]
    attn: dict[str, dict] = {}
    points = []
    for cfg in order:
        linear: dict[int, Any] = {}
        for sc in scenarios:
            srv = Server(cfg, sc, trace, prefill, attn_memo=attn.setdefault(srv_key(cfg, sc), {}))
            if sc.batch not in linear:
                linear[sc.batch] = srv.decode_linear()
            rec = srv.run(linear[sc.batch])
            points.append((cfg.name, sc, rec))
    base = {(sc.name, sc.batch): r for name, sc, r in points if name == "dense"}
    return [_point(with_baseline(r, base[(sc.name, sc.batch)]), **extra) for _, sc, r in points]


def srv_key(cfg: HwConfig, sc: Scenario) -> str:
    """Attention results are shared between configs that differ only in their sparsity section."""
    data = cfg.model_dump()
    data.pop("sparsity")
    data.pop("name")
    return repr(sorted(data.items())) + sc.kv_cache_datatype + sc.activation_datatype


def compute(
    root: Path, hw_dir: Path, *, log: Callable[[str], None] = print, models: dict | None = None
) -> dict[str, Any]:
    """Every point of the three curves (paths relative to ``root``, the repository)."""
    from accelsim.trace.synthetic import synthesize

    cfgs = _configs(hw_dir)
    models = MODELS if models is None else models
    out: dict[str, Any] = {"batch_context_tokens": BATCH_CONTEXT, "batch": [], "context": [], "mix": []}
    for model, (dec, pre) in models.items():
        log(f"batch curve: {model}")
        with Trace(root / dec) as tr:
            scs = [Scenario(name=f"b{b}", batch=b, context_tokens=BATCH_CONTEXT) for b in BATCHES]
            out["batch"] += _sweep(cfgs, tr, scs, model=model)
        log(f"request mix: {model}")
        mix_cfgs = [c for c in cfgs if c.name in MIX_CONFIGS]
        with Trace(root / dec) as tr, Trace(root / pre) as pt:
            scs = [
                Scenario(name=f"chat_b{b}", batch=b, prompt_tokens=MIX["prompt_tokens"],
                         generated_tokens=MIX["generated_tokens"], prefill_chunk_tokens=MIX["prefill_chunk_tokens"])
                for b in MIX["batch"]
            ]  # fmt: skip
            out["mix"] += _sweep(mix_cfgs, tr, scs, pt, model=model)
    log("context curve: llama2-7b shapes (synthetic)")
    with tempfile.TemporaryDirectory() as tmp:
        path = synthesize(Path(tmp) / "llama2-7b_decode1.npz", "llama2-7b", root / MODELS["smollm2-135m"][1],
                          tokens=1, phase="decode", seed=0)  # fmt: skip
        with Trace(path) as tr:
            scs = [Scenario(name=f"c{c}", batch=1, context_tokens=c) for c in CONTEXTS]
            pts = _sweep(cfgs, tr, scs, model="llama2-7b (synthetic)")
        for p, sc in zip(pts, scs * len(cfgs), strict=True):
            p["context_tokens"] = sc.context_tokens
        out["context"] = pts
    return out


def plot(data: dict[str, Any], out: Path) -> list[Path]:
    """``serving_batch.png``, ``serving_context.png`` and ``serving_mix.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    models = sorted({p["model"] for p in data["batch"]}, reverse=True)
    fig, axes = plt.subplots(2, len(models), figsize=(6.2 * len(models), 8.8), squeeze=False)
    for j, model in enumerate(models):
        pts = [p for p in data["batch"] if p["model"] == model]
        for i, cfg in enumerate(_cfg_order(pts)):
            xs = [p for p in pts if p["config"] == cfg]
            style = _style(cfg, i)
            axes[0][j].plot([p["batch"] for p in xs], [p["speedup_tpot_vs_dense"] for p in xs], **style)
            axes[1][j].plot([p["batch"] for p in xs], [p["uj_per_token"] for p in xs], **style)
        axes[0][j].set_title(f"{model}: decode step at {data['batch_context_tokens']}-token context")
        axes[0][j].axhline(1.0, color="grey", lw=0.8)
        axes[0][j].set_ylabel("speedup_vs_dense (TPOT)")
        axes[1][j].set_ylabel("uj_per_token")
        axes[1][j].set_yscale("log")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
            ax.set_xlabel("batch (sequences per decode step)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=6, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    written.append(_save(fig, out / "serving_batch.png"))

    pts = data["context"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.0))
    for i, cfg in enumerate(_cfg_order(pts)):
        xs = [p for p in pts if p["config"] == cfg]
        style = _style(cfg, i)
        axes[0].plot([p["context_tokens"] for p in xs], [p["speedup_tpot_vs_dense"] for p in xs], **style)
        axes[1].plot([p["context_tokens"] for p in xs], [p["uj_per_token"] for p in xs], **style)
        axes[2].plot([p["context_tokens"] for p in xs], [p["attention_share"] for p in xs], **style)
    for ax, lab in zip(axes, ("speedup_vs_dense (TPOT)", "uj_per_token", "attention share of decode cycles"),
                       strict=True):  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(CONTEXTS, [f"{c // 1024}k" if c >= 1024 else str(c) for c in CONTEXTS])
        ax.set_xlabel("context_tokens (KV-cache length)")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_title("Llama-2-7B shapes (SYNTHETIC values), batch 1")
    axes[1].set_title("energy per token")
    axes[2].set_title("attention (QK^T + PV) share of the decode step")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=11, loc="lower center")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    written.append(_save(fig, out / "serving_context.png"))

    pts = data["mix"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(pts) + 1.9))
    labels, pre, dec = [], [], []
    for p in pts:
        labels.append(f"{p['model']} {p['config']} b{p['batch']}")
        total = p["request_time_ms"]
        pre.append(total * p["prefill_time_share"])
        dec.append(total * (1 - p["prefill_time_share"]))
    y = range(len(pts))
    ax.barh(y, pre, color="tab:orange", label="prefill (batch x TTFT)")
    ax.barh(y, dec, left=pre, color="tab:blue", label=f"decode ({MIX['generated_tokens']} steps x TPOT)")
    for i, p in enumerate(pts):
        ax.text(pre[i] + dec[i], i, f"  prefill {p['prefill_time_share']:.0%}", va="center", fontsize=7)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time of the batch's requests (ms)")
    ax.set_title(
        f"a chat request: {MIX['prompt_tokens']}-token prompt in chunks of {MIX['prefill_chunk_tokens']}, "
        f"{MIX['generated_tokens']} generated"
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
    ax.set_xlim(0, max(a + b for a, b in zip(pre, dec, strict=True)) * 1.2)
    fig.tight_layout()
    written.append(_save(fig, out / "serving_mix.png"))
    return written


def _cfg_order(pts: list[dict[str, Any]]) -> list[str]:
    return sorted({p["config"] for p in pts}, key=lambda c: (c != "dense", c))


_MARKERS = "osD^v<>px*h"


def _style(cfg: str, i: int = 0) -> dict[str, Any]:
    """Distinct colour and marker per config (``i``: its place in :func:`_cfg_order`); the two quoted N:M
    patterns drawn thick."""
    if cfg == "dense":
        return {"label": cfg, "color": "black", "lw": 2, "marker": "o", "ms": 3}
    import matplotlib

    bold = cfg in ("nm8_16", "nm16_32")
    color = matplotlib.colormaps["tab20"]((2 * i) % 20 if i < 10 else (2 * i + 1) % 20)
    ls = "-" if i % 2 else "--"
    return {"label": cfg, "color": color, "lw": 2.4 if bold else 1.1, "ls": "-" if bold else ls,
            "marker": _MARKERS[i % len(_MARKERS)], "ms": 4 if bold else 3}  # fmt: skip


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def markdown_tables(data: dict[str, Any], configs: tuple[str, ...] = ("nm8_16", "nm16_32", "nm2_4")) -> str:
    """The numbers docs/serving.md quotes: speedup by batch and by context for ``configs``."""
    lines = []
    for model in sorted({p["model"] for p in data["batch"]}, reverse=True):
        ctx = data["batch_context_tokens"]
        lines += [f"\n{model}, decode step at {ctx} context: speedup_vs_dense (uj_per_token)\n",
                  "| config | " + " | ".join(f"b{b}" for b in BATCHES) + " |",
                  "|---|" + "---:|" * len(BATCHES)]  # fmt: skip
        for cfg in ("dense", *configs):
            row = [p for p in data["batch"] if p["model"] == model and p["config"] == cfg]
            if row:
                cells = [f"{p['speedup_tpot_vs_dense']:.3f} ({p['uj_per_token']:.0f})" for p in row]
                lines.append(f"| {cfg} | " + " | ".join(cells) + " |")
    lines += ["\nllama2-7b shapes (synthetic), batch 1: speedup_vs_dense (attention share of dense)\n",
              "| config | " + " | ".join(str(c) for c in CONTEXTS) + " |",
              "|---|" + "---:|" * len(CONTEXTS)]  # fmt: skip
    for cfg in ("dense", *configs):
        row = [p for p in data["context"] if p["config"] == cfg]
        if row:
            lines.append(
                f"| {cfg} | "
                + " | ".join(f"{p['speedup_tpot_vs_dense']:.3f} ({p['attention_share']:.0%})" for p in row)
                + " |"
            )
    lines += ["\nrequest mix: ttft_ms, tpot_ms, prefill share of the batch's time\n",
              "| model | config | batch | ttft_ms | tpot_ms | prefill share | uj_per_token | speedup (tokens/s) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for p in data["mix"]:
        lines.append(
            f"| {p['model']} | {p['config']} | {p['batch']} | {p['ttft_ms']:.3f} | {p['tpot_ms']:.3f} | "
            f"{p['prefill_time_share']:.1%} | {p['uj_per_token']:.0f} | {p['speedup_tokens_per_s_vs_dense']:.3f} |"
        )
    return "\n".join(lines)
