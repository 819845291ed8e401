"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R of StyleGAN3 (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks", Sec. 3 and Appendix E), the official ids `eqt50k_int`,
`eqt50k_frac`, `eqr50k` of NVlabs/stylegan3.

A synthesis network g is equivariant to an image transform T when moving its input (StyleGAN3's
Fourier features, `G.synthesis(ws, transform=...)`) moves its image the same way:
g(ws; T) = T[g(ws)]. The metric is a PSNR in dB between the two sides, over the pixels both define:

    EQ = 10 log10(I_max^2 / MSE),   I_max = 2 (images in [-1, 1]),
    MSE = (sum over samples, channels and valid pixels of (T[g(ws)] - g(ws; T))^2) / (number of valid values)

The squared errors and the valid-pixel counts of all samples are summed first and one PSNR is taken
of the total (not a mean of per-sample PSNRs); identical images give +inf, no valid pixel NaN.

- EQ-T (App. E.1): t = (t_x, t_y) ~ U[-1/8, 1/8]^2 image widths, rounded to whole pixels; T shifts
  the image by whole pixels (`integer_translate`); pixels shifted in from outside are invalid.
- EQ-T_frac (App. E.2): the same t without rounding; T interpolates with a 6-tap Lanczos (a = 3)
  windowed sinc per axis (`fractional_translate`); valid where all taps lie inside the image.
- EQ-R (App. E.3): angle ~ U[-pi, pi]; T rotates the image (`fractional_rotate`: 4x upsampling with
  an oriented band-limit filter, then bilinear sampling on the 4x grid). Rotating the grid also
  changes which frequencies fit it, so g's image is filtered with the same band limit without
  being rotated (`pseudo_rotate`, the paper's R*) before the two are compared.

Sampling (the package's generator-only convention, see features.py): sample i takes z (and a
dataset label for conditional networks) from `numpy.random.default_rng([seed, i])`, as the FID
fakes, and its translation / angle from `default_rng([seed, i, 2])`, so results do not depend on
batch size or GPU count. The official code draws one amount per batch of 4 from torch's RNG: the
same distribution, other draws. Images are the synthesis output in float (no quantisation),
computed in fp32 (`force_fp32`, as the official registry asks); the mapping uses `psi` (default 1:
no truncation, as the official).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import (
    MetricOptions,
    batches,
    eval_mode,
    gather_rows,
    make_label_sampler,
    module_device,
    progress_bar,
    rank_indices,
    sample_latents,
)
from stylegan.nn import weight_cache
from stylegan.ops.filters import filter2d, upsample2d

KINDS = ("int", "frac", "rot")
DATA_RANGE = 2.0  # I_max: images in [-1, 1]


# ----------------------------------------------------------------------------------------------
# Filters


def sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(pi x) / (pi x), 1 at x = 0 (elementwise)."""
    px = (x * math.pi).abs()
    return torch.where(px < 1e-30, torch.ones_like(x), torch.sin(px) / px.clamp(min=1e-30))


def lanczos_window(x: torch.Tensor, a: float) -> torch.Tensor:
    """The Lanczos window sinc(x / a) on |x| < a, 0 outside (elementwise)."""
    u = x.abs() / a
    return torch.where(u < 1, sinc(u), torch.zeros_like(u))


def lanczos_taps(frac: torch.Tensor, a: int = 3) -> torch.Tensor:
    """Lanczos weights for moving an image `frac` (in [0, 1)) pixels towards higher indices. [2a]:
    entry k weighs the input pixel k - (a - 1) before the output pixel's position, with the kernel
    sinc(d) sinc(d / a) at d = k - (a - 1) - frac, normalised to unit sum (App. E.2)."""
    d = torch.arange(2 * a, dtype=torch.float32, device=frac.device) - (a - 1) - frac
    w = sinc(d) * sinc(d / a)
    return w / w.sum()


def _circular_conv2d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Circular 2-D convolution of two [K, K] arrays (origin at index 0) via the FFT."""
    return torch.fft.ifft2(torch.fft.fft2(a) * torch.fft.fft2(b)).real


def bandlimit_filter(mat: torch.Tensor, a: int = 3, amax: int = 16, aflt: int = 64, up: int = 4,
                     cutoff_in: float = 1.0, cutoff_out: float = 1.0) -> torch.Tensor:
    """The 2-D low pass for resampling an image through the linear map `mat` ([2, 2] or the upper
    left of [3, 3]) on a grid `up` times finer (App. E.3).

    It keeps what both the input grid and the transformed output grid can hold: an axis-aligned
    sinc (the input's band limit, `cutoff_in` cycles per pixel x 2) convolved with the same sinc in
    the output's rotated coordinates, windowed by the likewise convolved pair of Lanczos windows
    (radius `a` input pixels). Both are evaluated on `2 aflt up - 1` taps per axis at spacing 1 / up,
    the convolutions done circularly by FFT, and the result cut to a radius of `amax` input pixels.
    Each of the up x up polyphase components is normalised to sum 1 / up^2, so that upsampling with
    gain up^2 keeps a constant image constant. Returns float32 [2 amax up - 1, 2 amax up - 1].
    """
    if not a <= amax < aflt:
        raise ValueError(f"need a <= amax < aflt, got a={a}, amax={amax}, aflt={aflt}")
    m = torch.as_tensor(mat, dtype=torch.float32)[:2, :2]
    half = aflt * up  # taps per side of the long filter, the origin included
    n = 2 * half - 1
    k = torch.arange(n, device=m.device)
    taps = torch.where(k < half, k, k - n).to(torch.float32) / up  # FFT order: 0, 1/up, ..., -1/up
    yi, xi = torch.meshgrid(taps, taps, indexing="ij")  # [n, n] input coordinates (x along columns)
    xo = m[0, 0] * xi + m[0, 1] * yi  # output coordinates of the same points
    yo = m[1, 0] * xi + m[1, 1] * yi
    ideal = _circular_conv2d(sinc(xi * cutoff_in) * sinc(yi * cutoff_in), sinc(xo * cutoff_out) * sinc(yo * cutoff_out))
    window = _circular_conv2d(lanczos_window(xi, a) * lanczos_window(yi, a), lanczos_window(xo, a) * lanczos_window(yo, a))
    f = (ideal * window).roll((half - 1, half - 1), dims=(0, 1))  # origin at the centre index half - 1
    r = amax * up - 1  # kept radius in taps
    f = f[half - 1 - r : half + r, half - 1 - r : half + r]  # [2r + 1, 2r + 1]
    for py in range(up):  # normalise each polyphase component
        for px in range(up):
            f[py::up, px::up] /= f[py::up, px::up].sum() * up**2
    return f


def rotation_matrix(angle: torch.Tensor | float) -> torch.Tensor:
    """[[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]] (float32 [3, 3]): `fractional_rotate`'s image map
    for `angle` radians; its transpose, the map for -angle, is the synthesis input transform that
    rotates g's image the same way (`rotation_transform`)."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([torch.stack([c, s, zero]), torch.stack([-s, c, zero]), torch.stack([zero, zero, one])])


# ----------------------------------------------------------------------------------------------
# Image transforms: x [N, C, H, W] -> (image [N, C, H, W], valid-pixel mask [N, C, H, W] of 0 / 1)


def _shift_axis(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """x moved by `shift` whole pixels along `dim` (towards higher indices when positive), zero fill."""
    size = x.shape[dim]
    out = torch.zeros_like(x)
    if abs(shift) < size:
        keep = size - abs(shift)
        out.narrow(dim, max(shift, 0), keep).copy_(x.narrow(dim, max(-shift, 0), keep))
    return out


def _span_mask(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    """Ones on columns [x0, x1) and rows [y0, y1) (clipped to the image), zeros elsewhere; x's shape."""
    h, w = x.shape[-2:]
    m = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    x0, x1, y0, y1 = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
    if x0 < x1 and y0 < y1:
        m[:, :, y0:y1, x0:x1] = 1
    return m.expand_as(x)


def _pixels(t: Any, size: int) -> torch.Tensor:
    """A translation in image widths (heights) -> pixels, float32. The product is taken in t's own
    precision (a Python float: float64; the metric's float32 tensors: float32), as the official."""
    return torch.as_tensor(t * size).to(torch.float32).cpu()


def integer_translate(x: torch.Tensor, tx: Any, ty: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The image moved by (tx, ty) image widths / heights, rounded to whole pixels (App. E.1, T_t).
    Pixels that came from outside are zero and invalid."""
    h, w = x.shape[-2:]
    ix, iy = int(_pixels(tx, w).round()), int(_pixels(ty, h).round())
    out = _shift_axis(_shift_axis(x, ix, -1), iy, -2)
    return out, _span_mask(x, ix, w + ix, iy, h + iy)


def fractional_translate(x: torch.Tensor, tx: Any, ty: Any, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The image moved by (tx, ty) image widths / heights, sub-pixel, by separable Lanczos
    interpolation with 2a taps per axis (App. E.2, T_t). Output pixel p reads input pixels
    p - floor(s) - k for k = -(a - 1) .. a (s = the shift in pixels); outside the image counts as
    zero, and a pixel is valid when all of its taps lie inside."""
    h, w = x.shape[-2:]
    out = x
    spans = []
    for t, size, dim in ((tx, w, -1), (ty, h, -2)):
        s = _pixels(t, size)
        i = int(s.floor())
        taps = lanczos_taps(s - i, a).to(x.device)  # [2a]
        acc = torch.zeros_like(out)
        for k in range(2 * a):
            acc = acc + taps[k] * _shift_axis(out, i + k - (a - 1), dim)
        out = acc
        spans.append((i + a, size + i - (a - 1)))
    (x0, x1), (y0, y1) = spans
    return out, _span_mask(x, x0, x1, y0, y1)


def affine_resample(x: torch.Tensor, mat: torch.Tensor, up: int = 4, a: int = 3, amax: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The image under the affine image map `mat` ([3, 3]; translation in image widths), band
    limited for both grids (App. E.3): upsample `up` times with `bandlimit_filter`, then sample
    bilinearly at the inverse-mapped pixel centres. Valid: pixels that read the upsampled image at
    least 2p + 1 of its pixels inside its edges (p = the filter radius)."""
    n, c, h, w = x.shape
    mat = torch.as_tensor(mat, dtype=torch.float32, device=x.device)
    f = bandlimit_filter(mat, a=a, amax=amax, up=up)  # [K, K], K odd
    p = f.shape[0] // 2
    big = upsample2d(x, f.to(x.dtype), up=up, padding=p)  # [N, C, H up + 2p, W up + 2p]
    # Output pixel at normalised position u (align_corners=False units of the original image) reads
    # the source point inv(mat) u (translation x 2: an image spans 2 units). `big` is 2p / up original
    # pixels wider and its samples sit half an upsampled pixel (1 / (up W) units) left of the
    # original grid, so in big's own units the point is (u_src + 1 / (up W)) * W / (W + 2p / up).
    theta = torch.linalg.inv(mat)[:2].clone()  # [2, 3] output -> input
    theta[:, 2] *= 2
    theta[0, 2] += 1 / (up * w)
    theta[1, 2] += 1 / (up * h)
    theta[0] *= w / (w + 2 * p / up)
    theta[1] *= h / (h + 2 * p / up)
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, h, w], align_corners=False)  # [N, H, W, 2]
    out = F.grid_sample(big, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    edge = 2 * p + 1
    inside = torch.zeros(1, 1, *big.shape[-2:], dtype=x.dtype, device=x.device)
    inside[:, :, edge:-edge, edge:-edge] = 1
    mask = F.grid_sample(inside, grid[:1], mode="nearest", padding_mode="zeros", align_corners=False)
    return out, mask.expand_as(x)


def fractional_rotate(x: torch.Tensor, angle: Any, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The image rotated by `angle` radians about its centre (App. E.3, R_alpha): `affine_resample`
    with `rotation_matrix(angle)`, Lanczos radius a, filter radius 2a."""
    return affine_resample(x, rotation_matrix(angle).to(x.device), a=a, amax=2 * a)


def pseudo_rotate(x: torch.Tensor, angle: Any, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The image filtered as `fractional_rotate(., angle)` band-limits it, without rotating it
    (App. E.3, R*_alpha): the band-limit filter of the map for -angle at the image's own rate.
    Valid: pixels at least the filter radius from the edges."""
    f = bandlimit_filter(rotation_matrix(-torch.as_tensor(angle, dtype=torch.float32)), a=a, amax=2 * a, up=1)
    out = filter2d(x, f.to(device=x.device, dtype=x.dtype))
    r = f.shape[0] // 2
    h, w = x.shape[-2:]
    return out, _span_mask(x, r, w - r, r, h - r)


def psnr(squared_error: Any, count: Any, data_range: float = DATA_RANGE) -> float:
    """10 log10(data_range^2 / (squared_error / count)) in dB, float64: +inf when the error is 0,
    NaN when count is 0 (as the official code, which divides and takes the log unguarded)."""
    mse = torch.as_tensor(squared_error, dtype=torch.float64) / torch.as_tensor(count, dtype=torch.float64)
    return float(20 * math.log10(data_range) - 10 * torch.log10(mse))


# ----------------------------------------------------------------------------------------------
# Input transforms (G.synthesis(ws, transform=...), the inverse of the image map)


def translation_transform(t: torch.Tensor) -> torch.Tensor:
    """t [N, 2] (image widths) -> [N, 3, 3] [[1, 0, -tx], [0, 1, -ty], [0, 0, 1]]: the input transform
    that moves g's image by +t (`stylegan.models.stylegan3.input_transform(translate=t)`)."""
    m = torch.eye(3, dtype=torch.float32, device=t.device).repeat(t.shape[0], 1, 1)
    m[:, :2, 2] = -t.to(torch.float32)
    return m


def rotation_transform(angle: torch.Tensor) -> torch.Tensor:
    """angle [N] (radians) -> [N, 3, 3] `rotation_matrix(-angle)`: the input transform that rotates g's
    image as `fractional_rotate(., angle)` does (`input_transform(rotate=degrees(angle))`)."""
    return torch.stack([rotation_matrix(-a) for a in angle.to(torch.float32).cpu()]).to(angle.device)


# ----------------------------------------------------------------------------------------------
# The metric


@dataclass(frozen=True)
class EqConfig:
    """One equivariance metric: kind "int" (EQ-T), "frac" (EQ-T_frac) or "rot" (EQ-R)."""

    num_samples: int
    kind: str
    translate_max: float = 0.125  # image widths, each axis
    rotate_max: float = 1.0  # x pi radians

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MetricError(f"Equivariance kind must be one of {KINDS}, got {self.kind!r}.")
        if self.num_samples < 1:
            raise MetricError(f"num_samples must be positive, got {self.num_samples}.")


def require_stylegan3(G: Any, name: str = "equivariance metrics") -> None:
    """MetricError unless G's synthesis network is StyleGAN3's (it takes an input transform)."""
    from stylegan.models.stylegan3 import has_input_transform

    if not has_input_transform(G):
        version = getattr(getattr(G, "cfg", None), "version", None)
        what = f"a StyleGAN{'' if version == 1 else version} network" if version in (1, 2) else "this network"
        raise MetricError(f"{name} needs a StyleGAN3 network (its input transform moves the image); {what} has none.")


def sample_amounts(cfg: EqConfig, indices, seed: int, resolution: int, device: Any = "cpu") -> torch.Tensor:
    """Per-sample transform amounts from `default_rng([seed, i, 2])`: t [B, 2] (image widths, whole
    pixels of `resolution` for "int") or angles [B] (radians). float32, as the official draws."""
    u = np.stack([np.random.default_rng([seed, int(i), 2]).random(2) for i in indices])  # [B, 2]
    u = torch.from_numpy(u).to(torch.float32)
    if cfg.kind == "rot":
        return ((u[:, 0] * 2 - 1) * (cfg.rotate_max * math.pi)).to(device)
    t = (u * 2 - 1) * cfg.translate_max
    if cfg.kind == "int":
        t = (t * resolution).round() / resolution
    return t.to(device)


def equivariance_errors(G: Any, ws: torch.Tensor, kind: str, amounts: torch.Tensor) -> torch.Tensor:
    """Per-sample (sum of squared errors over the valid values, number of valid values) for ws
    [N, num_ws, w_dim] and amounts (t [N, 2] or angles [N]). -> float64 [N, 2] on the CPU."""
    n = ws.shape[0]
    eye = torch.eye(3, dtype=torch.float32, device=ws.device).expand(n, 3, 3)
    ref = G.synthesis(ws, transform=eye, noise_mode="const", force_fp32=True)  # [N, C, H, W]
    moved = translation_transform(amounts) if kind in ("int", "frac") else rotation_transform(amounts)
    img = G.synthesis(ws, transform=moved.to(ws.device), noise_mode="const", force_fp32=True)
    out = torch.zeros(n, 2, dtype=torch.float64)
    for i in range(n):
        r, g = ref[i : i + 1].float(), img[i : i + 1].float()
        if kind == "int":
            r, mask = integer_translate(r, amounts[i, 0], amounts[i, 1])
        elif kind == "frac":
            r, mask = fractional_translate(r, amounts[i, 0], amounts[i, 1])
        else:
            r, ref_mask = fractional_rotate(r, amounts[i])
            g, img_mask = pseudo_rotate(g, amounts[i])
            mask = ref_mask * img_mask
        out[i, 0] = _sum64((r - g).square() * mask)
        out[i, 1] = _sum64(mask)
    return out


def _sum64(x: torch.Tensor) -> torch.Tensor:
    """Sum in float64 (as the official accumulates), on the CPU where the device has no float64 (MPS)."""
    return (x.cpu() if x.device.type == "mps" else x).to(torch.float64).sum().cpu()


def compute_equivariance(opts: MetricOptions, cfg: EqConfig, return_all: bool = False):
    """EQ-T / EQ-T_frac / EQ-R of opts.G in dB over cfg.num_samples samples (NaN on ranks other than
    0). `return_all`: the per-sample (squared error sum, valid count) rows [num_samples, 2] instead."""
    G = opts.G
    if G is None:
        raise MetricError("No generator given.")
    require_stylegan3(G, {"int": "EQ-T", "frac": "EQ-T_frac", "rot": "EQ-R"}[cfg.kind])
    labels = make_label_sampler(G, opts)
    g_dev = module_device(G, opts.device)
    res = int(G.img_resolution)
    mine = rank_indices(cfg.num_samples, opts)
    rows = []
    with torch.no_grad(), eval_mode(G), weight_cache():
        for idx in progress_bar(list(batches(mine, opts.batch)), opts.progress and opts.is_leader, f"eq-{cfg.kind}"):
            z, c = sample_latents(G, idx, opts.seed, labels, g_dev)
            ws = G.mapping(z, c, psi=opts.psi)  # [B, num_ws, w_dim]
            amounts = sample_amounts(cfg, idx, opts.seed, res, g_dev)
            err = equivariance_errors(G, ws, cfg.kind, amounts)  # [B, 2]
            rows.append(gather_rows(err.to(opts.device), opts).cpu() if opts.num_gpus > 1 else err)
    sums = torch.cat(rows)[: cfg.num_samples]  # [num_samples, 2]
    if return_all:
        return sums
    if not opts.is_leader:
        return float("nan")
    total = sums.sum(dim=0)
    return psnr(total[0], total[1])


__all__ = [
    "EqConfig",
    "affine_resample",
    "bandlimit_filter",
    "compute_equivariance",
    "equivariance_errors",
    "fractional_rotate",
    "fractional_translate",
    "integer_translate",
    "lanczos_taps",
    "lanczos_window",
    "psnr",
    "pseudo_rotate",
    "require_stylegan3",
    "rotation_matrix",
    "rotation_transform",
    "sample_amounts",
    "sinc",
    "translation_transform",
]
