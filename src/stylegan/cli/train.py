"""`stylegan train`: train StyleGAN (v1, progressive) or StyleGAN2 networks.

    stylegan train --outdir runs --data builtin:mnist --cfg cpu --kimg 10 --device cpu
    stylegan train --outdir runs --data ffhq256.zip --cfg paper256 --gpus 8 --mirror
    torchrun --nproc_per_node 8 -m stylegan train --outdir runs --data ffhq256.zip --cfg paper256
    stylegan train --resume runs/00003-ffhq256-paper256/snapshot-000200.safetensors

Option names follow NVIDIA's stylegan2-ada-pytorch `train.py`. docs/training.md has the details.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import click

_ARCHS = ("orig", "skip", "resnet")


def _given(ctx: click.Context, name: str) -> bool:
    """Was option `name` given on the command line (not a default)?"""
    src = ctx.get_parameter_source(name)
    return src is not None and src not in (click.core.ParameterSource.DEFAULT,
                                           click.core.ParameterSource.DEFAULT_MAP)


def parse_metrics(spec: Optional[str]) -> tuple[str, ...]:
    if spec is None or spec.strip().lower() in ("", "none"):
        return ()
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    from ..metrics import MetricError, get_metric

    for n in names:
        try:
            get_metric(n)
        except MetricError as e:
            raise click.ClickException(str(e)) from None
    return names


def apply_options(cfg, *, gpus: int = 1, batch=None, batch_gpu=None, gamma=None, kimg=None, snap=None,
                  mirror=None, seed=None, metrics=None, aug=None, p=None, target=None, augpipe=None,
                  g_arch=None, d_arch=None, map_layers=None, lr=None, ema=None, kimg_per_tick=None):
    """A TrainingConfig with the command-line overrides applied (None: keep the preset's value)."""
    from ..training.config import AugmentConfigRef
    from ..training.loop import TrainingSetupError, check_config, fit_mbstd

    if batch is not None:
        if batch < 1:
            raise click.BadParameter("must be >= 1", param_hint="--batch")
        cfg = cfg.replace(batch=batch)
    if batch_gpu is not None:
        cfg = cfg.replace(batch_gpu=batch_gpu)
    if gamma is not None:
        cfg = cfg.replace(loss=dataclasses.replace(cfg.loss, r1_gamma=gamma))
    if kimg is not None:
        cfg = cfg.replace(total_kimg=kimg)
    if snap is not None:
        cfg = cfg.replace(snap=snap)
    if mirror is not None:
        cfg = cfg.replace(mirror=mirror)
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    if metrics is not None:
        cfg = cfg.replace(metrics=metrics)
    if any(v is not None for v in (aug, p, target, augpipe)):
        a = cfg.augment
        mode = aug or a.mode
        if mode == "fixed" and p is None:
            raise click.BadParameter("--aug fixed needs --p", param_hint="--p")
        if p is not None and not 0 <= p <= 1:
            raise click.BadParameter("must be in [0, 1]", param_hint="--p")
        if augpipe is not None:
            from ..training.augment import augment_preset

            try:
                augment_preset(augpipe)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--augpipe") from None
        cfg = cfg.replace(augment=AugmentConfigRef(mode=mode, p=a.p if p is None else p,
                                                   target=a.target if target is None else target,
                                                   pipe=augpipe or a.pipe, interval=a.interval,
                                                   speed_kimg=a.speed_kimg))
    if g_arch is not None or d_arch is not None:
        from ..training.paper_presets import with_architectures

        try:
            cfg = with_architectures(cfg, g_arch, d_arch)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    if map_layers is not None:
        cfg = cfg.replace(G=cfg.G.replace(mapping=dataclasses.replace(cfg.G.mapping, num_layers=map_layers)))
    if lr is not None:
        cfg = cfg.replace(G_opt=dataclasses.replace(cfg.G_opt, lr=lr), D_opt=dataclasses.replace(cfg.D_opt, lr=lr))
    if ema is not None:
        cfg = cfg.replace(ema_kimg=ema)
    if kimg_per_tick is not None:
        cfg = cfg.replace(kimg_per_tick=kimg_per_tick)
    try:
        cfg = fit_mbstd(cfg, gpus)
        check_config(cfg, gpus)
    except TrainingSetupError as e:
        raise click.ClickException(str(e)) from None
    return cfg


def run_desc(data_name: str, cfg, given: dict[str, Any], gpus: int, resumed: bool) -> str:
    """Run directory suffix in the official style: mnist-cond-mirror-cpu-gamma0.1-kimg10-ada."""
    parts = [data_name]
    if cfg.cond:
        parts.append("cond")
    if cfg.mirror:
        parts.append("mirror")
    parts.append((cfg.preset or "custom") + (str(gpus) if cfg.preset == "auto" else ""))
    for key, fmt in (("gamma", "gamma{:g}"), ("kimg", "kimg{:g}"), ("batch", "batch{}"), ("map", "map{}"),
                     ("lr", "lr{:g}"), ("ema", "ema{:g}"), ("g_arch", "G{}"), ("d_arch", "D{}")):
        if given.get(key) is not None:
            parts.append(fmt.format(given[key]))
    if cfg.augment.mode != "noaug":
        parts.append(cfg.augment.mode)
        if given.get("p") is not None:
            parts.append(f"p{given['p']:g}")
        if given.get("target") is not None:
            parts.append(f"target{given['target']:g}")
        if given.get("augpipe") is not None:
            parts.append(given["augpipe"])
    if gpus > 1:
        parts.append(f"gpus{gpus}")
    if resumed:
        parts.append("resume")
    return "-".join(parts)


def find_snapshot(path: str) -> Path:
    """A snapshot file, or the newest snapshot-*.safetensors in a run directory."""
    p = Path(path)
    if p.is_dir():
        snaps = sorted(p.glob("snapshot-*.safetensors"), key=lambda s: (s.name, s.stat().st_mtime))
        if not snaps:
            raise click.ClickException(f"--resume {path}: no snapshot-*.safetensors in this directory")
        return snaps[-1]
    if not p.is_file():
        raise click.ClickException(f"--resume {path}: no such file")
    return p


@click.command("train", context_settings={"show_default": True})
@click.option("--outdir", default="runs", type=click.Path(file_okay=False), help="Where run directories are made.")
@click.option("--data", help="Training data: folder, zip, or builtin:mnist / builtin:emoji64 ...")
@click.option("--cfg", "cfg_name", default=None, help="Preset (default auto; see docs/presets.md, docs/training.md).")
@click.option("--gpus", type=click.IntRange(min=1), default=1, help="Processes: GPUs (CUDA) or CPU processes.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Total batch size (preset's if omitted).")
@click.option("--batch-gpu", type=click.IntRange(min=1), default=None, help="Micro-batch per process (gradient accumulation).")
@click.option("--gamma", type=click.FloatRange(min=0), default=None, help="R1 weight (preset's if omitted).")
@click.option("--kimg", type=click.FloatRange(min=0), default=None, help="Training length in thousands of images.")
@click.option("--snap", type=click.IntRange(min=0), default=None, help="Snapshot interval in ticks (0: never).")
@click.option("--mirror/--no-mirror", default=None, help="Add x-flipped copies of the data.")
@click.option("--cond/--no-cond", default=None, help="Conditional training on the dataset's labels.")
@click.option("--resume", default=None, help="Training snapshot (or run directory) to continue exactly.")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--metrics", default=None, help="Comma-separated metric ids at every snapshot, or none.")
@click.option("--aug", type=click.Choice(["noaug", "ada", "fixed"]), default=None,
              help="Augmentation mode (default ada, as officially).")
@click.option("--p", type=float, default=None, help="Augment probability for --aug fixed (start value for ada).")
@click.option("--target", type=click.FloatRange(0, 1), default=None, help="ADA target E[sign(D(real))] (0.6).")
@click.option("--augpipe", default=None, help="Augment pipeline: blit, geom, color, filter, noise, cutout, bg, bgc, "
                                             "bgcf, bgcfn, bgcfnc (default bgc).")
@click.option("--g-arch", type=click.Choice(_ARCHS), default=None, help="Generator architecture.")
@click.option("--d-arch", type=click.Choice(_ARCHS), default=None, help="Discriminator architecture.")
@click.option("--map", "map_layers", type=click.IntRange(min=0), default=None, help="Mapping network depth.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate of G and D.")
@click.option("--ema", type=click.FloatRange(min=0), default=None, help="G_ema half-life in kimg.")
@click.option("--kimg-per-tick", type=click.FloatRange(min=0, min_open=True), default=None, help="Tick length in kimg.")
@click.option("--device", default="auto", help="cpu, cuda, cuda:N, mps, or auto.")
@click.option("--workers", type=click.IntRange(min=0), default=2, help="Data loader processes (large datasets).")
@click.option("--desc", default=None, help="Run directory name after the number (default: from the options).")
@click.option("--nan-ticks", type=click.IntRange(min=1), default=3,
              help="Stop after this many consecutive ticks with NaN/Inf losses.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also stop (with a final snapshot) at the first tick after this many minutes.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads per process.")
@click.option("--retain-malloc/--no-retain-malloc", default=True, show_default=True,
              help="CPU: keep freed memory for reuse instead of unmapping it (faster; see docs/performance.md).")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile G and D for the main phases (R1 / path length stay eager; falls back to "
                   "eager with a warning). Pays off on GPUs; on CPU +6% after minutes of compiling.")
@click.option("--dry-run", is_flag=True, help="Print the resolved TrainingConfig as JSON and exit.")
@click.pass_context
def command(ctx, outdir, data, cfg_name, gpus, batch, batch_gpu, gamma, kimg, snap, mirror, cond, resume, seed,
            metrics, aug, p, target, augpipe, g_arch, d_arch, map_layers, lr, ema, kimg_per_tick, device,
            workers, desc, nan_ticks, max_minutes, threads, retain_malloc, compile_, dry_run):
    """Train a StyleGAN / StyleGAN2 network (one line per tick; snapshots in the run directory)."""
    from ..data.dataset import DatasetError, open_dataset
    from ..io.checkpoint import CheckpointError, read_checkpoint
    from ..io.serialize import ConfigError, from_dict, to_dict
    from ..training import distributed as ddp
    from ..training.config import TrainingConfig
    from ..training.loop import (RunOptions, TrainingDiverged, TrainingSetupError, resolve_device,
                                 train_with_options)
    from ..training.presets import DataShape, resolve_preset

    # ---------------------------------------------------------------- resume: config from the snapshot
    base_cfg = None
    snapshot = None
    if resume:
        snapshot = find_snapshot(resume)
        try:
            info = read_checkpoint(snapshot).info
        except CheckpointError as e:
            raise click.ClickException(str(e)) from None
        if "training" in info and not _given(ctx, "cfg_name"):
            try:
                base_cfg = from_dict(TrainingConfig, info["training"])
            except ConfigError as e:
                raise click.ClickException(f"{snapshot}: cannot read its training config: {e}") from None
            if data is None:
                data = info.get("run", {}).get("data")
    if data is None:
        raise click.UsageError("--data is required (a folder, a zip, or builtin:mnist)")
    if gpus > 1 and ddp.under_torchrun():
        raise click.UsageError("under torchrun the process count comes from --nproc_per_node; omit --gpus")

    try:
        dev = resolve_device(device)
    except TrainingSetupError as e:
        raise click.ClickException(str(e)) from None
    world = gpus
    info_rank = 0
    if ddp.under_torchrun():
        import os

        world = int(os.environ["WORLD_SIZE"])
        info_rank = ddp.init_from_env(dev.type).rank

    # ---------------------------------------------------------------- data shape (rank 0 first: builtin caches)
    def _open():
        try:
            return open_dataset(data, use_labels=bool(cond if cond is not None else (base_cfg.cond if base_cfg else False)),
                                xflip=False)
        except DatasetError as e:
            raise click.ClickException(f"cannot open --data: {e}") from None

    if info_rank == 0:
        ds = _open()
        ddp.barrier()
    else:
        ddp.barrier()
        ds = _open()
    if cond and ds.label_dim == 0:
        raise click.ClickException(f"--cond needs labels, but {data} has none (no labels in dataset.json)")

    # ---------------------------------------------------------------- config
    if base_cfg is None:
        name = cfg_name or "auto"
        shape = DataShape(resolution=ds.resolution, channels=ds.num_channels,
                          c_dim=ds.label_dim if cond else 0, gpus=world)
        try:
            base_cfg = resolve_preset(name, shape)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        base_cfg = base_cfg.replace(cond=bool(cond))
        if aug is None:
            aug = "ada"  # the official default
    elif cond is not None and cond != base_cfg.cond:
        raise click.ClickException("--cond/--no-cond cannot change when resuming a snapshot (the networks differ)")
    given = dict(batch=batch, gamma=gamma, kimg=kimg, map=map_layers, lr=lr, ema=ema, g_arch=g_arch,
                 d_arch=d_arch, p=p, target=target, augpipe=augpipe)
    cfg = apply_options(base_cfg, gpus=world, batch=batch, batch_gpu=batch_gpu, gamma=gamma, kimg=kimg, snap=snap,
                        mirror=mirror, seed=seed, metrics=None if metrics is None else parse_metrics(metrics),
                        aug=aug, p=p, target=target, augpipe=augpipe, g_arch=g_arch, d_arch=d_arch,
                        map_layers=map_layers, lr=lr, ema=ema, kimg_per_tick=kimg_per_tick)
    if dry_run:
        if info_rank == 0:
            click.echo(json.dumps(to_dict(cfg), indent=2))
        return

    opts = RunOptions(data=data, outdir=outdir, desc=desc or run_desc(ds.name, cfg, given, world, snapshot is not None),
                      device=device, gpus=world, resume=None if snapshot is None else str(snapshot),
                      workers=workers, max_bad_ticks=nan_ticks, max_minutes=max_minutes, threads=threads,
                      retain_malloc=retain_malloc, compile=compile_)
    try:
        result = train_with_options(cfg, opts)
    except TrainingDiverged as e:
        raise click.ClickException(str(e)) from None
    except TrainingSetupError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if ddp.under_torchrun() and ddp.is_initialized():
            import torch.distributed

            torch.distributed.destroy_process_group()
    if info_rank == 0 and result.run_dir is not None:
        click.echo(f"run directory: {result.run_dir}")
        if result.last_snapshot is not None:
            click.echo(f"last snapshot: {result.last_snapshot}")
