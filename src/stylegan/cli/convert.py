"""`stylegan convert`: official NVIDIA pickle -> our safetensors checkpoint (nothing from it runs)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path), metavar="SRC.pkl")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path), metavar="DEST.safetensors")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def command(src: Path, dest: Path, force: bool) -> None:
    """Convert an official NVIDIA network pickle into our checkpoint.

    Reads stylegan2-ada-pytorch / stylegan3-repository snapshots holding StyleGAN2 networks and
    TensorFlow StyleGAN2 pickles with a restricted unpickler: the Python source embedded in the
    file is never imported or run. Writes every network found (G, D, G_ema) with its config.
    """
    from ..io.checkpoint import CheckpointError
    from ..io.load import convert

    if not src.is_file():
        raise click.ClickException(f"no such file: {src}")
    if dest.exists() and not force:
        raise click.ClickException(f"{dest} already exists (use --force to overwrite)")
    if dest.resolve() == src.resolve():
        raise click.ClickException("DEST must differ from SRC")
    try:
        summary = convert(src, dest)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {dest}: {e}") from None

    click.echo(f"source: {src} ({summary['source_format']} pickle)")
    for name, net in summary["networks"].items():
        res = net["resolution"]
        cond = f", {net['c_dim']} classes" if net["c_dim"] else ""
        click.echo(f"  {name:<6} {net['kind']:<13} {res}x{res}, {net['channels']} ch, {net['architecture']}"
                   f"{cond}, {net['params'] / 1e6:.2f} M params  [{net['source_class']}]")
    info = summary["info"]
    if "augment_pipe_p" in info:
        click.echo(f"  augment p = {info['augment_pipe_p']:.4f}")
    for note in summary["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"wrote {dest} ({dest.stat().st_size / 2 ** 20:.1f} MiB)")
