"""`stylegan selftest`: check this installation on a device (official parity, training phases,
fast paths, throughput, optionally multi-process training) and exit non-zero on any failure."""
from __future__ import annotations

import click

from ._common import device_option, resolve_device


@click.command(help=__doc__)
@device_option
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Precision of the fixture check (fp16 / bf16: autocast, looser bound) and of generation speed.")
@click.option("--ddp", type=click.IntRange(min=2), default=None, metavar="N",
              help="Also train with N processes (gloo on CPU, nccl on CUDA) and check they stay identical.")
@click.option("--quick", is_flag=True, help="Fewer steps, smaller batches, S32 speed only.")
@click.option("--only", default="", metavar="NAMES",
              help="Comma list of checks or name prefixes to run, e.g. 'fixture,fast' or 'speed/S64'.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the speed checks (default: torch's).")
def command(device: str, dtype: str, ddp: int | None, quick: bool, only: str, threads: int | None) -> None:
    from ..selftest.runner import SelftestOptions, format_row, header, prepare, run_checks, summary

    dev = resolve_device(device)  # a missing device is a one-line error; CPU: retain freed memory like every command
    options = SelftestOptions(device=dev, dtype=dtype, ddp=ddp, quick=quick, threads=threads,
                              only=tuple(o.strip() for o in only.split(",") if o.strip()))
    try:
        dev, checks = prepare(options)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(header(dev, dtype))  # environment, then the runtime line (fast paths, modconv, precision, ...)
    results = run_checks(checks, report=lambda r: click.echo(format_row(r)))
    line = summary(results)
    if any(not r.ok for r in results):
        click.echo(f"selftest failed: {line}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"selftest passed: {line}")
