"""StyleGAN3's input transform in the explorer: which networks have it, the equivariance loop's
path, and the "untransform" that moves an image back.

NVIDIA's visualizer (stylegan3 `viz/equivariance_widget.py`, `viz/renderer.py`) translates and
rotates a StyleGAN3 image through the transform of its Fourier-feature input, can animate that
transform for one w, and can transform the output back ("untransform"). Moved back, an equivariant
network shows a still picture, so whatever still moves is what the network failed to move with the
content: texture sticking to the pixel grid (the paper's Sec. 1), aliasing at sub-pixel shifts,
config T's lack of rotation equivariance. Everything here is a pure function of numbers and
tensors, so each piece is tested on its own (tests/test_explore.py).

Coordinates follow `models.stylegan3.input_transform`: image widths about the image centre, x to
the right, y down. With M = `models.stylegan3.image_transform(translate, rotate)` the network shows
content(M^-1 x) at x (`input_transform` is M^-1: it maps output points to input points), so the
untransform reads the image at M x.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.stylegan3 import image_transform

EQ_MOTIONS = ("translate", "rotate", "both")  # what the equivariance loop moves
EQ_RADIUS = 0.1   # image widths: the loop's translation circle (the visualizer's anim goes round 0.1)


def loop_transform(translate: tuple[float, float], rotate: float, motion: str, t: float
                   ) -> tuple[tuple[float, float], float]:
    """The transform at position `t` in [0, 1) of the equivariance loop that starts at (translate,
    rotate) [image widths, degrees] -> (translate, rotate) at t. `motion` 'translate': once round a
    circle of radius EQ_RADIUS through the start (leaving it to the right, so the first frames are
    sub-pixel shifts); 'rotate': once round 360 degrees; 'both': the two at once. t = 0 (and 1) is
    the start, so the loop closes."""
    if motion not in EQ_MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(EQ_MOTIONS)}, got {motion!r}")
    a = 2 * math.pi * t
    tx, ty = translate
    if motion in ("translate", "both"):
        tx, ty = tx + EQ_RADIUS * math.sin(a), ty + EQ_RADIUS * (1 - math.cos(a))
    if motion in ("rotate", "both"):
        rotate = rotate + 360.0 * t
    return (tx, ty), rotate


def resample_affine(img: torch.Tensor, matrix: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """out(x) = img(matrix @ x) at every pixel centre x, coordinates in image widths about the centre.

    img: [N, C, H, H] (square, as StyleGAN3's images are); matrix: [3, 3] -> [N, C, H, H], img's
    dtype. Bicubic by default: at integer-pixel offsets its weights are exactly 0 and 1, so a whole-
    pixel shift is undone exactly away from the borders, and at fractional ones it blurs less than
    bilinear (a blur that changed from frame to frame would itself look like flicker). Points outside
    the image read 0, mid grey in [-1, 1]. A display operation, not the band-limited resampling of
    the paper's equivariance metrics."""
    n, c, h, w = img.shape
    if h != w:
        raise ValueError(f"resample_affine needs a square image, got {h}x{w}")
    # float64 where the device has it (MPS does not): a float32 grid is off by ~1e-6 pixels, enough
    # to blend neighbours into an integer shift or the identity; a display-sized image costs little.
    dtype = torch.float32 if img.device.type == "mps" else torch.float64
    theta = matrix.to(img.device, dtype)[:2].clone()  # [2, 3]
    theta[:, 2] *= 2  # image widths -> grid_sample's units: [-1, 1] spans one width
    grid = F.affine_grid(theta[None].expand(n, 2, 3), [n, c, h, w], align_corners=False)  # [N, H, W, 2] (x, y)
    out = F.grid_sample(img.to(dtype), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.to(img.dtype)


def untransform(img: torch.Tensor, translate: tuple[float, float], rotate: float) -> torch.Tensor:
    """A StyleGAN3 image rendered under input_transform(translate, rotate), moved back: [N, C, H, H]
    -> [N, C, H, H]. For an equivariant network this is its untransformed image (within the frame:
    what the transform moved in from outside is grey)."""
    return resample_affine(img, image_transform(translate, rotate))


__all__ = ["EQ_MOTIONS", "EQ_RADIUS", "loop_transform", "resample_affine", "untransform"]
