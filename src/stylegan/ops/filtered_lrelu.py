"""Filtered leaky ReLU: the alias-free nonlinearity of StyleGAN3 (Karras et al. 2021, Sec. 3.2, Fig. 4).

A pointwise nonlinearity creates frequencies above the Nyquist limit of the grid it runs on. The
paper's remedy (Sec. 3.2, "Nonlinearity"): upsample the signal m-fold with an ideal-ish
interpolation filter, apply the nonlinearity at the higher rate, then low-pass filter and
downsample back, so that what is kept is band-limited again. As one op, per channel:

    y = down_fd( clamp( gain * lrelu_slope( up_fu( x + b ) ) ) )

1. add the bias b [C];
2. upsample by `up` (zero insertion), pad by `padding` = (x0, x1, y0, y1) (negative crops) and
   convolve with `fu` (gain up^2, so the DC level is kept);
3. leaky ReLU with `slope`, times `gain`, clamped to [-clamp, clamp];
4. convolve with `fd` and keep every `down`-th sample.

Filters are 1-D (separable, applied along both axes), 2-D, or None (identity). Output size:
(W*up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down, the same for H.

Two evaluations of this one definition:

- `filtered_lrelu_reference`: the literal form, each step on its own tensor (bias add,
  `upfirdn2d_reference` with zero insertion, the activation, `upfirdn2d_reference` at the full rate
  and then decimation), like NVIDIA's reference implementation.
- `filtered_lrelu` (fast, unless `settings.upfirdn2d` is False: the op is made of resampling, so
  the resampling switch selects it): the upsampling is polyphase (a transposed strided conv per
  axis, no products with inserted zeros), `gain` rides in the upsampling taps (gain > 0 commutes
  with the leaky ReLU), the activation and clamp run in place when nothing is recorded, and the
  downsampling filters only the kept samples (a strided conv per axis). On small maps (the
  low-resolution layers) each 1-D pass is instead one matrix product with the banded resampling
  matrix, which BLAS runs faster than a depthwise conv. All steps are plain differentiable torch
  ops, so first and second derivatives come from autograd; tests/test_stylegan3_ops.py checks both
  forms agree in values and in first- and second-order gradients.

No custom kernel; `settings` comes down from a network's `Runtime` (`stylegan.nn.runtime`); a
direct caller without one gets the context's `op_settings()`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .filters import Padding, _crop_or_pad, _padding4, _transposed_padding, filter_size, upfirdn2d, upfirdn2d_reference
from .settings import OpSettings, op_settings

__all__ = ["filtered_lrelu", "filtered_lrelu_reference", "filtered_lrelu_output_size", "MATMUL_MAX_SIZE",
           "CHUNK_BYTES"]

SQRT2 = math.sqrt(2.0)

# A 1-D resampling pass over an axis of at most this many input samples runs as one matrix product
# with the [in, out] resampling matrix (dense; cost in * out per row instead of taps * out); longer
# axes use the strided (transposed) depthwise convolutions. Measured on CPU (docs: the op's bench).
MATMUL_MAX_SIZE = 96

# Inference only (nothing recorded): when the upsampled intermediate of all channels exceeds this
# many bytes, the op runs on groups of channels whose intermediate is about this size, so each
# group's passes find their input in the CPU caches instead of main memory (the intermediate is
# up^2 times the input: 320 MB for one 512-channel 276 px layer at up = 2). About 2x faster on a
# 2-core CPU for the layers above 128 px; results are identical (channels are independent).
CHUNK_BYTES = 16 * 2 ** 20


def _check(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None,
           up: int, down: int, gain: float, slope: float, clamp: float | None) -> None:
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects x [N, C, H, W], got {tuple(x.shape)}")
    for name, f in (("fu", fu), ("fd", fd)):
        if f is not None and (f.ndim not in (1, 2) or f.numel() == 0):
            raise ValueError(f"{name} must be None, [taps] or [kh, kw], got {tuple(f.shape)}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias must be [{x.shape[1]}], got {tuple(b.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"up and down must be integers >= 1, got {up!r}, {down!r}")
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    if not slope >= 0:
        raise ValueError(f"slope must be >= 0, got {slope}")
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"clamp must be None or >= 0, got {clamp}")


def _check_size(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
                padding: Padding) -> None:
    px0, px1, py0, py1 = _padding4(padding)
    fuw, fuh = filter_size(fu)
    mid = (x.shape[2] * up + py0 + py1 - fuh + 1, x.shape[3] * up + px0 + px1 - fuw + 1)
    out = filtered_lrelu_output_size(tuple(x.shape[2:]), fu, fd, up, down, padding)
    if min(mid) < 1 or min(out) < 1:
        raise ValueError(f"filtered_lrelu: input {tuple(x.shape[2:])} is too small for the filters and padding "
                         f"{(px0, px1, py0, py1)} (upsampled {mid}, output {out})")


def filtered_lrelu_output_size(in_size: tuple[int, int], fu: torch.Tensor | None, fd: torch.Tensor | None,
                               up: int, down: int, padding: Padding) -> tuple[int, int]:
    """(H, W) of `filtered_lrelu`'s output for an input of (H, W)."""
    px0, px1, py0, py1 = _padding4(padding)
    fuw, fuh = filter_size(fu)
    fdw, fdh = filter_size(fd)
    h, w = in_size
    out_w = (w * up + px0 + px1 - (fuw - 1) - (fdw - 1) + (down - 1)) // down
    out_h = (h * up + py0 + py1 - (fuh - 1) - (fdh - 1) + (down - 1)) // down
    return out_h, out_w


def _activate_reference(x: torch.Tensor, gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    x = F.leaky_relu(x, slope) if slope != 1 else x
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def filtered_lrelu_reference(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                             b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                             gain: float = SQRT2, slope: float = 0.2, clamp: float | None = None,
                             flip_filter: bool = False) -> torch.Tensor:
    """The literal form of `filtered_lrelu` (see the module docstring); x [N, C, H, W] -> [N, C, H', W']."""
    _check(x, fu, fd, b, up, down, gain, slope, clamp)
    _check_size(x, fu, fd, up, down, padding)
    px0, px1, py0, py1 = _padding4(padding)
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = upfirdn2d_reference(x, fu, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = _activate_reference(x, gain, slope, clamp)
    return upfirdn2d_reference(x, fd, down=down, flip_filter=flip_filter)


# ------------------------------------------------------------------------------------------------
# The fast form: each separable pass along one axis, as a banded matrix product or a strided conv.
# ------------------------------------------------------------------------------------------------

def _scaled(f: torch.Tensor, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """f * gain in the wider of f's and the data's dtype, then in the data's dtype (float64 data
    keeps float64 taps; fp16 data gets float32 products rounded once)."""
    return (f.to(torch.promote_types(f.dtype, dtype)) * gain).to(dtype)


def _resample_matrix(f: torch.Tensor, n_in: int, up: int, down: int, p0: int, p1: int,
                     flip_filter: bool, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """The [n_in, n_out] matrix M of one 1-D upfirdn pass: y = x @ M equals zero insertion by `up`,
    padding (p0, p1), convolution with `f` [k] (times `gain`) and keeping every `down`-th sample."""
    k = f.shape[0]
    n_out = (n_in * up + p0 + p1 - k) // down + 1
    taps = (f.to(torch.float64) * gain)
    if not flip_filter:
        taps = taps.flip(0)  # convolution = correlation with the flipped filter
    # Output j reads the padded, zero-inserted signal at positions j*down + t (t < k); input i sits
    # at padded position i*up + p0, so M[i, j] = taps[i*up + p0 - j*down] where that index is in range.
    i = torch.arange(n_in, device=f.device).reshape(-1, 1)
    j = torch.arange(n_out, device=f.device).reshape(1, -1)
    t = i * up + p0 - j * down  # [n_in, n_out]
    inside = (t >= 0) & (t < k)
    m = torch.where(inside, taps[t.clamp(0, k - 1)], torch.zeros((), dtype=torch.float64, device=f.device))
    return m.to(dtype)


def _pass_matmul(x: torch.Tensor, m: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply the resampling matrix m [n_in, n_out] along `axis` (3 = W, 2 = H) of x [N, C, H, W]."""
    if axis == 3:
        return x @ m  # [N, C, H, W] @ [W, W'] -> [N, C, H, W']
    return m.t() @ x  # [H', H] @ [N, C, H, W] -> [N, C, H', W]


def _pass_conv(x: torch.Tensor, f: torch.Tensor, up: int, down: int, p0: int, p1: int, flip_filter: bool,
               gain: float, axis: int) -> torch.Tensor:
    """One 1-D upfirdn pass along `axis` as a depthwise conv: transposed + strided for up > 1
    (polyphase: no products with the inserted zeros), strided for down > 1 (only kept samples)."""
    c = x.shape[1]
    k = f.shape[0]
    taps = _scaled(f, gain, x.dtype)
    shape = (1, k) if axis == 3 else (k, 1)

    def on_axis(v: int, other: int) -> tuple[int, int]:  # (H, W) pair with v on `axis`
        return (other, v) if axis == 3 else (v, other)

    def crop(y: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
        return _crop_or_pad(y, c0, c1, 0, 0) if axis == 3 else _crop_or_pad(y, 0, 0, c0, c1)

    if up > 1:
        if down != 1:
            raise ValueError("one pass either upsamples or downsamples")
        wt = taps.flip(0) if flip_filter else taps  # conv_transpose2d convolves
        pad, out_pad, c0, c1 = _transposed_padding(k, up, p0, p1)
        y = F.conv_transpose2d(x, wt.reshape(1, 1, *shape).expand(c, 1, *shape), stride=on_axis(up, 1),
                               padding=on_axis(pad, 0), output_padding=on_axis(out_pad, 0), groups=c)
        return crop(y, c0, c1)
    g = taps if flip_filter else taps.flip(0)  # conv2d correlates
    return F.conv2d(crop(x, -p0, -p1), g.reshape(1, 1, *shape).expand(c, 1, *shape), stride=on_axis(down, 1),
                    groups=c)


def _pass(x: torch.Tensor, f: torch.Tensor, up: int, down: int, p0: int, p1: int, flip_filter: bool,
          gain: float, axis: int) -> torch.Tensor:
    n_in = x.shape[axis]
    if n_in <= MATMUL_MAX_SIZE:
        m = _resample_matrix(f, n_in, up, down, p0, p1, flip_filter, gain, x.dtype)
        return _pass_matmul(x, m, axis)
    return _pass_conv(x, f, up, down, p0, p1, flip_filter, gain, axis)


def _upsample(x: torch.Tensor, fu: torch.Tensor | None, up: int, pad: tuple[int, int, int, int],
              flip_filter: bool, gain: float, settings: OpSettings) -> torch.Tensor:
    """Step 2 of the op (zero insertion, padding, fu), times `gain` on top of up^2."""
    px0, px1, py0, py1 = pad
    if fu is not None and fu.ndim == 1:
        x = _pass(x, fu, up, 1, px0, px1, flip_filter, up * gain, axis=3)  # `gain` once, on one axis
        return _pass(x, fu, up, 1, py0, py1, flip_filter, up, axis=2)
    if fu is None and up == 1:
        x = _crop_or_pad(x, -px0, -px1, -py0, -py1)
        return x * gain if gain != 1 else x
    if fu is None:  # zero insertion only (gain up^2, as the reference), then the activation gain
        x = upfirdn2d(x, None, up=up, padding=[px0, px1, py0, py1], gain=up * up, settings=settings)
        return x * gain if gain != 1 else x
    return upfirdn2d(x, _scaled(fu, up * up * gain, x.dtype), up=up, padding=[px0, px1, py0, py1],
                     flip_filter=flip_filter, settings=settings)


def _downsample(x: torch.Tensor, fd: torch.Tensor | None, down: int, flip_filter: bool,
                settings: OpSettings) -> torch.Tensor:
    """Step 4 of the op (fd, keep every `down`-th sample)."""
    if fd is not None and fd.ndim == 1:
        x = _pass(x, fd, 1, down, 0, 0, flip_filter, 1.0, axis=3)
        return _pass(x, fd, 1, down, 0, 0, flip_filter, 1.0, axis=2)
    if fd is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter, settings=settings)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = SQRT2, slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False, settings: OpSettings | None = None) -> torch.Tensor:
    """Bias, upsample (fu), leaky ReLU x gain, clamp, downsample (fd): see the module docstring.

    x: [N, C, H, W]; fu, fd: [taps] (separable), [kh, kw] or None; b: [C] or None; padding: int,
    (x, y) or (x0, x1, y0, y1) w.r.t. the upsampled image. Returns [N, C, H', W']
    (`filtered_lrelu_output_size`). Same result as `filtered_lrelu_reference`; the fast form runs
    when `settings.upfirdn2d` (None: the context's `op_settings()`).
    """
    settings = op_settings() if settings is None else settings
    if not settings.upfirdn2d:
        return filtered_lrelu_reference(x, fu, fd, b, up=up, down=down, padding=padding, gain=gain,
                                        slope=slope, clamp=clamp, flip_filter=flip_filter)
    gain = float(gain)
    _check(x, fu, fd, b, up, down, gain, slope, clamp)
    _check_size(x, fu, fd, up, down, padding)
    pad = _padding4(padding)
    recording = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    if not recording and x.device.type == "cpu":
        n, c, h, w = x.shape
        per_channel = n * (h * up + pad[2] + pad[3]) * (w * up + pad[0] + pad[1]) * x.element_size()
        group = max(1, CHUNK_BYTES // max(per_channel, 1))
        if group < c:
            return torch.cat([_filtered_lrelu_fast(x[:, i:i + group], fu, fd, None if b is None else b[i:i + group],
                                                   up, pad, gain, slope, clamp, flip_filter, down, settings)
                              for i in range(0, c, group)], dim=1)
    return _filtered_lrelu_fast(x, fu, fd, b, up, pad, gain, slope, clamp, flip_filter, down, settings)


def _filtered_lrelu_fast(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None,
                         up: int, pad: tuple[int, int, int, int], gain: float, slope: float, clamp: float | None,
                         flip_filter: bool, down: int, settings: OpSettings) -> torch.Tensor:
    source = x.untyped_storage().data_ptr()
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    # lrelu(g * v) == g * lrelu(v) for g > 0, so the gain rides in the upsampling taps.
    x = _upsample(x, fu, up, pad, flip_filter, gain, settings)
    # In place only on a tensor of our own (not the caller's, e.g. no bias, filter or gain).
    recording = (torch.is_grad_enabled() and x.requires_grad) or x.untyped_storage().data_ptr() == source
    if slope != 1:
        x = F.leaky_relu(x, slope) if recording else F.leaky_relu_(x, slope)
    if clamp is not None:
        x = x.clamp(-clamp, clamp) if recording else x.clamp_(-clamp, clamp)
    return _downsample(x, fd, down, flip_filter, settings)
