"""Error mitigations, as plain tensor math (formulas in ``docs/accuracy.md``).

Notation: ``x`` is one linear's input ``[..., K]`` (tokens on the leading axes), ``P`` the pruner (mask
multiply), ``x_sp = P(x)``.

* VAR: ``v = sqrt(Var_j(x) / max(Var_j(x_sp), 1e-9))`` per token (population variance over the K channels,
  zeros counted), applied as ``v * x_sp`` (equal to scaling the output ``v * (x_sp W^T)`` when the linear
  has no bias; with a bias the bias is not scaled in either form, since it is added after the product).
* median shift: ``eta`` = the per-token lower median over channels; ``x~ = P(x - eta) + eta`` (dense again:
  in hardware ``P(x - eta) W^T + eta * rowsum(W)``).
* static shift: the same with one ``eta`` per linear, fixed after calibration (a constant bias in hardware).
* learnable scale and shift: ``y = (x_sp W^T) * (1 + a) + b`` with ``a, b`` in ``R^{out}``, zero-initialised,
  fitted block by block (``accelsim.accuracy.calibrate.fit_learnable``).
"""

from __future__ import annotations

import torch

__all__ = ["var_factor", "apply_var", "token_median", "apply_affine", "VAR_EPS"]

VAR_EPS = 1e-9


def var_factor(x: torch.Tensor, x_sp: torch.Tensor) -> torch.Tensor:
    """Per-token VAR factor ``[..., 1]``: ``sqrt(Var(x) / max(Var(x_sp), 1e-9))`` over the last axis."""
    vx = x.var(dim=-1, unbiased=False, keepdim=True)
    vs = x_sp.var(dim=-1, unbiased=False, keepdim=True)
    return torch.sqrt(vx / vs.clamp_min(VAR_EPS))


def apply_var(x: torch.Tensor, x_sp: torch.Tensor) -> torch.Tensor:
    """``x_sp`` scaled per token so that its variance over channels equals that of ``x``."""
    return x_sp * var_factor(x, x_sp)


def token_median(x: torch.Tensor) -> torch.Tensor:
    """Per-token lower median over the last axis, ``[..., 1]`` (``torch.median`` returns the lower one)."""
    return x.median(dim=-1, keepdim=True).values


def apply_affine(y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``y * (1 + a) + b`` per output channel (the learnable diagonal scale and shift)."""
    return torch.addcmul(b, y, 1.0 + a)
