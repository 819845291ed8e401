"""What one minibatch does: the step settings of a fixed or a progressively growing network.

The stepper asks its schedule for the `StepSettings` of every minibatch and only follows them. A
fixed architecture (StyleGAN2) has the same settings at every step. Progressive growing (PGGAN
Sec. 3; StyleGAN v1 and StyleGAN2 configs A-D) changes batch, learning rate and level of detail with
the number of images shown (`training.progressive.schedule`, a pure function) and resets the Adam
state whenever new layers appear or finish fading in.

One micro-batch rule for both: the per-process batch is split into rounds of `batch_gpu` images
(gradient accumulation), and `batch_gpu` must divide it, as in the official `train.py`. A growing
schedule checks this for every stage when it is made, so a run never fails (or silently shrinks
its micro-batch) hours in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from ..models.lod import log2_resolution
from . import progressive
from .config import TrainingConfig
from .errors import TrainingSetupError


@dataclass(frozen=True)
class StepSettings:
    """Everything about one minibatch that depends on where training stands."""

    batch: int  # global minibatch (all processes)
    batch_gpu: int  # per-process micro-batch of one round
    rounds: int  # rounds of gradient accumulation per process (batch = world * rounds * batch_gpu)
    lr: Optional[float]  # Adam lr for this step (before the lazy-regularization ratio); None: unchanged
    lod: Optional[float]  # level of detail for G, G_ema and D; None: a fixed architecture
    reset_optimizers: bool  # clear the Adam moments before this step
    mixing_num_ws: Optional[int]  # style inputs in use (mixing crossover in [1, this)); None: all
    growth_stage: int  # progressive growing: `GrowthStage.index` (-1: fixed architecture)
    resolution: int  # the (newest) resolution trained at


class Schedule(Protocol):
    def settings(self, cur_nimg: int, prev_growth_stage: int) -> StepSettings: ...

    def describe(self) -> Optional[str]: ...


def largest_divisor_at_most(n: int, k: int) -> int:
    k = max(min(k, n), 1)
    while n % k:
        k -= 1
    return k


def micro_batch(batch: int, world: int, batch_gpu: Optional[int], where: str = "") -> tuple[int, int]:
    """(per-process micro-batch, rounds of gradient accumulation) for a total `batch`.

    `batch_gpu` larger than the per-process batch means the whole per-process batch in one round."""
    if batch % world:
        raise TrainingSetupError(f"--batch {batch}{where} is not divisible by --gpus {world}")
    per = batch // world
    bg = per if batch_gpu is None else min(batch_gpu, per)
    if per % bg:
        raise TrainingSetupError(f"--batch-gpu {bg} must divide the per-GPU batch {per}{where} (= batch / gpus)")
    return bg, per // bg


def check_mbstd(cfg: TrainingConfig, batch_gpu: int) -> None:
    """The minibatch-std group must divide the micro-batch (MinibatchStd groups within a round)."""
    group = cfg.D.mbstd_group_size
    if cfg.D.mbstd_num_channels > 0 and group is not None and batch_gpu % min(group, batch_gpu):
        raise TrainingSetupError(
            f"the minibatch-std group size {group} must divide the per-GPU micro-batch {batch_gpu}; "
            f"use --batch-gpu or --batch so that it does (or a preset with a smaller mbstd group)")


class FixedSchedule:
    """A StyleGAN2 network: the same settings at every step."""

    def __init__(self, cfg: TrainingConfig, world: int):
        bg, rounds = micro_batch(cfg.batch, world, cfg.batch_gpu)
        check_mbstd(cfg, bg)
        self._settings = StepSettings(batch=cfg.batch, batch_gpu=bg, rounds=rounds, lr=None, lod=None,
                                      reset_optimizers=False, mixing_num_ws=None, growth_stage=-1,
                                      resolution=cfg.G.img_resolution)

    def settings(self, cur_nimg: int, prev_growth_stage: int) -> StepSettings:
        return self._settings

    def describe(self) -> Optional[str]:
        return None  # nothing changes during the run


class ProgressiveSchedule:
    """Progressive growing: batch, lr and lod from `progressive.schedule` (the TF training_schedule)."""

    def __init__(self, cfg: TrainingConfig, world: int):
        assert cfg.progressive is not None
        self.cfg, self.world = cfg, world
        self.resolution = cfg.G.img_resolution
        p = cfg.progressive
        start = log2_resolution(self.resolution) - progressive.levels(p, self.resolution)
        for res in (2 ** k for k in range(start, log2_resolution(self.resolution) + 1)):  # every stage, now
            bg, _ = micro_batch(progressive.batch_at(p, res, world), world, cfg.batch_gpu, f" at {res}x{res}")
            check_mbstd(cfg, bg)

    def settings(self, cur_nimg: int, prev_growth_stage: int) -> StepSettings:
        cfg = self.cfg
        stage = progressive.schedule(cur_nimg / 1000, cfg.progressive, self.resolution, self.world)
        bg, rounds = micro_batch(stage.batch, self.world, cfg.batch_gpu)
        return StepSettings(batch=stage.batch, batch_gpu=bg, rounds=rounds, lr=stage.lr, lod=stage.lod,
                            reset_optimizers=progressive.needs_reset(prev_growth_stage, stage, cfg.progressive),
                            mixing_num_ws=progressive.active_num_ws(stage.resolution),
                            growth_stage=stage.index, resolution=stage.resolution)

    def describe(self) -> str:
        p = self.cfg.progressive
        return (f"progressive growing from {min(p.start_resolution, self.resolution)}x"
                f"{min(p.start_resolution, self.resolution)}: full {self.resolution}x{self.resolution} at "
                f"{progressive.growth_kimg(p, self.resolution):g} kimg; optimizer resets at kimg "
                + (", ".join(f"{x:g}" for x in progressive.reset_points(p, self.resolution)) or "none"))


def make_schedule(cfg: TrainingConfig, world: int) -> Schedule:
    """The schedule of `cfg` for `world` processes (raises TrainingSetupError for impossible batches)."""
    return FixedSchedule(cfg, world) if cfg.progressive is None else ProgressiveSchedule(cfg, world)


__all__ = ["StepSettings", "Schedule", "FixedSchedule", "ProgressiveSchedule", "make_schedule", "micro_batch",
           "largest_divisor_at_most", "check_mbstd"]
