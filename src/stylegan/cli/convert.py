"""`stylegan convert`: official NVIDIA pickles and rosinality checkpoints <-> our checkpoint.

Nothing from a source file runs: pickles go through the restricted unpickler, torch.save files
through torch's weights-only loader (docs/interop.md).
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("src", metavar="SRC")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path), metavar="DEST")
@click.option("--to", "to", type=click.Choice(["stylegan", "rosinality"]), default="stylegan", show_default=True,
              help="stylegan: our .safetensors checkpoint; rosinality: a stylegan2-pytorch .pt checkpoint.")
@click.option("--custom-channels", is_flag=True,
              help="--to rosinality: also write channel tables other than their stock one (their model.py "
                   "must then be built with the same table).")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def command(src: str, dest: Path, to: str, custom_channels: bool, force: bool) -> None:
    """Convert a network file into our checkpoint, or ours into a rosinality checkpoint.

    SRC may be an official NVIDIA pickle (stylegan2-ada-pytorch / stylegan3 repository snapshots
    holding StyleGAN2 networks, TensorFlow StyleGAN2 and StyleGAN pickles), a
    rosinality/stylegan2-pytorch checkpoint, or (with --to rosinality) one of ours. Writes every
    network found (G, D, G_ema). SRC may be an http(s) URL (downloaded once into the cache).
    """
    from ..io.checkpoint import CheckpointError
    from ..io.load import convert
    from ..io.remote import is_url, resolve_path

    if not is_url(src) and not Path(src).is_file():
        raise click.ClickException(f"no such file: {src}")
    if dest.exists() and not force:
        raise click.ClickException(f"{dest} already exists (use --force to overwrite)")
    try:
        local = resolve_path(src)  # a URL: downloaded once into the cache
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    if dest.resolve() == local.resolve():
        raise click.ClickException("DEST must differ from SRC")
    try:
        summary = convert(local, dest, to=to, allow_custom_channels=custom_channels)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {dest}: {e}") from None

    if to == "rosinality":
        click.echo(f"networks: {', '.join(summary['networks'])}")
        args = summary["args"]
        cm = args["channel_multiplier"]
        click.echo(f"their constructor: Generator({args['size']}, {args['style_dim']}, {args['n_mlp']}, "
                   f"channel_multiplier={cm if cm is not None else '(custom table)'})")
    else:
        click.echo(f"source: {src} ({summary['source_format']})")
        for name, net in summary["networks"].items():
            res = net["resolution"]
            cond = f", {net['c_dim']} classes" if net["c_dim"] else ""
            click.echo(f"  {name:<6} {net['kind']:<13} {res}x{res}, {net['channels']} ch, {net['architecture']}"
                       f"{cond}, {net['params'] / 1e6:.2f} M params  [{net['source_class']}]")
        if "augment_pipe_p" in summary["info"]:
            click.echo(f"  augment p = {summary['info']['augment_pipe_p']:.4f}")
    for note in summary["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"wrote {dest} ({dest.stat().st_size / 2 ** 20:.1f} MiB)")
