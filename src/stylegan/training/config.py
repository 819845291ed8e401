"""Typed training configuration. Named presets that fill it are in `stylegan.training.presets`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Optional, Tuple

from ..models.config import DiscriminatorConfig, GeneratorConfig
from ..nn.precision import Precision
from .ada import AdaConfig


@dataclass(frozen=True)
class DataShape:
    """What a preset needs to know about the data and the machine."""

    resolution: int
    channels: int = 3
    c_dim: int = 0
    gpus: int = 1


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam (StyleGAN2: beta1 0, beta2 0.99, eps 1e-8); lazy regularization rescales lr and betas."""

    lr: float = 0.002
    betas: Tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8


@dataclass(frozen=True)
class LossConfig:
    """GAN loss and regularizers (StyleGAN2 Sec. 3.1-3.2 and App. B)."""

    kind: Literal["logistic", "wgan-gp"] = "logistic"  # non-saturating logistic, or WGAN-GP (PGGAN / v1 CelebA-HQ)
    r1_gamma: float = 10.0  # R1 = gamma/2 E||grad D(x)||^2 on reals (logistic loss only)
    r1_interval: int = 16  # lazy regularization: every k minibatches, scaled by k (0: R1 in every D step)
    pl_weight: float = 2.0  # path length regularization (0: off)
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    # Auxiliary classifier (AC-GAN, Odena et al. 2017; not in the official code): with labels and a
    # discriminator classifier head (DiscriminatorConfig.aux_classes = c_dim), D main adds
    # cls_weight * CE(D's class logits of the reals, their labels) and G main cls_weight * CE(D's
    # class logits of the fakes, the labels they were drawn for). 0: off, as officially.
    cls_weight: float = 0.0
    wgan_lambda: float = 10.0
    wgan_target: float = 1.0
    wgan_epsilon: float = 0.001  # drift penalty on real logits
    # StyleGAN3 config R (stylegan3 training/loss.py): every image D sees is blurred by a Gaussian
    # of sigma = blur_init_sigma * max(1 - cur_nimg / (blur_fade_kimg * 1000), 0) before
    # augmentation; 0 / 0: off (every other config).
    blur_init_sigma: float = 0.0
    blur_fade_kimg: float = 0.0


@dataclass(frozen=True)
class ProgressiveConfig:
    """StyleGAN v1 / PGGAN progressive growing (PGGAN Sec. 3; StyleGAN v1 App. C)."""

    start_resolution: int = 8
    lod_training_kimg: float = 600.0
    lod_transition_kimg: float = 600.0
    batch_by_resolution: Tuple[Tuple[int, int], ...] = (
        (4, 128), (8, 128), (16, 128), (32, 64), (64, 32), (128, 16), (256, 8), (512, 4), (1024, 4))
    lr_by_resolution: Tuple[Tuple[int, float], ...] = ((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003))
    base_lr: float = 0.001
    reset_optimizer: bool = True


@dataclass(frozen=True)
class TrainingConfig:
    G: GeneratorConfig
    D: DiscriminatorConfig
    G_opt: OptimizerConfig = field(default_factory=OptimizerConfig)
    D_opt: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AdaConfig = field(default_factory=lambda: AdaConfig(mode="noaug"))
    progressive: Optional[ProgressiveConfig] = None  # v1 presets only
    batch: int = 32  # total over all GPUs
    batch_gpu: Optional[int] = None  # per-GPU micro-batch (gradient accumulation); default batch/gpus
    ema_kimg: float = 10.0  # G_ema half-life in thousands of images
    ema_rampup: Optional[float] = None  # half-life <= rampup * images seen (cifar: 0.05)
    total_kimg: float = 25000.0
    mirror: bool = False
    cond: bool = False
    kimg_per_tick: float = 4.0
    snap: int = 50  # ticks between network snapshots (and fake grids)
    seed: int = 0
    metrics: Tuple[str, ...] = ()
    # D layers frozen for transfer learning, counted from the input (the ADA paper's freeze-D,
    # stylegan2-ada-pytorch `--freezed`): their parameters get no update.
    freezed: int = 0
    # Train on a seeded random subset of at most this many images (stylegan2-ada-pytorch `--subset`).
    subset: Optional[int] = None
    preset: str = ""  # name of the preset this config came from (for the run name and the log)
    # Low precision in the highest resolutions of G and D (`stylegan.nn.precision`); None: the
    # networks as constructed (the presets' fp16 blocks on CUDA, fp32 elsewhere).
    precision: Optional[Precision] = None

    def replace(self, **kw) -> "TrainingConfig":
        return replace(self, **kw)
