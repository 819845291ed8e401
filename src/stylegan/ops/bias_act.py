"""Bias + activation + gain + clamp, the epilogue of every equalized-lr layer.

Gains follow He initialisation: leaky ReLU (slope 0.2) uses sqrt(2) so activations keep unit
variance through the network (StyleGAN2 App. B). The optional clamp bounds activations, which
keeps fp16 layers from overflowing (official StyleGAN2-ADA: +-256).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

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


def bias_act(
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
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of {tuple(x.shape)}")
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
