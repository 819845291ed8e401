"""Layers with equalized learning rate (PGGAN Sec. 4.1; StyleGAN2 App. B).

Parameters are stored as N(0, 1) / lr_multiplier and scaled at run time by
lr_multiplier / sqrt(fan_in). With Adam this makes the effective learning rate equal for every
layer regardless of its fan-in, and lr_multiplier < 1 slows a whole sub-network (the mapping
network uses 0.01).

State-dict names match NVIDIA's official StyleGAN2 modules (`weight`, `bias`, `resample_filter`,
`affine`), apart from the noise input, which is its own module here (`noise.const`,
`noise.strength`); `stylegan.io.official` translates.

Every layer whose evaluation has a switch takes `runtime: Runtime | None` (keyword): the networks
pass the one they resolved at their boundary, and each op gets `settings=runtime.ops`; None (a
layer called on its own) reads `Runtime.current()` once for the call.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import nn

from ..ops import DEFAULT_GAIN, bias_act, conv2d_resample, modulated_conv2d, prepare_weight, setup_filter
from .runtime import Runtime

NoiseMode = Literal["random", "const", "none"]
NOISE_MODES = ("random", "const", "none")


class FullyConnected(nn.Module):
    """y = act(x W^T * lr_mul / sqrt(in) + b * lr_mul).  x: [N, in] -> [N, out]."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, settings=Runtime.resolve(runtime).ops)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2d(nn.Module):
    """Equalized-lr conv with optional FIR up/downsampling, bias, activation and clamp.

    x: [N, Cin, H, W] -> [N, Cout, H*up/down, W*up/down]. `gain` at call time scales the output
    (residual branches use sqrt(0.5)); the clamp scales with it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 lr_multiplier: float = 1.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.up, self.down = activation, up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size ** 2)
        self.bias_gain = lr_multiplier
        self.act_gain = DEFAULT_GAIN[activation]
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        w = self.weight * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1), settings=rt.ops)
        conv_clamp = rt.layer_clamp(self.conv_clamp, x.dtype)
        clamp = None if conv_clamp is None else conv_clamp * gain
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, settings=rt.ops)

    def extra_repr(self) -> str:
        k = self.weight.shape[-1]
        return (f"{self.in_channels}->{self.out_channels}, k={k}, up={self.up}, down={self.down}, "
                f"act={self.activation}")


class NoiseInput(nn.Module):
    """Per-pixel Gaussian noise scaled by a learned strength (StyleGAN Sec. 3.2), initialised to 0.

    v1 learns one strength per channel (`channels=C`); v2 a single scalar (`channels=None`).
    `const` is a fixed noise image used by noise_mode='const' for reproducible output.
    """

    def __init__(self, resolution: int, channels: int | None = None):
        super().__init__()
        self.resolution = resolution
        self.register_buffer("const", torch.randn(resolution, resolution))
        self.strength = nn.Parameter(torch.zeros([] if channels is None else [channels]))

    def forward(self, x: torch.Tensor, mode: NoiseMode = "random") -> torch.Tensor:
        """x: [N, C, H, W] -> x + strength * noise."""
        if mode == "none":
            return x
        strength = self.strength if self.strength.ndim == 0 else self.strength.reshape(1, -1, 1, 1)
        if mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=torch.float32)
        elif mode == "const":
            noise = self.const
        else:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        return x + (noise * strength).to(x.dtype)


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (PGGAN Sec. 3), appended as extra feature maps.

    Splits the batch into groups of `group_size` and channels into `num_channels` groups; each
    sample gets the average (over channels and pixels) std of its group.  [N, C, H, W] ->
    [N, C + num_channels, H, W]. N must be divisible by min(group_size, N).
    """

    def __init__(self, group_size: int | None = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size is None else min(self.group_size, n)
        if n % g != 0:
            raise ValueError(f"batch size {n} is not divisible by the minibatch-std group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class ModulatedConv2d(nn.Module):
    """StyleGAN2 synthesis layer (Fig. 2c): style -> modulated/demodulated conv -> noise -> bias -> lrelu.

    x: [N, I, H, W], w: [N, w_dim] -> [N, O, H*up, W*up].
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.activation = resolution, up, activation
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = DEFAULT_GAIN[activation]
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.noise = NoiseInput(resolution) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random",
                fused: bool | str = True, gain: float = 1.0, *, runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        styles = self.affine(w, runtime=rt)  # [N, I]
        flip = self.up == 1
        cache = rt.cache_for(self.weight)
        prepared = None if cache is None else cache.get(
            self.weight, lambda weight: prepare_weight(weight, up=self.up, flip_weight=flip))
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=flip, fused=fused,
                             prepared=prepared, settings=rt.ops)
        if self.noise is not None:
            x = self.noise(x, noise_mode)
        conv_clamp = rt.layer_clamp(self.conv_clamp, x.dtype)
        clamp = None if conv_clamp is None else conv_clamp * gain
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp, settings=rt.ops)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation (StyleGAN2 Fig. 7): features -> image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | str = True, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        styles = self.affine(w, runtime=rt) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused, settings=rt.ops)
        return bias_act(x, self.bias, clamp=rt.layer_clamp(self.conv_clamp, x.dtype), settings=rt.ops)
