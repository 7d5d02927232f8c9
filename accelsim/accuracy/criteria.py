"""Selection criteria: the score whose top-n per group is kept.

* ``magnitude``: ``|x|``.
* ``amber``: ``|x_j| * f_j`` with the static factor of Amber Pruner (arXiv 2508.02128):
  ``f_j = ||W_hat[:, j]||_2 / min_k ||W_hat[:, k]||_2``, ``W_hat = (W - mu) / sigma``, where ``mu`` and ``sigma``
  are the mean and standard deviation of the weights inside their [0.5 %, 99.5 %] quantiles. Computed from
  all weights (the reference code samples 50k weights at random; this is deterministic).
* ``weight-aware`` (alias ``wina``): ``|x_j| * ||W[:, j]||_2``, the gate of WINA (Chen et al., "WINA: Weight
  Informed Neuron Activation for Accelerating Large Language Model Inference", arXiv 2505.19427): keep the
  top-k of ``|x_j| * c_j`` with ``c_j`` the column norm of the weight. WINA's optional offline transform that
  makes the weights column-orthogonal (an SVD-based change of basis propagated through the residual stream)
  is not applied here.
* ``larosa``: ``|(x Q)_j|`` in the basis of a per-input PCA rotation ``Q`` fitted on calibration data, the
  linear computing with ``W Q`` (LaRoSA, ICML 2025; ``accelsim.accuracy.rotation``).
* ``clact``: the published CLACT score of arXiv 2509.22166 (a cosine-similarity-loss criterion adapted from
  ACE/CosP, arXiv 2505.21987, to activations): ``|X_ij| * ||X[:, j]||_2 / ||X[i, :]||_2``, where ``X`` is the
  ``[tokens, K]`` input of the linear in one forward call of one sequence (``||X[:, j]||`` over its tokens,
  ``||X[i, :]||`` over the channels of token ``i``; a zero row divides by 1e-12 instead of 0). It is computed
  in full here, row-norm divisor included, even though a per-token positive divisor cannot reorder the
  entries of a token. It reads no weight (not Amber's static factor: see
  ``tests/test_accuracy_model.py::test_clact_is_not_amber_on_real_activations``). **Prefill only**: the
  column norm reads every token of the sequence, later ones included, so it is non-causal; on a one-token
  decode step ``||X[:, j]|| = |x_j|`` and it ranks like ``|x|^2 / ||x||``, i.e. like magnitude.

All scores are computed and ranked in float32 (a float16/bfloat16 input is upcast first).

Weight-dependent factors (amber, weight-aware) make the mask per projection: q/k/v (and gate/up) no longer
share one.
"""

from __future__ import annotations

import torch

__all__ = ["static_factor", "scores", "amber_factor", "weight_norm_factor", "nearest_rank_quantile"]


def nearest_rank_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Deterministic quantile of a flat tensor (nearest rank, any size; ``torch.quantile`` stops at 16M)."""
    flat = values.reshape(-1)
    k = int(round(q * (flat.numel() - 1))) + 1
    return flat.kthvalue(min(max(k, 1), flat.numel())).values


def weight_norm_factor(weight: torch.Tensor) -> torch.Tensor:
    """``||W[:, j]||_2`` for an ``nn.Linear`` weight of shape ``[out, in]``: one factor per input channel."""
    return weight.detach().float().norm(dim=0)


def amber_factor(weight: torch.Tensor) -> torch.Tensor:
    """Amber Pruner's per-input-channel factor ``||W_hat[:, j]|| / min_k ||W_hat[:, k]||``."""
    w = weight.detach().float()
    lo = nearest_rank_quantile(w, 0.005)
    hi = nearest_rank_quantile(w, 0.995)
    inside = w[(w >= lo) & (w <= hi)]
    mu = inside.mean()
    sigma = inside.std().clamp_min(1e-12)
    norms = ((w - mu) / sigma).norm(dim=0)
    return norms / norms.min().clamp_min(1e-12)


def static_factor(criterion: str, weight: torch.Tensor) -> torch.Tensor | None:
    """The static per-input-channel factor of ``criterion`` for this weight, or None (activation-only)."""
    if criterion == "amber":
        return amber_factor(weight)
    if criterion == "weight-aware":
        return weight_norm_factor(weight)
    if criterion in ("magnitude", "clact", "larosa"):
        return None
    raise ValueError(f"unknown criterion {criterion!r}; allowed: magnitude, amber, weight-aware, clact, larosa")


def scores(x: torch.Tensor, criterion: str, factor: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 scores of ``x`` (``[..., K]``; for ``clact`` ``[B, T, K]`` or ``[T, K]`` with tokens on axis -2)."""
    s = x.detach().float().abs()
    if criterion == "clact":
        if s.dim() < 2:
            s = s.unsqueeze(0)
            return (s * s.norm(dim=-2, keepdim=True) / s.norm(dim=-1, keepdim=True).clamp_min(1e-12))[0]
        col = s.norm(dim=-2, keepdim=True)  # ||X[:, j]|| over the tokens of each sequence
        row = s.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # ||X[i, :]|| over the channels of each token
        return s * col / row
    if factor is not None:
        return s * factor.float()
    return s
