"""Convolution fused with FIR resampling, and the modulated convolution of StyleGAN2 (Sec. 2.2).

`conv2d_resample` is defined by its reference form (upsample with FIR, convolve, downsample with
FIR) and evaluated by cheaper, equivalent forms: strided conv for downsampling, transposed strided
conv for upsampling, resampling on the cheaper side of a 1x1 conv. `conv2d_resample_reference`
keeps the plain form beside them; tests assert they agree.

Which evaluation runs is an argument, `settings: OpSettings` (fast demodulation, the modconv
policy, and the upfirdn2d form of every resampling inside), handed down by the networks from the
`Runtime` they resolve once at their boundary (`stylegan.nn.runtime`); None, for direct callers
only, reads the context's `op_settings()`.

`flip_weight=False` makes the op a true convolution (kernel flipped w.r.t. `torch.conv2d`'s
correlation). It exists so weights trained with the official code, which flips the kernel in its
upsampling layers, reproduce their outputs exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .filters import Padding, _padding4, filter_size, upfirdn2d
from .settings import OpSettings, op_settings


def _resample_padding(f: torch.Tensor | None, up: int, down: int, padding: Padding) -> list[int]:
    """Padding (x0, x1, y0, y1) that centres the FIR filter around the resampled grid."""
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    return [px0, px1, py0, py1]


def _conv(x: torch.Tensor, w: torch.Tensor, *, stride: int = 1, padding: int | list[int] = 0,
          groups: int = 1, transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample_reference(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None,
                              up: int = 1, down: int = 1, padding: Padding = 0, groups: int = 1,
                              flip_weight: bool = True, settings: OpSettings | None = None) -> torch.Tensor:
    """Plain form: FIR upsample (gain up^2) -> conv -> FIR downsample. x: [N, Cin, H, W].
    `settings` selects only the upfirdn2d form (None: the context's `op_settings()`)."""
    settings = op_settings() if settings is None else settings
    p = _resample_padding(f, up, down, padding)
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up ** 2, settings=settings)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, settings=settings)
    return x


def _transpose_weight(w: torch.Tensor, groups: int, flip_weight: bool) -> torch.Tensor:
    """conv weight [Cout, Cin/g, kh, kw] -> the equivalent conv_transpose2d weight [Cin, Cout/g, kh, kw].

    conv_transpose2d scatters with the kernel as given, i.e. it convolves; `flip_weight=True`
    (correlation, like conv2d) therefore flips here. A view where possible (no copy).
    """
    cout, cin_g, kh, kw = w.shape
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, cout // groups, cin_g, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * cin_g, cout // groups, kh, kw)
    return wt.flip([2, 3]) if flip_weight and (kh > 1 or kw > 1) else wt


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None,
                    up: int = 1, down: int = 1, padding: Padding = 0, groups: int = 1,
                    flip_weight: bool = True, transposed_weight: torch.Tensor | None = None,
                    settings: OpSettings | None = None) -> torch.Tensor:
    """conv2d with integrated FIR up/downsampling; same result as `conv2d_resample_reference`.

    x: [N, Cin, H, W]; w: [Cout, Cin/groups, kh, kw]; f: filter from `setup_filter`;
    returns [N, Cout, H*up/down, W*up/down] for 'same' padding (kernel_size // 2).
    `transposed_weight`: `_transpose_weight(w, groups, flip_weight)` when the caller keeps it
    (`prepare_weight`); used by the up > 1 form only. `settings`: the upfirdn2d form of the
    resampling steps (None: the context's `op_settings()`).
    """
    settings = op_settings() if settings is None else settings
    kh, kw = w.shape[2:]
    px0, px1, py0, py1 = _resample_padding(f, up, down, padding)

    if kh == 1 and kw == 1 and down > 1 and up == 1:  # 1x1: decimate first, then convolve
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], settings=settings)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kh == 1 and kw == 1 and up > 1 and down == 1:  # 1x1: convolve first, then interpolate
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, settings=settings)
    if down > 1 and up == 1:  # low-pass, then strided conv
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], settings=settings)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided conv does zero insertion + conv in one op; then FIR
        wt = transposed_weight if transposed_weight is not None else _transpose_weight(w, groups, flip_weight)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=[pyt, pxt], groups=groups, transpose=True)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, settings=settings)
        if down > 1:
            x = upfirdn2d(x, f, down=down, settings=settings)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain conv with symmetric padding
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    return conv2d_resample_reference(x, w, f, up=up, down=down, padding=padding, groups=groups,
                                     flip_weight=flip_weight, settings=settings)


@dataclass(frozen=True)
class PreparedWeight:
    """What `modulated_conv2d` derives from its shared weight alone, kept by an inference caller.

    Every call otherwise re-reads the whole [O, I, kh, kw] weight once or twice before the conv:
    for sum_k w_oik^2 and, in upsampling layers, for the transposed conv's layout. At batch 1 and
    low resolution those passes cost as much as the conv itself (docs/performance.md), so a
    network evaluated with fixed weights computes them once (`prepare_weight`) and passes them in.
    sq_sum: [O, I]; transposed: [I, O, kh, kw] contiguous, or None when up == 1.
    """

    sq_sum: torch.Tensor
    transposed: torch.Tensor | None


def prepare_weight(weight: torch.Tensor, *, up: int = 1, flip_weight: bool = True) -> PreparedWeight:
    """`PreparedWeight` of `weight` [O, I, kh, kw] for `modulated_conv2d(..., up=up, flip_weight=...)`."""
    sq_sum = weight.square().sum(dim=[2, 3])  # [O, I]
    transposed = _transpose_weight(weight, 1, flip_weight).contiguous() if up > 1 else None
    return PreparedWeight(sq_sum, transposed)


def choose_fused(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor | None = None, *,
                 up: int = 1, down: int = 1, settings: OpSettings | None = None) -> bool:
    """Whether `modulated_conv2d(fused="auto")` uses the fused (grouped, per-sample weight) form.

    `settings.modconv` (None: the context's `op_settings()`) decides: "fused" / "unfused" force a
    form; "auto" picks the faster one as measured (docs/performance.md):
    - CUDA: the official rule, fused for inference in fp32 (or batch 1), unfused when autograd
      records (training) because the grouped conv's weight gradient is slow there.
    - elsewhere (CPU): a grouped conv with N groups is far slower than one conv over the batch
      (up to 20x at 4x4-16x16 with 512 channels), and the transposed (upsampling) grouped conv is
      always slower; the fused form wins only for stride-1 layers whose per-sample weight is small
      next to the activations the unfused form has to scale twice (64-128 channels at 128-256 px),
      with or without autograd: fused iff up == down == 1 and 2 * O*I*kh*kw <= (I + O) * H * W.
    x: [N, I, H, W]; weight: [O, I, kh, kw]; styles: [N, I].
    """
    policy = (op_settings() if settings is None else settings).modconv
    if policy != "auto":
        return policy == "fused"
    if x.device.type == "cuda":
        recording = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, weight, styles))
        return not recording and (x.dtype == torch.float32 or x.shape[0] == 1)
    if up != 1 or down != 1:
        return False
    o, i, kh, kw = weight.shape
    return 2 * o * i * kh * kw <= (i + o) * x.shape[2] * x.shape[3]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused: bool | str = True,
    prepared: PreparedWeight | None = None,
    settings: OpSettings | None = None,
) -> torch.Tensor:
    """Weight modulation and demodulation (StyleGAN2 Eq. 1-3).

    w'_oik = s_i * w_oik;  w''_oik = w'_oik / sqrt(sum_{i,k} w'_oik^2 + 1e-8).

    x: [N, I, H, W]; weight: [O, I, kh, kw]; styles: [N, I] -> [N, O, H', W'].
    `fused=True` builds one weight per sample and runs a single grouped convolution (groups = N);
    `fused=False` scales activations before and after a shared-weight convolution instead, which is
    mathematically identical (demodulation is a per-output-channel scale) and faster for large
    batches and for training on some backends. `fused="auto"` picks by `choose_fused`.

    With `settings.demod` the demodulation coefficients come from
    sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2), a [N, I] x [I, O] matmul, instead of
    materialising the [N, O, I, kh, kw] modulated weight (which the unfused form then never needs).
    `prepared`: `prepare_weight(weight, up=up, flip_weight=flip_weight)`, if the caller keeps it
    (inference with fixed weights); the result is the same. `settings` (None: the context's
    `op_settings()`) also carries the "auto" policy and the upfirdn2d form of the resampling.
    """
    settings = op_settings() if settings is None else settings
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if styles.shape != (n, i):
        raise ValueError(f"styles must be [N={n}, I={i}], got {tuple(styles.shape)}")
    if x.shape[1] != i:
        raise ValueError(f"input has {x.shape[1]} channels, weight expects {i}")

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so the per-sample weight cannot overflow fp16; demodulation undoes the scale.
        weight = weight * (1 / (i * kh * kw) ** 0.5 / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        prepared = None  # it belongs to the unscaled weight

    if fused == "auto":
        fused = choose_fused(x, weight, styles, up=up, down=down, settings=settings)
    elif not isinstance(fused, bool):
        raise ValueError(f"fused must be True, False or 'auto', got {fused!r}")

    if not settings.demod:
        return _modulated_conv2d_reference(x, weight, styles, up=up, down=down, padding=padding,
                                           resample_filter=resample_filter, demodulate=demodulate,
                                           flip_weight=flip_weight, fused=fused, settings=settings)

    dcoefs = None
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 == (s^2) @ (sum_k w_oik^2)^T: [N, I] x [I, O] -> [N, O]
        sq_sum = prepared.sq_sum if prepared is not None else weight.square().sum(dim=[2, 3])
        dcoefs = (styles.square() @ sq_sum.t() + 1e-8).rsqrt()

    resample = dict(resample_filter=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
                    settings=settings)
    if not fused:
        transposed = None if prepared is None or prepared.transposed is None else prepared.transposed.to(x.dtype)
        return _scaled_shared_conv(x, weight, styles, dcoefs, transposed_weight=transposed, **resample)
    # One [O, I] scale per sample (style x demodulation), then a single pass over the big weight.
    scale = styles.reshape(n, 1, i, 1, 1)
    if demodulate:
        scale = scale * dcoefs.reshape(n, o, 1, 1, 1)  # [N, O, I, 1, 1]
    return _per_sample_conv(x, weight.unsqueeze(0) * scale, **resample)  # [N, O, I, kh, kw]


def _scaled_shared_conv(x, weight, styles, dcoefs, *, resample_filter, up, down, padding, flip_weight,
                        settings, transposed_weight=None):
    """Unfused form: x [N, I, H, W] scaled by styles [N, I], one conv with the shared weight
    [O, I, kh, kw], output scaled by dcoefs [N, O] (None: no demodulation)."""
    n, i = styles.shape
    x = x * styles.to(x.dtype).reshape(n, i, 1, 1)
    x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, down=down,
                        padding=padding, flip_weight=flip_weight, transposed_weight=transposed_weight,
                        settings=settings)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
    return x


def _per_sample_conv(x, wmod, *, resample_filter, up, down, padding, flip_weight, settings):
    """Fused form: x [N, I, H, W], per-sample weights wmod [N, O, I, kh, kw] -> one grouped conv."""
    n, o, i, kh, kw = wmod.shape
    x = x.reshape(1, n * i, *x.shape[2:])  # fold the batch into channels: [1, N*I, H, W]
    x = conv2d_resample(x, wmod.reshape(n * o, i, kh, kw).to(x.dtype), resample_filter, up=up, down=down,
                        padding=padding, groups=n, flip_weight=flip_weight, settings=settings)
    return x.reshape(n, o, *x.shape[2:])


def _modulated_conv2d_reference(x, weight, styles, *, up, down, padding, resample_filter, demodulate,
                                flip_weight, fused, settings):
    """The literal form (official StyleGAN2): the demodulation sums run over the modulated weight."""
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    wmod = None
    dcoefs = None
    if demodulate or fused:
        wmod = weight.unsqueeze(0) * styles.reshape(n, 1, i, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (wmod.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]

    resample = dict(resample_filter=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
                    settings=settings)
    if not fused:
        return _scaled_shared_conv(x, weight, styles, dcoefs, **resample)
    if demodulate:
        wmod = wmod * dcoefs.reshape(n, o, 1, 1, 1)
    return _per_sample_conv(x, wmod, **resample)
