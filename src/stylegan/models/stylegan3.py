"""StyleGAN3 synthesis network: alias-free, translation (config T) or rotation (config R) equivariant.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks". Every feature map is read as the
samples of a continuous signal of known band limit (Sec. 2), and each layer is built so that it
neither creates frequencies its grid cannot hold nor lets the pixel grid leak in (Sec. 3):

- `SynthesisInput`: Fourier features instead of a learned constant (Sec. 3.1, "Fourier features";
  Sec. 3.2 "Transformed Fourier features"): sinusoids of fixed random frequencies inside the first
  layer's band, rotated and translated by a learned affine of w, and by a user `transform`
  (an inverse 3x3 matrix buffer, as the official one, which moves the whole image).
- `SynthesisLayer`: modulated conv (StyleGAN2 demodulation, inputs scaled by a moving average of
  their magnitude), then `ops.filtered_lrelu`: upsample, leaky ReLU, low-pass + downsample with
  Kaiser-windowed sinc filters (`ops.lowpass`) whose cutoffs / stopbands follow the per-layer
  schedule of `synthesis_schedule` (Sec. 3.2 "Flexible layer specifications", Fig. 4); the last
  layers are critically sampled; config R uses 1x1 convs and radially symmetric downsampling
  filters ("Rotation equivariance"). The last layer is the ToRGB layer (no demodulation, no
  nonlinearity, linear gain 1).
- `SynthesisNetwork`: input + layers `L{i}_{size}_{channels}`, output times `output_scale`.

Parameter and buffer names are NVIDIA's (`input.affine.weight`, `input.freqs`, `input.transform`,
`L3_52_512.magnitude_ema`, `.up_filter`, `.down_filter`, ...), so official pickles map 1:1. The
mapping network is the shared `MappingNetwork` (StyleGAN3's mapping is the StyleGAN2 one with 2
layers and w_avg decay 0.998), and `Generator` wraps both like every other version.

StyleGAN3 has no per-pixel noise: `noise_mode` is accepted and ignored, as officially.
Code paths: the public `SynthesisNetwork.forward` resolves the `Runtime` once and passes it down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..nn import FullyConnected, NoiseMode, Runtime
from ..ops import filtered_lrelu, modulated_conv2d, prepare_weight
from ..ops.lowpass import design_lowpass_filter
from .config import GeneratorConfig, StyleGAN3Options

__all__ = ["InputSpec", "LayerSpec", "synthesis_schedule", "SynthesisInput", "SynthesisLayer", "SynthesisNetwork",
           "input_transform", "image_transform", "has_input_transform"]


# ------------------------------------------------------------------------------------------------
# The per-layer signal specification (a pure function of the config).
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputSpec:
    """The Fourier-feature input: channels, size (pixels incl. margins), sampling rate, bandwidth."""

    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer's signals (Sec. 3.2, Fig. 4): rates s, cutoffs f_c, half-widths f_h, filters."""

    name: str  # the official attribute name: L{index}_{out_size}_{out_channels}
    index: int
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool  # as constructed (CUDA only; a Runtime precision can decide instead)
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    tmp_sampling_rate: int  # the rate the nonlinearity runs at
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1) of filtered_lrelu, w.r.t. the upsampled image

    @property
    def in_stopband(self) -> float:
        return self.in_cutoff + self.in_half_width

    @property
    def out_stopband(self) -> float:
        return self.out_cutoff + self.out_half_width


def _layer_padding(in_size: int, out_size: int, conv_kernel: int, up: int, down: int, up_taps: int,
                   down_taps: int) -> tuple[int, int, int, int]:
    """filtered_lrelu padding that maps the conv output onto `out_size` samples.

    The conv (padding k-1) gives in_size + k - 1 samples; after upsampling and both filters the
    output must hold (out_size - 1) * down + 1 samples at the high rate. The total is split with
    the low side rounded so that sample positions follow the symmetric interpretation of the
    official code (the pixel centres at half-integers, its App. C.3).
    """
    total = (out_size - 1) * down + 1 - (in_size + conv_kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    hi = total - lo
    return lo, hi, lo, hi


def synthesis_schedule(cfg: GeneratorConfig) -> tuple[InputSpec, list[LayerSpec]]:
    """The Fourier input's and every layer's signal specification (Sec. 3.2 "Flexible layer specifications").

    Cutoffs f_c and minimum stopbands f_t grow geometrically from the first layer to the last
    non-critical one and stay at the image's Nyquist rate after; each layer's sampling rate is the
    smallest power of two above 2 f_t (at most the image resolution), its transition half-width
    f_h = max(f_t, s/2) - f_c, its size s plus the margins (the last two layers: the image), and its
    channels channel_base / 2 / f_c (at most channel_max; the last: the image channels).
    """
    o: StyleGAN3Options = cfg.sg3
    res = cfg.img_resolution
    n = o.num_layers
    last_cutoff = res / 2
    last_stopband = last_cutoff * o.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - o.num_critical), 1)  # [n + 1]
    cutoffs = o.first_cutoff * (last_cutoff / o.first_cutoff) ** exponents
    stopbands = o.first_stopband * (last_stopband / o.first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + o.margin_size * 2
    sizes[-2:] = res
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = cfg.img_channels

    spec_in = InputSpec(int(channels[0]), int(sizes[0]), float(rates[0]), float(cutoffs[0]))
    layers = []
    for i in range(n + 1):
        p = max(i - 1, 0)
        torgb = i == n
        critical = i >= n - o.num_critical
        in_rate, out_rate = int(rates[p]), int(rates[i])
        tmp_rate = max(in_rate, out_rate) * (1 if torgb else o.lrelu_upsampling)
        up, down = int(np.rint(tmp_rate / in_rate)), int(np.rint(tmp_rate / out_rate))
        if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
            raise ValueError(f"layer {i}: sampling rates {in_rate} -> {tmp_rate} -> {out_rate} are not integer ratios")
        up_taps = o.filter_size * up if up > 1 and not torgb else 1
        down_taps = o.filter_size * down if down > 1 and not torgb else 1
        kernel = 1 if torgb else o.conv_kernel
        in_size, out_size = int(sizes[p]), int(sizes[i])
        layers.append(LayerSpec(
            name=f"L{i}_{out_size}_{int(channels[i])}", index=i, is_torgb=torgb, is_critically_sampled=critical,
            use_fp16=bool(rates[i] * 2 ** cfg.num_fp16_res > res),
            in_channels=int(channels[p]), out_channels=int(channels[i]), in_size=in_size, out_size=out_size,
            in_sampling_rate=in_rate, out_sampling_rate=out_rate,
            in_cutoff=float(cutoffs[p]), out_cutoff=float(cutoffs[i]),
            in_half_width=float(half_widths[p]), out_half_width=float(half_widths[i]),
            conv_kernel=kernel, tmp_sampling_rate=tmp_rate, up_factor=up, down_factor=down,
            up_taps=up_taps, down_taps=down_taps, down_radial=o.use_radial_filters and not critical,
            padding=_layer_padding(in_size, out_size, kernel, up, down, up_taps, down_taps)))
    return spec_in, layers


def image_transform(translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The image-space transform M [3, 3] float64 that translates by (tx, ty) (image widths about the
    centre, the visualizer's convention) and rotates by `rotate` degrees: [[cos, sin, tx], [-sin, cos,
    ty], [0, 0, 1]] (stylegan3's gen_images.py `make_transform`). The network shows content(M^-1 x)
    at x; `input_transform` is M^-1."""
    a = math.radians(rotate)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]], dtype=torch.float64)


def input_transform(translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The `transform` buffer that shows the image translated by (tx, ty) and rotated by `rotate`
    degrees: the inverse of `image_transform` (the input transform maps output to input). [3, 3]."""
    return torch.as_tensor(np.linalg.inv(image_transform(translate, rotate).numpy()), dtype=torch.float32)


def has_input_transform(G) -> bool:
    """Whether G's images can be moved by an input transform: only a StyleGAN3 synthesis network has
    one (its Fourier features are sampled at transformed coordinates); StyleGAN / StyleGAN2 start
    from a learned constant pinned to the pixel grid."""
    return isinstance(getattr(G, "synthesis", None), SynthesisNetwork)


# ------------------------------------------------------------------------------------------------
# Layers.
# ------------------------------------------------------------------------------------------------

def fourier_features(freqs: torch.Tensor, phases: torch.Tensor, amplitudes: torch.Tensor, size: int,
                     sampling_rate: float) -> torch.Tensor:
    """sin(2 pi (<f_c, x> + phi_c)) * a_c on a size x size grid of pixel centres x = (i + 1/2 - size/2) / s.

    freqs: [N, C, 2] (x, y), phases / amplitudes: [N, C] -> [N, size, size, C] (rows = y).
    """
    coords = (torch.arange(size, dtype=freqs.dtype, device=freqs.device) + (0.5 - size / 2)) / sampling_rate
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).reshape(1, size * size, 2)  # [1, H*W, 2]
    x = grid @ freqs.transpose(1, 2)  # [N, H*W, C]
    x = torch.sin((x + phases.unsqueeze(1)) * (2 * math.pi)) * amplitudes.unsqueeze(1)
    return x.reshape(-1, size, size, freqs.shape[1])


class SynthesisInput(nn.Module):
    """w [N, w_dim] -> Fourier features [N, C, size, size] (Sec. 3.1-3.2, "Transformed Fourier features").

    The affine A(w) = (r_c, r_s, t_x, t_y) rotates (by the normalised (r_c, r_s)) and translates the
    features; the `transform` buffer (or a `transform` argument, [3, 3] or [N, 3, 3]) applies a
    user transform on top. Frequencies pushed out of band by it are faded out.
    """

    def __init__(self, w_dim: int, spec: InputSpec):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, spec.channels, spec.size
        self.sampling_rate, self.bandwidth = spec.sampling_rate, spec.bandwidth
        # Frequencies inside the disc of radius `bandwidth` (directions uniform, radii decaying), random phases.
        freqs = torch.randn(self.channels, 2)
        radii = freqs.norm(dim=1, keepdim=True)
        freqs = freqs / (radii * torch.exp(radii.square()).pow(0.25)) * self.bandwidth
        phases = torch.rand(self.channels) - 0.5
        self.weight = nn.Parameter(torch.randn(self.channels, self.channels))
        self.affine = FullyConnected(w_dim, 4)
        with torch.no_grad():  # identity transform at initialisation: (1, 0, 0, 0)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))  # user inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        # float32 even under autocast: a phase 2 pi <f, x> of a few cycles rounded to bf16 (8 bits) is
        # off by ~0.1 rad, which would move every feature; the official network computes it in float32.
        with torch.autocast(w.device.type, enabled=False):
            return self._features(w.float(), transform, Runtime.resolve(runtime))

    def _features(self, w: torch.Tensor, transform: torch.Tensor | None, rt: Runtime) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w, runtime=rt)  # [N, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        rot = torch.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], 1).reshape(n, 3, 3)
        shift = torch.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], 1).reshape(n, 3, 3)
        user = self.transform if transform is None else transform.to(self.transform)
        m = rot @ shift @ user  # [N, 3, 3]: rotate the image, then translate, then the user transform
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ m[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies that the user transform pushed beyond the band (none without one).
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        x = fourier_features(freqs, phases, amplitudes, self.size, self.sampling_rate)  # [N, H, W, C]
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # trainable channel mixing
        return x.permute(0, 3, 1, 2)  # [N, C, H, W]

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


def _normalized_weight(weight: torch.Tensor) -> torch.Tensor:
    """Each output filter scaled to unit mean square (demodulation cancels the scale; keeps fp16 in range)."""
    return weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()


class SynthesisLayer(nn.Module):
    """x [N, I, in_size, in_size], w [N, w_dim] -> [N, O, out_size, out_size] (see `LayerSpec`)."""

    def __init__(self, w_dim: int, spec: LayerSpec, *, img_resolution: int, conv_clamp: float | None,
                 magnitude_ema_beta: float):
        super().__init__()
        self.spec, self.w_dim, self.img_resolution = spec, w_dim, img_resolution
        self.is_torgb = spec.is_torgb
        self.in_channels, self.out_channels = spec.in_channels, spec.out_channels
        self.conv_kernel, self.conv_clamp = spec.conv_kernel, conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.up_factor, self.down_factor, self.padding = spec.up_factor, spec.down_factor, spec.padding
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, spec.conv_kernel, spec.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", design_lowpass_filter(
            spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate))
        self.register_buffer("down_filter", design_lowpass_filter(
            spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, spec.tmp_sampling_rate, radial=spec.down_radial))

    @torch.no_grad()
    def track_magnitude(self, x: torch.Tensor) -> None:
        """Move the input magnitude average towards this batch's mean square (training only)."""
        cur = x.detach().to(torch.float32).square().mean()
        self.magnitude_ema.copy_(cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused: bool | str = "auto", force_fp32: bool = False,
                update_emas: bool = False, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        s = self.spec
        if x.ndim != 4 or x.shape[1:] != (s.in_channels, s.in_size, s.in_size):
            raise ValueError(f"{s.name}: x must be [N, {s.in_channels}, {s.in_size}, {s.in_size}], got {tuple(x.shape)}")
        if update_emas:
            self.track_magnitude(x)
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w, runtime=rt)  # [N, I]
        # 16-bit layers: those whose sampling rate is among the highest (the official rule
        # s * 2^num_fp16_res > R is the StyleGAN2 rule with s for the block resolution).
        dtype = rt.block_dtype(s.out_sampling_rate, self.img_resolution, s.use_fp16, x.device, force_fp32)
        x = x.to(dtype)
        if self.is_torgb:  # no demodulation: the input gain and 1/sqrt(fan-in) scale the styles
            styles = styles * (input_gain / math.sqrt(s.in_channels * s.conv_kernel ** 2))
            weight, prepared = self.weight, None
        else:
            # Official pre-normalisation (weights per output filter, styles over the whole batch);
            # demodulation cancels both up to its 1e-8, kept so the numbers match exactly.
            styles = styles * styles.square().mean().rsqrt()
            x = x * input_gain.to(dtype)
            cache = rt.cache_for(self.weight)
            if cache is None:
                weight, prepared = _normalized_weight(self.weight), None
            else:
                weight, prepared = cache.get(self.weight, _prepared_normalized)
        x = modulated_conv2d(x, weight, styles,  # float32 weight and styles; the conv runs in x's dtype
                             padding=s.conv_kernel - 1, demodulate=not self.is_torgb, fused=fused,
                             prepared=prepared, settings=rt.ops)
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), up=s.up_factor,
                           down=s.down_factor, padding=s.padding, gain=gain, slope=slope,
                           clamp=rt.layer_clamp(self.conv_clamp, x.dtype), settings=rt.ops)
        return x  # [N, O, out_size, out_size]

    def extra_repr(self) -> str:
        s = self.spec
        return (f"{s.in_channels}->{s.out_channels}, size {s.in_size}->{s.out_size}, rate {s.in_sampling_rate}->"
                f"{s.tmp_sampling_rate}->{s.out_sampling_rate}, cutoff {s.in_cutoff:g}->{s.out_cutoff:g}, "
                f"k={s.conv_kernel}, critical={s.is_critically_sampled}, torgb={s.is_torgb}, radial={s.down_radial}")


def _prepared_normalized(weight: torch.Tensor):
    w = _normalized_weight(weight)
    return w, prepare_weight(w)


class SynthesisNetwork(nn.Module):
    """ws [N, num_layers + 2, w_dim] -> images [N, img_channels, R, R] (StyleGAN3, configs T / R)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        if cfg.version != 3:
            raise ValueError(f"the StyleGAN3 synthesis network needs version 3, got {cfg.version}")
        self.cfg = cfg
        o = cfg.sg3
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.num_ws = cfg.num_ws
        self.output_scale = o.output_scale
        spec_in, specs = synthesis_schedule(cfg)
        self.input = SynthesisInput(cfg.w_dim, spec_in)
        self.layer_names: list[str] = []
        for spec in specs:
            layer = SynthesisLayer(cfg.w_dim, spec, img_resolution=cfg.img_resolution, conv_clamp=cfg.conv_clamp,
                                   magnitude_ema_beta=o.magnitude_ema_beta)
            setattr(self, spec.name, layer)
            self.layer_names.append(spec.name)

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", fused_modconv: bool | str | None = None,
                force_fp32: bool = False, update_emas: bool = False, transform: torch.Tensor | None = None, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        """noise_mode: accepted and ignored (StyleGAN3 has no noise inputs). transform: the input's
        inverse image transform for this call ([3, 3] or per sample [N, 3, 3]; None: the buffer)."""
        rt = Runtime.resolve(runtime)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        fused = self.cfg.fused_modconv if fused_modconv is None else fused_modconv
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0], transform, runtime=rt)
        for layer, w in zip(self.layers(), ws[1:]):
            x = layer(x, w, fused=fused, force_fp32=force_fp32, update_emas=update_emas, runtime=rt)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        o = self.cfg.sg3
        return (f"config {o.config_name}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"num_layers={o.num_layers}, num_critical={o.num_critical}, margin_size={o.margin_size}")
