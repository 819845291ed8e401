"""Adaptive discriminator augmentation (ADA).

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (StyleGAN2-ADA).
Every image the discriminator sees, real or generated, passes through the same stochastic,
differentiable pipeline (Sec. 2, Fig. 2). Each transform fires independently per sample with
probability `p * multiplier`; as long as p < 1 the augmentations do not "leak" into the generated
distribution (Sec. 2.2). The strength p is tuned on the fly (Sec. 3): every few minibatches it
moves up when D is overconfident on reals (r_t = E[sign(D(real))] above a target of 0.6) and down
otherwise.

The pipeline (App. B.1, in this order):
  * geometric -- pixel blitting: xflip, rotate90, xint (integer translation); general: scale,
    rotate (pre and post), aniso (anisotropic scaling), xfrac (fractional translation). Each is a
    3x3 homogeneous matrix per sample. The blits are composed and executed exactly by copying
    pixels (reflecting at the borders). The general ones are composed into one matrix and
    resampled once: reflect padding, 2x upsampling with the sym6 wavelet, bilinear `grid_sample`,
    2x downsampling with the time-reversed wavelet. (The official code resamples the blits too;
    because sym6 is not symmetric, that makes a flip or a 90-degree rotation of a sharp image
    differ from the exact one by up to ~0.2 on a [-1, 1] checkerboard. Copying is lossless.)
  * color -- brightness, contrast, lumaflip, hue, saturation, composed into a 4x4 matrix acting on
    homogeneous RGB. For 1-channel images the gray value is treated as R = G = B and the result is
    averaged back: brightness and contrast act as on RGB, lumaflip negates, hue and saturation
    (which rotate / scale around the gray axis) are skipped.
  * imgfilter -- random gains for 4 frequency bands (a sym2 wavelet filter bank).
  * noise -- additive Gaussian, std sigma ~ |N(0, noise_std^2)| per sample.
  * cutout -- a rectangle of cutout_size x (H, W) at a uniformly random centre is zeroed.

Design: small pure functions build matrices from random parameters (`*_matrix`, `sample_*`) and
apply them (`apply_*`); `augment` chains them; `AugmentPipe` is a thin `nn.Module` holding the
configuration and the strength `p` (a buffer, so it is saved with `state_dict`); `AdaController`
owns the sign statistics and updates `p`. Nothing here keeps global state; randomness comes from
an optional `torch.Generator`.

All operations are differentiable twice w.r.t. the images (R1 is computed on augmented reals);
the resampling uses `ops.grid_sample`, whose gradfix form `AugmentPipe` picks when this PyTorch's
native `grid_sample` lacks a double backward. The adaptive strength (AdaConfig, AdaController)
lives in `training.ada`.

This module is over 500 lines because it is one concern: the 18 transforms of the official
pipeline, each a small pure function, in the paper's order.
"""
from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.nn.runtime import Runtime
from stylegan.ops import setup_filter, upsample2d, downsample2d
from stylegan.ops.settings import OpSettings
from stylegan.ops.grid_sample import grid_sample_gradfix, grid_sample_native, native_grid_sample_has_double_backward

Tensor = torch.Tensor
GridSample = Callable[[Tensor, Tensor], Tensor]

# -------------------------------------------------------------------------------------------------
# Constants (facts from the paper / the official implementation).

#: Daubechies symlet wavelets (low-pass decomposition taps). sym6 resamples the geometric
#: transforms (App. B.1: "we upsample ... using a wavelet filter"), sym2 defines the imgfilter bands.
SYM2_TAPS: tuple[float, ...] = (
    -0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6_TAPS: tuple[float, ...] = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

#: Expected power of natural images in the 4 imgfilter bands (low -> high), a 1/f spectrum.
IMGFILTER_EXPECTED_POWER: tuple[float, ...] = (10 / 13, 1 / 13, 1 / 13, 1 / 13)

#: Largest float32 below 1: p is kept in [0, 1) so augmentations stay non-leaking.
P_MAX: float = 1.0 - 2.0 ** -24

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
TRANSFORMS = GEOMETRIC + COLOR + ("imgfilter", "noise", "cutout")


# -------------------------------------------------------------------------------------------------
# Configuration and presets.

@dataclass(frozen=True)
class AugmentConfig:
    """Probability multipliers (0 = off, 1 = fires with probability p) and parameter ranges.

    Defaults of the ranges follow ADA App. B.1 (log2 std for the multiplicative ones; ranges of
    translations relative to the image size; rotations and hue as fractions of a full circle).
    """
    # Pixel blitting.
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125          # integer translation ~ U(-max, max) * (W, H), rounded
    # General geometric transformations.
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2           # s ~ 2^N(0, scale_std^2)
    rotate_max: float = 1.0          # theta ~ U(-pi, pi) * rotate_max
    aniso_std: float = 0.2           # (s, 1/s), s ~ 2^N(0, aniso_std^2)
    xfrac_std: float = 0.125         # t ~ N(0, xfrac_std^2) * (W, H)
    # Color transformations.
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2      # b ~ N(0, brightness_std^2), added
    contrast_std: float = 0.5        # c ~ 2^N(0, contrast_std^2), multiplied
    hue_max: float = 1.0             # theta ~ U(-pi, pi) * hue_max around the luma axis
    saturation_std: float = 1.0      # s ~ 2^N(0, saturation_std^2) orthogonal to the luma axis
    # Image-space filtering.
    imgfilter: float = 0.0
    imgfilter_bands: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # per-band multipliers (low -> high)
    imgfilter_std: float = 1.0       # band gain ~ 2^N(0, imgfilter_std^2)
    # Image-space corruptions.
    noise: float = 0.0
    cutout: float = 0.0
    noise_std: float = 0.1           # sigma ~ |N(0, noise_std^2)|
    cutout_size: float = 0.5         # rectangle side, relative to (W, H)

    def __post_init__(self) -> None:
        object.__setattr__(self, "imgfilter_bands", tuple(float(b) for b in self.imgfilter_bands))
        if len(self.imgfilter_bands) != len(IMGFILTER_EXPECTED_POWER):
            raise ValueError(f"imgfilter_bands needs {len(IMGFILTER_EXPECTED_POWER)} values, "
                             f"got {self.imgfilter_bands}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple) else (v,)
            if any((not math.isfinite(x)) or x < 0 for x in vals):
                raise ValueError(f"AugmentConfig.{f.name} must be finite and >= 0, got {v!r}")

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the transforms with a non-zero multiplier, in pipeline order."""
        return tuple(t for t in TRANSFORMS if getattr(self, t) > 0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["imgfilter_bands"] = list(self.imgfilter_bands)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown AugmentConfig fields: {sorted(unknown)}")
        return cls(**dict(d))


def _on(*names: str) -> AugmentConfig:
    return AugmentConfig(**{n: 1.0 for n in names})


_BLIT = ("xflip", "rotate90", "xint")
_GEOM = ("scale", "rotate", "aniso", "xfrac")
_COLOR = COLOR

#: Named pipelines of the official `--augpipe` option (ADA Fig. 4 / App. B). Read-only mapping.
PRESETS: Mapping[str, AugmentConfig] = types.MappingProxyType({
    "blit": _on(*_BLIT),
    "geom": _on(*_GEOM),
    "color": _on(*_COLOR),
    "filter": _on("imgfilter"),
    "noise": _on("noise"),
    "cutout": _on("cutout"),
    "bg": _on(*_BLIT, *_GEOM),
    "bgc": _on(*_BLIT, *_GEOM, *_COLOR),
    "bgcf": _on(*_BLIT, *_GEOM, *_COLOR, "imgfilter"),
    "bgcfn": _on(*_BLIT, *_GEOM, *_COLOR, "imgfilter", "noise"),
    "bgcfnc": _on(*_BLIT, *_GEOM, *_COLOR, "imgfilter", "noise", "cutout"),
})
DEFAULT_PRESET = "bgc"


def augment_preset(name: str) -> AugmentConfig:
    """The `AugmentConfig` of a named preset ('blit', 'geom', ..., 'bgcfnc')."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augment pipeline {name!r}; choose from {sorted(PRESETS)}") from None


# -------------------------------------------------------------------------------------------------
# Homogeneous matrices. Every builder takes per-sample parameters [N] and returns [N, k, k].

def _matrix(rows: Sequence[Sequence[Union[Tensor, float]]], ref: Tensor) -> Tensor:
    """Stack per-sample entries (tensors [N] or Python numbers) into [N, k, k] like `ref` [N]."""
    k = len(rows)
    entries = [torch.as_tensor(e, dtype=ref.dtype, device=ref.device).expand(ref.shape)
               for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(*ref.shape, k, k)


def translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    """[N, 3, 3]: (x, y) -> (x + tx, y + ty)."""
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    """[N, 3, 3]: (x, y) -> (sx x, sy y) about the image centre."""
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta: Tensor) -> Tensor:
    """[N, 3, 3]: rotation by theta (radians) about the image centre."""
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def rotate90_2d(k: Tensor) -> Tensor:
    """[N, 3, 3]: rotation by k * 90 degrees with exact integer entries (k [N] in {0, 1, 2, 3})."""
    idx = k.round().long() % 4
    c = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=k.dtype, device=k.device)[idx]
    s = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=k.dtype, device=k.device)[idx]
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], k)


def translate3d(tx: Tensor, ty: Tensor, tz: Tensor) -> Tensor:
    """[N, 4, 4]: adds (tx, ty, tz) to homogeneous RGB."""
    return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], tx)


def scale3d(sx: Tensor, sy: Tensor, sz: Tensor) -> Tensor:
    """[N, 4, 4]: multiplies R, G, B by (sx, sy, sz)."""
    return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], sx)


def luma_axis(dtype: torch.dtype = torch.float32, device: Optional[torch.device] = None) -> Tensor:
    """[4]: unit gray axis (1, 1, 1, 0) / sqrt(3) of homogeneous RGB (ADA App. B.1)."""
    return torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=dtype, device=device) / math.sqrt(3)


def rotate3d(axis: Tensor, theta: Tensor) -> Tensor:
    """[N, 4, 4]: rotation by theta [N] about the unit axis [3 or 4] (Rodrigues' formula)."""
    ax, ay, az = (axis[i].to(theta.dtype) for i in range(3))
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    return _matrix([
        [ax * ax * cc + c, ax * ay * cc - az * s, ax * az * cc + ay * s, 0],
        [ay * ax * cc + az * s, ay * ay * cc + c, ay * az * cc - ax * s, 0],
        [az * ax * cc - ay * s, az * ay * cc + ax * s, az * az * cc + c, 0],
        [0, 0, 0, 1]], theta)


def lumaflip_matrix(i: Tensor) -> Tensor:
    """[N, 4, 4]: Householder reflection I - 2 v v^T along the luma axis v where i [N] is 1,
    identity where it is 0. Inverts luminance, keeps hue and saturation."""
    v = luma_axis(i.dtype, i.device)
    eye = torch.eye(4, dtype=i.dtype, device=i.device)
    return eye - 2 * torch.outer(v, v) * i[:, None, None]


def hue_matrix(theta: Tensor) -> Tensor:
    """[N, 4, 4]: hue rotation = rotation by theta [N] about the luma axis."""
    return rotate3d(luma_axis(theta.dtype, theta.device), theta)


def saturation_matrix(s: Tensor) -> Tensor:
    """[N, 4, 4]: keeps the luma component, scales the chroma (orthogonal to it) by s [N].
    s = 0 maps every color onto the gray axis."""
    v = luma_axis(s.dtype, s.device)
    vv = torch.outer(v, v)
    eye = torch.eye(4, dtype=s.dtype, device=s.device)
    return vv + (eye - vv) * s[:, None, None]


# -------------------------------------------------------------------------------------------------
# Random parameters. `prob` is p * multiplier; a sample that does not fire gets the identity value.

def _uniform(shape: Sequence[int], gen: Optional[torch.Generator], device: torch.device) -> Tensor:
    return torch.rand(list(shape), generator=gen, device=device)


def _normal(shape: Sequence[int], gen: Optional[torch.Generator], device: torch.device) -> Tensor:
    return torch.randn(list(shape), generator=gen, device=device)


def _fire(value: Tensor, identity: float, prob: float, gen: Optional[torch.Generator]) -> Tensor:
    """Keep `value` [N, ...] where a per-sample coin with P(heads) = prob fires, else `identity`."""
    shape = [value.shape[0]] + [1] * (value.ndim - 1)
    hit = _uniform(shape, gen, value.device) < prob
    return torch.where(hit, value, torch.full_like(value, identity))


def geometric_matrices(cfg: AugmentConfig, p: float, n: int, width: int, height: int,
                       device: torch.device, gen: Optional[torch.Generator] = None
                       ) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Random inverse transforms (output pixel -> input pixel, centred pixel units), [N, 3, 3] each.

    Returns (blit_inv, general_inv); G_inv = blit_inv @ general_inv, i.e. the output shows
    blit(x) resampled by the general part. Order as in ADA App. B.1: xflip, rotate90, xint
    (pixel blitting), then scale, rotate, aniso, rotate, xfrac. The two rotations fire with
    1 - sqrt(1 - p * rotate) each, so that P(any rotation) = p * rotate. A part is None when none
    of its transforms can fire. rotate90 of an image whose W - H is odd moves pixel centres off
    the grid; then the blit part is folded into the general one.
    """
    probs = {t: p * getattr(cfg, t) for t in GEOMETRIC}
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    blit_inv: Optional[Tensor] = None
    general_inv: Optional[Tensor] = None

    if probs["xflip"] > 0:  # i in {0, 1}: mirror x
        i = _fire(torch.floor(_uniform([n], gen, device) * 2), 0, probs["xflip"], gen)
        blit_inv = (eye if blit_inv is None else blit_inv) @ scale2d(1 - 2 * i, torch.ones_like(i))
    if probs["rotate90"] > 0:  # k in {0..3}: rotate by k * 90 degrees
        k = _fire(torch.floor(_uniform([n], gen, device) * 4), 0, probs["rotate90"], gen)
        blit_inv = (eye if blit_inv is None else blit_inv) @ rotate90_2d(k)
    if probs["xint"] > 0:  # integer shift, up to xint_max of the image size
        t = _fire((_uniform([n, 2], gen, device) * 2 - 1) * cfg.xint_max, 0, probs["xint"], gen)
        tx, ty = -torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height)
        blit_inv = (eye if blit_inv is None else blit_inv) @ translate2d(tx, ty)

    if probs["scale"] > 0:  # isotropic, log-normal
        s = _fire(torch.exp2(_normal([n], gen, device) * cfg.scale_std), 1, probs["scale"], gen)
        general_inv = (eye if general_inv is None else general_inv) @ scale2d(1 / s, 1 / s)
    p_rot = 1 - math.sqrt(min(max(1 - probs["rotate"], 0.0), 1.0))
    if p_rot > 0:  # rotation before the anisotropic scaling
        theta = _fire((_uniform([n], gen, device) * 2 - 1) * math.pi * cfg.rotate_max, 0, p_rot, gen)
        general_inv = (eye if general_inv is None else general_inv) @ rotate2d(theta)
    if probs["aniso"] > 0:  # stretch x by s, y by 1/s
        s = _fire(torch.exp2(_normal([n], gen, device) * cfg.aniso_std), 1, probs["aniso"], gen)
        general_inv = (eye if general_inv is None else general_inv) @ scale2d(1 / s, s)
    if p_rot > 0:  # rotation after the anisotropic scaling
        theta = _fire((_uniform([n], gen, device) * 2 - 1) * math.pi * cfg.rotate_max, 0, p_rot, gen)
        general_inv = general_inv @ rotate2d(theta)
    if probs["xfrac"] > 0:  # sub-pixel shift, normal
        t = _fire(_normal([n, 2], gen, device) * cfg.xfrac_std, 0, probs["xfrac"], gen)
        general_inv = (eye if general_inv is None else general_inv) @ translate2d(
            -t[:, 0] * width, -t[:, 1] * height)

    if blit_inv is not None and probs["rotate90"] > 0 and (width - height) % 2 != 0:
        general_inv = blit_inv if general_inv is None else blit_inv @ general_inv
        blit_inv = None
    return blit_inv, general_inv


def color_matrix(cfg: AugmentConfig, p: float, n: int, num_channels: int, device: torch.device,
                 gen: Optional[torch.Generator] = None) -> Optional[Tensor]:
    """Random color transform C [N, 4, 4] on homogeneous RGB (C @ rgb_in = rgb_out).

    Order: brightness, contrast, lumaflip, hue, saturation (ADA App. B.1). Hue and saturation act
    only around the gray axis, so they are skipped for 1-channel images (they would be the
    identity). Returns None when nothing can fire.
    """
    probs = {t: p * getattr(cfg, t) for t in COLOR}
    if num_channels == 1:
        probs["hue"] = probs["saturation"] = 0.0
    if not any(v > 0 for v in probs.values()):
        return None
    c_mat = torch.eye(4, device=device).expand(n, 4, 4)

    if probs["brightness"] > 0:  # add b
        b = _fire(_normal([n], gen, device) * cfg.brightness_std, 0, probs["brightness"], gen)
        c_mat = translate3d(b, b, b) @ c_mat
    if probs["contrast"] > 0:  # multiply by c
        c = _fire(torch.exp2(_normal([n], gen, device) * cfg.contrast_std), 1, probs["contrast"], gen)
        c_mat = scale3d(c, c, c) @ c_mat
    if probs["lumaflip"] > 0:  # i in {0, 1}
        i = _fire(torch.floor(_uniform([n], gen, device) * 2), 0, probs["lumaflip"], gen)
        c_mat = lumaflip_matrix(i) @ c_mat
    if probs["hue"] > 0:
        theta = _fire((_uniform([n], gen, device) * 2 - 1) * math.pi * cfg.hue_max, 0, probs["hue"], gen)
        c_mat = hue_matrix(theta) @ c_mat
    if probs["saturation"] > 0:
        s = _fire(torch.exp2(_normal([n], gen, device) * cfg.saturation_std), 1, probs["saturation"], gen)
        c_mat = saturation_matrix(s) @ c_mat
    return c_mat


def imgfilter_gains(cfg: AugmentConfig, p: float, n: int, device: torch.device,
                    gen: Optional[torch.Generator] = None) -> Optional[Tensor]:
    """Random per-band amplitude gains [N, 4] (low -> high frequency), or None.

    Band i is amplified by 2^N(0, imgfilter_std^2) with probability p * imgfilter * band_i; after
    each band the gains are renormalised so that the expected image power (1/f spectrum,
    `IMGFILTER_EXPECTED_POWER`) is unchanged (ADA App. B.1).
    """
    if p * cfg.imgfilter <= 0 or not any(b > 0 for b in cfg.imgfilter_bands):
        return None
    power = torch.tensor(IMGFILTER_EXPECTED_POWER, device=device)  # [B]
    nb = power.shape[0]
    gains = torch.ones([n, nb], device=device)
    for i, band in enumerate(cfg.imgfilter_bands):
        t_i = _fire(torch.exp2(_normal([n], gen, device) * cfg.imgfilter_std), 1,
                    p * cfg.imgfilter * band, gen)
        t = torch.ones([n, nb], device=device)
        t[:, i] = t_i
        t = t / (power * t.square()).sum(dim=1, keepdim=True).sqrt()  # keep the expected power
        gains = gains * t
    return gains


def noise_sigma(cfg: AugmentConfig, p: float, n: int, device: torch.device,
                gen: Optional[torch.Generator] = None) -> Optional[Tensor]:
    """Per-sample noise std [N, 1, 1, 1] ~ |N(0, noise_std^2)| (0 where it does not fire)."""
    if p * cfg.noise <= 0:
        return None
    sigma = _normal([n, 1, 1, 1], gen, device).abs() * cfg.noise_std
    return _fire(sigma, 0, p * cfg.noise, gen)


def cutout_params(cfg: AugmentConfig, p: float, n: int, device: torch.device,
                  gen: Optional[torch.Generator] = None) -> Optional[tuple[Tensor, Tensor]]:
    """(centre [N, 2] ~ U(0, 1)^2 as (x, y) fractions, size [N] = cutout_size or 0), or None."""
    if p * cfg.cutout <= 0:
        return None
    size = _fire(torch.full([n], cfg.cutout_size, device=device), 0, p * cfg.cutout, gen)
    center = _uniform([n, 2], gen, device)
    return center, size


# -------------------------------------------------------------------------------------------------
# Filters.

def imgfilter_bank(taps: Sequence[float] = SYM2_TAPS, num_bands: int = 4) -> Tensor:
    """Filter bank [num_bands, K] of 1-D zero-phase band-pass filters, lowest band first.

    From the wavelet's half-band pair lo = H(z)H(1/z)/2 and hi = H(-z)H(-1/z)/2 (lo + hi = 1 for
    an orthogonal wavelet): repeatedly push all bands one octave down (dilate by 2, low-pass) and
    put `hi` into the band that became free at the top. The rows sum to a unit impulse, so unit
    gains give the identity. K = 43 for sym2 and 4 bands.
    """
    h = np.asarray(taps, dtype=np.float64)
    h_mirror = h * (-1.0) ** np.arange(h.size)
    lo = np.convolve(h, h[::-1]) / 2
    hi = np.convolve(h_mirror, h_mirror[::-1]) / 2

    def dilate(f: np.ndarray) -> np.ndarray:  # insert a zero between taps
        out = np.zeros(2 * f.size - 1)
        out[::2] = f
        return out

    bands = [np.ones(1)] + [np.zeros(1) for _ in range(num_bands - 1)]
    for i in range(1, num_bands):
        bands = [np.convolve(dilate(b), lo) for b in bands]
        start = (bands[i].size - hi.size) // 2
        bands[i][start:start + hi.size] += hi
    return torch.as_tensor(np.stack(bands), dtype=torch.float32)


def mirror_index(j: Tensor, size: int) -> Tensor:
    """Map integer positions j (any range) into [0, size) by mirrored periodic extension
    ("reflect": ... 2 1 | 0 1 2 ... size-1 | size-2 ...)."""
    if size == 1:
        return torch.zeros_like(j)
    period = 2 * (size - 1)
    return (size - 1) - ((j % period) - (size - 1)).abs()


def reflect_pad(x: Tensor, pad: Sequence[int]) -> Tensor:
    """Reflect-pad [N, C, H, W] by (x0, x1, y0, y1) >= 0, also for pads >= the image size
    (then the mirrored periodic extension is continued by index gathering)."""
    x0, x1, y0, y1 = (int(v) for v in pad)
    h, w = x.shape[-2:]
    if x0 < w and x1 < w and y0 < h and y1 < h:
        return F.pad(x, [x0, x1, y0, y1], mode="reflect") if any((x0, x1, y0, y1)) else x
    x = x.index_select(-1, mirror_index(torch.arange(-x0, w + x1, device=x.device), w))
    return x.index_select(-2, mirror_index(torch.arange(-y0, h + y1, device=x.device), h))


# -------------------------------------------------------------------------------------------------
# Applying the transforms.

def apply_blit(images: Tensor, b_inv: Tensor) -> Tensor:
    """Pixel blitting: output pixel q copies input pixel b_inv @ q exactly (reflecting at the
    borders). b_inv [N, 3, 3] must map pixel centres to pixel centres (flips, multiples of 90
    degrees, integer shifts; for odd rotations W - H must be even). images: [N, C, H, W]."""
    n, c, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=torch.float32) - (h - 1) / 2,
                            torch.arange(w, device=images.device, dtype=torch.float32) - (w - 1) / 2,
                            indexing="ij")
    pts = torch.stack([xs.flatten(), ys.flatten(), torch.ones(h * w, device=images.device)])  # [3, H*W]
    src = b_inv.to(torch.float32) @ pts  # [N, 3, H*W]
    sx = mirror_index(torch.round(src[:, 0] + (w - 1) / 2).long(), w)  # [N, H*W]
    sy = mirror_index(torch.round(src[:, 1] + (h - 1) / 2).long(), h)
    idx = (sy * w + sx)[:, None, :].expand(n, c, h * w)
    return images.reshape(n, c, h * w).gather(2, idx).reshape(n, c, h, w)


def apply_geometric(images: Tensor, g_inv: Tensor, geom_filter: Tensor,
                    grid_sample: GridSample = grid_sample_gradfix, settings: Optional[OpSettings] = None) -> Tensor:
    """Resample images [N, C, H, W] so that output pixel q shows input pixel g_inv @ q.

    Coordinates are in pixels with the origin at the image centre. Steps (ADA App. B.1): reflect
    padding just large enough for all samples' footprints, 2x upsampling with the wavelet
    `geom_filter` (sym6), bilinear `grid_sample` at 2x, 2x downsampling with the flipped wavelet and
    cropping back to H x W. For an identity G the up/down pair reconstructs the input (the
    wavelet is orthogonal) up to rounding.
    """
    n, c, h, w = images.shape
    g_inv = g_inv.to(torch.float32)
    pad = geom_filter.shape[0] // 4  # margin (in output pixels) for the filter support
    cx, cy = (w - 1) / 2, (h - 1) / 2

    # Padding: where do the output corners come from? [3, 4] -> [N, 3, 4]
    corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]],
                           dtype=torch.float32, device=images.device)
    src = (g_inv @ corners)[:, :2, :].permute(1, 0, 2).reshape(2, -1)  # [xy, N * 4]
    extent = torch.cat([-src, src]).amax(dim=1)  # [x0, y0, x1, y1]
    margin = extent + torch.tensor([2 * pad - cx, 2 * pad - cy] * 2, device=images.device)
    margin = torch.minimum(margin.clamp(min=0), torch.tensor([w - 1, h - 1] * 2, device=images.device))
    mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())
    images = reflect_pad(images, [mx0, mx1, my0, my1])
    one = torch.ones([n], device=images.device)
    g_inv = translate2d(one * (mx0 - mx1) / 2, one * (my0 - my1) / 2) @ g_inv

    # 2x upsampling. The sym6 filter delays by about half an upsampled pixel: conjugate by it.
    images = upsample2d(images, geom_filter.to(images.dtype), up=2, settings=settings)
    g_inv = scale2d(one * 2, one * 2) @ g_inv @ scale2d(one / 2, one / 2)
    g_inv = translate2d(-one / 2, -one / 2) @ g_inv @ translate2d(one / 2, one / 2)

    # Sample the output (plus the filter margin) at 2x; pixel units -> normalised [-1, 1].
    out_h, out_w = (h + 2 * pad) * 2, (w + 2 * pad) * 2
    in_h, in_w = images.shape[2], images.shape[3]
    g_inv = scale2d(one * 2 / in_w, one * 2 / in_h) @ g_inv @ scale2d(one * out_w / 2, one * out_h / 2)
    grid = F.affine_grid(g_inv[:, :2, :].to(images.dtype), [n, c, out_h, out_w], align_corners=False)
    images = grid_sample(images, grid)

    # 2x downsampling with the time-reversed filter, cropping the margin.
    return downsample2d(images, geom_filter.to(images.dtype), down=2, padding=-2 * pad, flip_filter=True,
                        settings=settings)


def apply_color(images: Tensor, c_mat: Tensor) -> Tensor:
    """Apply C [N, 4, 4] to images [N, C, H, W] (C = 3: RGB; C = 1: gray as R = G = B, the three
    outputs averaged). Other channel counts are rejected."""
    n, c, h, w = images.shape
    c_mat = c_mat.to(images.dtype)
    x = images.reshape(n, c, h * w)
    if c == 3:
        x = c_mat[:, :3, :3] @ x + c_mat[:, :3, 3:]
    elif c == 1:
        m = c_mat[:, :3, :].mean(dim=1, keepdim=True)  # [N, 1, 4]
        x = x * m[:, :, :3].sum(dim=2, keepdim=True) + m[:, :, 3:]
    else:
        raise ValueError(f"color augmentation needs 1 or 3 channels, got {c}")
    return x.reshape(n, c, h, w)


def apply_imgfilter(images: Tensor, gains: Tensor, bank: Tensor) -> Tensor:
    """Filter images [N, C, H, W] with the separable filter gains [N, B] @ bank [B, K], reflect-padded."""
    n, c, h, w = images.shape
    taps = (gains.to(images.dtype) @ bank.to(images.dtype))  # [N, K]
    taps = taps[:, None, :].expand(n, c, -1).reshape(n * c, 1, -1)  # [N*C, 1, K]
    k2 = bank.shape[1] // 2
    x = reflect_pad(images.reshape(1, n * c, h, w), [k2, k2, k2, k2])
    x = F.conv2d(x, taps[:, :, None, :], groups=n * c)  # rows
    x = F.conv2d(x, taps[:, :, :, None], groups=n * c)  # columns
    return x.reshape(n, c, h, w)


def apply_noise(images: Tensor, sigma: Tensor, gen: Optional[torch.Generator] = None) -> Tensor:
    """images + N(0, 1) * sigma [N, 1, 1, 1], fresh noise per pixel and channel."""
    noise = torch.randn(images.shape, generator=gen, device=images.device).to(images.dtype)
    return images + noise * sigma.to(images.dtype)


def cutout_mask(center: Tensor, size: Tensor, height: int, width: int) -> Tensor:
    """[N, 1, H, W] mask, 0 inside the rectangle |pixel centre - centre| < size / 2 (per axis, in
    fractions of the image), 1 elsewhere. center: [N, 2] (x, y); size: [N]."""
    xs = (torch.arange(width, device=center.device) + 0.5) / width  # [W]
    ys = (torch.arange(height, device=center.device) + 0.5) / height  # [H]
    half = size[:, None] / 2
    out_x = (xs[None, :] - center[:, 0:1]).abs() >= half  # [N, W]
    out_y = (ys[None, :] - center[:, 1:2]).abs() >= half  # [N, H]
    return (out_x[:, None, None, :] | out_y[:, None, :, None]).to(torch.float32)


# -------------------------------------------------------------------------------------------------
# The pipeline.

def augment(images: Tensor, cfg: AugmentConfig, p: float, *, geom_filter: Tensor, bank: Tensor,
            generator: Optional[torch.Generator] = None,
            grid_sample: GridSample = grid_sample_gradfix, settings: Optional[OpSettings] = None) -> Tensor:
    """Apply the ADA pipeline with strength p to images [N, C, H, W]; returns the same shape.

    p = 0 returns `images` itself. Geometric -> color -> imgfilter -> noise -> cutout. `settings`:
    the op forms of the geometric resampling (None: those in force, `stylegan.ops.op_settings`).
    """
    if images.ndim != 4:
        raise ValueError(f"augment expects [N, C, H, W], got {tuple(images.shape)}")
    if p <= 0:
        return images
    n, c, h, w = images.shape
    dev = images.device

    blit_inv, general_inv = geometric_matrices(cfg, p, n, w, h, dev, generator)
    if blit_inv is not None:
        images = apply_blit(images, blit_inv)
    if general_inv is not None:
        images = apply_geometric(images, general_inv, geom_filter, grid_sample, settings)
    c_mat = color_matrix(cfg, p, n, c, dev, generator)
    if c_mat is not None:
        images = apply_color(images, c_mat)
    gains = imgfilter_gains(cfg, p, n, dev, generator)
    if gains is not None:
        images = apply_imgfilter(images, gains, bank)
    sigma = noise_sigma(cfg, p, n, dev, generator)
    if sigma is not None:
        images = apply_noise(images, sigma, generator)
    cut = cutout_params(cfg, p, n, dev, generator)
    if cut is not None:
        images = images * cutout_mask(cut[0], cut[1], h, w).to(images.dtype)
    return images


class AugmentPipe(torch.nn.Module):
    """ADA augmentation pipeline (Karras et al. 2020, App. B) with strength buffer `p`.

    config: an `AugmentConfig` or a preset name. `p` is a scalar float32 buffer (saved in
    `state_dict`); `AdaController` updates it in place. `grid_sample`: 'auto' (native when this
    PyTorch supports its double backward, else the gradfix), 'native' or 'gradfix'.

    Call: `pipe(images [N, C, H, W], generator=None) -> [N, C, H, W]`, differentiable twice.
    """

    p: Tensor

    def __init__(self, config: Union[AugmentConfig, str] = DEFAULT_PRESET, p: float = 0.0,
                 grid_sample: str = "auto") -> None:
        super().__init__()
        self.config = augment_preset(config) if isinstance(config, str) else config
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        if grid_sample not in ("auto", "native", "gradfix"):
            raise ValueError(f"grid_sample must be 'auto', 'native' or 'gradfix', got {grid_sample!r}")
        if grid_sample == "auto":
            grid_sample = "native" if native_grid_sample_has_double_backward() else "gradfix"
        self.grid_sample_impl = grid_sample
        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float32))
        self.register_buffer("geom_filter", setup_filter(SYM6_TAPS), persistent=False)  # [12]
        self.register_buffer("imgfilter_bank", imgfilter_bank(), persistent=False)  # [4, 43]

    def forward(self, images: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        fn = grid_sample_native if self.grid_sample_impl == "native" else grid_sample_gradfix
        settings = Runtime.current().ops  # resolved once here, like the networks' forward
        return augment(images, self.config, float(self.p), geom_filter=self.geom_filter,
                       bank=self.imgfilter_bank, generator=generator, grid_sample=fn, settings=settings)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, enabled={list(self.config.enabled)}, grid_sample={self.grid_sample_impl}"


__all__ = [
    "AugmentConfig", "PRESETS", "DEFAULT_PRESET", "augment_preset", "AugmentPipe", "augment",
    "P_MAX",
    "SYM2_TAPS", "SYM6_TAPS", "IMGFILTER_EXPECTED_POWER", "TRANSFORMS", "GEOMETRIC", "COLOR",
    "translate2d", "scale2d", "rotate2d", "rotate90_2d", "translate3d", "scale3d", "rotate3d",
    "luma_axis", "lumaflip_matrix", "hue_matrix", "saturation_matrix",
    "geometric_matrices", "apply_blit", "mirror_index", "color_matrix", "imgfilter_gains", "noise_sigma", "cutout_params",
    "imgfilter_bank", "reflect_pad", "apply_geometric", "apply_color", "apply_imgfilter",
    "apply_noise", "cutout_mask",
]
