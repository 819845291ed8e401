"""Small normalisations shared by the mapping network and StyleGAN v1 synthesis."""
from __future__ import annotations

import torch


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along `dim` (PGGAN pixel norm; StyleGAN's input normalisation of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample, per-channel zero mean / unit std over pixels. x: [N, C, H, W]."""
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * (x.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AdaIN (StyleGAN Eq. 1): y_s * (x - mu(x)) / sigma(x) + y_b.

    x: [N, C, H, W]; scale, bias: [N, C]. The output of channel c has mean bias_c and std |scale_c|.
    """
    return instance_norm(x, eps) * scale[:, :, None, None] + bias[:, :, None, None]
