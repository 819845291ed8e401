"""Progressive growing schedule (PGGAN Sec. 3; StyleGAN v1 / StyleGAN2 configs A-D).

`schedule(kimg, cfg, final_resolution)` is a pure function of the number of real images shown so
far (in thousands), like the official TF `training_schedule`:

    phase_dur  = lod_training_kimg + lod_transition_kimg
    phase_idx  = floor(kimg / phase_dur);  phase_kimg = kimg - phase_idx * phase_dur
    lod        = log2(R) - log2(start) - phase_idx - max(phase_kimg - lod_training_kimg, 0) / transition
    lod        = max(lod, 0);  resolution = R / 2^floor(lod)

So each resolution trains for `lod_training_kimg`, then the next one fades in over
`lod_transition_kimg`; during a fade-in the phase already reports the new (higher) resolution,
whose batch size and learning rate apply. `phase_index` counts the changes of floor(lod) or
ceil(lod) (start of a fade-in, start of a stabilisation): the official loop resets the Adam state of
G and D exactly then (`needs_reset`).

What the training loop does each step (see also docs/presets.md)::

    phase = schedule(cur_nimg / 1000, cfg.progressive, R, num_gpus)
    if needs_reset(prev_phase.phase_index, phase, cfg.progressive): clear the G_opt and D_opt state
    set the lr of both optimizers to phase.lr (times the lazy-regularization ratio, if any)
    set_lod(G, phase.lod); set_lod(G_ema, phase.lod); set_lod(D, phase.lod)
    reals = fade_reals(reals, phase.lod)                 # TF process_reals: FadeLOD + UpscaleLOD
    draw phase.batch images; mixing crossover in [1, active_num_ws(phase.resolution))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.lod import downsample_box, log2_resolution, max_lod, split_lod, upsample_nearest
from ..models.stylegan1 import set_lod
from .config import ProgressiveConfig

__all__ = ["Phase", "schedule", "needs_reset", "fade_reals", "active_num_ws", "reset_points",
           "growth_kimg", "set_lod"]


@dataclass(frozen=True)
class Phase:
    """Where progressive growing stands after `kimg` thousand real images."""

    kimg: float
    resolution: int  # the newest (possibly still fading-in) resolution; batch and lr are its values
    lod: float  # level of detail: 0 = full resolution; set on G, G_ema and D
    alpha: float  # fade-in weight of the newest resolution (1 = stable)
    batch: int  # total minibatch (all GPUs)
    lr: float  # Adam learning rate of G and D
    phase_index: int  # increments whenever floor(lod) or ceil(lod) changes (optimizer reset points)

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


def _start_resolution(cfg: ProgressiveConfig, final_resolution: int) -> int:
    log2_resolution(cfg.start_resolution)
    if cfg.start_resolution < 4:
        raise ValueError(f"start_resolution must be >= 4, got {cfg.start_resolution}")
    return min(cfg.start_resolution, final_resolution)


def _batch_at(cfg: ProgressiveConfig, resolution: int) -> int:
    """The table entry for `resolution`, else the one of the nearest listed lower (else lowest) one."""
    table = dict(cfg.batch_by_resolution)
    if not table:
        raise ValueError("ProgressiveConfig.batch_by_resolution is empty")
    if resolution in table:
        return int(table[resolution])
    lower = [r for r in table if r <= resolution]
    return int(table[max(lower)] if lower else table[min(table)])


def _lr_at(cfg: ProgressiveConfig, resolution: int) -> float:
    """The table entry for `resolution`, else base_lr (TF `G_lrate_dict.get(res, G_lrate_base)`)."""
    return float(dict(cfg.lr_by_resolution).get(resolution, cfg.base_lr))


def schedule(kimg: float, cfg: ProgressiveConfig, final_resolution: int, num_gpus: int = 1) -> Phase:
    """The progressive-growing phase after `kimg` thousand real images (pure function).

    The batch is rounded down to a multiple of `num_gpus` (at least num_gpus), as in the TF code.
    """
    if kimg < 0 or math.isnan(kimg):
        raise ValueError(f"kimg must be >= 0, got {kimg}")
    if cfg.lod_training_kimg < 0 or cfg.lod_transition_kimg < 0:
        raise ValueError("lod_training_kimg and lod_transition_kimg must be >= 0")
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus}")
    levels = log2_resolution(final_resolution) - log2_resolution(_start_resolution(cfg, final_resolution))
    train, fade = float(cfg.lod_training_kimg), float(cfg.lod_transition_kimg)
    phase_dur = train + fade
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else levels
    phase_kimg = kimg - phase_idx * phase_dur
    lod = float(levels - phase_idx)
    if fade > 0:
        lod -= max(phase_kimg - train, 0.0) / fade
    if lod <= 0.0:
        lod, index = 0.0, 2 * levels
    else:
        index = 2 * phase_idx + (1 if phase_kimg > train and fade > 0 else 0)
    resolution, alpha = split_lod(lod, final_resolution)
    batch = _batch_at(cfg, resolution)
    batch = max(batch - batch % num_gpus, num_gpus)
    return Phase(kimg=float(kimg), resolution=resolution, lod=lod, alpha=alpha, batch=batch,
                 lr=_lr_at(cfg, resolution), phase_index=index)


def needs_reset(prev_index: int | None, cur: Phase, cfg: ProgressiveConfig) -> bool:
    """Reset the optimizers' state now? (New layers appeared or finished fading in.)

    `prev_index`: the `phase_index` of the previous minibatch, None (or negative) before the first
    one, when the optimizers are fresh anyway. False when `cfg.reset_optimizer` is off.
    """
    return bool(cfg.reset_optimizer and prev_index is not None and prev_index >= 0
                and prev_index != cur.phase_index)


def reset_points(cfg: ProgressiveConfig, final_resolution: int) -> list[float]:
    """kimg values at which phase_index changes (fade-in starts and ends), in order."""
    levels = log2_resolution(final_resolution) - log2_resolution(_start_resolution(cfg, final_resolution))
    train, fade = float(cfg.lod_training_kimg), float(cfg.lod_transition_kimg)
    points: list[float] = []
    for i in range(levels):
        start = i * (train + fade)
        for x in (start + train, start + train + fade) if fade > 0 else (start + train,):
            if not points or x != points[-1]:  # with lod_training_kimg 0 a fade ends where the next starts
                points.append(x)
    return points


def growth_kimg(cfg: ProgressiveConfig, final_resolution: int) -> float:
    """kimg after which the final resolution is fully faded in (lod reaches 0)."""
    levels = log2_resolution(final_resolution) - log2_resolution(_start_resolution(cfg, final_resolution))
    return levels * (cfg.lod_training_kimg + cfg.lod_transition_kimg)


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
