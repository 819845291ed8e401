"""One setup path: from what the user asked for to a validated, typed plan of the run.

`plan_run` opens the data once, resolves the preset against it (or takes a ready TrainingConfig,
or the one stored in a snapshot being resumed), applies the command-line overrides, and checks
everything a run could trip on later (batch and micro-batch, minibatch-std groups, the data's shape
and labels, devices, process count). The CLI only parses options into `RunOptions` and `Overrides`;
the Python API passes a TrainingConfig; both get the same checks and the same clear errors
(`TrainingSetupError`) before anything expensive starts.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .. import distributed as ddp
from ..data.dataset import DatasetError, open_dataset
from ..device import DeviceUnavailable, resolve_device as _resolve_device
from ..io.checkpoint import CheckpointError, read_checkpoint
from ..io.serialize import ConfigError, from_dict, to_dict
from ..nn.precision import PRECISIONS, Precision, precision_problem
from .ada import AdaConfig
from .config import TrainingConfig
from .errors import TrainingSetupError
from .options import declared, option, replace_path
from .presets import DataShape, PresetKnobs, derives_from_knobs, resolve_preset
from .schedule import largest_divisor_at_most, make_schedule, micro_batch
from .snapshot import newest_intact_snapshot
from .transfer import is_foreign, read_foreign_networks, transfer_config


def parse_metrics(spec: str) -> tuple[str, ...]:
    """'fid50k_full,kid50k' -> names; 'none' or '' -> ()."""
    if spec.strip().lower() in ("", "none"):
        return ()
    return tuple(s.strip() for s in spec.split(",") if s.strip())


_ARCHS = ("orig", "skip", "resnet")
_AUG = "apply_overrides: the augmentation group (mode, p, target, pipe) makes one AdaConfig"
_ARCH = "paper_presets.with_architectures (the paper's per-architecture settings)"


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run (everything that is not the math of TrainingConfig). Each field is an
    option of `stylegan train` and of `train(...)` (training.options)."""

    data: Optional[str] = option(None, "Training data: folder, zip, or builtin:mnist / builtin:emoji64 ... "
                                       "(default: the resumed snapshot's).")
    outdir: str = option("runs", "Where run directories are made.")
    run_dir: Optional[str] = option(None, "Explicit run directory (default: the next numbered one in outdir); "
                                          "a fixed one lets a requeued job find its run again.")
    desc: Optional[str] = option(None, "Run directory name after the number (default: from the options).")
    device: str = option("auto", "cpu, cuda, cuda:N, mps, or auto.")
    gpus: int = option(1, "Processes: GPUs (CUDA) or CPU processes.", low=1)
    resume: Optional[str] = option(None, "Training snapshot (or run directory: its newest) to continue exactly.")
    workers: int = option(2, "Data loader processes (large datasets).", low=0)
    nan_ticks: int = option(3, "Stop after this many consecutive ticks with NaN/Inf losses.", low=1)
    grid: Optional[tuple[int, int]] = option(None, "(cols, rows) of reals.png / fakes*.png.", cli="")
    quiet: bool = option(False, "No tick lines on stdout (still in log.txt).", cli="")
    write_files: bool = option(True, "False: no run directory (benchmarks, some tests).", cli="")
    threads: Optional[int] = option(None, "CPU threads per process (default: torch's, or cores / processes).",
                                    low=1)
    max_minutes: Optional[float] = option(None, "Also stop (with a final snapshot) at the first tick after this "
                                                "many minutes.", low=0, low_open=True)
    fresh_labels: bool = option(False, "Fine-tuning from --resume: start the label embedding of G and D afresh, for "
                                       "data whose classes differ from the file's (every other weight is kept).")
    tensorboard: bool = option(True, "Write TensorBoard events beside stats.jsonl (when the tensorboard package is "
                                     "installed).", negatable=True)
    nobench: bool = option(False, "CUDA: disable cuDNN benchmarking (stylegan2-ada-pytorch --nobench).")
    allow_tf32: bool = option(False, "CUDA: allow TF32 in matmuls and convolutions (faster, not bit-reproducible).")
    retain_malloc: bool = option(True, "CPU: keep freed memory for reuse instead of unmapping it (faster; "
                                       "process-wide, see docs/performance.md).", negatable=True)
    compile: bool = option(False, "torch.compile G and D for the main phases (R1 / path length stay eager; falls "
                                  "back to eager with a warning). Pays off on GPUs; on CPU +6% after minutes of "
                                  "compiling.")


@dataclass(frozen=True)
class Overrides:
    """Changes to a preset's TrainingConfig (None: keep the preset's value); each field is an option of
    `stylegan train`, and `to` names the config field it sets."""

    batch: Optional[int] = option(None, "Total batch size (preset's if omitted).", to="batch", low=1)
    batch_gpu: Optional[int] = option(None, "Micro-batch per process (gradient accumulation).", to="batch_gpu",
                                      low=1)
    gamma: Optional[float] = option(None, "R1 weight (preset's if omitted).", to="loss.r1_gamma", low=0)
    kimg: Optional[float] = option(None, "Training length in thousands of images.", to="total_kimg", low=0)
    snap: Optional[int] = option(None, "Snapshot interval in ticks (0: never).", to="snap", low=0)
    mirror: Optional[bool] = option(None, "Add x-flipped copies of the data.", to="mirror", negatable=True)
    cond: Optional[bool] = option(None, "Conditional training on the dataset's labels.", negatable=True,
                                  rule="plan_run: it picks the preset's label dimensions; fixed on resume")
    seed: Optional[int] = option(None, "Random seed (default 0).", to="seed")
    metrics: Optional[tuple[str, ...]] = option(None, "Comma-separated metric ids at every snapshot, or none.",
                                                to="metrics", parse=parse_metrics)
    aug: Optional[str] = option(None, "Augmentation mode (default ada, as officially).",
                                choices=("noaug", "ada", "fixed"), rule=_AUG)
    p: Optional[float] = option(None, "Augment probability for --aug fixed (start value for ada).", rule=_AUG)
    target: Optional[float] = option(None, "ADA target E[sign(D(real))] (0.6).", low=0, high=1, rule=_AUG)
    augpipe: Optional[str] = option(None, "Augment pipeline: blit, geom, color, filter, noise, cutout, bg, bgc, "
                                          "bgcf, bgcfn, bgcfnc (default bgc).", rule=_AUG)
    g_arch: Optional[str] = option(None, "Generator architecture.", choices=_ARCHS, rule=_ARCH,
                                   network_shape=True)
    d_arch: Optional[str] = option(None, "Discriminator architecture.", choices=_ARCHS, rule=_ARCH,
                                   network_shape=True)
    map_layers: Optional[int] = option(None, "Mapping network depth.", cli="map", aliases=("map-depth",),
                                       to="G.mapping.num_layers", low=0, network_shape=True)
    lr: Optional[float] = option(None, "Learning rate of G and D.", to=("G_opt.lr", "D_opt.lr"), low=0,
                                 low_open=True)
    glr: Optional[float] = option(None, "Learning rate of G (after --lr).", to="G_opt.lr", low=0, low_open=True)
    dlr: Optional[float] = option(None, "Learning rate of D (after --lr).", to="D_opt.lr", low=0, low_open=True)
    cbase: Optional[int] = option(None, "Capacity multiplier: channels = min(cbase / resolution, cmax), G and D.",
                                  to=("G.channel_base", "D.channel_base"), low=1, network_shape=True)
    cmax: Optional[int] = option(None, "Max. feature maps of G and D.", to=("G.channel_max", "D.channel_max"), low=1,
                                 network_shape=True)
    mbstd_group: Optional[int] = option(None, "Minibatch-std group size.", to="D.mbstd_group_size", low=1)
    freezed: Optional[int] = option(None, "Freeze the first N layers of D, counted from the input (transfer "
                                          "learning; stylegan2-ada-pytorch --freezed).", to="freezed", low=0)
    subset: Optional[int] = option(None, "Train on a seeded random subset of at most N images.", to="subset", low=1)
    ema: Optional[float] = option(None, "G_ema half-life in kimg.", to="ema_kimg", low=0)
    kimg_per_tick: Optional[float] = option(None, "Tick length in kimg.", to="kimg_per_tick", aliases=("tick",),
                                            low=0, low_open=True)
    precision: Optional[str] = option(None, "16-bit (bf16 / fp16) in the 4 highest resolutions of G and D, clamp "
                                            "256, the rest fp32 (docs/performance.md); default: the preset's "
                                            "networks as constructed.", choices=PRECISIONS,
                                      rule="apply_overrides: Precision(name)")
    fp32: Optional[bool] = option(None, "Everything in fp32 (the official --fp32; same as --precision fp32).",
                                  rule="apply_overrides: Precision('fp32')")


@dataclass(frozen=True)
class DataInfo:
    spec: str
    name: str
    size: int
    resolution: int
    channels: int
    label_dim: int


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the config to train, how, on what, with how many processes."""

    cfg: TrainingConfig
    opts: RunOptions  # data and resume resolved (resume: a snapshot file); desc set
    data: DataInfo
    world: int
    device_type: str  # each process resolves its own device (cuda:<local rank>)
    notes: tuple[str, ...] = field(default_factory=tuple)  # things the log should tell the user


# ----------------------------------------------------------------------------------- pieces


def resolve_device(name: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """`stylegan.device.resolve_device`, with a missing device reported as a setup error."""
    try:
        return _resolve_device(name, local_rank)
    except DeviceUnavailable as e:
        raise TrainingSetupError(str(e)) from None


def find_snapshot(path: str) -> tuple[Path, tuple[str, ...]]:
    """A snapshot file, or the newest intact snapshot of a run directory -> (path, notes for the log).

    A run directory falls back past damaged snapshots (each named in a note); a file named
    explicitly must itself be intact (`read_resume` says what is wrong with it). An http(s) URL, or
    one of stylegan2-ada-pytorch's `--resume` names (ffhq256, ffhq512, ffhq1024, celebahq256,
    lsundog256) unless a local path has that name, is downloaded once into the cache (io.remote)."""
    from ..io.remote import RemoteError, fetch, resume_url

    if (url := resume_url(path)) is not None:
        try:
            cached = fetch(url)
        except RemoteError as e:
            raise TrainingSetupError(f"--resume {path}: {e}") from None
        return cached, (f"--resume {path}: {url} (cached as {cached})",)
    p = Path(path)
    if p.is_dir():
        snap, notes = newest_intact_snapshot(p)
        if snap is None:
            why = "".join(f"\n  {n}" for n in notes)
            raise TrainingSetupError(f"--resume {path}: no intact snapshot-*.safetensors in this directory{why}")
        return snap, notes
    if not p.is_file():
        raise TrainingSetupError(f"--resume {path}: no such file")
    return p, ()


def check_config(cfg: TrainingConfig, world: int) -> None:
    """Validate batch / mbstd / loss settings before anything expensive starts."""
    make_schedule(cfg, world)  # batch divisibility and minibatch-std groups
    if cfg.loss.kind not in ("logistic", "wgan-gp"):
        raise TrainingSetupError(f"unknown loss kind {cfg.loss.kind!r}")
    if cfg.kimg_per_tick <= 0:
        raise TrainingSetupError("--kimg-per-tick must be positive")
    if cfg.freezed and (cfg.D.version == 1 or cfg.D.growing):
        raise TrainingSetupError("--freezed applies to StyleGAN2 discriminators (the official count); "
                                 f"the {cfg.preset or 'configured'} D grows progressively")
    if cfg.loss.pl_batch_shrink < 1:
        raise TrainingSetupError("pl_batch_shrink must be >= 1")
    low = cfg.precision is not None and cfg.precision.dtype != "fp32"
    if low and (cfg.G.version == 1 or cfg.G.growing or cfg.D.version == 1 or cfg.D.growing):
        raise TrainingSetupError(f"--precision {cfg.precision.dtype} applies to StyleGAN2 networks only; "
                                 f"the {cfg.preset or 'configured'} networks run in fp32")
    if cfg.metrics:
        from ..metrics import MetricError, get_metric  # only runs that compute metrics import them

        for name in cfg.metrics:
            try:
                get_metric(name)
            except MetricError as e:
                raise TrainingSetupError(str(e)) from None


def fit_mbstd(cfg: TrainingConfig, world: int) -> TrainingConfig:
    """`cfg` with the minibatch-std group shrunk to divide the per-GPU micro-batch (non-growing presets)."""
    if cfg.progressive is not None or cfg.D.mbstd_group_size is None:
        return cfg
    bg, _ = micro_batch(cfg.batch, world, cfg.batch_gpu)
    group = largest_divisor_at_most(bg, cfg.D.mbstd_group_size)
    if group == cfg.D.mbstd_group_size:
        return cfg
    return cfg.replace(D=cfg.D.replace(mbstd_group_size=group))


def apply_overrides(cfg: TrainingConfig, o: Overrides) -> TrainingConfig:
    """A TrainingConfig with the command-line overrides applied (ValueError names a bad value).

    Every override with a `to` path sets those config fields; the rest have a rule of their own,
    here (augmentation, precision), in `paper_presets` (architectures) or in `plan_run` (cond)."""
    for d in declared(Overrides):
        value = getattr(o, d.name)
        if value is not None:
            for path in d.option.to:
                cfg = replace_path(cfg, path, value)
    if any(v is not None for v in (o.aug, o.p, o.target, o.augpipe)):
        a = cfg.augment
        mode = o.aug or a.mode
        p = o.p if o.p is not None else (None if mode == "fixed" and a.mode != "fixed" else a.p)
        cfg = cfg.replace(augment=AdaConfig(mode=mode, p=p, target=a.target if o.target is None else o.target,
                                            pipe=o.augpipe or a.pipe, interval=a.interval,
                                            speed_kimg=a.speed_kimg))
    if o.g_arch is not None or o.d_arch is not None:
        from .paper_presets import with_architectures

        cfg = with_architectures(cfg, o.g_arch, o.d_arch)
    if o.precision is not None:
        cfg = cfg.replace(precision=Precision(o.precision))
    if o.fp32:
        cfg = cfg.replace(precision=Precision("fp32"))
    return cfg


def run_record(plan: "RunPlan", **facts) -> dict:
    """What a run records in config.json and `--dry-run` prints: the config, and the options with
    `facts` found on the way (device, dataset size, ...)."""
    return {"training": to_dict(plan.cfg), "run": dict(to_dict(plan.opts), world_size=plan.world, **facts)}


def run_name(data_name: str, cfg: TrainingConfig, o: Overrides, world: int, resumed: bool) -> str:
    """Run directory suffix in the official style: mnist-cond-mirror-cpu-gamma0.1-kimg10-ada."""
    parts = [data_name]
    if cfg.cond:
        parts.append("cond")
    if cfg.mirror:
        parts.append("mirror")
    parts.append((cfg.preset or "custom") + (str(world) if cfg.preset == "auto" else ""))
    for value, fmt in ((o.gamma, "gamma{:g}"), (o.kimg, "kimg{:g}"), (o.batch, "batch{}"), (o.map_layers, "map{}"),
                       (o.lr, "lr{:g}"), (o.ema, "ema{:g}"), (o.g_arch, "G{}"), (o.d_arch, "D{}")):
        if value is not None:
            parts.append(fmt.format(value))
    if cfg.augment.mode != "noaug":
        parts.append(cfg.augment.mode)
        for value, fmt in ((o.p, "p{:g}"), (o.target, "target{:g}"), (o.augpipe, "{}")):
            if value is not None:
                parts.append(fmt.format(value))
    if world > 1:
        parts.append(f"gpus{world}")
    if resumed:
        parts.append("resume")
    return "-".join(parts)


def _world(opts: RunOptions, device: torch.device) -> int:
    if ddp.under_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if opts.gpus not in (1, world):
            raise TrainingSetupError(f"--gpus {opts.gpus} differs from torchrun's world size {world}")
        return world
    world = max(int(opts.gpus), 1)
    if world > 1 and device.type == "cuda" and torch.cuda.device_count() < world:
        raise TrainingSetupError(f"--gpus {world} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if world > 1 and device.type == "mps":
        raise TrainingSetupError("multi-process training is not supported on MPS")
    return world


def _snapshot_config(snapshot: Path) -> tuple[Optional[TrainingConfig], Optional[str]]:
    """The training config and data spec stored in a snapshot (None where it has none)."""
    try:
        info = read_checkpoint(snapshot).info
    except CheckpointError as e:
        raise TrainingSetupError(str(e)) from None
    if "training" not in info:
        return None, None
    try:
        cfg = from_dict(TrainingConfig, info["training"])
    except ConfigError as e:
        raise TrainingSetupError(f"{snapshot}: cannot read its training config: {e}") from None
    return cfg, info.get("run", {}).get("data")


def _open_data(spec: str, cond: bool, rank: int, subset: Optional[int] = None, seed: int = 0):
    """Open the data, rank 0 first (it may convert a builtin dataset into the cache)."""
    def open_():
        try:
            return open_dataset(spec, use_labels=cond, xflip=False, max_size=subset, seed=seed)
        except DatasetError as e:
            raise TrainingSetupError(f"cannot open --data {spec}: {e}") from None

    if rank == 0:
        ds = open_()
        ddp.barrier()
        return ds
    ddp.barrier()
    return open_()


def _check_data(cfg: TrainingConfig, ds, spec: str) -> None:
    if len(ds) == 0:
        raise TrainingSetupError(f"--data {spec}: the dataset is empty")
    if (ds.resolution, ds.num_channels) != (cfg.G.img_resolution, cfg.G.img_channels):
        raise TrainingSetupError(
            f"the dataset is {ds.resolution}x{ds.resolution}x{ds.num_channels} but the networks are "
            f"configured for {cfg.G.img_resolution}x{cfg.G.img_resolution}x{cfg.G.img_channels}")
    if cfg.cond and ds.label_dim == 0:
        raise TrainingSetupError(f"--cond needs labels, but {spec} has no dataset.json labels")
    if ds.label_dim != cfg.G.c_dim or ds.label_dim != cfg.D.c_dim:
        raise TrainingSetupError(f"the dataset has {ds.label_dim} label dimensions, the networks "
                                 f"c_dim G {cfg.G.c_dim} / D {cfg.D.c_dim}")


def _data_name(spec: str, ds) -> str:
    return spec.split(":", 1)[1] if spec.startswith("builtin:") else ds.name


# ----------------------------------------------------------------------------------- the plan


def plan_run(opts: RunOptions, *, cfg: Optional[TrainingConfig] = None, preset: Optional[str] = None,
             overrides: Overrides = Overrides(), rank: int = 0) -> RunPlan:
    """Validate a run and resolve its config; raises TrainingSetupError with a clear message.

    The config comes from `cfg` (Python API), else from `preset` resolved against the data's shape
    (CLI), else from the snapshot being resumed; `overrides` apply to preset and snapshot configs.
    Under torchrun the process group must already be joined (`launch.prepare` does that).
    """
    snapshot, resume_notes = find_snapshot(opts.resume) if opts.resume else (None, ())
    if snapshot is not None and (shaping := [d.flag for d in declared(Overrides) if d.option.network_shape
                                             and getattr(overrides, d.name) is not None]):
        raise TrainingSetupError(f"{', '.join(shaping)} with --resume: the networks' shapes come from {snapshot}; "
                                 f"drop {'it' if len(shaping) == 1 else 'them'} (or train from scratch)")
    data = opts.data
    from_snapshot = False
    foreign = read_foreign_networks(snapshot) if snapshot is not None and is_foreign(snapshot) else None
    if foreign is None and cfg is None and preset is None and snapshot is not None:
        cfg, saved_data = _snapshot_config(snapshot)
        from_snapshot = cfg is not None
        data = data or saved_data
    if data is None:
        raise TrainingSetupError("--data is required (a folder, a zip, or builtin:mnist)")
    device = resolve_device(opts.device)
    world = _world(opts, device)
    if from_snapshot and overrides.cond is not None and overrides.cond != cfg.cond:
        raise TrainingSetupError("--cond/--no-cond cannot change when resuming a snapshot (the networks differ)")
    if foreign is not None and cfg is None:  # the file's label count decides, unless the user says
        cond = bool(overrides.cond) if overrides.cond is not None else foreign.G.c_dim > 0
    else:
        cond = cfg.cond if cfg is not None else bool(overrides.cond)
    subset = overrides.subset if overrides.subset is not None else (cfg.subset if cfg is not None else None)
    seed = overrides.seed if overrides.seed is not None else (cfg.seed if cfg is not None else 0)
    ds = _open_data(data, cond, rank, subset, seed)

    applied = overrides  # what apply_overrides still has to set after the preset
    try:
        if cfg is None:
            shape = DataShape(resolution=ds.resolution, channels=ds.num_channels,
                              c_dim=ds.label_dim if cond else 0, gpus=world)
            name = preset or "auto"
            knobs = PresetKnobs(batch=overrides.batch, cbase=overrides.cbase, cmax=overrides.cmax)
            cfg = resolve_preset(name, shape, knobs).replace(cond=cond)
            if derives_from_knobs(name):  # the preset consumed them (stylegan3's train.py derivations)
                applied = dataclasses.replace(applied, batch=None, cbase=None, cmax=None)
            if foreign is not None:
                cfg, transfer_notes = transfer_config(cfg, foreign, resolution=ds.resolution, channels=ds.num_channels,
                                                      label_dim=ds.label_dim, cond=cond,
                                                      fresh_labels=opts.fresh_labels)
                resume_notes += transfer_notes
            if applied.aug is None:
                applied = dataclasses.replace(applied, aug="ada")  # the official default
        cfg = apply_overrides(cfg, applied)
    except ValueError as e:  # bad override values, unknown preset / pipeline / architecture
        raise TrainingSetupError(str(e)) from None
    cfg = fit_mbstd(cfg, world)
    check_config(cfg, world)
    _check_data(cfg, ds, data)

    info = DataInfo(spec=str(data), name=_data_name(str(data), ds), size=len(ds), resolution=ds.resolution,
                    channels=ds.num_channels, label_dim=ds.label_dim)
    desc = opts.desc or run_name(info.name, cfg, overrides, world, resumed=snapshot is not None)
    opts = dataclasses.replace(opts, data=str(data), desc=desc, gpus=world,
                               resume=None if snapshot is None else str(snapshot))
    problem = precision_problem(cfg.precision, device)
    notes = resume_notes + ((f"warning: {problem}",) if problem else ())
    return RunPlan(cfg=cfg, opts=opts, data=info, world=world, device_type=device.type, notes=notes)


__all__ = ["RunOptions", "Overrides", "DataInfo", "RunPlan", "plan_run", "apply_overrides", "run_record",
           "parse_metrics", "run_name",
           "check_config", "fit_mbstd", "find_snapshot", "resolve_device"]
