"""`stylegan explore`: serve the web explorer for one network (thin wrapper over stylegan.explore)."""
from __future__ import annotations

import click

from ._common import device_option, resolve_device


@click.command("explore")
@click.option("--network", "network_path", required=True,
              help="Checkpoint (.safetensors), official .pkl, a run directory (its latest snapshot), or an "
                   "http(s) URL of a network file (downloaded once into the cache).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets anyone on that network use it.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@device_option
def command(network_path, host, port, device):
    """Open a local web page to explore NETWORK: seeds, truncation, style mixing, noise,
    interpolation loops and projection, rendered on --device. Prints the URL; Ctrl-C stops."""
    try:
        from ..explore import create_app
        from ..explore.server import LOOPBACK, listen, serve, url_of
    except ModuleNotFoundError as e:
        raise click.ClickException(f"the explorer needs the 'explore' extra ({e.name} is missing): "
                                   f"pip install 'stylegan[explore]'") from None
    from ..io.checkpoint import CheckpointError

    dev = resolve_device(device)
    try:
        app = create_app(network_path, dev)
    except (CheckpointError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    try:
        sock = listen(host, port)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if host not in LOOPBACK:
        click.echo(f"WARNING: listening on {host}: anyone who can reach this machine on that network can "
                   f"use the explorer (and its CPU/GPU). Use the default 127.0.0.1 with `ssh -L` instead.",
                   err=True)
    click.echo(f"stylegan explore: {network_path} on {dev} at {url_of(sock)}  (Ctrl-C stops)")
    serve(app, sock)
