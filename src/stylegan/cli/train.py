"""`stylegan train`: train StyleGAN (v1, progressive) or StyleGAN2 networks.

    stylegan train --outdir runs --data builtin:mnist --cfg cpu --kimg 10 --device cpu
    stylegan train --outdir runs --data ffhq256.zip --cfg paper256 --gpus 8 --mirror
    torchrun --nproc_per_node 8 -m stylegan train --outdir runs --data ffhq256.zip --cfg paper256
    stylegan train --resume runs/00003-ffhq256-paper256/snapshot-000200000.safetensors

Option names follow NVIDIA's stylegan2-ada-pytorch `train.py`. This module only parses options:
`training.plan` resolves and validates them, `training.launch` runs. docs/training.md has the details.
"""
from __future__ import annotations

import json
from typing import Optional

import click

_ARCHS = ("orig", "skip", "resnet")


def parse_metrics(spec: Optional[str]) -> Optional[tuple[str, ...]]:
    """'fid50k_full,kid50k' -> names; 'none' or '' -> (); None (not given) -> None."""
    if spec is None:
        return None
    if spec.strip().lower() in ("", "none"):
        return ()
    return tuple(s.strip() for s in spec.split(",") if s.strip())


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
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="16-bit (bf16 / fp16) in the 4 highest resolutions of G and D, clamp 256, the rest fp32 "
                   "(docs/performance.md); default: the preset's networks as constructed.")
@click.option("--dry-run", is_flag=True, help="Print the resolved TrainingConfig as JSON and exit.")
def command(outdir, data, cfg_name, gpus, batch, batch_gpu, gamma, kimg, snap, mirror, cond, resume, seed,
            metrics, aug, p, target, augpipe, g_arch, d_arch, map_layers, lr, ema, kimg_per_tick, device,
            workers, desc, nan_ticks, max_minutes, threads, retain_malloc, compile_, precision, dry_run):
    """Train a StyleGAN / StyleGAN2 network (one line per tick; snapshots in the run directory)."""
    from .. import distributed as ddp
    from ..io.serialize import to_dict
    from ..training.errors import TrainingDiverged, TrainingSetupError
    from ..training.launch import launch, prepare
    from ..training.plan import Overrides, RunOptions

    if data is None and resume is None:
        raise click.UsageError("--data is required (a folder, a zip, or builtin:mnist)")
    if gpus > 1 and ddp.under_torchrun():
        raise click.UsageError("under torchrun the process count comes from --nproc_per_node; omit --gpus")
    overrides = Overrides(batch=batch, batch_gpu=batch_gpu, gamma=gamma, kimg=kimg, snap=snap, mirror=mirror,
                          cond=cond, seed=seed, metrics=parse_metrics(metrics), aug=aug, p=p, target=target,
                          augpipe=augpipe, g_arch=g_arch, d_arch=d_arch, map_layers=map_layers, lr=lr, ema=ema,
                          kimg_per_tick=kimg_per_tick, precision=precision)
    opts = RunOptions(data=data, outdir=outdir, desc=desc, device=device, gpus=gpus, resume=resume,
                      workers=workers, max_bad_ticks=nan_ticks, max_minutes=max_minutes, threads=threads,
                      retain_malloc=retain_malloc, compile=compile_)
    try:
        plan = prepare(opts, preset=cfg_name, overrides=overrides)
        leader = ddp.current().is_leader
        if dry_run:
            if leader:
                click.echo(json.dumps(to_dict(plan.cfg), indent=2))
            return
        result = launch(plan)
    except (TrainingDiverged, TrainingSetupError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if ddp.under_torchrun() and ddp.is_initialized():
            import torch.distributed

            torch.distributed.destroy_process_group()
    if leader and result.run_dir is not None:
        click.echo(f"run directory: {result.run_dir}")
        if result.last_snapshot is not None:
            click.echo(f"last snapshot: {result.last_snapshot}")
