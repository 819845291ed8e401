"""The training loop: phases, ticks, snapshots, exact resume, multi-process (StyleGAN / StyleGAN2).

    from stylegan.training.loop import train
    result = train(cfg, "builtin:mnist", "runs", device="cpu")   # -> TrainResult(run_dir, state, ...)

Each minibatch runs the phases of the official loop in order: G main, G reg (path length, every
`pl_interval` minibatches), D main, D reg (R1, every `r1_interval`); a regularization interval of
0 runs main and reg together every minibatch ('Gboth' / 'Dboth'). Then G_ema is updated, the
image counter advances, and ADA adjusts p. A tick ends every `kimg_per_tick` thousand images (the
first after one minibatch); at a tick the loop prints one line, appends to stats.jsonl and, every
`snap` ticks, writes fakesNNNNNN.png, an atomic snapshot-NNNNNN.safetensors and the metrics.

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
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..device import DeviceUnavailable, resolve_device as _resolve_device
from ..io.checkpoint import CheckpointError, load_state_strict, read_checkpoint, save_checkpoint
from ..io.serialize import to_dict
from . import distributed as ddp
from .config import TrainingConfig
from .ema import ema_beta, update_ema
from .losses import StyleGANLoss, lazy_regularization_adam
from .rundir import Tee, cpu_memory_gb, format_time, next_run_dir

STATE_FORMAT = "stylegan-training-state"
STATE_VERSION = 1

# Statistics reported by the loss and reduced over ranks at every tick (a fixed list keeps the
# all_reduce layout identical on every rank).
STAT_NAMES = ("Loss/G/loss", "Loss/G/reg", "Loss/pl_penalty", "Loss/D/loss", "Loss/D/reg", "Loss/r1_penalty",
              "Loss/gp", "Loss/scores/real", "Loss/scores/fake", "Loss/signs/real", "Loss/signs/fake")
# Values whose non-finiteness counts as a diverging run.
LOSS_NAMES = ("Loss/G/loss", "Loss/G/reg", "Loss/D/loss", "Loss/D/reg")


class TrainingDiverged(RuntimeError):
    """Training stopped because losses or weights became NaN / Inf (see docs/training.md)."""

    def __init__(self, message: str, last_snapshot: Optional[str] = None):
        super().__init__(message)
        self.last_snapshot = last_snapshot


class TrainingSetupError(ValueError):
    """The configuration, data or resume file cannot be trained as asked (clear message)."""


@dataclass
class TrainingState:
    """Progress counters saved in every snapshot (with optimizers, pl_mean, ADA and RNG states)."""

    cur_nimg: int = 0  # real images shown so far (all processes)
    cur_tick: int = 0  # index of the tick in progress
    batch_idx: int = 0  # minibatches so far
    tick_start_nimg: int = 0
    data_pos: int = 0  # position in the global real-image stream
    phase_index: int = -1  # progressive growing: phase of the last minibatch (-1: none yet)
    bad_ticks: int = 0  # consecutive ticks with non-finite losses
    last_snapshot: Optional[str] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run (everything that is not the math of TrainingConfig)."""

    data: str
    outdir: str = "runs"
    run_dir: Optional[str] = None  # explicit run directory (default: next numbered one in outdir)
    desc: Optional[str] = None  # run name suffix (default: dataset name + preset)
    device: str = "auto"
    gpus: int = 1  # processes (GPUs, or CPU processes with --device cpu)
    resume: Optional[str] = None
    workers: int = 2  # data loader processes for datasets streamed from disk
    max_bad_ticks: int = 3  # stop after this many consecutive ticks with non-finite losses
    grid: Optional[tuple[int, int]] = None  # (cols, rows) of reals.png / fakes*.png
    quiet: bool = False  # no tick lines on stdout (still in log.txt)
    write_files: bool = True  # False: no run directory (benchmarks, some tests)
    threads: Optional[int] = None  # CPU threads per process (default: torch's, or cores / processes)
    max_minutes: Optional[float] = None  # also stop at the first tick after this much training time
    retain_malloc: bool = True  # CPU: glibc keeps freed blocks for reuse (`perf.retain_malloc`; +2-30%)
    compile: bool = False  # torch.compile G and D for the main phases (regularization stays eager)


@dataclass
class TrainResult:
    run_dir: Optional[Path]
    state: TrainingState
    last_snapshot: Optional[Path]
    stats: list = field(default_factory=list)  # the stats.jsonl records of this run (rank 0)


# ----------------------------------------------------------------------------------- helpers


def resolve_device(name: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """`stylegan.device.resolve_device`, with a missing device reported as a setup error."""
    try:
        return _resolve_device(name, local_rank)
    except DeviceUnavailable as e:
        raise TrainingSetupError(str(e)) from None


def largest_divisor_at_most(n: int, k: int) -> int:
    k = max(min(k, n), 1)
    while n % k:
        k -= 1
    return k


def micro_batch(batch: int, world: int, batch_gpu: Optional[int]) -> tuple[int, int]:
    """(per-process micro-batch, rounds of gradient accumulation) for a total `batch`."""
    if batch % world:
        raise TrainingSetupError(f"--batch {batch} is not divisible by --gpus {world}")
    per = batch // world
    bg = per if batch_gpu is None else min(batch_gpu, per)
    if per % bg:
        raise TrainingSetupError(f"--batch-gpu {bg} must divide the per-GPU batch {per} (= batch / gpus)")
    return bg, per // bg


def check_config(cfg: TrainingConfig, world: int) -> None:
    """Validate batch / mbstd / loss settings before anything expensive starts."""
    if cfg.progressive is None:
        bg, _ = micro_batch(cfg.batch, world, cfg.batch_gpu)
        group = cfg.D.mbstd_group_size
        if cfg.D.mbstd_num_channels > 0 and group is not None and bg % min(group, bg):
            raise TrainingSetupError(
                f"the minibatch-std group size {group} must divide the per-GPU micro-batch {bg}; "
                f"use --batch-gpu or --batch so that it does (or a preset with a smaller mbstd group)")
    if cfg.loss.kind not in ("logistic", "wgan-gp"):
        raise TrainingSetupError(f"unknown loss kind {cfg.loss.kind!r}")
    if cfg.kimg_per_tick <= 0:
        raise TrainingSetupError("--kimg-per-tick must be positive")
    if cfg.loss.pl_batch_shrink < 1:
        raise TrainingSetupError("pl_batch_shrink must be >= 1")


def fit_mbstd(cfg: TrainingConfig, world: int) -> TrainingConfig:
    """`cfg` with the minibatch-std group shrunk to divide the per-GPU micro-batch (non-growing presets)."""
    if cfg.progressive is not None or cfg.D.mbstd_group_size is None:
        return cfg
    bg, _ = micro_batch(cfg.batch, world, cfg.batch_gpu)
    group = largest_divisor_at_most(bg, cfg.D.mbstd_group_size)
    if group == cfg.D.mbstd_group_size:
        return cfg
    return cfg.replace(D=cfg.D.replace(mbstd_group_size=group))


def round_seed(seed: int, batch_idx: int, phase: int, round_idx: int) -> int:
    """The torch seed of one training round (a hash of its coordinates; independent of the process count)."""
    a, b = np.random.SeedSequence([seed & 0xFFFFFFFF, batch_idx, phase, round_idx]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & ((1 << 63) - 1)


# ----------------------------------------------------------------------------------- data


class DataStream:
    """Real images in a seeded per-epoch order, addressed by a global position (exact resume).

    Global minibatch = positions [pos, pos + batch); process r of g takes the r-th contiguous
    share. Small datasets (<= `cache_bytes`) are decoded once into memory; larger ones are read
    by a DataLoader with `workers` processes.
    """

    def __init__(self, dataset, seed: int, rank: int = 0, world: int = 1, workers: int = 2,
                 cache_bytes: int = 512 << 20):
        self.dataset, self.seed, self.rank, self.world, self.workers = dataset, seed, rank, world, workers
        self.n = len(dataset)
        if self.n == 0:
            raise TrainingSetupError("the dataset is empty")
        c, h, w = dataset.image_shape
        self.images: Optional[torch.Tensor] = None
        self.labels = torch.from_numpy(np.stack([dataset.get_label(i) for i in range(self.n)])).to(torch.float32)
        if self.n * c * h * w <= cache_bytes:
            self.images = self._load_all()
        self._perm_cache: dict[int, np.ndarray] = {}
        self._loader = None
        self._loader_next: Optional[tuple[int, int]] = None  # (pos, batch) the loader yields next

    def _load_all(self) -> torch.Tensor:
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=256, shuffle=False,
                                             num_workers=self.workers if self.n > 20000 else 0)
        return torch.cat([img for img, _ in loader])  # [N, C, H, W] uint8

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            self._perm_cache[epoch] = np.random.RandomState([self.seed & 0xFFFFFFFF, epoch]).permutation(self.n)
        return self._perm_cache[epoch]

    def indices(self, start: int, count: int) -> np.ndarray:
        """Dataset indices at global stream positions [start, start + count)."""
        pos = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(pos // self.n):
            sel = (pos // self.n) == epoch
            out[sel] = self.permutation(int(epoch))[pos[sel] % self.n]
        return out

    def rank_indices(self, pos: int, batch: int) -> np.ndarray:
        per = batch // self.world
        return self.indices(pos + self.rank * per, per)

    def get(self, pos: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the global minibatch at `pos`: (uint8 [b, C, H, W], labels [b, L])."""
        idx = self.rank_indices(pos, batch)
        if self.images is not None:
            t = torch.from_numpy(idx)
            return self.images[t], self.labels[t]
        if self._loader is None or self._loader_next != (pos, batch):
            self._start_loader(pos, batch)
        img, lab = next(self._loader)
        self._loader_next = (pos + batch, batch)
        return img, lab.to(torch.float32)

    def _start_loader(self, pos: int, batch: int) -> None:
        stream = self

        class _Batches(torch.utils.data.Sampler):
            def __iter__(self):
                p = pos
                while True:
                    yield stream.rank_indices(p, batch).tolist()
                    p += batch

        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=_Batches(), num_workers=self.workers,
                                             prefetch_factor=2 if self.workers > 0 else None,
                                             persistent_workers=False)
        self._loader = iter(loader)


def grid_indices(dataset, cols: int, rows: int, seed: int) -> np.ndarray:
    """Images for reals.png: random, or one class per row for labelled data."""
    rnd = np.random.RandomState(seed)
    n = len(dataset)
    if getattr(dataset, "label_dim", 0) == 0:
        return rnd.permutation(max(n, cols * rows))[: cols * rows] % n
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        groups.setdefault(tuple(np.asarray(dataset.get_label(i)).round(6).tolist()), []).append(i)
    order = sorted(groups, reverse=True)
    for k in order:
        rnd.shuffle(groups[k])
    out, taken = [], {k: 0 for k in order}
    for y in range(rows):
        k = order[y % len(order)]
        g = groups[k]
        out += [g[(taken[k] + x) % len(g)] for x in range(cols)]
        taken[k] += cols
    return np.asarray(out)


# ----------------------------------------------------------------------------------- statistics


class TickStats:
    """Sums / squares / counts of reported per-sample values on the device; reduced at tick end."""

    def __init__(self, device: torch.device):
        self.device = device
        self.index = {n: i for i, n in enumerate(STAT_NAMES)}
        self.reset()

    def reset(self) -> None:
        self.acc = torch.zeros([len(STAT_NAMES), 3], dtype=torch.float32, device=self.device)
        self.nonfinite = torch.zeros([], dtype=torch.float32, device=self.device)

    def report(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().flatten().to(torch.float32)
        if name in LOSS_NAMES:
            self.nonfinite += (~torch.isfinite(v)).sum()
        self.acc[self.index[name]] += torch.stack([v.sum(), v.square().sum(),
                                                   torch.tensor(float(v.numel()), device=v.device)])

    def collect(self) -> tuple[dict[str, dict], int]:
        """{name: {num, mean, std}} over all processes since the last call, and the non-finite count."""
        flat = torch.cat([self.acc.flatten(), self.nonfinite.reshape(1)])
        ddp.all_reduce_(flat)
        flat = flat.cpu().to(torch.float64)
        self.reset()
        acc, nonfinite = flat[:-1].reshape(len(STAT_NAMES), 3), int(flat[-1])
        out = {}
        for name, (s, sq, n) in zip(STAT_NAMES, acc.tolist()):
            if n > 0:
                mean = s / n
                var = max(sq / n - mean * mean, 0.0) if math.isfinite(mean) else float("nan")
                out[name] = {"num": int(n), "mean": mean, "std": math.sqrt(var) if math.isfinite(var) else var}
        return out, nonfinite


class DivergenceMonitor:
    """The NaN policy (docs/training.md 'Non-finite values').

    Per minibatch the gradients go through nan_to_num (NaN -> 0, +-Inf -> +-1e5) before the
    optimizer step, as in the official loop, so a single bad minibatch does not poison the weights.
    At every tick:
      * any non-finite weight or buffer in G, D or G_ema -> stop now (it cannot recover);
      * a non-finite loss value (G / D main or regularization term) makes the tick *bad*: no
        snapshot is written for it (the last good one is kept), and after `max_bad_ticks`
        consecutive bad ticks the run stops.
    """

    def __init__(self, max_bad_ticks: int = 3, bad_ticks: int = 0):
        self.max_bad_ticks = max(int(max_bad_ticks), 1)
        self.bad_ticks = bad_ticks

    def update(self, nonfinite_losses: int, weights_finite: bool) -> tuple[bool, Optional[str]]:
        """-> (this tick may be snapshotted, reason to stop or None)."""
        if not weights_finite:
            self.bad_ticks += 1
            return False, "network weights became NaN/Inf"
        if nonfinite_losses > 0:
            self.bad_ticks += 1
            if self.bad_ticks >= self.max_bad_ticks:
                return False, (f"losses were NaN/Inf in {self.bad_ticks} consecutive ticks "
                               f"({nonfinite_losses} non-finite values in the last one)")
            return False, None
        self.bad_ticks = 0
        return True, None


def all_finite(*modules: torch.nn.Module) -> bool:
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return False
    return True


# ----------------------------------------------------------------------------------- RNG state


def rng_state() -> dict:
    np_state = np.random.get_state()
    py = random.getstate()
    out = {"torch": torch.get_rng_state(),
           "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                     "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
           "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
           "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() and torch.cuda.is_initialized() else None}
    return out


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"].to(torch.uint8))
    n = s["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = s["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if s.get("cuda") and torch.cuda.is_available():
        states = [t.to(torch.uint8) for t in s["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ----------------------------------------------------------------------------------- the trainer


@dataclass
class _Phase:
    name: str
    which: str  # 'G' or 'D'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int
    lr_ratio: float  # lazy-regularization c (1 without)


class Trainer:
    """One process of a training run. `callback(trainer)` runs after every minibatch."""

    def __init__(self, cfg: TrainingConfig, opts: RunOptions, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu", run_dir: Optional[Path] = None,
                 callback: Optional[Callable[["Trainer"], None]] = None):
        from ..data.dataset import DatasetError, open_dataset
        from ..models import Generator, build_discriminator

        self.cfg, self.opts, self.rank, self.world = cfg, opts, rank, world
        self.device = torch.device(device)
        self.run_dir = run_dir
        self.callback = callback
        self.is_leader = rank == 0
        self.write = self.is_leader and run_dir is not None
        check_config(cfg, world)

        # Data.
        try:
            self.dataset = open_dataset(opts.data, use_labels=cfg.cond, xflip=cfg.mirror)
        except DatasetError as e:
            raise TrainingSetupError(f"cannot open --data {opts.data}: {e}") from None
        ds = self.dataset
        if (ds.resolution, ds.num_channels) != (cfg.G.img_resolution, cfg.G.img_channels):
            raise TrainingSetupError(
                f"the dataset is {ds.resolution}x{ds.resolution}x{ds.num_channels} but the networks are "
                f"configured for {cfg.G.img_resolution}x{cfg.G.img_resolution}x{cfg.G.img_channels}")
        if cfg.cond and ds.label_dim == 0:
            raise TrainingSetupError(f"--cond needs labels, but {opts.data} has no dataset.json labels")
        if ds.label_dim != cfg.G.c_dim or ds.label_dim != cfg.D.c_dim:
            raise TrainingSetupError(f"the dataset has {ds.label_dim} label dimensions, the networks "
                                     f"c_dim G {cfg.G.c_dim} / D {cfg.D.c_dim}")
        self.data = DataStream(ds, cfg.seed, rank, world, opts.workers)
        self.gen_labels = self.data.labels.to(self.device)

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

        # Augmentation.
        self.augment_pipe = self.ada = None
        if cfg.augment.mode != "noaug":
            from .augment import build_augment

            pipe, ctrl = build_augment(cfg.augment.mode, cfg.augment.pipe,
                                       p=cfg.augment.p, target=cfg.augment.target,
                                       interval=cfg.augment.interval, speed_kimg=cfg.augment.speed_kimg)
            self.augment_pipe = pipe.train().requires_grad_(False).to(self.device)
            self.ada = ctrl

        self.loss = StyleGANLoss(self.G, self.D, cfg.loss, self.augment_pipe, self.device, compile=opts.compile)
        if self.ada is not None:
            self.loss.real_logits_hook = self.ada.accumulate
        self.phases = self._build_phases()

        # Progressive growing (StyleGAN v1 / StyleGAN2 configs A-D).
        self.progressive = None
        if cfg.progressive is not None:
            from . import progressive

            self.progressive = progressive
        self.cur_phase = None

        self.state = TrainingState()
        self.stats = TickStats(self.device)
        self.monitor = DivergenceMonitor(opts.max_bad_ticks)
        self.records: list[dict] = []
        self.resumed_from: Optional[str] = None
        if opts.resume:
            self._resume(opts.resume)
        self._metrics_disabled = False

    # --------------------------------------------------------------------------- setup

    def _build_phases(self) -> list[_Phase]:
        cfg = self.cfg
        phases = []
        g_reg = cfg.loss.pl_interval if cfg.loss.pl_weight > 0 else None
        d_reg = cfg.loss.r1_interval if (cfg.loss.kind == "logistic" and cfg.loss.r1_gamma > 0) else None
        for which, module, ocfg, reg in (("G", self.G, cfg.G_opt, g_reg), ("D", self.D, cfg.D_opt, d_reg)):
            params = list(module.parameters())
            if not reg:  # none, or every minibatch: main and reg together
                opt = torch.optim.Adam(params, lr=ocfg.lr, betas=tuple(float(b) for b in ocfg.betas), eps=ocfg.eps)
                phases.append(_Phase(f"{which}both", which, module, opt, 1, 1.0))
            else:
                lr, betas = lazy_regularization_adam(ocfg.lr, tuple(float(b) for b in ocfg.betas), reg)
                opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=ocfg.eps)
                ratio = reg / (reg + 1)
                phases.append(_Phase(f"{which}main", which, module, opt, 1, ratio))
                phases.append(_Phase(f"{which}reg", which, module, opt, reg, ratio))
        return phases

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {}
        for ph in self.phases:
            out.setdefault(f"{ph.which}_opt", ph.opt)
        return out

    def _resume(self, path: str) -> None:
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as e:
            raise TrainingSetupError(str(e)) from None
        loaded = []
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            if name in ckpt.modules:
                try:
                    load_state_strict(module, ckpt.state_dict(name), f"{path} [{name}]")
                except CheckpointError as e:
                    raise TrainingSetupError(f"cannot resume: {e}") from None
                loaded.append(name)
        if "G" not in loaded and "G_ema" in loaded:
            self.G.load_state_dict(self.G_ema.state_dict())
        if "G_ema" not in loaded and "G" in loaded:
            self.G_ema.load_state_dict(self.G.state_dict())
        if not loaded:
            raise TrainingSetupError(f"{path} holds none of the networks G, D, G_ema")
        self.resumed_from = str(path)
        state = ckpt.state
        if not (isinstance(state, dict) and state.get("format") == STATE_FORMAT):
            self._resume_note = f"resumed weights {loaded} from {path} (no training state: fresh optimizers, kimg 0)"
            return
        if int(state.get("version", 0)) > STATE_VERSION:
            raise TrainingSetupError(f"{path}: training state version {state['version']} is newer than this code")
        saved_cfg = ckpt.info.get("training")
        if saved_cfg is not None:
            a, b = dict(saved_cfg), to_dict(self.cfg)
            for k in ("total_kimg", "snap", "kimg_per_tick", "metrics"):
                a.pop(k, None), b.pop(k, None)
            self._config_changed = a != b
        for key, opt in self.optimizers().items():
            sd = state[key]
            opt.load_state_dict(sd)
            for g in opt.param_groups:
                g["betas"] = tuple(g["betas"])
        self.loss.pl_mean.copy_(state["pl_mean"].to(self.device))
        if self.ada is not None and state.get("augment") is not None:
            self.ada.load_state_dict(state["augment"])
        self.state = TrainingState.from_dict(state["progress"])
        self.monitor.bad_ticks = self.state.bad_ticks
        set_rng_state(state["rng"])
        self._resume_note = (f"resumed training state from {path} at kimg {self.state.cur_nimg / 1000:.3f} "
                             f"(tick {self.state.cur_tick}, minibatch {self.state.batch_idx})")

    # --------------------------------------------------------------------------- one minibatch

    def _seed(self, phase: int, global_round: int) -> None:
        torch.manual_seed(round_seed(self.cfg.seed, self.state.batch_idx, phase, global_round))

    def _round_latents(self, phase: int, global_round: int, bg: int, n_labels: int):
        """Seed the round and draw its latents (and labels); sets the round's path-length seed."""
        self._seed(phase, global_round)
        gen_z = torch.randn([bg, self.G.z_dim], device=self.device)
        gen_c = (self.gen_labels[torch.randint(n_labels, [bg], device=self.device)]
                 if self.G.c_dim > 0 else None)
        self.loss.pl_seed = round_seed(self.cfg.seed ^ 0x5A17, self.state.batch_idx, phase, global_round)
        return gen_z, gen_c

    def _path_length_phase_mean(self, phase: int, rounds: int, bg: int, n_labels: int):
        """The hook giving the path-length penalty the [sum, count] of the lengths of the whole phase.

        One round per process: the processes add up their rounds' sums as they go. Several rounds
        (gradient accumulation): a first pass recomputes every round's lengths (same seeds, first
        order only), so each round can use the phase mean before the later rounds have run.
        """
        if rounds == 1:
            return lambda stats: ddp.all_reduce_(stats.clone())
        total = torch.zeros([2], dtype=torch.float32, device=self.device)
        for j in range(rounds):
            gen_z, gen_c = self._round_latents(phase, self.rank * rounds + j, bg, n_labels)
            lengths = self.loss.path_lengths_only(gen_z, gen_c)
            total += torch.stack([lengths.sum().to(torch.float32), torch.tensor(float(lengths.shape[0]),
                                                                                device=self.device)])
        ddp.all_reduce_(total)
        return lambda stats: total

    def _progressive_step(self) -> int:
        """Apply the progressive schedule for this minibatch; returns its total batch size."""
        prog, cfg, st = self.progressive, self.cfg, self.state
        phase = prog.schedule(st.cur_nimg / 1000, cfg.progressive, cfg.G.img_resolution, self.world)
        if cfg.progressive.reset_optimizer and st.phase_index >= 0 and phase.phase_index != st.phase_index:
            for opt in self.optimizers().values():
                opt.state.clear()
        st.phase_index = phase.phase_index
        for ph in self.phases:
            for g in ph.opt.param_groups:
                g["lr"] = phase.lr * ph.lr_ratio
        for m in (self.G, self.G_ema, self.D):
            prog.set_lod(m, phase.lod)
        self.loss.mixing_num_ws = prog.active_num_ws(phase.resolution)
        self.cur_phase = phase
        return phase.batch

    def step(self) -> None:
        cfg, st, dev = self.cfg, self.state, self.device
        batch = self._progressive_step() if self.progressive is not None else cfg.batch
        if self.progressive is not None:
            bg, rounds = self._progressive_micro_batch(batch)
        else:
            bg, rounds = micro_batch(batch, self.world, cfg.batch_gpu)
        real_u8, real_c = self.data.get(st.data_pos, batch)
        real = real_u8.to(dev).to(torch.float32) / 127.5 - 1
        if self.progressive is not None:
            real = self.progressive.fade_reals(real, self.cur_phase.lod)
        real_c = real_c.to(dev)
        reals = list(zip(real.split(bg), real_c.split(bg)))
        n_labels = self.gen_labels.shape[0]

        for pi, ph in enumerate(self.phases):
            if st.batch_idx % ph.interval != 0:
                continue
            ph.module.requires_grad_(True)
            ph.opt.zero_grad(set_to_none=True)
            if ph.name in ("Greg", "Gboth") and cfg.loss.pl_weight > 0:
                self.loss.pl_phase_mean = self._path_length_phase_mean(pi, rounds, bg, n_labels)
            for j in range(rounds):
                gen_z, gen_c = self._round_latents(pi, self.rank * rounds + j, bg, n_labels)
                r_img, r_c = reals[j]
                self.loss.accumulate_gradients(ph.name, r_img, r_c if self.D.c_dim > 0 else None, gen_z, gen_c,
                                               gain=ph.interval / rounds, report=self.stats.report)
            self.loss.pl_phase_mean = self.loss.pl_seed = None
            ph.module.requires_grad_(False)
            ddp.sync_gradients(list(ph.module.parameters()))
            ph.opt.step()
            ph.opt.zero_grad(set_to_none=True)
            if ph.name in ("Greg", "Gboth"):
                s = ddp.all_reduce_(self.loss.take_pl_stats())
                if float(s[1]) > 0:
                    self.loss.pl_mean.copy_(self.loss.pl_mean.lerp(s[0] / s[1], cfg.loss.pl_decay))
            if ph.name in ("Dmain", "Dboth"):
                self._update_w_avg()

        beta = ema_beta(batch, cfg.ema_kimg, st.cur_nimg, cfg.ema_rampup)
        update_ema(self.G_ema, self.G, beta)
        st.cur_nimg += batch
        st.batch_idx += 1
        st.data_pos += batch
        if self.ada is not None:
            self.ada.step(batch)

    def _progressive_micro_batch(self, batch: int) -> tuple[int, int]:
        per = batch // self.world
        bg = largest_divisor_at_most(per, self.cfg.batch_gpu or per)
        group = self.cfg.D.mbstd_group_size
        if self.cfg.D.mbstd_num_channels > 0 and group is not None and bg % min(group, bg):
            raise TrainingSetupError(f"minibatch-std group {group} does not divide the micro-batch {bg}")
        return bg, per // bg

    def _update_w_avg(self) -> None:
        s = self.loss.take_w_stats()
        mapping = self.G.mapping
        if s is None or not hasattr(mapping, "w_avg") or mapping.w_avg_beta is None:
            return
        ddp.all_reduce_(s)
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
        from ..io.images import save_image, make_grid, to_uint8

        imgs = []
        bs = max(self.cfg.batch_gpu or (self.cfg.batch // self.world), 8)
        for i in range(0, self.grid_z.shape[0], bs):
            z = self.grid_z[i:i + bs].to(self.device)
            c = None if self.grid_c is None else self.grid_c[i:i + bs].to(self.device)
            imgs.append(to_uint8(self.G_ema(z, c, noise_mode="const")).numpy())
        cols, rows = self.grid_shape
        save_image(make_grid(np.concatenate(imgs), rows=rows, cols=cols), path)

    def save_snapshot(self, path: Path) -> None:
        st = dataclasses.replace(self.state, cur_tick=self.state.cur_tick + 1,
                                 tick_start_nimg=self.state.cur_nimg, bad_ticks=self.monitor.bad_ticks,
                                 last_snapshot=str(path))
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, "progress": st.to_dict(),
                 "pl_mean": self.loss.pl_mean.detach().cpu(),
                 "augment": None if self.ada is None else self.ada.state_dict(),
                 "rng": rng_state()}
        for key, opt in self.optimizers().items():
            state[key] = opt.state_dict()
        info = {"kind": "training-snapshot", "kimg": self.state.cur_nimg / 1000, "tick": self.state.cur_tick,
                "training": to_dict(self.cfg), "run": to_dict(self.opts), "world_size": self.world,
                "timestamp": time.time()}
        save_checkpoint(path, {"G": self.G, "D": self.D, "G_ema": self.G_ema}, state=state, info=info)

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

    # --------------------------------------------------------------------------- the loop

    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        if self.write:
            self._write_config()
        if getattr(self, "_resume_note", None):
            self.log(self._resume_note)
            if getattr(self, "_config_changed", False):
                self.log("note: the training config differs from the snapshot's: this is not an exact continuation")
        self._grid_setup() if self.is_leader else None
        if self.write:
            from ..io.images import make_grid, save_image

            cols, rows = self.grid_shape
            save_image(make_grid(self.grid_reals.permute(0, 2, 3, 1).numpy(), rows=rows, cols=cols),
                       self.run_dir / "reals.png")
            self.save_fakes(self.run_dir / "fakes_init.png")
        self.log(f"training for {cfg.total_kimg:g} kimg on {self.world} process(es), device {self.device}, "
                 f"batch {cfg.batch} (per process {cfg.batch // self.world}), dataset {len(self.dataset)} images")
        total_nimg = int(round(cfg.total_kimg * 1000))
        start_time = tick_start_time = time.time()
        maintenance = 0.0
        tick_start_nimg = st.tick_start_nimg
        last_snapshot = Path(st.last_snapshot) if st.last_snapshot else None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        done = st.cur_nimg >= total_nimg
        deadline = None if self.opts.max_minutes is None else start_time + 60 * self.opts.max_minutes
        while not done:
            self.step()
            if self.callback is not None:
                self.callback(self)
            done = st.cur_nimg >= total_nimg
            if deadline is not None and not done:
                late = torch.tensor([1.0 if time.time() >= deadline else 0.0], device=self.device)
                if ddp.all_reduce_(late, "max").item() > 0:
                    done = True
                    self.log(f"--max-minutes {self.opts.max_minutes:g} reached: stopping at kimg "
                             f"{st.cur_nimg / 1000:.3f} of {cfg.total_kimg:g}")
            if not done and st.cur_tick != 0 and st.cur_nimg < tick_start_nimg + cfg.kimg_per_tick * 1000:
                continue

            # ---------------- tick
            tick_end_time = time.time()
            stats, nonfinite = self.stats.collect()
            flag = torch.tensor([1.0 if all_finite(self.G, self.D, self.G_ema) else 0.0], device=self.device)
            weights_ok = bool(ddp.all_reduce_(flag, "min").item() > 0)
            good, stop = self.monitor.update(nonfinite, weights_ok)
            st.bad_ticks = self.monitor.bad_ticks
            p = 0.0 if self.ada is None else self.ada.p
            sec_per_tick = tick_end_time - tick_start_time
            kimg_done = max(st.cur_nimg - tick_start_nimg, 1) / 1000
            cpumem = cpu_memory_gb()
            gpumem = torch.cuda.max_memory_allocated(self.device) / 2 ** 30 if self.device.type == "cuda" else 0.0
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)

            def m(name):
                return stats[name]["mean"] if name in stats else float("nan")

            fields = [f"tick {st.cur_tick:<5d}", f"kimg {st.cur_nimg / 1000:<8.1f}",
                      f"time {format_time(tick_end_time - start_time):<12s}",
                      f"sec/tick {sec_per_tick:<7.1f}", f"sec/kimg {sec_per_tick / kimg_done:<7.2f}",
                      f"maintenance {maintenance:<6.1f}", f"cpumem {cpumem:<6.2f}", f"gpumem {gpumem:<6.2f}",
                      f"augment {p:.3f}", f"G {m('Loss/G/loss'):.3f}", f"D {m('Loss/D/loss'):.3f}"]
            if "Loss/r1_penalty" in stats:
                fields.append(f"R1 {m('Loss/r1_penalty'):.4f}")
            if "Loss/gp" in stats:
                fields.append(f"GP {m('Loss/gp'):.4f}")
            if "Loss/pl_penalty" in stats:
                fields.append(f"PL {m('Loss/pl_penalty'):.4f}")
            if self.progressive is not None and self.cur_phase is not None:
                fields.append(f"res {self.cur_phase.resolution} lod {self.cur_phase.lod:.3f}")
            self.log(" ".join(fields))

            snap_due = cfg.snap > 0 and (done or st.cur_tick % cfg.snap == 0)
            snapshot_path = None
            if snap_due and not good:
                self.log(f"not writing a snapshot for tick {st.cur_tick}: non-finite values "
                         f"(last good snapshot: {last_snapshot})")
            if snap_due and good:
                kimg_name = f"{st.cur_nimg // 1000:06d}"
                if self.write:
                    self.save_fakes(self.run_dir / f"fakes{kimg_name}.png")
                    snapshot_path = self.run_dir / f"snapshot-{kimg_name}.safetensors"
                    self.save_snapshot(snapshot_path)
                    last_snapshot = snapshot_path
                    st.last_snapshot = str(snapshot_path)
                self._run_metrics(snapshot_path)

            record = dict(stats)
            for key, val in (("Progress/tick", st.cur_tick), ("Progress/kimg", st.cur_nimg / 1000),
                             ("Progress/augment", p), ("Progress/nonfinite_losses", nonfinite),
                             ("Timing/total_sec", tick_end_time - start_time), ("Timing/sec_per_tick", sec_per_tick),
                             ("Timing/sec_per_kimg", sec_per_tick / kimg_done), ("Timing/maintenance_sec", maintenance),
                             ("Resources/cpu_mem_gb", cpumem), ("Resources/peak_gpu_mem_gb", gpumem)):
                record[key] = {"num": 1, "mean": val, "std": 0.0}
            record["timestamp"] = time.time()
            if self.is_leader:
                self.records.append(record)
            if self.write:
                with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")

            if stop is not None:
                msg = (f"training stopped at tick {st.cur_tick}, kimg {st.cur_nimg / 1000:.3f}: {stop}. "
                       + (f"The last good snapshot is {last_snapshot}; resume from it with "
                          f"`stylegan train --resume {last_snapshot}` (perhaps with a lower --lr or --gamma)."
                          if last_snapshot else "No good snapshot was written before this happened."))
                self.log(msg)
                raise TrainingDiverged(msg, None if last_snapshot is None else str(last_snapshot))

            st.cur_tick += 1
            tick_start_nimg = st.tick_start_nimg = st.cur_nimg
            tick_start_time = time.time()
            maintenance = tick_start_time - tick_end_time
        self.log("done.")
        return TrainResult(self.run_dir, st, last_snapshot, self.records)

    def _write_config(self) -> None:
        run = dict(to_dict(self.opts), world_size=self.world, device_resolved=str(self.device),
                   dataset_name=self.dataset.name, dataset_size=len(self.dataset), resumed_from=self.resumed_from)
        with open(self.run_dir / "config.json", "w", encoding="utf-8") as f:
            json.dump({"training": to_dict(self.cfg), "run": run}, f, indent=2)


# ----------------------------------------------------------------------------------- entry points


def default_desc(cfg: TrainingConfig, data_name: str) -> str:
    parts = [data_name]
    if cfg.cond:
        parts.append("cond")
    if cfg.mirror:
        parts.append("mirror")
    parts.append(cfg.preset or "custom")
    return "-".join(parts)


def _dataset_name(spec: str) -> str:
    if spec.startswith("builtin:"):
        return spec.split(":", 1)[1]
    return Path(spec).stem or "data"


def _make_run_dir(cfg: TrainingConfig, opts: RunOptions) -> Optional[Path]:
    if not opts.write_files:
        return None
    if opts.run_dir:
        path = Path(opts.run_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return next_run_dir(opts.outdir, opts.desc or default_desc(cfg, _dataset_name(opts.data)))


def _configure_process(device: torch.device, world: int, threads: Optional[int] = None,
                       retain_malloc: bool = False) -> None:
    if retain_malloc and device.type == "cpu":
        from ..perf import retain_malloc as _retain

        _retain()  # no-op off glibc
    if threads is not None:
        torch.set_num_threads(max(int(threads), 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # as the official loop: reproducible fp32
        torch.backends.cudnn.allow_tf32 = False
    elif world > 1 and threads is None:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))


def _run_process(cfg: TrainingConfig, opts: RunOptions, rank: int, world: int, device: torch.device,
                 run_dir: Optional[Path], callback) -> TrainResult:
    _configure_process(device, world, opts.threads, opts.retain_malloc)
    run_dir = run_dir if rank == 0 else None
    if rank == 0 and run_dir is not None:
        with Tee(run_dir / "log.txt") if not opts.quiet else _nullcontext():
            trainer = Trainer(cfg, opts, rank, world, device, run_dir, callback)
            return trainer.run()
    trainer = Trainer(cfg, opts, rank, world, device, run_dir, callback)
    return trainer.run()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _spawned_worker(rank: int, world: int, cfg: TrainingConfig, opts: RunOptions, device_type: str,
                    run_dir: Optional[str], callback, queue) -> None:
    device = resolve_device(device_type, rank) if device_type != "cpu" else torch.device("cpu")
    try:
        result = _run_process(cfg, opts, rank, world, device, Path(run_dir) if run_dir else None, callback)
        if rank == 0:
            queue.put(("ok", result))
    except TrainingDiverged as e:
        if rank == 0:
            queue.put(("diverged", (str(e), e.last_snapshot)))
    except TrainingSetupError as e:
        if rank == 0:
            queue.put(("setup", str(e)))


def train(cfg: TrainingConfig, data: str, outdir: str = "runs", *, run_dir: Optional[str] = None,
          desc: Optional[str] = None, device: str | torch.device = "auto", gpus: int = 1,
          resume: Optional[str] = None, workers: int = 2, max_bad_ticks: int = 3,
          grid: Optional[tuple[int, int]] = None, quiet: bool = False, write_files: bool = True,
          threads: Optional[int] = None, max_minutes: Optional[float] = None, retain_malloc: bool = True,
          compile: bool = False, callback: Optional[Callable[[Trainer], None]] = None) -> TrainResult:
    """Train `cfg` on `data` (folder, zip or 'builtin:NAME'); returns the run directory and final state.

    gpus > 1 spawns that many processes (CUDA: one GPU each, nccl; CPU: gloo) unless already
    running under torchrun, which sets the process count itself. `resume`: a training snapshot
    continues exactly (optimizers, counters, pl_mean, ADA, RNG, data position); a checkpoint
    without training state only provides weights. `callback(trainer)` runs after every
    minibatch in every process (tests use it to stop, crash or inject faults). Raises
    TrainingDiverged (NaN policy) or TrainingSetupError (bad data / config / resume file).
    """
    opts = RunOptions(data=str(data), outdir=str(outdir), run_dir=run_dir, desc=desc, device=str(device),
                      gpus=int(gpus), resume=resume, workers=workers, max_bad_ticks=max_bad_ticks,
                      grid=grid, quiet=quiet, write_files=write_files, threads=threads,
                      max_minutes=max_minutes, retain_malloc=retain_malloc, compile=compile)
    return train_with_options(cfg, opts, callback)


def train_with_options(cfg: TrainingConfig, opts: RunOptions,
                       callback: Optional[Callable[[Trainer], None]] = None) -> TrainResult:
    if ddp.under_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ["LOCAL_RANK"])
        device = resolve_device(opts.device, local)
        info = ddp.init_from_env(device.type)  # no-op when the caller (e.g. the CLI) already joined
        if opts.gpus not in (1, world):
            raise TrainingSetupError(f"--gpus {opts.gpus} differs from torchrun's world size {world}")
        run_dir = _make_run_dir(cfg, opts) if info.rank == 0 else None
        result = _run_process(cfg, opts, info.rank, world, device, run_dir, callback)
        ddp.barrier()
        return result
    device = resolve_device(opts.device)
    world = max(int(opts.gpus), 1)
    if world == 1:
        return _run_process(cfg, opts, 0, 1, device, _make_run_dir(cfg, opts), callback)
    if device.type == "cuda" and torch.cuda.device_count() < world:
        raise TrainingSetupError(f"--gpus {world} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if device.type == "mps":
        raise TrainingSetupError("multi-process training is not supported on MPS")
    check_config(cfg, world)
    run_dir = _make_run_dir(cfg, opts)
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    ddp.spawn(_spawned_worker, world, args=(cfg, opts, device.type, None if run_dir is None else str(run_dir),
                                            callback, queue), backend=ddp.backend_for(device))
    if queue.empty():
        raise RuntimeError("training processes ended without a result")
    kind, payload = queue.get()
    if kind == "diverged":
        raise TrainingDiverged(*payload)
    if kind == "setup":
        raise TrainingSetupError(payload)
    return payload


__all__ = ["train", "train_with_options", "Trainer", "TrainingState", "RunOptions", "TrainResult",
           "TrainingDiverged", "TrainingSetupError", "DataStream", "TickStats", "DivergenceMonitor",
           "micro_batch", "fit_mbstd", "check_config", "round_seed", "resolve_device", "default_desc"]
