"""`stylegan train`: train StyleGAN (v1, progressive) or StyleGAN2 networks.

    stylegan train --outdir runs --data builtin:mnist --cfg cpu --kimg 10 --device cpu
    stylegan train --outdir runs --data ffhq256.zip --cfg paper256 --gpus 8 --mirror
    torchrun --nproc_per_node 8 -m stylegan train --outdir runs --data ffhq256.zip --cfg paper256
    stylegan train --resume runs/00003-ffhq256-paper256/snapshot-000200000.safetensors

Option names follow NVIDIA's stylegan2-ada-pytorch `train.py`. The options are not written here:
each is a field of `training.plan.RunOptions` or `Overrides`, declared once with its type, default,
help and config path (`training.options`), and becomes a click option below. This module only
parses: `training.plan` resolves and validates, `training.launch` runs. docs/training.md has details.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import click

from ..training.options import Declared, declared
from ._common import bool_flag
from ..training.plan import Overrides, RunOptions


def _click_type(d: Declared) -> Any:
    o = d.option
    if o.choices:
        return click.Choice(list(o.choices))
    if d.type is int and (o.low is not None or o.high is not None):
        return click.IntRange(min=None if o.low is None else int(o.low), max=None if o.high is None else int(o.high))
    if d.type is float and (o.low is not None or o.high is not None):
        return click.FloatRange(min=o.low, max=o.high, min_open=o.low_open)
    if d.type in (int, float, str):
        return d.type
    return str  # parsed by `o.parse`


def _click_option(d: Declared) -> Callable:
    """The click option of one declared field (flags keep the field's name as the parameter).

    Booleans are flags that also take the official scripts' BOOL value (`--mirror`, `--mirror=1`,
    `--mirror false`); a negatable one also has `--no-<flag>` (parameter `no_<name>`, see `_split`)."""
    o, flag = d.option, d.flag
    if d.type is bool:
        option = bool_flag(flag, *(f"--{a}" for a in o.aliases), d.name, default=d.default, help=o.help)
        if not o.negatable:
            return option
        negation = click.option(f"--no-{flag[2:]}", f"no_{d.name}", is_flag=True, default=False,
                                help=f"The same as {flag}=false.")
        return lambda f: option(negation(f))
    callback = None
    if o.parse is not None:
        def callback(ctx, param, value, parse=o.parse):  # noqa: ARG001 - click's signature
            return None if value is None else parse(value)
    flags = [flag] + [f"--{a}" for a in o.aliases]
    return click.option(*flags, d.name, type=_click_type(d), default=d.default, callback=callback, help=o.help)


def declared_options(*classes: type) -> Callable:
    """A decorator adding a click option for every command-line field of `classes`, in order."""
    fields = [d for cls in classes for d in declared(cls) if d.flag is not None]

    def decorate(f: Callable) -> Callable:
        for d in reversed(fields):
            f = _click_option(d)(f)
        return f
    return decorate


def _split(kwargs: dict) -> tuple[RunOptions, Overrides]:
    for name in [k for k in kwargs if k.startswith("no_")]:  # --no-mirror: mirror = False
        if kwargs.pop(name):
            kwargs[name[3:]] = False
    run = {d.name: kwargs.pop(d.name) for d in declared(RunOptions) if d.name in kwargs}
    over = {d.name: kwargs.pop(d.name) for d in declared(Overrides) if d.name in kwargs}
    assert not kwargs, f"undeclared options {sorted(kwargs)}"
    return RunOptions(**run), Overrides(**over)


@click.command("train", context_settings={"show_default": True})
@click.option("--cfg", "cfg_name", default=None, help="Preset (default auto; see docs/presets.md, docs/training.md).")
@declared_options(RunOptions, Overrides)
@click.option("-n", "--dry-run", is_flag=True, help="Print what the run would record in config.json (the resolved "
                                              "TrainingConfig and the run options) as JSON and exit.")
def command(cfg_name, dry_run, **kwargs):
    """Train a StyleGAN / StyleGAN2 network (one line per tick; snapshots in the run directory)."""
    from .. import distributed as ddp
    from ..training.errors import TrainingSetupError, TrainingStopped
    from ..training.launch import launch, prepare
    from ..training.plan import run_record

    opts, overrides = _split(kwargs)
    if opts.data is None and opts.resume is None:
        raise click.UsageError("--data is required (a folder, a zip, or builtin:mnist)")
    if opts.gpus > 1 and ddp.under_torchrun():
        raise click.UsageError("under torchrun the process count comes from --nproc_per_node; omit --gpus")
    try:
        plan = prepare(opts, preset=cfg_name, overrides=overrides)
        leader = ddp.current().is_leader
        if dry_run:
            if leader:
                click.echo(json.dumps(run_record(plan), indent=2))
            return
        result = launch(plan)
    except TrainingSetupError as e:
        raise click.ClickException(str(e)) from None
    except TrainingStopped as e:  # its own exit status: 75 interrupted (resume), 74 I/O, 65 data, 1 diverged
        err = click.ClickException(str(e))
        err.exit_code = e.exit_code
        raise err from None
    finally:
        if ddp.under_torchrun() and ddp.is_initialized():
            import torch.distributed

            torch.distributed.destroy_process_group()
    if leader and result.run_dir is not None:
        click.echo(f"run directory: {result.run_dir}")
        if result.last_snapshot is not None:
            click.echo(f"last snapshot: {result.last_snapshot}")
