"""Progressive-growing networks: StyleGAN v1 (Karras et al. 2019) and StyleGAN2 configs B-D.

Generator (`SynthesisNetwork`) and discriminator (`Discriminator`) with one ToRGB / fromRGB per
resolution, so they run at every intermediate resolution of progressive growing (PGGAN Sec. 3).

Level of detail
---------------
`lod` is the level of detail of the official TF code: 0 = the full resolution R, lod = k means the
networks work at R / 2^k, and a fractional lod fades in the next finer resolution::

    resolution = R / 2^floor(lod)            (the newest, still fading block)
    alpha      = 1 - (lod - floor(lod))      (its weight; 1 = fully faded in)

G: img = lerp(upsample(ToRGB_{r/2}(x_{r/2})), ToRGB_r(x_r), alpha), then nearest-neighbour
upsampled to R x R, so G always outputs [N, C, R, R]. D: the input is box-downsampled to r, and
x = lerp(fromRGB_{r/2}(downsample(img_r)), block_r(fromRGB_r(img_r)), alpha). Both skip the blocks
finer than r, which is exactly what the TF 'linear' structure computes (it discards them).
`forward(..., lod=None)` reads the registered buffer `lod` (saved in checkpoints, copied to G_ema
with the other buffers); `set_lod(module, lod)` sets it on every progressive network inside a
module. `forward_at(..., resolution, alpha)` is the same computation with explicit arguments.

Two layer flavours share that structure:

- version 1 (StyleGAN v1, TF `G_synthesis` / `D_basic`): every layer is conv -> noise (learned
  per-channel strength) -> bias -> lrelu -> instance norm (or pixel norm) -> AdaIN style from
  A(w) (scale bias initialised to 1). 4x4 starts from a learned constant (ones) or, for the
  Progressive GAN configs, a dense layer from w. Upsampling is 2x nearest followed by the
  `resample_filter` blur after the conv ((1, 2, 1): "bilinear"; (1,): none, PGGAN); the D blurs
  before its conv and 2x2 average-pools after it. Weights use the TF v1 convention: the He gain
  sqrt(2) scales the weights, then bias, then lrelu (no gain after the activation).
- version 2 with `growing=True` (StyleGAN2 configs B-D, TF `G_synthesis_stylegan_revised` /
  `D_stylegan`): modulated/demodulated convs with scalar noise strength, a random-normal constant,
  modulated 1x1 ToRGB, FIR resampling with `resample_filter` (default [1, 3, 3, 1]).

Everything runs in fp32 (the papers trained these configs in fp32); `force_fp32` is accepted for
interface compatibility. Code paths: `SynthesisNetwork.forward` / `forward_at` and
`Discriminator.forward` / `forward_at` take `runtime: Runtime | None` (None: `Runtime.current()`,
read once there) and hand it to every block and layer; its `precision` is not read (fp32 always).
Channel counts are `cfg.channels(res)`: channel_base 16384 reproduces the v1/PGGAN table (512 up
to 32x32, 256 at 64, ..., 16 at 1024; TF fmap_base 8192).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Conv2d, FullyConnected, MinibatchStd, ModulatedConv2d, NoiseInput, NoiseMode, Runtime, ToRGB
from ..ops import adain, bias_act, filter2d, instance_norm, normalize_2nd_moment, setup_filter
from .config import DiscriminatorConfig, GeneratorConfig, StyleGAN1Options
from .lod import downsample_box, lod_for, log2_resolution, max_lod, split_lod, upsample_nearest
from .mapping import MappingNetwork
from .stylegan2 import epilogue_logits

SQRT2 = math.sqrt(2.0)

__all__ = ["SynthesisNetwork", "Discriminator", "split_lod", "lod_for", "set_lod", "get_lod", "max_lod",
           "upsample_nearest", "downsample_box", "V1Conv", "V1Dense", "StyleEpilogue"]


# ----------------------------------------------------------------------------------- lod buffers

def _is_progressive(m: nn.Module) -> bool:
    return isinstance(m, (SynthesisNetwork, Discriminator))


def set_lod(module: nn.Module, lod: float) -> int:
    """Set the `lod` buffer of every progressive network inside `module` (G, G_ema, D, DDP-wrapped).

    Returns how many were set; raises if there is none (a non-progressive network was given).
    """
    count = 0
    for m in module.modules():
        if _is_progressive(m):
            split_lod(lod, m.img_resolution)  # validate
            m.lod.fill_(float(lod))
            count += 1
    if count == 0:
        raise ValueError(f"{type(module).__name__} contains no progressive-growing network "
                         f"(set version=1 or growing=True in its config)")
    return count


def get_lod(module: nn.Module) -> float:
    """The `lod` buffer of the first progressive network inside `module`."""
    for m in module.modules():
        if _is_progressive(m):
            return float(m.lod)
    raise ValueError(f"{type(module).__name__} contains no progressive-growing network")


def _check_cfg(cfg: GeneratorConfig | DiscriminatorConfig, what: str) -> None:
    if cfg.version == 2 and not cfg.growing:
        raise ValueError(f"{what}: version 2 without growing=True is the StyleGAN2 network in stylegan2.py")
    if cfg.architecture != "orig":
        raise ValueError(f"{what}: progressive-growing networks have the 'orig' layout (one ToRGB/fromRGB "
                         f"per resolution, used while fading in); set architecture='orig', "
                         f"got {cfg.architecture!r}")
    if cfg.num_fp16_res != 0:
        raise ValueError(f"{what}: progressive-growing networks run in fp32; set num_fp16_res=0, "
                         f"got {cfg.num_fp16_res}")


def _resolve_lod(module: nn.Module, lod: float | torch.Tensor | None) -> tuple[int, float]:
    value = module.lod if lod is None else lod
    return split_lod(float(value), module.img_resolution)


# ----------------------------------------------------------------------------------- v1 layers

class V1Conv(nn.Module):
    """Equalized-lr conv in the TF StyleGAN v1 convention: weight * gain / sqrt(fan_in), then bias, act.

    up=True: 2x nearest upsampling -> conv -> blur (G). down=True: blur -> conv -> 2x2 average pool
    (D). bias=False leaves bias and activation to the caller (the synthesis layer epilogue).
    x: [N, Cin, H, W] -> [N, Cout, H*2 or H/2 or H, ...].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, gain: float = SQRT2,
                 bias: bool = True, activation: str = "lrelu", up: bool = False, down: bool = False,
                 blur_filter: Sequence[float] = (1,)):
        super().__init__()
        if up and down:
            raise ValueError("V1Conv cannot both upsample and downsample")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.up, self.down = activation, up, down
        self.padding = kernel_size // 2
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.use_blur = (up or down) and len(tuple(blur_filter)) > 1
        if self.use_blur:
            self.register_buffer("blur_filter", setup_filter(blur_filter))

    def forward(self, x: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        if self.up:
            x = upsample_nearest(x, 2)
        if self.down and self.use_blur:
            x = filter2d(x, self.blur_filter, settings=rt.ops)
        x = F.conv2d(x, self.weight * self.weight_gain, padding=self.padding)
        if self.up and self.use_blur:
            x = filter2d(x, self.blur_filter, settings=rt.ops)
        if self.down:
            x = downsample_box(x, 2)
        if self.bias is None:
            return x
        return bias_act(x, self.bias, act=self.activation, gain=1.0, settings=rt.ops)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}->{self.out_channels}, k={self.weight.shape[-1]}, up={self.up}, "
                f"down={self.down}, blur={self.use_blur}")


class V1Dense(nn.Module):
    """Equalized-lr dense layer in the TF v1 convention (gain on the weights, then bias, act)."""

    def __init__(self, in_features: int, out_features: int, *, gain: float = SQRT2, bias: bool = True,
                 activation: str = "lrelu"):
        super().__init__()
        self.activation = activation
        self.weight_gain = gain / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        x = x.flatten(1).matmul((self.weight * self.weight_gain).t())
        if self.bias is None:
            return x
        return bias_act(x, self.bias, act=self.activation, gain=1.0, settings=Runtime.resolve(runtime).ops)


class StyleEpilogue(nn.Module):
    """The end of every v1 synthesis layer: noise -> bias -> lrelu -> norm -> AdaIN style.

    x: [N, C, H, W], w: [N, w_dim] -> [N, C, H, W]. The style y = A(w) has 2 values per channel,
    (y_s, y_b); y_s's bias starts at 1. With instance norm the output channel c has mean y_b,c and
    std |y_s,c| (AdaIN, StyleGAN Eq. 1).
    """

    def __init__(self, channels: int, w_dim: int, resolution: int, opts: StyleGAN1Options, use_noise: bool):
        super().__init__()
        self.channels, self.normalization = channels, opts.normalization
        self.noise = NoiseInput(resolution, channels) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(channels))
        if opts.use_styles:
            self.affine = FullyConnected(w_dim, 2 * channels)
            with torch.no_grad():
                self.affine.bias[:channels] = 1.0
        else:
            self.affine = None

    def styles(self, w: torch.Tensor, *, runtime: Runtime | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """w [N, w_dim] -> (scale [N, C], bias [N, C])."""
        y = self.affine(w, runtime=runtime)
        return y[:, :self.channels], y[:, self.channels:]

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random", *,
                runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        if self.noise is not None:
            x = self.noise(x, noise_mode)
        x = bias_act(x, self.bias, act="lrelu", gain=1.0, settings=rt.ops)
        if self.affine is not None and self.normalization == "instance":
            return adain(x, *self.styles(w, runtime=rt))
        x = instance_norm(x) if self.normalization == "instance" else normalize_2nd_moment(x)
        if self.affine is not None:
            scale, bias = self.styles(w, runtime=rt)
            x = x * scale[:, :, None, None] + bias[:, :, None, None]
        return x


class V1SynthesisBlock(nn.Module):
    """One resolution of the StyleGAN v1 generator: two layers (4x4: input + conv) and a ToRGB.

    x: [N, Cin, R/2, R/2] (None at 4x4), ws: [N, 2, w_dim] -> [N, Cout, R, R].
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, cfg: GeneratorConfig,
                 opts: StyleGAN1Options):
        super().__init__()
        self.resolution, self.in_channels, self.out_channels = resolution, in_channels, out_channels
        self.num_conv, self.torgb_uses_w = 2, False
        epi = dict(w_dim=cfg.w_dim, resolution=resolution, opts=opts, use_noise=cfg.use_noise)
        if resolution == 4:
            if opts.const_input:
                self.const = nn.Parameter(torch.ones(out_channels, 4, 4))
            else:
                # PGGAN's first layer: dense from the latent, gain sqrt(2)/4 (TF v1 comment: "tweak gain
                # to match the official implementation of Progressing GAN").
                self.dense = V1Dense(cfg.w_dim, out_channels * 16, gain=SQRT2 / 4, bias=False)
            self.conv0 = None
        else:
            self.conv0 = V1Conv(in_channels, out_channels, 3, bias=False, up=True,
                                blur_filter=cfg.resample_filter)
        self.epilogue0 = StyleEpilogue(out_channels, **epi)
        self.conv1 = V1Conv(out_channels, out_channels, 3, bias=False)
        self.epilogue1 = StyleEpilogue(out_channels, **epi)
        self.torgb = V1Conv(out_channels, cfg.img_channels, 1, gain=1.0, activation="linear")

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: NoiseMode = "random",
                fused: bool | str = True, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        if self.resolution == 4:
            if hasattr(self, "const"):
                x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            else:
                x = self.dense(ws[:, 0], runtime=rt).reshape(-1, self.out_channels, 4, 4)
        else:
            x = self.conv0(x, runtime=rt)
        x = self.epilogue0(x, ws[:, 0], noise_mode, runtime=rt)
        x = self.epilogue1(self.conv1(x, runtime=rt), ws[:, 1], noise_mode, runtime=rt)
        return x

    def rgb(self, x: torch.Tensor, w: torch.Tensor | None, fused: bool | str = True, *,
            runtime: Runtime | None = None) -> torch.Tensor:
        return self.torgb(x, runtime=runtime)


class RevisedSynthesisBlock(nn.Module):
    """One resolution of the StyleGAN2 progressive generator (configs B-D): modulated convs + ToRGB.

    4x4: const (random normal) -> conv; else 2x-up conv -> conv. ToRGB uses the next layer's w.
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, cfg: GeneratorConfig):
        super().__init__()
        self.resolution, self.in_channels, self.out_channels = resolution, in_channels, out_channels
        self.torgb_uses_w = True
        layer = dict(w_dim=cfg.w_dim, resolution=resolution, resample_filter=cfg.resample_filter,
                     conv_clamp=cfg.conv_clamp, use_noise=cfg.use_noise)
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = ModulatedConv2d(in_channels, out_channels, up=2, **layer)
        self.conv1 = ModulatedConv2d(out_channels, out_channels, **layer)
        self.num_conv = 1 if resolution == 4 else 2
        self.torgb = ToRGB(out_channels, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: NoiseMode = "random",
                fused: bool | str = True, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        if self.conv0 is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            return self.conv1(x, ws[:, 0], noise_mode, fused, runtime=rt)
        x = self.conv0(x, ws[:, 0], noise_mode, fused, runtime=rt)
        return self.conv1(x, ws[:, 1], noise_mode, fused, runtime=rt)

    def rgb(self, x: torch.Tensor, w: torch.Tensor, fused: bool | str = True, *,
            runtime: Runtime | None = None) -> torch.Tensor:
        return self.torgb(x, w, fused, runtime=runtime)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, img_channels, R, R], at any level of detail.

    Version 1: StyleGAN v1 (AdaIN); version 2 with growing=True: StyleGAN2 configs B-D. The `lod`
    buffer (default 0 = full resolution) is used when `forward` gets no `lod`.
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        _check_cfg(cfg, "progressive generator")
        if cfg.version == 2 and cfg.v1 is not None:
            raise ValueError("GeneratorConfig.v1 options apply to version 1 only")
        self.cfg = cfg
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2_resolution(cfg.img_resolution) + 1)]
        opts = cfg.v1 or StyleGAN1Options()
        self.num_ws = 0
        for res in self.block_resolutions:
            cin = cfg.channels(res // 2) if res > 4 else 0
            if cfg.version == 1:
                block = V1SynthesisBlock(cin, cfg.channels(res), res, cfg, opts)
            else:
                block = RevisedSynthesisBlock(cin, cfg.channels(res), res, cfg)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        if cfg.version == 2:
            self.num_ws += 1  # the last ToRGB's own w
        assert self.num_ws == cfg.num_ws
        self.register_buffer("lod", torch.zeros([]))

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", fused_modconv: bool | str | None = None,
                force_fp32: bool = False, lod: float | None = None, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        """lod: level of detail (None: the `lod` buffer). Returns [N, C, R, R] at every lod.
        runtime: the code paths of every block (None: `Runtime.current()`, read once)."""
        resolution, alpha = _resolve_lod(self, lod)
        return self.forward_at(ws, resolution, alpha, noise_mode=noise_mode, fused_modconv=fused_modconv,
                               runtime=runtime)

    def forward_at(self, ws: torch.Tensor, resolution: int, alpha: float = 1.0, *,
                   noise_mode: NoiseMode = "const", fused_modconv: bool | str | None = None,
                   upsample: bool = True, runtime: Runtime | None = None) -> torch.Tensor:
        """Render at `resolution` with the newest block faded in by `alpha` in [0, 1].

        upsample=False returns the [N, C, resolution, resolution] image before the final
        nearest-neighbour upsampling to R. runtime: None reads `Runtime.current()` once.
        """
        rt = Runtime.resolve(runtime)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if resolution not in self.block_resolutions:
            raise ValueError(f"resolution must be one of {self.block_resolutions}, got {resolution}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        fused = self.cfg.fused_modconv if fused_modconv is None else fused_modconv
        ws = ws.to(torch.float32)
        x = prev = None
        w_idx = prev_idx = 0
        for block in self.blocks():
            if block.resolution > resolution:
                break
            prev, prev_idx = x, w_idx  # the previous block's output and the w index after it
            x = block(x, ws.narrow(1, w_idx, block.num_conv), noise_mode, fused, runtime=rt)
            w_idx += block.num_conv
        block = getattr(self, f"b{resolution}")
        img = block.rgb(x, ws[:, w_idx] if block.torgb_uses_w else None, fused, runtime=rt)
        if alpha < 1.0 and resolution > 4:
            # Fade-in: the previous resolution's ToRGB (whose w, in the revised network, is the one
            # of this block's first layer), upsampled, blended with the new block's ToRGB.
            low_block = getattr(self, f"b{resolution // 2}")
            low = low_block.rgb(prev, ws[:, prev_idx] if low_block.torgb_uses_w else None, fused, runtime=rt)
            img = torch.lerp(upsample_nearest(low, 2), img, alpha)
        if upsample:
            img = upsample_nearest(img, self.img_resolution // resolution)
        return img

    def extra_repr(self) -> str:
        return f"version={self.cfg.version}, resolution={self.img_resolution}, num_ws={self.num_ws}"


# ----------------------------------------------------------------------------------- discriminator

class DiscriminatorBlock(nn.Module):
    """One resolution: fromRGB (used when this is the input resolution) and conv -> conv (2x down)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: DiscriminatorConfig):
        super().__init__()
        if cfg.version == 1:
            self.fromrgb = V1Conv(cfg.img_channels, in_channels, 1)
            self.conv0 = V1Conv(in_channels, in_channels, 3)
            self.conv1 = V1Conv(in_channels, out_channels, 3, down=True, blur_filter=cfg.resample_filter)
        else:
            common = dict(activation="lrelu", conv_clamp=cfg.conv_clamp, resample_filter=cfg.resample_filter)
            self.fromrgb = Conv2d(cfg.img_channels, in_channels, 1, **common)
            self.conv0 = Conv2d(in_channels, in_channels, 3, **common)
            self.conv1 = Conv2d(in_channels, out_channels, 3, down=2, **common)

    def forward(self, x: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        return self.conv1(self.conv0(x, runtime=rt), runtime=rt)


class DiscriminatorEpilogue(nn.Module):
    """4x4: fromRGB (at 4x4 input) and minibatch std -> conv -> FC -> FC (-> label projection)."""

    def __init__(self, cfg: DiscriminatorConfig, cmap_dim: int):
        super().__init__()
        c4, c2 = cfg.channels(4), cfg.channels(2)  # TF nf(1), nf(0)
        self.cmap_dim = cmap_dim
        mb = cfg.mbstd_num_channels
        self.mbstd = MinibatchStd(cfg.mbstd_group_size, mb) if mb > 0 else None
        out = 1 if cmap_dim == 0 else cmap_dim
        if cfg.version == 1:
            self.fromrgb = V1Conv(cfg.img_channels, c4, 1)
            self.conv = V1Conv(c4 + mb, c4, 3)
            self.fc = V1Dense(c4 * 16, c2)
            self.out = V1Dense(c2, out, gain=1.0, activation="linear")
        else:
            self.fromrgb = Conv2d(cfg.img_channels, c4, 1, activation="lrelu", conv_clamp=cfg.conv_clamp)
            self.conv = Conv2d(c4 + mb, c4, 3, activation="lrelu", conv_clamp=cfg.conv_clamp)
            self.fc = FullyConnected(c4 * 16, c2, activation="lrelu")
            self.out = FullyConnected(c2, out)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None, *, runtime: Runtime | None = None) -> torch.Tensor:
        return epilogue_logits(self, x, cmap, runtime)


class Discriminator(nn.Module):
    """images [N, C, R, R], labels [N, c_dim] -> logits [N, 1], at any level of detail.

    Version 1: StyleGAN v1 / PGGAN `D_basic`; version 2 with growing=True: StyleGAN2 `D_stylegan`.
    """

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        _check_cfg(cfg, "progressive discriminator")
        self.cfg = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2 ** i for i in range(log2_resolution(cfg.img_resolution), 2, -1)]
        cmap_dim = 0 if cfg.c_dim == 0 else (cfg.cmap_dim or cfg.channels(4))
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2), cfg))
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(0, cfg.c_dim, cmap_dim, None, cfg.mapping)
        self.b4 = DiscriminatorEpilogue(cfg, cmap_dim)
        self.register_buffer("lod", torch.zeros([]))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False,
                lod: float | None = None, *, runtime: Runtime | None = None) -> torch.Tensor:
        """lod: level of detail (None: the `lod` buffer). runtime: None reads `Runtime.current()` once."""
        resolution, alpha = _resolve_lod(self, lod)
        return self.forward_at(img, c, resolution, alpha, runtime=runtime)

    def forward_at(self, img: torch.Tensor, c: torch.Tensor | None, resolution: int,
                   alpha: float = 1.0, *, runtime: Runtime | None = None) -> torch.Tensor:
        """Judge `img` at `resolution`, the newest block faded in by `alpha` in [0, 1].

        img is [N, C, R, R] (box-downsampled to `resolution` here) or already [N, C, res, res].
        runtime: the code paths of every block (None: `Runtime.current()`, read once).
        """
        rt = Runtime.resolve(runtime)
        if img.ndim != 4 or img.shape[1] != self.img_channels or img.shape[2] != img.shape[3] \
                or img.shape[2] not in (self.img_resolution, resolution):
            raise ValueError(f"images must be [N, {self.img_channels}, {self.img_resolution}, "
                             f"{self.img_resolution}], got {tuple(img.shape)}")
        if resolution != 4 and resolution not in self.block_resolutions:
            raise ValueError(f"resolution must be 4 or one of {self.block_resolutions}, got {resolution}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        img = downsample_box(img.to(torch.float32), img.shape[2] // resolution)
        if resolution == 4:
            x = self.b4.fromrgb(img, runtime=rt)
        else:
            block = getattr(self, f"b{resolution}")
            x = block(block.fromrgb(img, runtime=rt), runtime=rt)
            if alpha < 1.0:
                lower = getattr(self, f"b{resolution // 2}") if resolution > 8 else self.b4
                y = lower.fromrgb(downsample_box(img, 2), runtime=rt)
                x = torch.lerp(y, x, alpha)
            for res in self.block_resolutions:
                if res < resolution:
                    x = getattr(self, f"b{res}")(x, runtime=rt)
        cmap = None
        if self.c_dim > 0:
            if c is None or tuple(c.shape) != (x.shape[0], self.c_dim):
                raise ValueError(f"this discriminator is conditional: c must be [N, {self.c_dim}]")
            cmap = self.mapping(None, c, runtime=rt)
        return self.b4(x, cmap, runtime=rt)

    def extra_repr(self) -> str:
        return f"version={self.cfg.version}, resolution={self.img_resolution}"
