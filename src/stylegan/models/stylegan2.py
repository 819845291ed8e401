"""StyleGAN2 synthesis network and discriminator (Karras et al. 2020, Sec. 2-4, Fig. 7).

Generator architectures (Table 2 / Fig. 7): 'orig' (plain conv stack, ToRGB only at the end),
'skip' (sum of upsampled per-resolution ToRGB outputs), 'resnet' (residual blocks, gain
sqrt(0.5)). Discriminator: 'orig', 'skip' (downsampled image fed to every block), 'resnet'.

Mixed precision: blocks in the `num_fp16_res` highest resolutions run in fp16 on CUDA, with
`conv_clamp` bounding activations; on other devices everything runs in fp32. A `Runtime` with a
`precision` (e.g. from a `stylegan.nn.precision_scope` around the call) decides instead.

Code paths: the public entry points (`SynthesisNetwork.forward`, `Discriminator.forward` and
`.scores`) take `runtime: Runtime | None` and resolve it once (`Runtime.current()` when None);
every block and layer below gets it as an argument and reads no context variable.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..nn import Conv2d, FullyConnected, MinibatchStd, ModulatedConv2d, NoiseMode, Runtime, ToRGB
from ..nn.precision import lowest_low_precision_resolution
from ..ops import downsample2d, setup_filter, upsample2d
from .config import DiscriminatorConfig, GeneratorConfig
from .mapping import MappingNetwork

SQRT_HALF = math.sqrt(0.5)


class SynthesisBlock(nn.Module):
    """One resolution of the StyleGAN2 generator: (const | 2x-up conv) -> conv -> [ToRGB].

    x: [N, Cin, R/2, R/2] (None at 4x4), img: [N, C_img, R/2, R/2] or None,
    ws: [N, num_conv + num_torgb, w_dim] -> (x [N, Cout, R, R], img [N, C_img, R, R]).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, *, architecture: str, resample_filter, conv_clamp,
                 use_fp16: bool, use_noise: bool, img_resolution: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.is_last, self.img_resolution = resolution, is_last, img_resolution
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.memory_format = torch.preserve_format  # or channels_last: `stylegan.perf.set_channels_last`
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        layer = dict(w_dim=w_dim, resolution=resolution, resample_filter=resample_filter,
                     conv_clamp=conv_clamp, use_noise=use_noise)
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = ModulatedConv2d(in_channels, out_channels, up=2, **layer)
            self.num_conv += 1
        self.conv1 = ModulatedConv2d(out_channels, out_channels, **layer)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2d(in_channels, out_channels, 1, bias=False, up=2, resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, *,
                noise_mode: NoiseMode = "random", fused: bool | str = True, force_fp32: bool = False,
                runtime: Runtime | None = None):
        rt = Runtime.resolve(runtime)
        w_iter = iter(ws.unbind(dim=1))
        dtype = rt.block_dtype(self.resolution, self.img_resolution, self.use_fp16, ws.device, force_fp32)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x.to(memory_format=self.memory_format), next(w_iter), noise_mode, fused, runtime=rt)
        elif self.architecture == "resnet":
            x = x.to(dtype=dtype, memory_format=self.memory_format)
            y = self.skip(x, gain=SQRT_HALF, runtime=rt)
            x = self.conv0(x, next(w_iter), noise_mode, fused, runtime=rt)
            x = self.conv1(x, next(w_iter), noise_mode, fused, gain=SQRT_HALF, runtime=rt)
            x = y + x
        else:
            x = x.to(dtype=dtype, memory_format=self.memory_format)
            x = self.conv0(x, next(w_iter), noise_mode, fused, runtime=rt)
            x = self.conv1(x, next(w_iter), noise_mode, fused, runtime=rt)
        if img is not None:
            img = upsample2d(img, self.resample_filter, settings=rt.ops)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused, runtime=rt).to(torch.float32)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, img_channels, R, R] (StyleGAN2)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(np.log2(cfg.img_resolution)) + 1)]
        fp16_res = lowest_low_precision_resolution(cfg.img_resolution, cfg.num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                cfg.channels(res // 2) if res > 4 else 0, cfg.channels(res), cfg.w_dim, res,
                cfg.img_channels, res == cfg.img_resolution, architecture=cfg.architecture,
                resample_filter=cfg.resample_filter, conv_clamp=cfg.conv_clamp,
                use_fp16=res >= fp16_res, use_noise=cfg.use_noise, img_resolution=cfg.img_resolution)
            self.num_ws += block.num_conv + (block.num_torgb if res == cfg.img_resolution else 0)
            setattr(self, f"b{res}", block)
        assert self.num_ws == cfg.num_ws

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", fused_modconv: bool | str | None = None,
                force_fp32: bool = False, *, runtime: Runtime | None = None) -> torch.Tensor:
        """fused_modconv: True / False force the form, "auto" picks per layer (`ops.conv.choose_fused`
        under `runtime.ops.modconv`), None uses cfg.fused_modconv. runtime: the code paths of every
        block (None: `Runtime.current()`, read once here)."""
        rt = Runtime.resolve(runtime)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        fused = self.cfg.fused_modconv if fused_modconv is None else fused_modconv
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for block in self.blocks():
            # A block's ToRGB shares its w with the next block's first conv (Fig. 7, 'skip').
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused=fused, force_fp32=force_fp32, runtime=rt)
        return img.contiguous()  # NCHW even when the blocks run channels_last (no-op otherwise)


def epilogue_features(epilogue: nn.Module, x: torch.Tensor, runtime: Runtime | None = None) -> torch.Tensor:
    """The 4x4 tail shared by every discriminator (v1 and v2) up to its last hidden layer:
    [mbstd] -> conv -> fc. x: [N, C, 4, 4] -> features [N, C']."""
    rt = Runtime.resolve(runtime)
    if epilogue.mbstd is not None:
        x = epilogue.mbstd(x)
    x = epilogue.conv(x, runtime=rt)
    return epilogue.fc(x.flatten(1), runtime=rt)


def projected_logits(epilogue: nn.Module, features: torch.Tensor, cmap: torch.Tensor | None,
                     runtime: Runtime | None = None) -> torch.Tensor:
    """features [N, C'] -> logits [N, 1]. Conditional networks output [N, cmap_dim] and take the
    projection logit <out, embed(c)> / sqrt(cmap_dim) (Miyato & Koyama 2018; StyleGAN2-ADA)."""
    x = epilogue.out(features, runtime=runtime)  # [N, 1] or [N, cmap_dim]
    if epilogue.cmap_dim > 0:
        x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(epilogue.cmap_dim))
    return x


def epilogue_logits(epilogue: nn.Module, x: torch.Tensor, cmap: torch.Tensor | None,
                    runtime: Runtime | None = None) -> torch.Tensor:
    """[mbstd] -> conv -> fc -> out (-> projection): x [N, C, 4, 4] -> logits [N, 1]."""
    rt = Runtime.resolve(runtime)
    return projected_logits(epilogue, epilogue_features(epilogue, x, rt), cmap, rt)


class DiscriminatorBlock(nn.Module):
    """One resolution of the StyleGAN2 discriminator: [fromRGB] -> conv -> conv (2x down) [+ skip]."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int, *, architecture: str, resample_filter, conv_clamp, use_fp16: bool,
                 img_resolution: int):
        super().__init__()
        self.in_channels, self.resolution, self.img_resolution = in_channels, resolution, img_resolution
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.memory_format = torch.preserve_format  # or channels_last: `stylegan.perf.set_channels_last`
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        common = dict(resample_filter=resample_filter, conv_clamp=conv_clamp)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2d(img_channels, tmp_channels, 1, activation="lrelu", **common)
        self.conv0 = Conv2d(tmp_channels, tmp_channels, 3, activation="lrelu", **common)
        self.conv1 = Conv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2, **common)
        if architecture == "resnet":
            self.skip = Conv2d(tmp_channels, out_channels, 1, bias=False, down=2,
                               resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False, *,
                runtime: Runtime | None = None):
        """x: [N, Cin, R, R] or None; img: [N, C_img, R, R] or None -> (x [N, Cout, R/2, R/2], img)."""
        rt = Runtime.resolve(runtime)
        dev = (x if x is not None else img).device
        dtype = rt.block_dtype(self.resolution, self.img_resolution, self.use_fp16, dev, force_fp32)
        if x is not None:
            x = x.to(dtype=dtype, memory_format=self.memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img.to(dtype=dtype, memory_format=self.memory_format), runtime=rt)
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter, settings=rt.ops) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF, runtime=rt)
            x = self.conv0(x, runtime=rt)
            x = self.conv1(x, gain=SQRT_HALF, runtime=rt)
            x = y + x
        else:
            x = self.conv1(self.conv0(x, runtime=rt), runtime=rt)
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: [fromRGB] -> minibatch std -> conv -> FC -> FC (-> projection onto label embedding)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int, *,
                 architecture: str, mbstd_group_size: int | None, mbstd_num_channels: int, conv_clamp,
                 aux_classes: int = 0):
        super().__init__()
        self.architecture, self.cmap_dim = architecture, cmap_dim
        if architecture == "skip":
            self.fromrgb = Conv2d(img_channels, in_channels, 1, activation="lrelu")
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2d(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                           conv_clamp=conv_clamp)
        self.fc = FullyConnected(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnected(in_channels, 1 if cmap_dim == 0 else cmap_dim)
        # Auxiliary classifier (AC-GAN, Odena et al. 2017): class logits from the same features.
        self.classifier = FullyConnected(in_channels, aux_classes) if aux_classes > 0 else None

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, *,
                runtime: Runtime | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (logits [N, 1], class logits [N, aux_classes] or None)."""
        rt = Runtime.resolve(runtime)
        if self.architecture == "skip":
            y = self.fromrgb(img.to(torch.float32), runtime=rt)
            x = y if x is None else x.to(torch.float32) + y
        features = epilogue_features(self, x.to(torch.float32), rt)
        classes = self.classifier(features, runtime=rt) if self.classifier is not None else None
        return projected_logits(self, features, cmap, rt), classes


class Discriminator(nn.Module):
    """images [N, C, R, R], labels [N, c_dim] -> logits [N, 1] (StyleGAN2)."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        log2 = int(np.log2(cfg.img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        fp16_res = lowest_low_precision_resolution(cfg.img_resolution, cfg.num_fp16_res)
        cmap_dim = 0 if cfg.c_dim == 0 else (cfg.cmap_dim or cfg.channels(4))
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                cfg.channels(res) if res < cfg.img_resolution else 0, cfg.channels(res),
                cfg.channels(res // 2), res, cfg.img_channels, architecture=cfg.architecture,
                resample_filter=cfg.resample_filter, conv_clamp=cfg.conv_clamp,
                use_fp16=res >= fp16_res, img_resolution=cfg.img_resolution)
            setattr(self, f"b{res}", block)
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(0, cfg.c_dim, cmap_dim, None, cfg.mapping)
        # At 4x4 there are no blocks, so the epilogue itself must read the image ('skip' input).
        self.b4 = DiscriminatorEpilogue(
            cfg.channels(4), cmap_dim, 4, cfg.img_channels,
            architecture=cfg.architecture if cfg.img_resolution > 4 else "skip",
            mbstd_group_size=cfg.mbstd_group_size, mbstd_num_channels=cfg.mbstd_num_channels,
            conv_clamp=cfg.conv_clamp, aux_classes=cfg.aux_classes)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        """-> logits [N, 1]. runtime: the code paths of every block (None: `Runtime.current()`)."""
        return self.scores(img, c, force_fp32, runtime=runtime)[0]

    def scores(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False, *,
               runtime: Runtime | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (logits [N, 1], class logits [N, cfg.aux_classes] or None without a classifier).
        runtime: the code paths of every block (None: `Runtime.current()`, read once here)."""
        rt = Runtime.resolve(runtime)
        expect = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expect:
            raise ValueError(f"images must be [N, {', '.join(map(str, expect))}], got {tuple(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32, runtime=rt)
        cmap = None
        if self.c_dim > 0:
            n = x.shape[0] if x is not None else img.shape[0]
            if c is None or tuple(c.shape) != (n, self.c_dim):
                raise ValueError(f"this discriminator is conditional: c must be [N, {self.c_dim}]")
            cmap = self.mapping(None, c, runtime=rt)
        return self.b4(x, img, cmap, runtime=rt)
