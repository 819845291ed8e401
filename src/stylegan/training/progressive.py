"""Progressive growing schedule (PGGAN Sec. 3; StyleGAN v1 / StyleGAN2 configs A-D).

`schedule(kimg, cfg, final_resolution)` is a pure function of the number of real images shown so
far (in thousands), like the official TF `training_schedule`:

    level_kimg = lod_training_kimg + lod_transition_kimg
    grown      = floor(kimg / level_kimg);  into = kimg - grown * level_kimg
    lod        = log2(R) - log2(start) - grown - max(into - lod_training_kimg, 0) / transition
    lod        = max(lod, 0);  resolution = R / 2^floor(lod)

So each resolution trains for `lod_training_kimg`, then the next one fades in over
`lod_transition_kimg`; during a fade-in the stage already reports the new (higher) resolution,
whose batch size and learning rate apply. A `GrowthStage`'s `index` counts the changes of floor(lod)
or ceil(lod) (start of a fade-in, start of a stabilisation): the official loop resets the Adam state
of G and D exactly then (`needs_reset`). ("Stage", not "phase": a training *phase* is Gmain, Greg,
Dmain or Dreg, see training.stepper.)

What the training loop does each step (see also docs/presets.md)::

    stage = schedule(cur_nimg / 1000, cfg.progressive, R, num_gpus)
    if needs_reset(prev_stage.index, stage, cfg.progressive): clear the G_opt and D_opt state
    set the lr of both optimizers to stage.lr (times the lazy-regularization ratio, if any)
    set_lod(G, stage.lod); set_lod(G_ema, stage.lod); set_lod(D, stage.lod)
    reals = fade_reals(reals, stage.lod)                 # TF process_reals: FadeLOD + UpscaleLOD
    draw stage.batch images; mixing crossover in [1, active_num_ws(stage.resolution))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.lod import downsample_box, log2_resolution, max_lod, split_lod, upsample_nearest
from ..models.stylegan1 import set_lod
from .config import ProgressiveConfig

__all__ = ["GrowthStage", "schedule", "needs_reset", "fade_reals", "active_num_ws", "reset_points",
           "growth_kimg", "levels", "batch_at", "set_lod"]


@dataclass(frozen=True)
class GrowthStage:
    """Where progressive growing stands after `kimg` thousand real images."""

    kimg: float
    resolution: int  # the newest (possibly still fading-in) resolution; batch and lr are its values
    lod: float  # level of detail: 0 = full resolution; set on G, G_ema and D
    alpha: float  # fade-in weight of the newest resolution (1 = stable)
    batch: int  # total minibatch (all GPUs)
    lr: float  # Adam learning rate of G and D
    index: int  # increments whenever floor(lod) or ceil(lod) changes (optimizer reset points)

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


def _start_resolution(cfg: ProgressiveConfig, final_resolution: int) -> int:
    log2_resolution(cfg.start_resolution)
    if cfg.start_resolution < 4:
        raise ValueError(f"start_resolution must be >= 4, got {cfg.start_resolution}")
    return min(cfg.start_resolution, final_resolution)


def levels(cfg: ProgressiveConfig, final_resolution: int) -> int:
    """Resolutions added after the start one: log2(R) - log2(start)."""
    return log2_resolution(final_resolution) - log2_resolution(_start_resolution(cfg, final_resolution))


def batch_at(cfg: ProgressiveConfig, resolution: int, num_gpus: int = 1) -> int:
    """The total minibatch at `resolution`: the table entry, else the one of the nearest listed lower
    (else lowest) resolution, rounded down to a multiple of `num_gpus` (at least num_gpus), as in
    the TF code."""
    table = dict(cfg.batch_by_resolution)
    if not table:
        raise ValueError("ProgressiveConfig.batch_by_resolution is empty")
    if resolution in table:
        batch = int(table[resolution])
    else:
        lower = [r for r in table if r <= resolution]
        batch = int(table[max(lower)] if lower else table[min(table)])
    return max(batch - batch % num_gpus, num_gpus)


def _lr_at(cfg: ProgressiveConfig, resolution: int) -> float:
    """The table entry for `resolution`, else base_lr (TF `G_lrate_dict.get(res, G_lrate_base)`)."""
    return float(dict(cfg.lr_by_resolution).get(resolution, cfg.base_lr))


def schedule(kimg: float, cfg: ProgressiveConfig, final_resolution: int, num_gpus: int = 1) -> GrowthStage:
    """The progressive-growing stage after `kimg` thousand real images (pure function)."""
    if kimg < 0 or math.isnan(kimg):
        raise ValueError(f"kimg must be >= 0, got {kimg}")
    if cfg.lod_training_kimg < 0 or cfg.lod_transition_kimg < 0:
        raise ValueError("lod_training_kimg and lod_transition_kimg must be >= 0")
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus}")
    n = levels(cfg, final_resolution)
    train, fade = float(cfg.lod_training_kimg), float(cfg.lod_transition_kimg)
    level_kimg = train + fade
    grown = int(math.floor(kimg / level_kimg)) if level_kimg > 0 else n  # levels fully added
    into = kimg - grown * level_kimg  # kimg into the current level
    lod = float(n - grown)
    if fade > 0:
        lod -= max(into - train, 0.0) / fade
    if lod <= 0.0:
        lod, index = 0.0, 2 * n
    else:
        index = 2 * grown + (1 if into > train and fade > 0 else 0)
    resolution, alpha = split_lod(lod, final_resolution)
    return GrowthStage(kimg=float(kimg), resolution=resolution, lod=lod, alpha=alpha,
                       batch=batch_at(cfg, resolution, num_gpus), lr=_lr_at(cfg, resolution), index=index)


def needs_reset(prev_index: int | None, cur: GrowthStage, cfg: ProgressiveConfig) -> bool:
    """Reset the optimizers' state now? (New layers appeared or finished fading in.)

    `prev_index`: the stage `index` of the previous minibatch, None (or negative) before the first
    one, when the optimizers are fresh anyway. False when `cfg.reset_optimizer` is off.
    """
    return bool(cfg.reset_optimizer and prev_index is not None and prev_index >= 0
                and prev_index != cur.index)


def reset_points(cfg: ProgressiveConfig, final_resolution: int) -> list[float]:
    """kimg values at which the stage index changes (fade-in starts and ends), in order."""
    train, fade = float(cfg.lod_training_kimg), float(cfg.lod_transition_kimg)
    points: list[float] = []
    for i in range(levels(cfg, final_resolution)):
        start = i * (train + fade)
        for x in (start + train, start + train + fade) if fade > 0 else (start + train,):
            if not points or x != points[-1]:  # with lod_training_kimg 0 a fade ends where the next starts
                points.append(x)
    return points


def growth_kimg(cfg: ProgressiveConfig, final_resolution: int) -> float:
    """kimg after which the final resolution is fully faded in (lod reaches 0)."""
    return levels(cfg, final_resolution) * (cfg.lod_training_kimg + cfg.lod_transition_kimg)


def active_num_ws(resolution: int) -> int:
    """Style inputs used at `resolution` (2 log2(res) - 2); style mixing draws its crossover in
    [1, active_num_ws) like the TF v1 code (`cur_layers = num_layers - 2 * lod`)."""
    return 2 * log2_resolution(resolution) - 2


def fade_reals(img: torch.Tensor, lod: float) -> torch.Tensor:
    """Real images as D sees them at `lod` (TF `process_reals`: FadeLOD, then UpscaleLOD).

    img: [N, C, R, R] at full resolution -> [N, C, R, R]: box-downsampled to the current resolution
    r, cross-faded with its own 2x-box-downsampled copy by (1 - alpha), then nearest-upsampled back
    to R (so reals and G's output are on the same footing).
    """
    if img.ndim != 4 or img.shape[2] != img.shape[3]:
        raise ValueError(f"images must be [N, C, R, R], got {tuple(img.shape)}")
    final = img.shape[2]
    if not 0 <= lod <= max_lod(final):
        raise ValueError(f"lod must be in [0, {max_lod(final)}], got {lod}")
    level = int(math.floor(lod))
    x = downsample_box(img, 2 ** level)
    t = lod - level
    if t > 0:
        x = torch.lerp(x, upsample_nearest(downsample_box(x, 2), 2), t)
    return upsample_nearest(x, 2 ** level)
