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
class StyleGAN3Options:
    """The alias-free synthesis network (StyleGAN3, Karras et al. 2021; read only when version == 3).

    Names and defaults are the official `SynthesisNetwork` / `SynthesisLayer` keyword arguments.
    The defaults are config T (translation equivariance, Sec. 3.2 "Flexible layer
    specifications"); config R ("Rotation equivariance") uses 1x1 convolutions and radially
    symmetric downsampling filters (`STYLEGAN3_R`), and officially doubles channel_base and
    channel_max of the GeneratorConfig.
    """

    num_layers: int = 14  # synthesis layers, excluding the Fourier-feature input and ToRGB
    num_critical: int = 2  # critically sampled layers at the end
    first_cutoff: float = 2.0  # f_c of the first layer
    first_stopband: float = 2 ** 2.1  # minimum stopband f_t of the first layer
    last_stopband_rel: float = 2 ** 0.3  # minimum stopband of the last layer, relative to its cutoff
    margin_size: int = 10  # pixels computed outside the image on each side
    output_scale: float = 0.25  # the image is the last layer's output times this
    conv_kernel: int = 3  # 1 for config R (the ToRGB layer is always 1x1)
    filter_size: int = 6  # low-pass taps per sample of the lower rate when resampling
    lrelu_upsampling: int = 2  # the nonlinearity runs at this multiple of the higher sampling rate
    use_radial_filters: bool = False  # radially symmetric downsampling filters (config R)
    magnitude_ema_beta: float = 0.999  # decay of the moving average of each layer's input magnitude

    def __post_init__(self) -> None:
        if self.num_layers < 1 or not 0 <= self.num_critical < self.num_layers:
            raise ValueError(f"StyleGAN3 needs num_layers >= 1 and 0 <= num_critical < num_layers, got "
                             f"{self.num_layers}, {self.num_critical}")
        if self.conv_kernel < 1 or self.filter_size < 1 or self.lrelu_upsampling < 1 or self.margin_size < 0:
            raise ValueError("StyleGAN3 conv_kernel, filter_size and lrelu_upsampling must be >= 1, "
                             "margin_size >= 0")

    @property
    def config_name(self) -> str:
        """'T' or 'R' for the paper's configurations, 'custom' for other switches."""
        if self.conv_kernel == 3 and not self.use_radial_filters:
            return "T"
        if self.conv_kernel == 1 and self.use_radial_filters:
            return "R"
        return "custom"


STYLEGAN3_T = StyleGAN3Options()
STYLEGAN3_R = StyleGAN3Options(conv_kernel=1, use_radial_filters=True)


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping: MappingConfig = field(default_factory=MappingConfig)
    # 1: AdaIN synthesis (StyleGAN); 2: weight demodulation (StyleGAN2); 3: alias-free (StyleGAN3,
    # switches in `v3`; architecture, resample_filter, use_noise and growing do not apply)
    version: Literal[1, 2, 3] = 2
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
    v3: Optional[StyleGAN3Options] = None  # version 3 switches (None: defaults = config T)

    def __post_init__(self) -> None:
        _check_resolution(self.img_resolution)
        if self.version == 3 and (self.growing or self.v1 is not None):
            raise ValueError("a StyleGAN3 (version 3) generator neither grows nor takes v1 switches")
        if self.v3 is not None and self.version != 3:
            raise ValueError(f"v3 switches belong to version 3 networks, not version {self.version}")

    @property
    def sg3(self) -> StyleGAN3Options:
        """The StyleGAN3 switches of a version 3 config (defaults when v3 is None)."""
        return self.v3 if self.v3 is not None else STYLEGAN3_T

    @property
    def num_ws(self) -> int:
        """Style inputs: 2 per resolution from 4x4, minus one (the 4x4 block has one conv); StyleGAN3:
        one per layer, the Fourier-feature input and ToRGB included (num_layers + 2)."""
        if self.version == 3:
            return self.sg3.num_layers + 2
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
