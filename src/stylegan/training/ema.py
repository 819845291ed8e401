"""Exponential moving average of the generator weights (G_ema, used for every output).

Half-life `ema_kimg` thousand images: after each minibatch of `batch` images,
    beta = 0.5 ** (batch / (ema_kimg * 1000)),   p_ema <- p + beta (p_ema - p).
With a ramp-up (official `cifar` / `auto`: 0.05) the half-life is at most `rampup * images seen`,
so early in training G_ema follows G closely. Buffers (w_avg, const noise) are copied as they are.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def ema_beta(batch: int, ema_kimg: float, cur_nimg: int = 0, rampup: Optional[float] = None) -> float:
    """Decay for one step of `batch` images, `cur_nimg` images seen before the step."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    if ema_nimg <= 0:
        return 0.0
    return 0.5 ** (batch / ema_nimg)


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """p_ema <- lerp(p, p_ema, beta) for every parameter; buffers copied. Matched by name."""
    params = dict(G.named_parameters())
    for name, p_ema in G_ema.named_parameters():
        p_ema.copy_(params[name].detach().lerp(p_ema, beta))
    buffers = dict(G.named_buffers())
    for name, b_ema in G_ema.named_buffers():
        b_ema.copy_(buffers[name])


__all__ = ["ema_beta", "update_ema"]
