"""Typed network configurations. Training presets live in `stylegan.training.presets`.

Field names follow the official StyleGAN2-ADA keyword arguments where one exists
(channel_base, channel_max, num_fp16_res, conv_clamp, mbstd_group_size, ...), so a user reading an
official config finds the same knobs here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Optional, Tuple, Union

Architecture = Literal["orig", "skip", "resnet"]


def _check_resolution(res: int) -> None:
    if res < 4 or res & (res - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")


@dataclass(frozen=True)
class MappingConfig:
    """Mapping network f: Z -> W (StyleGAN Sec. 2): `num_layers` FC layers, lr multiplier 0.01."""

    num_layers: int = 8
    lr_multiplier: float = 0.01
    w_avg_beta: Optional[float] = 0.995  # moving average of w for truncation (None: not tracked)
    embed_features: Optional[int] = None  # label embedding size (default w_dim)
    layer_features: Optional[int] = None  # hidden width (default w_dim)


@dataclass(frozen=True)
class StyleGAN1Options:
    """Switches of the StyleGAN v1 synthesis network (v1 paper Table 1; read only when version == 1).

    The defaults are the style-based generator (configs D..F). Config A/B (the Progressive GAN
    generator): const_input=False, use_styles=False, normalization='pixel'; config C: const_input=False.
    """

    const_input: bool = True  # 4x4 input is a learned constant (init ones); False: dense layer from w
    use_styles: bool = True  # AdaIN styles from a learned affine A(w) after every layer
    normalization: Literal["instance", "pixel"] = "instance"  # after each layer's activation


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping: MappingConfig = field(default_factory=MappingConfig)
    version: Literal[1, 2] = 2  # 1: AdaIN synthesis (StyleGAN); 2: weight demodulation (StyleGAN2)
    architecture: Architecture = "skip"
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0  # fp16 in the N highest resolutions (CUDA only; fp32 elsewhere)
    conv_clamp: Optional[float] = None
    resample_filter: Tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    # Modulated convolutions: True = one grouped conv with per-sample weights, False = scale the
    # activations around a shared conv (same function), "auto" = the faster form for each layer's
    # shape and device (`ops.conv.choose_fused`; on CPU unfused is up to 20x faster at small maps).
    fused_modconv: Union[bool, Literal["auto"]] = "auto"
    # Progressive growing network (models/stylegan1.py: one ToRGB per resolution, fade-in by `lod`).
    # Version 1 networks always grow; for version 2 this selects the revised progressive generator
    # of StyleGAN2 configs B-D. Requires architecture 'orig'.
    growing: bool = False
    v1: Optional[StyleGAN1Options] = None  # version 1 switches (None: defaults = configs D..F)

    def __post_init__(self) -> None:
        _check_resolution(self.img_resolution)

    @property
    def num_ws(self) -> int:
        """Style inputs: 2 per resolution from 4x4, minus one (the 4x4 block has one conv)."""
        return 2 * int(math.log2(self.img_resolution)) - 2

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def replace(self, **kw) -> "GeneratorConfig":
        return replace(self, **kw)


@dataclass(frozen=True)
class DiscriminatorConfig:
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    version: Literal[1, 2] = 2
    architecture: Architecture = "resnet"
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: Optional[float] = None
    resample_filter: Tuple[int, ...] = (1, 3, 3, 1)
    mbstd_group_size: Optional[int] = 4
    mbstd_num_channels: int = 1
    cmap_dim: Optional[int] = None  # label projection size (default channels at 4x4)
    # Auxiliary classifier head (AC-GAN) on the epilogue's features: class logits beside the
    # real/fake logit (`Discriminator.scores`). 0: none, as in every official network.
    aux_classes: int = 0
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(w_avg_beta=None))
    # Progressive growing network (models/stylegan1.py: one fromRGB per resolution, fade-in by `lod`).
    # Version 1 networks always grow; for version 2 this selects the progressive discriminator of
    # StyleGAN2 configs B-D. Requires architecture 'orig'.
    growing: bool = False

    def __post_init__(self) -> None:
        _check_resolution(self.img_resolution)
        if self.aux_classes < 0:
            raise ValueError(f"aux_classes must be >= 0, got {self.aux_classes}")
        if self.aux_classes and (self.version != 2 or self.growing):
            raise ValueError("aux_classes (auxiliary classifier) exists for the StyleGAN2 discriminator only")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def replace(self, **kw) -> "DiscriminatorConfig":
        return replace(self, **kw)
