"""Named training presets (`--cfg`): the official StyleGAN2-ADA ones, the papers' configs, CPU demos.

A preset is a pure function of the dataset's shape and the GPU count -> TrainingConfig.
Official values (stylegan2-ada-pytorch `train.py --cfg`):

| preset    | batch | mbstd | channel_base | lr     | gamma  | ema kimg | map | notes                      |
|-----------|-------|-------|--------------|--------|--------|----------|-----|----------------------------|
| stylegan2 | 32    | 4     | 32768        | 0.002  | 10     | 10       | 8   | config F                   |
| paper256  | 64    | 8     | 16384        | 0.0025 | 1      | 20       | 8   |                            |
| paper512  | 64    | 8     | 32768        | 0.0025 | 0.5    | 20       | 8   |                            |
| paper1024 | 32    | 4     | 32768        | 0.002  | 2      | 10       | 8   |                            |
| cifar     | 64    | 32    | 32768        | 0.0025 | 0.01   | 500      | 2   | no PL, no mixing, D orig, ema rampup 0.05 |
| auto      | by resolution and GPU count (see `_auto`)                                             |

StyleGAN3 (stylegan3 `train.py --cfg stylegan3-t / stylegan3-r`, `stylegan3_config`): batch 32,
mbstd 4, G channel_base 32768 / max 512 (R: 65536 / 1024; D stays 32768 / 512), G lr 0.0025,
D lr 0.002, gamma 2 (R/256)^2 (stylegan3 docs/configs.md), ema batch*10/32 kimg (rampup 0.05), map 2,
no PL, no mixing; R: D input blur sigma 10 fading over batch*200/32 kimg.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..models.config import STYLEGAN3_R, STYLEGAN3_T, DiscriminatorConfig, GeneratorConfig, MappingConfig
from .config import DataShape, LossConfig, OptimizerConfig, TrainingConfig
from .paper_presets import PAPER_PRESETS, sg1_config

Preset = Callable[[DataShape], TrainingConfig]


def stylegan2_config(shape: DataShape, *, batch: int, mbstd: int, channel_base: int, lr: float,
                     gamma: float, ema_kimg: float, map_layers: int, ema_rampup: float | None = None,
                     pl_weight: float = 2.0, style_mixing_prob: float = 0.9, d_arch: str = "resnet",
                     g_arch: str = "skip", channel_max: int = 512, z_dim: int = 512, w_dim: int = 512,
                     num_fp16_res: int = 4, conv_clamp: float | None = 256, name: str = "") -> TrainingConfig:
    """The StyleGAN2-ADA training setup with the knobs the official presets vary."""
    G = GeneratorConfig(z_dim=z_dim, c_dim=shape.c_dim, w_dim=w_dim, img_resolution=shape.resolution,
                        img_channels=shape.channels, mapping=MappingConfig(num_layers=map_layers),
                        architecture=g_arch, channel_base=channel_base, channel_max=channel_max,
                        num_fp16_res=num_fp16_res, conv_clamp=conv_clamp)
    D = DiscriminatorConfig(c_dim=shape.c_dim, img_resolution=shape.resolution, img_channels=shape.channels,
                            architecture=d_arch, channel_base=channel_base, channel_max=channel_max,
                            num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
                            mbstd_group_size=min(mbstd, max(batch // shape.gpus, 1)))
    opt = OptimizerConfig(lr=lr)
    loss = LossConfig(r1_gamma=gamma, pl_weight=pl_weight, style_mixing_prob=style_mixing_prob)
    return TrainingConfig(G=G, D=D, G_opt=opt, D_opt=opt, loss=loss, batch=batch, ema_kimg=ema_kimg,
                          ema_rampup=ema_rampup, cond=shape.c_dim > 0, preset=name)


def _auto(shape: DataShape) -> TrainingConfig:
    res, gpus = shape.resolution, shape.gpus
    batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
    return stylegan2_config(shape, batch=batch, mbstd=min(batch // gpus, 4),
                            channel_base=32768 if res >= 512 else 16384,
                            lr=0.002 if res >= 1024 else 0.0025, gamma=0.0002 * res ** 2 / batch,
                            ema_kimg=batch * 10 / 32, ema_rampup=0.05, map_layers=2, name="auto")


PRESETS: dict[str, Preset] = {
    "stylegan2": lambda s: stylegan2_config(s, batch=32, mbstd=4, channel_base=32768, lr=0.002, gamma=10,
                                            ema_kimg=10, map_layers=8, name="stylegan2"),
    "paper256": lambda s: stylegan2_config(s, batch=64, mbstd=8, channel_base=16384, lr=0.0025, gamma=1,
                                           ema_kimg=20, map_layers=8, name="paper256"),
    "paper512": lambda s: stylegan2_config(s, batch=64, mbstd=8, channel_base=32768, lr=0.0025, gamma=0.5,
                                           ema_kimg=20, map_layers=8, name="paper512"),
    "paper1024": lambda s: stylegan2_config(s, batch=32, mbstd=4, channel_base=32768, lr=0.002, gamma=2,
                                            ema_kimg=10, map_layers=8, name="paper1024"),
    "cifar": lambda s: stylegan2_config(s, batch=64, mbstd=32, channel_base=32768, lr=0.0025, gamma=0.01,
                                        ema_kimg=500, ema_rampup=0.05, map_layers=2, pl_weight=0,
                                        style_mixing_prob=0, d_arch="orig", name="cifar"),
    "auto": _auto,
}


def stylegan3_config(shape: DataShape, config: str, *, batch: int = 32, gamma: float | None = None,
                     cbase: int = 32768, cmax: int = 512, name: str = "") -> TrainingConfig:
    """StyleGAN3 config T or R as stylegan3's `train.py --cfg stylegan3-t/-r` sets it up.

    Official defaults (train.py, training/training_loop.py, training/loss.py): mapping 2 layers,
    --cbase 32768 / --cmax 512 for G and D (R doubles G's to 65536 / 1024 and uses 1x1 convs and
    radial filters), magnitude EMA beta 0.5 ** (batch / 20k), D the StyleGAN2 resnet D with mbstd
    group 4, Adam betas (0, 0.99), G lr 0.0025, D lr 0.002, ema batch * 10 / 32 kimg with rampup
    0.05, no style mixing and no path length (G has no lazy regularization then: G_reg_interval
    stays None officially, so G's Adam is not rescaled), R1 lazily every 16. R only: D's input
    images are blurred (sigma 10) and the blur fades out over batch * 200 / 32 kimg. --batch is
    required officially (docs/configs.md uses 32 throughout), and so is --gamma: the default here
    is the recommended table of stylegan3's docs/configs.md for T and R alike, 0.5 / 2 / 8 / 32 at
    128 / 256 / 512 / 1024 px, i.e. 2 (R / 256)^2 ("gamma scales quadratically with resolution").
    Everything that train.py derives from --batch / --cbase / --cmax follows `batch`, `cbase` and
    `cmax` here (the command line passes them as `PresetKnobs`).
    """
    if config not in ("T", "R"):
        raise ValueError(f"StyleGAN3 config must be 'T' or 'R', got {config!r}")
    r = config == "R"
    gamma = 2 * (shape.resolution / 256) ** 2 if gamma is None else gamma
    cfg = stylegan2_config(shape, batch=batch, mbstd=4, channel_base=cbase, channel_max=cmax, lr=0.0025,
                           gamma=gamma, ema_kimg=batch * 10 / 32, ema_rampup=0.05, map_layers=2, pl_weight=0,
                           style_mixing_prob=0, name=name)
    v3 = replace(STYLEGAN3_R if r else STYLEGAN3_T, magnitude_ema_beta=0.5 ** (batch / 20e3))
    G = cfg.G.replace(version=3, v3=v3, mapping=replace(cfg.G.mapping, w_avg_beta=0.998),
                      channel_base=cbase * 2 if r else cbase, channel_max=cmax * 2 if r else cmax)
    loss = replace(cfg.loss, blur_init_sigma=10.0 if r else 0.0, blur_fade_kimg=batch * 200 / 32 if r else 0.0)
    return cfg.replace(G=G, D_opt=OptimizerConfig(lr=0.002), loss=loss)


@dataclass(frozen=True)
class PresetKnobs:
    """Command-line values that a preset derives other values from (None: the preset's own).

    stylegan3's `train.py` builds its config from `--batch`, `--cbase` and `--cmax`: the G_ema
    half-life, the magnitude EMA beta and R's blur fade follow the batch, and R doubles G's channels
    after `--cbase` / `--cmax`. stylegan2-ada-pytorch's presets derive nothing from them (its
    `--batch` sets the batch alone), so only `KNOB_PRESETS` take knobs; the rest get the values as
    plain overrides."""

    batch: Optional[int] = None
    cbase: Optional[int] = None
    cmax: Optional[int] = None

    def given(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if v is not None}


KNOB_PRESETS: dict[str, Callable[[DataShape, PresetKnobs], TrainingConfig]] = {
    "stylegan3-t": lambda s, k: stylegan3_config(s, "T", name="stylegan3-t", **k.given()),
    "stylegan3-r": lambda s, k: stylegan3_config(s, "R", name="stylegan3-r", **k.given()),
}
PRESETS.update({name: (lambda s, f=f: f(s, PresetKnobs())) for name, f in KNOB_PRESETS.items()})


def preset_names() -> list[str]:
    return sorted(PRESETS)


def resolve_preset(name: str, shape: DataShape, knobs: PresetKnobs = PresetKnobs()) -> TrainingConfig:
    """The TrainingConfig of preset `name` for data of `shape`; unknown names list the valid ones.

    `knobs` reach only the presets that derive values from them (`KNOB_PRESETS`); the caller applies
    them as plain overrides to every other preset (`derives_from_knobs`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown --cfg {name!r}; choose one of: {', '.join(preset_names())}")
    if name in KNOB_PRESETS:
        return KNOB_PRESETS[name](shape, knobs)
    return PRESETS[name](shape)


def derives_from_knobs(name: str) -> bool:
    """Whether preset `name` consumes `PresetKnobs` itself (so they are not applied again after it)."""
    return name in KNOB_PRESETS


# The papers' configurations (v1 Table 1, v2 Tables 1-2) sit beside the official presets.
PRESETS.update(PAPER_PRESETS)


# --- CPU presets (issue 4): small StyleGAN2 networks that learn something in minutes on 2 cores.
# Sized for 32x32 (fine up to 64x64); docs/training.md shows what they reach. `tiny` is for tests.
def _cpu_config(shape: DataShape, *, name: str, batch: int, channel_base: int, channel_max: int,
                z_dim: int, lr: float, gamma: float, ema_kimg: float, pl_weight: float = 2.0,
                mbstd: int = 4, cls_weight: float = 1.0) -> TrainingConfig:
    """A StyleGAN2 small enough for a CPU (`cpu` with labels: 193k / 257k parameters in G / D).

    Unconditional at this size, our code and NVIDIA's alike (same weights -> same outputs and
    gradients) fall into the early collapse: from ~5 kimg every z draws one digit, hopping between
    classes until ~80-100 kimg. With labels (`--cond`) the discriminator also classifies the reals
    and G is trained to draw the class it is given (`cls_weight`, AC-GAN; docs/presets.md): the
    `cpu` preset then draws all ten MNIST digits from ~24-32 kimg on (docs/training.md)."""
    cfg = stylegan2_config(shape, batch=batch, mbstd=mbstd, channel_base=channel_base, lr=lr, gamma=gamma,
                           ema_kimg=ema_kimg, ema_rampup=0.05, map_layers=2, pl_weight=pl_weight,
                           channel_max=channel_max, z_dim=z_dim, w_dim=z_dim, num_fp16_res=0,
                           conv_clamp=None, name=name)
    if shape.c_dim > 0 and cls_weight > 0:
        # Conditional (`--cond`): D also classifies the reals and G is asked to draw the class it was
        # given (AC-GAN head beside the official projection). Without it, G ignores its labels and
        # collapses onto one digit as the unconditional network does (docs/training.md).
        cfg = cfg.replace(D=cfg.D.replace(aux_classes=shape.c_dim),
                          loss=replace(cfg.loss, cls_weight=cls_weight))
    return cfg.replace(kimg_per_tick=4.0, snap=2, total_kimg=60.0)


PRESETS.update({
    "cpu": lambda s: _cpu_config(s, name="cpu", batch=32, channel_base=512, channel_max=64, z_dim=64,
                                 lr=0.005, gamma=1.0, ema_kimg=1.0),
    "tiny": lambda s: _cpu_config(s, name="tiny", batch=8, channel_base=256, channel_max=32, z_dim=32,
                                  lr=0.002, gamma=1.0, ema_kimg=0.5, cls_weight=0.0).replace(
                                      kimg_per_tick=0.032, snap=1, total_kimg=0.064),
})


def _cpu_sg1(shape: DataShape, *, name: str = "cpu-sg1", channel_base: int = 1024, channel_max: int = 64,
             z_dim: int = 64, batch: int = 32, phase_kimg: float = 2.0) -> TrainingConfig:
    """StyleGAN v1 config F (AdaIN, const input, noise, mixing 0.9; logistic + R1 every step),
    small, growing from 8x8 with `phase_kimg` of training + `phase_kimg` of fade-in per resolution."""
    cfg = sg1_config(shape, "F", name=name)
    G = cfg.G.replace(z_dim=z_dim, w_dim=z_dim, channel_base=channel_base, channel_max=channel_max,
                      mapping=replace(cfg.G.mapping, num_layers=2, embed_features=None))
    D = cfg.D.replace(channel_base=channel_base, channel_max=channel_max)
    table = tuple((r, batch) for r, _ in cfg.progressive.batch_by_resolution)
    prog = replace(cfg.progressive, lod_training_kimg=phase_kimg, lod_transition_kimg=phase_kimg,
                   batch_by_resolution=table, lr_by_resolution=(), base_lr=0.0025)
    return cfg.replace(G=G, D=D, progressive=prog, batch=batch, loss=replace(cfg.loss, r1_gamma=0.1),
                       ema_kimg=1.0, ema_rampup=0.05, kimg_per_tick=1.0, snap=5, total_kimg=12.0)


PRESETS["cpu-sg1"] = _cpu_sg1
