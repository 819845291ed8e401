"""The training loop of one process: phases, ticks, snapshots (StyleGAN / StyleGAN2).

Each minibatch follows the schedule's `StepPlan` and runs the phases of the official loop in order:
G main, G reg (path length, every `pl_interval` minibatches), D main, D reg (R1, every
`r1_interval`); a regularization interval of 0 runs main and reg together every minibatch
('Gboth' / 'Dboth'). Then G_ema is updated, the image counter advances, and ADA adjusts p. A tick
ends every `kimg_per_tick` thousand images (the first after one minibatch); at a tick the loop
prints one line, appends to stats.jsonl and, every `snap` ticks, writes a fakes grid, an atomic
snapshot and the metrics.

Determinism: every random draw of a training round (latents, labels of fakes, mixing, noise
inputs, augmentation, path-length probes, GP mixes) comes from the global torch RNG re-seeded
with a hash of (seed, minibatch index, phase, round). The real images come from a seeded
permutation per epoch indexed by a stored position. So a resumed run repeats exactly what an
uninterrupted one does, and N processes compute exactly what one process computes with the same
per-process micro-batch (up to float summation order in the all_reduce).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .. import distributed as ddp
from ..data.dataset import DatasetError, open_dataset
from ..data.stream import DataStream, grid_indices
from ..io.checkpoint import CheckpointError, load_state_strict
from ..io.images import make_grid, save_grid, save_image
from ..io.serialize import to_dict
from ..nn.precision import precision_scope
from . import progressive
from .ada import build_augment
from .ema import ema_beta, update_ema
from .errors import TrainingDiverged, TrainingSetupError
from .losses import PhaseContext, RoundInputs, RoundResult, StyleGANLoss, lazy_regularization_adam
from .monitor import DivergenceMonitor, TickStats, TickTiming, all_finite, cpu_memory_gb, tick_line, tick_record
from .plan import RunPlan
from .schedule import StepPlan, make_schedule
from .snapshot import (Resume, TrainingSnapshotState, TrainingState, fakes_name, read_resume, rng_state,
                       seed_host_rngs, set_rng_state, snapshot_name, write_snapshot)

OPTIMIZER_KEYS = ("G_opt", "D_opt")


@dataclass
class TrainResult:
    run_dir: Optional[Path]
    state: TrainingState
    last_snapshot: Optional[Path]
    stats: list = field(default_factory=list)  # the stats.jsonl records of this run (rank 0)


def round_seed(seed: int, batch_idx: int, phase: int, round_idx: int) -> int:
    """The torch seed of one training round (a hash of its coordinates; independent of the process count)."""
    a, b = np.random.SeedSequence([seed & 0xFFFFFFFF, batch_idx, phase, round_idx]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & ((1 << 63) - 1)


@dataclass
class _Phase:
    name: str  # Gmain, Greg, Gboth, Dmain, Dreg, Dboth
    which: str  # 'G' or 'D'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int
    lr_ratio: float  # lazy-regularization c (1 without)

    @property
    def path_length(self) -> bool:
        return self.name in ("Greg", "Gboth")


def build_phases(cfg, G: torch.nn.Module, D: torch.nn.Module) -> list[_Phase]:
    """The phases and their Adam optimizers (lazy regularization, StyleGAN2 App. B)."""
    phases = []
    g_reg = cfg.loss.pl_interval if cfg.loss.pl_weight > 0 else None
    d_reg = cfg.loss.r1_interval if (cfg.loss.kind == "logistic" and cfg.loss.r1_gamma > 0) else None
    for which, module, ocfg, reg in (("G", G, cfg.G_opt, g_reg), ("D", D, cfg.D_opt, d_reg)):
        params = list(module.parameters())
        betas = tuple(float(b) for b in ocfg.betas)
        if not reg:  # none, or every minibatch: main and reg together
            opt = torch.optim.Adam(params, lr=ocfg.lr, betas=betas, eps=ocfg.eps)
            phases.append(_Phase(f"{which}both", which, module, opt, 1, 1.0))
        else:
            lr, betas = lazy_regularization_adam(ocfg.lr, betas, reg)
            opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=ocfg.eps)
            ratio = reg / (reg + 1)
            phases.append(_Phase(f"{which}main", which, module, opt, 1, ratio))
            phases.append(_Phase(f"{which}reg", which, module, opt, reg, ratio))
    return phases


class Trainer:
    """One process of a planned training run. `callback(trainer)` runs after every minibatch."""

    def __init__(self, plan: RunPlan, rank: int = 0, device: torch.device | str = "cpu",
                 run_dir: Optional[Path] = None, callback: Optional[Callable[["Trainer"], None]] = None):
        from ..models import Generator, build_discriminator

        cfg = plan.cfg
        self.plan, self.cfg, self.opts, self.rank, self.world = plan, cfg, plan.opts, rank, plan.world
        self.device = torch.device(device)
        self.run_dir = run_dir
        self.callback = callback
        self.is_leader = rank == 0
        self.write = self.is_leader and run_dir is not None

        try:  # planned and validated already: this opens this process's handle
            self.dataset = open_dataset(plan.data.spec, use_labels=cfg.cond, xflip=cfg.mirror)
            self.data = DataStream(self.dataset, cfg.seed, rank, self.world, self.opts.workers)
        except DatasetError as e:
            raise TrainingSetupError(f"cannot open --data {plan.data.spec}: {e}") from None
        self.gen_labels = self.data.labels.to(self.device)
        seed_host_rngs(cfg.seed, rank)

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

        self.augment_pipe, self.ada = None, None
        if cfg.augment.mode != "noaug":
            pipe, self.ada = build_augment(cfg.augment)
            self.augment_pipe = pipe.train().requires_grad_(False).to(self.device)
        self.loss = StyleGANLoss(self.G, self.D, cfg.loss, self.augment_pipe, compile=self.opts.compile)
        self.phases = build_phases(cfg, self.G, self.D)
        self.schedule = make_schedule(cfg, self.world)
        self.pl_mean = torch.zeros([], dtype=torch.float32, device=self.device)  # path-length running mean
        self.last_plan: Optional[StepPlan] = None

        self.state = TrainingState()
        self.stats = TickStats(self.device)
        self.monitor = DivergenceMonitor(self.opts.max_bad_ticks)
        self.records: list[dict] = []
        self.resume: Optional[Resume] = None
        if self.opts.resume:
            self.resume = read_resume(self.opts.resume, cfg, OPTIMIZER_KEYS)
            self._restore(self.resume)
        self._metrics_disabled = False

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {}
        for ph in self.phases:
            out.setdefault(f"{ph.which}_opt", ph.opt)
        return out

    def _restore(self, resume: Resume) -> None:
        nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        for name, sd in resume.weights.items():
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
            return
        for key, opt in self.optimizers().items():
            opt.load_state_dict(s.optimizers[key])
            for g in opt.param_groups:
                g["betas"] = tuple(g["betas"])
        self.pl_mean.copy_(s.pl_mean.to(self.device))
        if self.ada is not None and s.augment is not None:
            self.ada.load_state_dict(s.augment)
        self.state = s.progress
        self.monitor.bad_ticks = self.state.bad_ticks
        set_rng_state(s.rng)

    # --------------------------------------------------------------------------- one minibatch

    def step(self) -> None:
        """One minibatch: follow the schedule's plan, run the due phases, update G_ema and ADA."""
        st = self.state
        plan = self.schedule.plan(st.cur_nimg, st.phase_index)
        self._apply_plan(plan)
        reals = self._reals(plan)
        with precision_scope(self.cfg.precision):
            for pi, ph in enumerate(self.phases):
                if st.batch_idx % ph.interval == 0:
                    self._run_phase(pi, ph, plan, reals)
        update_ema(self.G_ema, self.G, ema_beta(plan.batch, self.cfg.ema_kimg, st.cur_nimg, self.cfg.ema_rampup))
        st.cur_nimg += plan.batch
        st.batch_idx += 1
        st.data_pos += plan.batch
        if self.ada is not None:
            self.ada.step(plan.batch)

    def _apply_plan(self, plan: StepPlan) -> None:
        """Optimizer reset, learning rate and level of detail of this step (progressive growing)."""
        if plan.reset_optimizers:
            for opt in self.optimizers().values():
                opt.state.clear()
        self.state.phase_index = plan.phase_index
        if plan.lr is not None:
            for ph in self.phases:
                for g in ph.opt.param_groups:
                    g["lr"] = plan.lr * ph.lr_ratio
        if plan.lod is not None:
            for m in (self.G, self.G_ema, self.D):
                progressive.set_lod(m, plan.lod)
        self.last_plan = plan

    def _reals(self, plan: StepPlan) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's real images of the minibatch, one (images, labels) pair per round."""
        real_u8, real_c = self.data.get(self.state.data_pos, plan.batch)
        real = real_u8.to(self.device).to(torch.float32) / 127.5 - 1  # [b, C, H, W]
        if plan.lod is not None:
            real = progressive.fade_reals(real, plan.lod)
        return list(zip(real.split(plan.batch_gpu), real_c.to(self.device).split(plan.batch_gpu)))

    def _round_inputs(self, phase: int, global_round: int, plan: StepPlan,
                      real: tuple[torch.Tensor, torch.Tensor]) -> tuple[RoundInputs, int]:
        """Seed the round and draw its latents (and labels) -> (inputs, the round's path-length seed)."""
        seed, batch_idx = self.cfg.seed, self.state.batch_idx
        torch.manual_seed(round_seed(seed, batch_idx, phase, global_round))
        bg = plan.batch_gpu
        gen_z = torch.randn([bg, self.G.z_dim], device=self.device)
        gen_c = (self.gen_labels[torch.randint(self.gen_labels.shape[0], [bg], device=self.device)]
                 if self.G.c_dim > 0 else None)
        real_img, real_c = real
        inputs = RoundInputs(real_img, real_c if self.D.c_dim > 0 else None, gen_z, gen_c)
        return inputs, round_seed(seed ^ 0x5A17, batch_idx, phase, global_round)

    def _path_length_reduce(self, phase: int, plan: StepPlan, reals, ctx: PhaseContext):
        """The map from a round's [sum, count] of path lengths to the whole phase's (all rounds and ranks).

        One round per process: the processes add up their rounds' sums as they go. Several rounds
        (gradient accumulation): a first pass recomputes every round's lengths (same seeds, first
        order only), so each round can use the phase mean before the later rounds have run.
        """
        if plan.rounds == 1:
            return lambda stats: ddp.all_reduce_(stats.clone())
        total = torch.zeros([2], dtype=torch.float32, device=self.device)
        for j in range(plan.rounds):
            inputs, pl_seed = self._round_inputs(phase, self.rank * plan.rounds + j, plan, reals[j])
            lengths = self.loss.path_lengths_only(inputs, dataclasses.replace(ctx, pl_seed=pl_seed))
            total += torch.stack([lengths.sum().to(torch.float32),
                                  torch.tensor(float(lengths.shape[0]), device=self.device)])
        ddp.all_reduce_(total)
        return lambda stats: total

    def _run_phase(self, pi: int, ph: _Phase, plan: StepPlan, reals) -> None:
        ph.module.requires_grad_(True)
        ph.opt.zero_grad(set_to_none=True)
        ctx = PhaseContext(gain=ph.interval / plan.rounds, pl_mean=self.pl_mean, mixing_num_ws=plan.mixing_num_ws)
        if ph.path_length and self.cfg.loss.pl_weight > 0:
            ctx = dataclasses.replace(ctx, pl_reduce=self._path_length_reduce(pi, plan, reals, ctx))
        results = []
        for j in range(plan.rounds):
            inputs, pl_seed = self._round_inputs(pi, self.rank * plan.rounds + j, plan, reals[j])
            result = self.loss.accumulate_gradients(ph.name, inputs, dataclasses.replace(ctx, pl_seed=pl_seed))
            for name, value in result.stats:
                self.stats.report(name, value)
            if self.ada is not None and result.real_logits is not None:
                self.ada.accumulate(result.real_logits)
            results.append(result)
        ph.module.requires_grad_(False)
        ddp.sync_gradients(list(ph.module.parameters()))
        ph.opt.step()
        ph.opt.zero_grad(set_to_none=True)
        self._update_running_means(results)

    def _update_running_means(self, results: list[RoundResult]) -> None:
        """The one place the phase's running statistics are reduced over processes and applied:
        the path-length mean a (StyleGAN2 Sec. 3.2) and the tracked W average (truncation, v1 Sec. 4)."""
        pl = [r.pl_sum for r in results if r.pl_sum is not None]
        if pl:
            s = ddp.all_reduce_(sum(pl[1:], pl[0]))
            if float(s[1]) > 0:
                self.pl_mean.copy_(self.pl_mean.lerp(s[0] / s[1], self.cfg.loss.pl_decay))
        ws = [r.w_sum for r in results if r.w_sum is not None]
        mapping = self.G.mapping
        if ws and hasattr(mapping, "w_avg") and mapping.w_avg_beta is not None:
            s = ddp.all_reduce_(sum(ws[1:], ws[0]))
            if float(s[-1]) > 0:
                mean = (s[:-1] / s[-1]).to(mapping.w_avg.dtype)
                mapping.w_avg.copy_(mean.lerp(mapping.w_avg, mapping.w_avg_beta))

    # --------------------------------------------------------------------------- files

    def log(self, msg: str) -> None:
        if not self.is_leader:
            return
        if not self.opts.quiet:
            print(msg, flush=True)  # also lands in log.txt through the Tee
        elif self.run_dir is not None:
            with open(self.run_dir / "log.txt", "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def _grid_setup(self) -> None:
        from ..synth.sample import z_from_seeds

        res = self.cfg.G.img_resolution
        cols, rows = self.opts.grid or (int(np.clip(1920 // res, 4, 16)), int(np.clip(1080 // res, 4, 16)))
        self.grid_shape = (cols, rows)
        idx = grid_indices(self.dataset, cols, rows, self.cfg.seed)
        self.grid_reals = torch.stack([torch.from_numpy(self.dataset[int(i)][0]) for i in idx])
        self.grid_c = self.data.labels[torch.from_numpy(idx)] if self.G.c_dim > 0 else None
        self.grid_z = z_from_seeds(range(cols * rows), self.G.z_dim)

    @torch.no_grad()
    def save_fakes(self, path: Path) -> None:
        """G_ema's images of the grid latents (const noise), as in the official fakes grids."""
        imgs = []
        bs = max(self.cfg.batch_gpu or (self.cfg.batch // self.world), 8)
        for i in range(0, self.grid_z.shape[0], bs):
            z = self.grid_z[i:i + bs].to(self.device)
            c = None if self.grid_c is None else self.grid_c[i:i + bs].to(self.device)
            with precision_scope(self.cfg.precision):
                imgs.append(self.G_ema(z, c, noise_mode="const").float().cpu())
        cols, rows = self.grid_shape
        save_grid(torch.cat(imgs), path, rows=rows, cols=cols)

    def save_snapshot(self, path: Path) -> None:
        # The progress as the next tick starts: a resumed run continues from there.
        progress = dataclasses.replace(self.state, cur_tick=self.state.cur_tick + 1,
                                       tick_start_nimg=self.state.cur_nimg, bad_ticks=self.monitor.bad_ticks,
                                       last_snapshot=str(path))
        state = TrainingSnapshotState(progress=progress,
                                      optimizers={k: o.state_dict() for k, o in self.optimizers().items()},
                                      pl_mean=self.pl_mean, augment=None if self.ada is None else self.ada.state_dict(),
                                      rng=rng_state())
        info = {"kimg": self.state.cur_nimg / 1000, "tick": self.state.cur_tick, "training": to_dict(self.cfg),
                "run": to_dict(self.opts), "world_size": self.world, "timestamp": time.time()}
        write_snapshot(path, {"G": self.G, "D": self.D, "G_ema": self.G_ema}, state, info)

    def _run_metrics(self, snapshot: Optional[Path]) -> None:
        if not self.cfg.metrics or self._metrics_disabled:
            return
        from ..metrics import MetricError, append_metric_jsonl, compute_metric

        for name in self.cfg.metrics:
            try:
                result = compute_metric(name, self.G_ema, self.opts.data, device=self.device,
                                        batch=max(self.cfg.batch // self.world, 1), num_gpus=self.world,
                                        rank=self.rank, mirror=self.cfg.mirror, progress=False)
            except MetricError as e:
                self.log(f"metric {name} failed, metrics disabled for this run: {e}")
                self._metrics_disabled = True
                return
            if self.write:
                append_metric_jsonl(self.run_dir, result, snapshot=snapshot)
                vals = " ".join(f"{k} {v:.4g}" for k, v in result["results"].items())
                self.log(f"metric {name}: {vals} ({result.get('total_time_str', '')})")

    def _write_config(self) -> None:
        run = dict(to_dict(self.opts), world_size=self.world, device_resolved=str(self.device),
                   dataset_name=self.dataset.name, dataset_size=len(self.dataset),
                   resumed_from=None if self.resume is None else self.resume.path)
        with open(self.run_dir / "config.json", "w", encoding="utf-8") as f:
            json.dump({"training": to_dict(self.cfg), "run": run}, f, indent=2)

    # --------------------------------------------------------------------------- the loop

    def _start(self) -> None:
        """Config, reals and initial fakes grids, and what the log should say before the first step."""
        cfg = self.cfg
        if self.write:
            self._write_config()
        if self.resume is not None:
            self.log(self.resume.note)
            if self.resume.config_changed:
                self.log("note: the training config differs from the snapshot's: this is not an exact continuation")
        if self.is_leader:
            self._grid_setup()
        if self.write:
            cols, rows = self.grid_shape
            save_image(make_grid(self.grid_reals.permute(0, 2, 3, 1).numpy(), rows=rows, cols=cols),
                       self.run_dir / "reals.png")
            self.save_fakes(self.run_dir / "fakes_init.png")
        self.log(f"training for {cfg.total_kimg:g} kimg on {self.world} process(es), device {self.device}, "
                 f"batch {cfg.batch} (per process {cfg.batch // self.world}), dataset {len(self.dataset)} images")
        if (growth := self.schedule.describe()) is not None:
            self.log(growth)
        if cfg.precision is not None:
            p = cfg.precision
            self.log(f"precision {p.dtype}: {p.num_low_res} highest resolutions of G and D, clamp {p.conv_clamp}")
        for note in self.plan.notes:
            self.log(note)

    def _time_is_up(self, deadline: Optional[float]) -> bool:
        """Past --max-minutes on any process (all agree, so all stop at the same minibatch)."""
        if deadline is None:
            return False
        late = torch.tensor([1.0 if time.time() >= deadline else 0.0], device=self.device)
        return ddp.all_reduce_(late, "max").item() > 0

    def _end_tick(self, timing_start: tuple[float, float, float], done: bool) -> Optional[str]:
        """Statistics, log line, snapshot and metrics of the tick that ends now -> reason to stop, if any."""
        cfg, st = self.cfg, self.state
        start_time, tick_start_time, maintenance = timing_start
        tick_end_time = time.time()
        stats, nonfinite = self.stats.collect()
        flag = torch.tensor([1.0 if all_finite(self.G, self.D, self.G_ema) else 0.0], device=self.device)
        weights_ok = bool(ddp.all_reduce_(flag, "min").item() > 0)
        good, stop = self.monitor.update(nonfinite, weights_ok)
        st.bad_ticks = self.monitor.bad_ticks
        gpumem = 0.0
        if self.device.type == "cuda":
            gpumem = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
            torch.cuda.reset_peak_memory_stats(self.device)
        timing = TickTiming(total=tick_end_time - start_time, tick=tick_end_time - tick_start_time,
                            kimg=(st.cur_nimg - st.tick_start_nimg) / 1000, maintenance=maintenance,
                            cpu_mem=cpu_memory_gb(), gpu_mem=gpumem)
        p = 0.0 if self.ada is None else self.ada.p
        plan = self.last_plan
        prog = (plan.resolution, plan.lod) if plan is not None and plan.lod is not None else None
        self.log(tick_line(st.cur_tick, st.cur_nimg / 1000, timing, p, stats, prog))

        if cfg.snap > 0 and (done or st.cur_tick % cfg.snap == 0):
            if good:
                self._snapshot_and_metrics()
            else:
                self.log(f"not writing a snapshot for tick {st.cur_tick}: non-finite values "
                         f"(last good snapshot: {st.last_snapshot})")
        record = tick_record(st.cur_tick, st.cur_nimg / 1000, timing, p, stats, nonfinite, time.time())
        if self.is_leader:
            self.records.append(record)
        if self.write:
            with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return stop

    def _snapshot_and_metrics(self) -> None:
        st = self.state
        path = None
        if self.write:
            self.save_fakes(self.run_dir / fakes_name(st.cur_nimg))
            path = self.run_dir / snapshot_name(st.cur_nimg)
            self.save_snapshot(path)
            st.last_snapshot = str(path)
        self._run_metrics(path)

    def _diverged(self, reason: str) -> TrainingDiverged:
        st, last = self.state, self.state.last_snapshot
        msg = (f"training stopped at tick {st.cur_tick}, kimg {st.cur_nimg / 1000:.3f}: {reason}. "
               + (f"The last good snapshot is {last}; resume from it with `stylegan train --resume {last}` "
                  f"(perhaps with a lower --lr or --gamma)." if last else
                  "No good snapshot was written before this happened."))
        self.log(msg)
        return TrainingDiverged(msg, last)

    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        self._start()
        total_nimg = int(round(cfg.total_kimg * 1000))
        start_time = tick_start_time = time.time()
        maintenance = 0.0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        deadline = None if self.opts.max_minutes is None else start_time + 60 * self.opts.max_minutes
        done = st.cur_nimg >= total_nimg
        while not done:
            self.step()
            if self.callback is not None:
                self.callback(self)
            done = st.cur_nimg >= total_nimg
            if not done and self._time_is_up(deadline):
                done = True
                self.log(f"--max-minutes {self.opts.max_minutes:g} reached: stopping at kimg "
                         f"{st.cur_nimg / 1000:.3f} of {cfg.total_kimg:g}")
            if not done and st.cur_tick != 0 and st.cur_nimg < st.tick_start_nimg + cfg.kimg_per_tick * 1000:
                continue
            tick_end = time.time()
            stop = self._end_tick((start_time, tick_start_time, maintenance), done)
            if stop is not None:
                raise self._diverged(stop)
            st.cur_tick += 1
            st.tick_start_nimg = st.cur_nimg
            tick_start_time = time.time()
            maintenance = tick_start_time - tick_end
        self.log("done.")
        last = Path(st.last_snapshot) if st.last_snapshot else None
        return TrainResult(self.run_dir, st, last, self.records)


__all__ = ["Trainer", "TrainResult", "round_seed", "build_phases"]
