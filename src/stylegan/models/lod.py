"""Level of detail (lod) of progressive growing (PGGAN Sec. 3), as the official TF code counts it.

lod 0 is the full resolution R; lod k means R / 2^k; a fractional lod fades in the next finer
resolution with weight alpha = 1 - frac(lod). These pure functions convert between lod and
(resolution, alpha) and resample images the way the TF `upscale2d` / `downscale2d` did; the
networks (`models.stylegan1`) and the schedule (`training.progressive`) share them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def log2_resolution(resolution: int) -> int:
    """log2 of a power-of-two resolution (a clear error for anything else)."""
    if resolution < 1 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two, got {resolution}")
    return resolution.bit_length() - 1


def max_lod(final_resolution: int) -> int:
    """The coarsest level of detail: 4x4 (lod = log2(R) - 2)."""
    return log2_resolution(final_resolution) - 2


def split_lod(lod: float, final_resolution: int) -> tuple[int, float]:
    """lod -> (resolution of the newest block, its fade-in weight alpha in (0, 1])."""
    lod = float(lod)
    top = max_lod(final_resolution)
    if not (0.0 <= lod <= top) or math.isnan(lod):
        raise ValueError(f"lod must be in [0, {top}] for resolution {final_resolution} "
                         f"(0 = full resolution, {top} = 4x4), got {lod}")
    level = math.floor(lod)
    return final_resolution >> level, 1.0 - (lod - level)


def lod_for(resolution: int, alpha: float, final_resolution: int) -> float:
    """Inverse of `split_lod`: the lod at which `resolution` is faded in with weight `alpha`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lod = log2_resolution(final_resolution) - log2_resolution(resolution) + (1.0 - alpha)
    if not 0.0 <= lod <= max_lod(final_resolution):
        raise ValueError(f"resolution {resolution} with alpha {alpha} is outside 4..{final_resolution}")
    return lod


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*f, W*f] by pixel replication (TF `upscale2d`)."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def downsample_box(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/f, W/f] by f x f averaging (TF `downscale2d`), f a power of two.

    Done as repeated 2x2 averages, so downsampling by 2f equals downsampling by f, then by 2, bit
    for bit (the fade-in at alpha = 0 is then exactly the lower-resolution network).
    """
    log2_resolution(factor)
    while factor > 1:
        x = F.avg_pool2d(x, 2)
        factor //= 2
    return x


__all__ = ["log2_resolution", "max_lod", "split_lod", "lod_for", "upsample_nearest", "downsample_box"]
