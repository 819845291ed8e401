"""The math of training, one minibatch at a time: `Stepper` (StyleGAN2 App. B; the official inner loop).

A `Stepper` owns every piece of training state of one process: G, D, G_ema, the augmentation pipe
and its ADA controller, the Adam optimizers of the training phases, the path-length running mean,
and the step counters. It reads no files and writes none; the run driver (`training.loop.Trainer`)
owns ticks, logs, grids, snapshots and metrics, and asks the stepper for a `TrainingSnapshotState`.

Each minibatch follows the schedule's `StepSettings` and runs the training phases of the official
loop in order: G main, G reg (path length, every `pl_interval` minibatches), D main, D reg (R1,
every `r1_interval`); a regularization interval of 0 runs main and reg together every minibatch
('Gboth' / 'Dboth'). A phase runs all its rounds (gradient accumulation) and then steps its
optimizer. Then G_ema is updated, the counters advance, and ADA adjusts p.

Determinism: every random draw of a training round (latents, labels of fakes, mixing, noise
inputs, augmentation, GP mixes) comes from the global torch RNG seeded with a hash of (seed,
minibatch index, phase, round), and the path-length half of a round from a second hash of the same
coordinates (`PATH_LENGTH_SALT`), so it can be replayed alone. The real images come from a seeded
permutation per epoch indexed by a stored position. So a resumed run repeats exactly what an
uninterrupted one does, and N processes compute exactly what one process computes with the same
per-process micro-batch (up to float summation order in the all_reduce).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .. import distributed as ddp
from ..data.stream import DataStream
from ..io.checkpoint import CheckpointError, load_state_strict
from ..nn.precision import precision_scope
from . import progressive
from .ada import AdaController, build_augment
from .config import TrainingConfig
from .ema import ema_beta, update_ema
from .errors import TrainingSetupError
from .losses import PhaseContext, PhaseWork, RoundInputs, RoundResult, StyleGANLoss, lazy_regularization_adam
from .monitor import TickStats
from .schedule import Schedule, StepSettings, make_schedule
from .snapshot import Resume, StepCounters, TrainingSnapshotState, TrainingState, rng_state, set_rng_state

OPTIMIZER_KEYS = ("G_opt", "D_opt")
# The path-length half of a round draws from round_seed(seed ^ PATH_LENGTH_SALT, ...): its own
# stream, so the stepper can replay exactly the lengths a round trains on before the round runs.
PATH_LENGTH_SALT = 0x5A17


def round_seed(seed: int, batch_idx: int, phase: int, round_idx: int) -> int:
    """The torch seed of one training round (a hash of its coordinates; independent of the process count)."""
    a, b = np.random.SeedSequence([seed & 0xFFFFFFFF, batch_idx, phase, round_idx]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & ((1 << 63) - 1)


@dataclass(frozen=True)
class TrainingPhase:
    """One training phase (the official loop's 'phase'): which network it updates, with which optimizer."""

    name: str  # Gmain, Greg, Gboth, Dmain, Dreg, Dboth
    which: str  # 'G' or 'D'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int  # runs every `interval` minibatches
    lr_ratio: float  # lazy-regularization c (1 without)
    params: tuple[torch.nn.Parameter, ...]  # what it updates: the module's, less frozen layers


_D_LAYERS = ("fromrgb", "conv0", "conv1", "skip")  # a StyleGAN2 D block's layers, in the official count's order


def frozen_layers(D: torch.nn.Module, freezed: int) -> tuple[str, ...]:
    """The `freezed` layers of D nearest its input, as module names (stylegan2-ada-pytorch `--freezed`).

    The official count runs over the blocks from the highest resolution down to 8x8 and, in each,
    over fromrgb (where present), conv0, conv1 and skip (resnet); the 4x4 epilogue and the label
    mapping are never frozen."""
    blocks = sorted(((int(name[1:]), name, m) for name, m in D.named_children()
                     if name[:1] == "b" and name[1:].isdigit() and int(name[1:]) > 4), reverse=True)
    layers = [f"{name}.{layer}" for _, name, block in blocks for layer in _D_LAYERS if hasattr(block, layer)]
    return tuple(layers[:freezed])


def build_phases(cfg: TrainingConfig, G: torch.nn.Module, D: torch.nn.Module) -> list[TrainingPhase]:
    """The training phases and their Adam optimizers (lazy regularization, StyleGAN2 App. B)."""
    phases = []
    g_reg = cfg.loss.pl_interval if cfg.loss.pl_weight > 0 else None
    d_reg = cfg.loss.r1_interval if (cfg.loss.kind == "logistic" and cfg.loss.r1_gamma > 0) else None
    frozen = frozen_layers(D, cfg.freezed)
    for which, module, ocfg, reg in (("G", G, cfg.G_opt, g_reg), ("D", D, cfg.D_opt, d_reg)):
        params = [p for name, p in module.named_parameters()
                  if which == "G" or not any(name.startswith(f + ".") for f in frozen)]
        betas = tuple(float(b) for b in ocfg.betas)
        if not reg:  # none, or every minibatch: main and reg together
            opt = torch.optim.Adam(params, lr=ocfg.lr, betas=betas, eps=ocfg.eps)
            phases.append(TrainingPhase(f"{which}both", which, module, opt, 1, 1.0, tuple(params)))
        else:
            lr, betas = lazy_regularization_adam(ocfg.lr, betas, reg)
            opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=ocfg.eps)
            ratio = reg / (reg + 1)
            phases.append(TrainingPhase(f"{which}main", which, module, opt, 1, ratio, tuple(params)))
            phases.append(TrainingPhase(f"{which}reg", which, module, opt, reg, ratio, tuple(params)))
    return phases


class Stepper:
    """All training state of one process, and one minibatch of training at a time.

    cfg: what to train. data: this process's stream of real images (labels for the fakes come from
    it too). rank / world: this process among `world` (one process: 0 / 1). compile: torch.compile
    G and D for the main phases. Reported loss statistics accumulate in `stats` until the driver
    collects them at a tick.
    """

    def __init__(self, cfg: TrainingConfig, data: DataStream, *, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu", compile: bool = False):
        from ..models import Generator, build_discriminator

        self.cfg, self.data, self.rank, self.world = cfg, data, rank, world
        self.device = torch.device(device)
        self.gen_labels = data.labels.to(self.device)

        # Networks: identical initialisation on every process (then broadcast, to be safe).
        torch.manual_seed(cfg.seed)
        try:
            self.G = Generator(cfg.G).train().requires_grad_(False).to(self.device)
            self.D = build_discriminator(cfg.D).train().requires_grad_(False).to(self.device)
        except ModuleNotFoundError as e:
            raise TrainingSetupError(f"cannot build the networks of this preset: {e}") from None
        self.G_ema = copy.deepcopy(self.G).eval()
        for m in (self.G, self.D, self.G_ema):
            ddp.broadcast_module(m)

        self.augment_pipe: Optional[torch.nn.Module] = None
        self.ada: Optional[AdaController] = None
        if cfg.augment.mode != "noaug":
            pipe, self.ada = build_augment(cfg.augment)
            self.augment_pipe = pipe.train().requires_grad_(False).to(self.device)
        self.loss = StyleGANLoss(self.G, self.D, cfg.loss, self.augment_pipe, compile=compile)
        self.phases = build_phases(cfg, self.G, self.D)
        self.schedule: Schedule = make_schedule(cfg, world)
        self.pl_mean = torch.zeros([], dtype=torch.float32, device=self.device)  # path-length running mean
        self.counters = StepCounters()
        self.stats = TickStats(self.device)
        self.last_settings: Optional[StepSettings] = None

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {}
        for ph in self.phases:
            out.setdefault(f"{ph.which}_opt", ph.opt)
        return out

    # --------------------------------------------------------------------------- state in, state out

    def restore(self, resume: Resume) -> Optional[TrainingState]:
        """Load a snapshot's weights and, when it has one, its training state -> its progress record."""
        nets = self.networks
        for name, sd in resume.weights.items():
            if resume.partial:  # fresh label pathway: what the file lacks or shapes otherwise stays as built
                own = nets[name].state_dict()
                sd = {k: sd[k] if k in sd and sd[k].shape == v.shape else v for k, v in own.items()}
            try:
                load_state_strict(nets[name], sd, f"{resume.path} [{name}]")
            except CheckpointError as e:
                raise TrainingSetupError(f"cannot resume: {e}") from None
        if "G" not in resume.weights and "G_ema" in resume.weights:
            self.G.load_state_dict(self.G_ema.state_dict())
        if "G_ema" not in resume.weights and "G" in resume.weights:
            self.G_ema.load_state_dict(self.G.state_dict())
        s = resume.state
        if s is None:
            return None
        for key, opt in self.optimizers().items():
            opt.load_state_dict(s.optimizers[key])
            for g in opt.param_groups:
                g["betas"] = tuple(g["betas"])
        self.pl_mean.copy_(s.pl_mean.to(self.device))
        if self.ada is not None and s.augment is not None:
            self.ada.load_state_dict(s.augment)
        self.counters = s.progress.counters
        set_rng_state(s.rng)
        return s.progress

    def snapshot_state(self, progress: TrainingState) -> TrainingSnapshotState:
        """Everything a snapshot stores besides the networks, with the driver's `progress` record."""
        return TrainingSnapshotState(progress=progress,
                                     optimizers={k: o.state_dict() for k, o in self.optimizers().items()},
                                     pl_mean=self.pl_mean, augment=None if self.ada is None else self.ada.state_dict(),
                                     rng=rng_state())

    # --------------------------------------------------------------------------- one minibatch

    def step(self) -> StepSettings:
        """One minibatch: follow the schedule's settings, run the due phases, update G_ema and ADA."""
        n = self.counters
        settings = self.schedule.settings(n.cur_nimg, n.growth_stage)
        self._apply(settings)
        reals = self._reals(settings)
        with precision_scope(self.cfg.precision):
            for index, phase in enumerate(self.phases):
                if n.batch_idx % phase.interval == 0:
                    self._run_phase(index, phase, settings, reals)
        update_ema(self.G_ema, self.G, ema_beta(settings.batch, self.cfg.ema_kimg, n.cur_nimg, self.cfg.ema_rampup))
        n.cur_nimg += settings.batch
        n.batch_idx += 1
        n.data_pos += settings.batch
        if self.ada is not None:
            self.ada.step(settings.batch)
        return settings

    def _apply(self, settings: StepSettings) -> None:
        """Optimizer reset, learning rate and level of detail of this step (progressive growing)."""
        if settings.reset_optimizers:
            for opt in self.optimizers().values():
                opt.state.clear()
        self.counters.growth_stage = settings.growth_stage
        if settings.lr is not None:
            for ph in self.phases:
                for g in ph.opt.param_groups:
                    g["lr"] = settings.lr * ph.lr_ratio
        if settings.lod is not None:
            for m in (self.G, self.G_ema, self.D):
                progressive.set_lod(m, settings.lod)
        self.last_settings = settings

    def _reals(self, settings: StepSettings) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's real images of the minibatch, one (images, labels) pair per round."""
        real_u8, real_c = self.data.get(self.counters.data_pos, settings.batch)
        real = real_u8.to(self.device).to(torch.float32) / 127.5 - 1  # [b, C, H, W]
        if settings.lod is not None:
            real = progressive.fade_reals(real, settings.lod)
        return list(zip(real.split(settings.batch_gpu), real_c.to(self.device).split(settings.batch_gpu)))

    def _round_inputs(self, phase: int, round_idx: int, settings: StepSettings,
                      real: tuple[torch.Tensor, torch.Tensor]) -> RoundInputs:
        """Seed the round (this process's `round_idx`-th) and draw its latents and labels."""
        global_round = self.rank * settings.rounds + round_idx
        torch.manual_seed(round_seed(self.cfg.seed, self.counters.batch_idx, phase, global_round))
        bg = settings.batch_gpu
        gen_z = torch.randn([bg, self.G.z_dim], device=self.device)
        gen_c = (self.gen_labels[torch.randint(self.gen_labels.shape[0], [bg], device=self.device)]
                 if self.G.c_dim > 0 else None)
        real_img, real_c = real
        return RoundInputs(real_img, real_c if self.D.c_dim > 0 else None, gen_z, gen_c)

    def _seed_path_length(self, phase: int, round_idx: int, settings: StepSettings) -> None:
        global_round = self.rank * settings.rounds + round_idx
        torch.manual_seed(round_seed(self.cfg.seed ^ PATH_LENGTH_SALT, self.counters.batch_idx, phase, global_round))

    # --------------------------------------------------------------------------- one training phase

    def _run_phase(self, index: int, phase: TrainingPhase, settings: StepSettings, reals) -> None:
        """All rounds of one phase, the gradient all-reduce, the optimizer step, the running means."""
        work = PhaseWork.of(phase.name, self.cfg.loss)
        for p in phase.params:
            p.requires_grad_(True)
        phase.opt.zero_grad(set_to_none=True)
        ctx = PhaseContext(gain=phase.interval / settings.rounds, pl_mean=self.pl_mean,
                           mixing_num_ws=settings.mixing_num_ws, cur_nimg=self.counters.cur_nimg)
        # The path length's phase mean over every round and process (StyleGAN2 Sec. 3.2): several
        # rounds replay their lengths first (first order only), so each round can use it.
        pl_total = self._path_length_total(index, settings, reals, ctx) if work.G_pl and settings.rounds > 1 else None
        # The path length runs here in its two halves, its lengths reduced in between; the rest of
        # the phase (G main, for Gboth) through the loss's one entry.
        rest = {"Greg": None, "Gboth": "Gmain"}[phase.name] if work.G_pl else phase.name
        results = []
        for j in range(settings.rounds):
            inputs = self._round_inputs(index, j, settings, reals[j])
            result = RoundResult() if rest is None else self.loss.accumulate_gradients(rest, inputs, ctx)
            if work.G_pl:
                self._seed_path_length(index, j, settings)
                pl = self.loss.path_length_pass(inputs, ctx)
                total = pl_total if pl_total is not None else ddp.all_reduce_(pl.sum_count())
                result.extend(self.loss.path_length_backward(pl, ctx, total))
            for name, value in result.stats:
                self.stats.report(name, value)
            if self.ada is not None and result.real_logits is not None:
                self.ada.accumulate(result.real_logits)
            results.append(result)
        phase.module.requires_grad_(False)
        ddp.sync_gradients(list(phase.params))
        phase.opt.step()
        phase.opt.zero_grad(set_to_none=True)
        self._update_running_means(results)

    def _path_length_total(self, index: int, settings: StepSettings, reals, ctx: PhaseContext) -> torch.Tensor:
        """[sum, count] of the lengths every round of this phase will train on, over all processes."""
        total = torch.zeros([2], dtype=torch.float32, device=self.device)
        for j in range(settings.rounds):
            inputs = self._round_inputs(index, j, settings, reals[j])
            self._seed_path_length(index, j, settings)
            total += self.loss.path_length_pass(inputs, ctx, create_graph=False).sum_count()
        return ddp.all_reduce_(total)

    def _update_running_means(self, results: list[RoundResult]) -> None:
        """The one place the phase's running statistics are reduced over processes and applied:
        the path-length mean a (StyleGAN2 Sec. 3.2) and the tracked W average (truncation, v1 Sec. 4)."""
        pl = [r.pl_sum for r in results if r.pl_sum is not None]
        if pl:
            s = ddp.all_reduce_(sum(pl[1:], pl[0]))
            if float(s[1]) > 0:
                self.pl_mean.copy_(self.pl_mean.lerp(s[0] / s[1], self.cfg.loss.pl_decay))
        ws = [r.w_sum for r in results if r.w_sum is not None]
        if ws and self.G.mapping.tracks_w_avg:
            s = ddp.all_reduce_(sum(ws[1:], ws[0]))
            if float(s[-1]) > 0:
                self.G.mapping.track_w_avg(s[:-1] / s[-1])


__all__ = ["Stepper", "TrainingPhase", "build_phases", "round_seed", "OPTIMIZER_KEYS", "PATH_LENGTH_SALT"]
