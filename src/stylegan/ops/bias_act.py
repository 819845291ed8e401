"""Bias + activation + gain + clamp, the epilogue of every equalized-lr layer.

Gains follow He initialisation: leaky ReLU (slope 0.2) uses sqrt(2) so activations keep unit
variance through the network (StyleGAN2 App. B). The optional clamp bounds activations, which
keeps fp16 layers from overflowing (official StyleGAN2-ADA: +-256).

`bias_act` has two evaluations of the same function: `bias_act_reference` (one autograd node per
step: add, activation, gain, clamp) and, when `settings.bias_act` (default), a single autograd
node that computes the output with one allocation and in-place steps, and its gradient from the
saved output y alone (like NVIDIA's CUDA kernel): dx = dy * act'(y) * gain * [|y| < clamp]. The
gradient is itself a differentiable node (its derivative w.r.t. y is zero almost everywhere), so
second-order gradients (R1, path length) work. tests/test_perf.py checks both agree. `settings`
comes down from the network's `Runtime` (`stylegan.nn.runtime`); a direct caller without one gets
the context's `op_settings()`.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from .settings import OpSettings, op_settings

Activation = Literal["linear", "lrelu", "relu"]

DEFAULT_GAIN: dict[str, float] = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}
LRELU_SLOPE = 0.2


def activate(x: torch.Tensor, act: Activation) -> torch.Tensor:
    if act == "linear":
        return x
    if act == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE)
    if act == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {act!r}; expected one of {sorted(DEFAULT_GAIN)}")


def bias_act_reference(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: Activation = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """y = clamp(act(x + b) * gain, -clamp, clamp), b broadcast along `dim` (channels).

    x: [N, C, ...] (or [N, C]); b: [C]. `gain` defaults to the activation's He gain.
    """
    _check_bias(x, b, dim)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    x = activate(x, act)
    g = DEFAULT_GAIN[act] if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _check_bias(x: torch.Tensor, b: torch.Tensor | None, dim: int) -> None:
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of {tuple(x.shape)}")


def _act_grad(dy: torch.Tensor, y: torch.Tensor, act: str, gain: float, clamp: float | None) -> torch.Tensor:
    """dy * d(output)/d(input) expressed through the output y (gain > 0 keeps the sign of y).

    Runs inside autograd.Function.forward (nothing recorded), so after the first op, which
    allocates the result, every step works in place.
    """
    owned = True  # dx is a fresh tensor that may be modified in place
    if act == "lrelu":
        dx = torch.ops.aten.leaky_relu_backward(dy, y, LRELU_SLOPE, True)
    elif act == "relu":
        dx = torch.ops.aten.threshold_backward(dy, y, 0)
    else:
        dx, owned = dy, False
    if gain != 1:
        dx = dx.mul_(gain) if owned else dx * gain
        owned = True
    if clamp is not None and clamp >= 0:  # 0 where the clamp was active (|y| == clamp)
        if owned:
            torch.ops.aten.hardtanh_backward.grad_input(dx, y, -clamp, clamp, grad_input=dx)
        else:
            dx = torch.ops.aten.hardtanh_backward(dx, y, -clamp, clamp)
    return dx


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * f'(y): linear in dy with a piecewise-constant factor, so it is its own derivative."""

    @staticmethod
    def forward(ctx, dy, y, act, gain, clamp):
        ctx.save_for_backward(y)
        ctx.cfg = (act, gain, clamp)
        return _act_grad(dy, y, act, gain, clamp)

    @staticmethod
    def backward(ctx, ddx):
        (y,) = ctx.saved_tensors
        return _BiasActGrad.apply(ddx, y, *ctx.cfg), None, None, None, None


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, act, gain, clamp, dim):
        y = _bias_act_inplace(x, b, act, gain, clamp, dim)
        ctx.save_for_backward(y)
        ctx.cfg = (act, gain, clamp)
        ctx.dim = dim
        ctx.ndim = x.ndim
        ctx.b_needs = b is not None and b.requires_grad
        ctx.b_dtype = None if b is None else b.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy, y, *ctx.cfg)
        db = None
        if ctx.b_needs:
            dims = [d for d in range(ctx.ndim) if d != ctx.dim % ctx.ndim]
            db = dx.sum(dim=dims).to(ctx.b_dtype)
        return dx, db, None, None, None, None


def _bias_act_inplace(x: torch.Tensor, b: torch.Tensor | None, act: str, gain: float,
                      clamp: float | None, dim: int) -> torch.Tensor:
    """Forward with one new tensor: y = x + b (or a copy), then activation, gain and clamp in place."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        y = x + b.to(x.dtype).reshape(shape)
    elif act == "linear" and gain == 1 and (clamp is None or clamp < 0):
        return x
    else:
        y = x.clone()
    if act == "lrelu":
        F.leaky_relu_(y, LRELU_SLOPE)
    elif act == "relu":
        y.relu_()
    if gain != 1:
        y.mul_(gain)
    if clamp is not None and clamp >= 0:
        y.clamp_(-clamp, clamp)
    return y


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: Activation = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
    settings: OpSettings | None = None,
) -> torch.Tensor:
    """y = clamp(act(x + b) * gain, -clamp, clamp), b broadcast along `dim` (channels).

    x: [N, C, ...] (or [N, C]); b: [C]. `gain` defaults to the activation's He gain.
    Same result as `bias_act_reference`; evaluated as one autograd node when `settings.bias_act`
    (None: the context's `op_settings()`).
    """
    if act not in DEFAULT_GAIN:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(DEFAULT_GAIN)}")
    g = DEFAULT_GAIN[act] if gain is None else float(gain)
    settings = op_settings() if settings is None else settings
    if not settings.bias_act or g <= 0:
        return bias_act_reference(x, b, act=act, gain=gain, clamp=clamp, dim=dim)
    _check_bias(x, b, dim)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    if not needs_grad:
        return _bias_act_inplace(x, b, act, g, clamp, dim)
    return _BiasAct.apply(x, b, act, g, clamp, dim)
