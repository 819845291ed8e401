"""FIR filters and upfirdn2d: upsample, pad, FIR-filter, downsample (StyleGAN2 Sec. 2, App. B).

StyleGAN2 resamples with the separable binomial filter [1, 3, 3, 1] (StyleGAN v1 with [1, 2, 1]).
`upfirdn2d` is the one primitive behind every resampling: zero-insertion upsampling, padding or
cropping, a 2-D FIR filter, and decimation. Everything is plain PyTorch (`conv2d` with a depthwise
kernel) so it runs and differentiates (twice, for R1 / path length) on any device.

Two evaluations of the same definition live here:
- `upfirdn2d_reference`: the literal form (zero insertion, pad, full-resolution FIR, decimation).
- the fast form used by `upfirdn2d` (unless `settings.upfirdn2d` is False): upsampling is a
  depthwise *transposed* strided conv (the polyphase decomposition: no multiplications by the
  inserted zeros), downsampling a depthwise *strided* conv (no filtering of discarded pixels), and
  symmetric padding goes into the conv itself instead of a padded copy. Both use only `conv2d` /
  `conv_transpose2d`, so first and second derivatives come from autograd. tests/test_perf.py checks
  that both forms agree (values and first/second-order gradients).

Which form runs is an argument: `settings` (an `OpSettings`), passed down by the networks from the
`Runtime` they resolve at their boundary (`stylegan.nn.runtime`). Only a direct caller that passes
none gets the context's `op_settings()`.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from .settings import OpSettings, op_settings

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


def upfirdn2d_reference(
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
    filters used here both agree. This is the literal (slow) form; `upfirdn2d` computes the same.
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


def _crop_or_pad(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    """Remove (positive) or zero-pad (negative) x0/x1 columns left/right and y0/y1 rows top/bottom."""
    if min(x0, x1, y0, y1) < 0:
        x = F.pad(x, [max(-x0, 0), max(-x1, 0), max(-y0, 0), max(-y1, 0)])
    if max(x0, x1, y0, y1) > 0:
        x = x[:, :, max(y0, 0): x.shape[2] - max(y1, 0), max(x0, 0): x.shape[3] - max(x1, 0)]
    return x


def _transposed_padding(k: int, up: int, p0: int, p1: int) -> tuple[int, int, int, int]:
    """(padding, output_padding, crop0, crop1) of conv_transpose2d(stride=up) == zero insertion + pad + conv.

    Zero insertion by `up`, padding (p0, p1) and a k-tap correlation with the flipped filter equal a
    stride-`up` transposed conv with the unflipped filter, cropped by k-1-p0 on the left and
    k-up-p1 on the right of its full output; conv_transpose2d's `padding` crops both sides by the
    same amount, `output_padding` extends the right side, the rest is cropped/padded afterwards.
    """
    left, right = k - 1 - p0, k - up - p1
    pad = max(min(left, right), 0)
    left, right = left - pad, right - pad
    out_pad = 0
    if -up < right < 0:  # extend the right side with output_padding (must stay below the stride)
        out_pad, right = -right, 0
    return pad, out_pad, left, right


def _upfirdn2d_fast(x: torch.Tensor, f: torch.Tensor, upx: int, upy: int, downx: int, downy: int,
                    px0: int, px1: int, py0: int, py1: int, flip_filter: bool, gain: float,
                    unit_filter: bool = False) -> torch.Tensor | None:
    """`upfirdn2d` without arithmetic on inserted zeros or discarded pixels; None if not covered."""
    if f.ndim != 2 or ((upx > 1 or upy > 1) and (downx > 1 or downy > 1)):
        return None
    c = x.shape[1]
    kh, kw = f.shape
    if kh == 1 and kw == 1:  # pure pad/crop + scale + decimate (f=None, or a 1x1 filter)
        if upx > 1 or upy > 1:
            return None
        x = _crop_or_pad(x, -px0, -px1, -py0, -py1)
        if downx > 1 or downy > 1:
            x = x[:, :, ::downy, ::downx]
        if unit_filter:  # scale like the reference: a float32 filter tap (1 * gain), cast to x's dtype
            return x * float(torch.tensor(gain, dtype=torch.float32)) if gain != 1 else x
        return x * (f * gain).to(x.dtype).reshape([])
    f = (f * gain).to(x.dtype)  # 2-D filter: gain ** (ndim / 2) == gain
    if upx > 1 or upy > 1:
        # Polyphase: the transposed conv visits only the real samples (no products with zeros).
        # conv_transpose2d correlates the *flipped* kernel over the zero-inserted input, so the
        # unflipped f gives the true convolution and f.flip() gives flip_filter's correlation.
        wt = f.flip([0, 1]) if flip_filter else f
        pyt, opy, cy0, cy1 = _transposed_padding(kh, upy, py0, py1)
        pxt, opx, cx0, cx1 = _transposed_padding(kw, upx, px0, px1)
        x = F.conv_transpose2d(x, wt[None, None].expand(c, 1, kh, kw), stride=(upy, upx),
                               padding=(pyt, pxt), output_padding=(opy, opx), groups=c)
        return _crop_or_pad(x, cx0, cx1, cy0, cy1)
    g = f if flip_filter else f.flip([0, 1])  # conv2d correlates
    x = _crop_or_pad(x, max(-px0, 0), max(-px1, 0), max(-py0, 0), max(-py1, 0))  # crops only
    px0, px1, py0, py1 = max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)
    if px0 != px1 or py0 != py1:  # conv2d pads symmetrically: pad the difference explicitly
        x = F.pad(x, [px0 - min(px0, px1), px1 - min(px0, px1), py0 - min(py0, py1), py1 - min(py0, py1)])
        px0 = px1 = min(px0, px1)
        py0 = py1 = min(py0, py1)
    return F.conv2d(x, g[None, None].expand(c, 1, kh, kw), stride=(downy, downx), padding=(py0, px0), groups=c)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    settings: OpSettings | None = None,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), filter with `f`, keep every `down`-th pixel.

    x: [N, C, H, W]; f: [k] (applied along both axes) or [kh, kw]; returns
    [N, C, (H*up_y + py0 + py1 - kh) // down_y + 1, ...].  The filter is applied as a true
    convolution (flipped), unless `flip_filter`, which makes it a correlation; for the symmetric
    filters used here both agree. Evaluated by the polyphase / strided form when
    `settings.upfirdn2d` (default; None: the context's `op_settings()`), else by
    `upfirdn2d_reference`; both give the same result.
    """
    settings = op_settings() if settings is None else settings
    if settings.upfirdn2d and x.ndim == 4:
        unit = f is None
        if unit:
            f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
        upx, upy = _pair(up)
        downx, downy = _pair(down)
        px0, px1, py0, py1 = _padding4(padding)
        y = _upfirdn2d_fast(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain, unit)
        if y is not None:
            return y
    return upfirdn2d_reference(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1.0, settings: OpSettings | None = None) -> torch.Tensor:
    """Filter without resampling, padded so the output keeps the input size ('same')."""
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, settings=settings)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1.0, settings: OpSettings | None = None) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up]: zero insertion + FIR interpolation (gain up**2 keeps DC)."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2,
         py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy,
                     settings=settings)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1.0, settings: OpSettings | None = None) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/down, W/down]: FIR low-pass, then decimation."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2,
         py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, settings=settings)
