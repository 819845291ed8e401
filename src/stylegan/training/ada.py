"""The adaptive augmentation strength p of ADA (Karras et al. 2020, Sec. 3), and its configuration.

Every `interval` minibatches the overfitting heuristic r_t = E[sign(D(real))] over the images since
the last adjustment moves p by sign(r_t - target) * images / (speed_kimg * 1000): up while D is
overconfident on reals, down otherwise. `AdaConfig` is the one typed description of `--aug --p
--target --augpipe` (it is `TrainingConfig.augment`) and validates itself once; `build_augment`
turns it into the pipeline (`training.augment`) and the controller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

from .. import distributed as dist
from .augment import DEFAULT_PRESET, P_MAX, PRESETS, AugmentPipe

ADA_MODES = ("ada", "fixed", "noaug")


@dataclass(frozen=True)
class AdaConfig:
    """How images are augmented and how p is chosen (`--aug --p --target --augpipe`; ADA Sec. 3).

    mode: 'ada' (adjust p from the sign of D on reals), 'fixed' (constant p), 'noaug' (none).
    p: the constant for 'fixed' (required), the starting value for 'ada' (default 0).
    pipe: the transform preset (`training.augment.PRESETS`). interval: minibatches between
    adjustments. speed_kimg: p can go from 0 to 1 within this many thousand images.
    """

    mode: str = "ada"
    p: Optional[float] = None
    target: float = 0.6
    pipe: str = DEFAULT_PRESET
    interval: int = 4
    speed_kimg: float = 500.0

    def __post_init__(self) -> None:
        if self.mode not in ADA_MODES:
            raise ValueError(f"aug mode must be one of {ADA_MODES}, got {self.mode!r}")
        if self.mode == "fixed" and self.p is None:
            raise ValueError("--aug fixed needs a constant --p")
        if self.p is not None and not 0 <= self.p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {self.p}")
        if not 0 <= self.target <= 1:
            raise ValueError(f"the ADA target must lie in [0, 1], got {self.target}")
        if self.pipe not in PRESETS:
            raise ValueError(f"unknown augment pipeline {self.pipe!r}; choose one of {', '.join(PRESETS)}")
        if self.interval < 1 or self.speed_kimg <= 0:
            raise ValueError("interval must be >= 1 and speed_kimg > 0")

    @property
    def initial_p(self) -> float:
        return 0.0 if self.mode == "noaug" or self.p is None else float(self.p)


def ada_adjust(p: float, mean_sign: float, target: float, num_images: int, speed_kimg: float) -> float:
    """One ADA step: p + sign(r_t - target) * num_images / (speed_kimg * 1000), clamped to [0, 1).

    r_t = mean_sign = E[sign(D(real))] over the images since the last step (ADA Sec. 3).
    """
    step = float(np.sign(mean_sign - target)) * num_images / (speed_kimg * 1000)
    return min(max(p + step, 0.0), P_MAX)


class AdaController:
    """Accumulates sign(D(real)) and moves `pipe.p` every `interval` minibatches.

    Usage per minibatch: `ctrl.accumulate(real_logits)` (in the D main phase), then
    `ctrl.step(batch_size)` with the global batch size (all ranks). Under torch.distributed the
    statistics are summed over ranks before each adjustment, so all ranks keep the same p.
    `state_dict()` / `load_state_dict()` carry p and the partial statistics for an exact resume.
    """

    def __init__(self, pipe: Optional[AugmentPipe], config: AdaConfig = AdaConfig()) -> None:
        if pipe is None and config.mode != "noaug":
            raise ValueError(f"aug mode {config.mode!r} needs an AugmentPipe")
        self.pipe = pipe
        self.config = config
        self._sums: Optional[torch.Tensor] = None  # [2]: sum of signs, count (on the logits' device)
        self._images = 0  # images since the last adjustment
        self._batches = 0  # minibatches seen in total
        if pipe is not None:
            pipe.p.fill_(config.initial_p)

    @property
    def p(self) -> float:
        return 0.0 if self.pipe is None else float(self.pipe.p)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add sign(D(real)) of one minibatch (any shape) to the running statistics."""
        if self.config.mode != "ada":
            return
        x = real_logits.detach()
        s = torch.stack([x.sign().sum().to(torch.float32),
                         torch.tensor(float(x.numel()), dtype=torch.float32, device=x.device)])
        self._sums = s if self._sums is None else self._sums.to(x.device) + s

    def step(self, batch_size: int) -> bool:
        """Count one minibatch; every `interval`-th one, adjust p. Returns True if p was adjusted."""
        if self.config.mode != "ada":
            return False
        self._batches += 1
        self._images += int(batch_size)
        if self._batches % self.config.interval != 0:
            return False
        sums = dist.all_reduce_(self._sums.clone() if self._sums is not None else torch.zeros(2))
        sign_sum, count = (float(v) for v in sums.tolist())
        images, self._images, self._sums = self._images, 0, None
        if count <= 0:
            return False
        assert self.pipe is not None
        self.pipe.p.fill_(ada_adjust(float(self.pipe.p), sign_sum / count, self.config.target,
                                     images, self.config.speed_kimg))
        return True

    def state_dict(self) -> dict[str, Any]:
        sums = [0.0, 0.0] if self._sums is None else [float(v) for v in self._sums.tolist()]
        return {"mode": self.config.mode, "p": self.p, "sign_sum": sums[0], "count": sums[1],
                "images": self._images, "batches": self._batches}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("mode", self.config.mode) != self.config.mode:
            raise ValueError(f"checkpoint has aug mode {state['mode']!r}, this run {self.config.mode!r}")
        if self.pipe is not None and self.config.mode == "ada":
            self.pipe.p.fill_(float(state["p"]))
        self._images = int(state.get("images", 0))
        self._batches = int(state.get("batches", 0))
        count = float(state.get("count", 0.0))
        self._sums = (torch.tensor([float(state.get("sign_sum", 0.0)), count], dtype=torch.float32)
                      if count > 0 else None)


def build_augment(config: AdaConfig) -> tuple[Optional[AugmentPipe], AdaController]:
    """The pipeline (None for 'noaug') and its p controller for `config`."""
    pipe = None if config.mode == "noaug" else AugmentPipe(config.pipe, p=config.initial_p)
    return pipe, AdaController(pipe, config)


__all__ = ["ADA_MODES", "AdaConfig", "AdaController", "ada_adjust", "build_augment"]
