"""FIR filters and upfirdn2d: upsample, pad, FIR-filter, downsample (StyleGAN2 Sec. 2, App. B).

StyleGAN2 resamples with the separable binomial filter [1, 3, 3, 1] (StyleGAN v1 with [1, 2, 1]).
`upfirdn2d` is the one primitive behind every resampling: zero-insertion upsampling, padding or
cropping, a 2-D FIR filter, and decimation. Everything is plain PyTorch (`conv2d` with a depthwise
kernel) so it runs and differentiates (twice, for R1 / path length) on any device.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

Padding = Union[int, Sequence[int]]


def setup_filter(
    f: Sequence[float] | torch.Tensor | None,
    *,
    normalize: bool = True,
    flip: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turn taps into a filter tensor for `upfirdn2d`.

    A 1-D filter of fewer than 8 taps becomes its 2-D outer product (a single small depthwise
    conv is cheaper than two); longer ones stay separable. `normalize` makes the taps sum to 1 so
    the filter preserves the DC level; `gain` is applied per dimension (gain ** (ndim / 2)).
    Returns [k] (separable) or [k, k] float32.
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a non-empty 1-D or 2-D tensor, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    vx, vy = v
    return int(vx), int(vy)


def _padding4(padding: Padding) -> tuple[int, int, int, int]:
    """Normalise padding to (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        px, py = p
        return px, px, py, py
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter from `setup_filter` (1x1 for None)."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), filter with `f`, keep every `down`-th pixel.

    x: [N, C, H, W]; f: [k] (applied along both axes) or [kh, kw]; returns
    [N, C, (H*up_y + py0 + py1 - kh) // down_y + 1, ...].  The filter is applied as a true
    convolution (flipped), unless `flip_filter`, which makes it a correlation; for the symmetric
    filters used here both agree.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {tuple(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:  # zero insertion: [N, C, H, 1, W, 1] -> [N, C, H*upy, W*upx]
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:  # separable: rows then columns
        k = f.shape[0]
        x = F.conv2d(x, f.reshape(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
        x = F.conv2d(x, f.reshape(1, 1, k, 1).expand(c, 1, k, 1), groups=c)

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1.0) -> torch.Tensor:
    """Filter without resampling, padded so the output keeps the input size ('same')."""
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up]: zero insertion + FIR interpolation (gain up**2 keeps DC)."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2,
         py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/down, W/down]: FIR low-pass, then decimation."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2,
         py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)
