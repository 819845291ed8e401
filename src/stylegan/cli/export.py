"""`stylegan export`: a generator as an ONNX model (truncation and noise fixed at export time)."""
from __future__ import annotations

from pathlib import Path

import click

from ._common import load_network


def _batch(value: str) -> int | str:
    if value == "dynamic":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise click.BadParameter(f"expected a positive integer or 'dynamic', got {value!r}")
    return n


@click.command("export")
@click.argument("network", type=click.Path(dir_okay=False), metavar="NETWORK")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT.onnx")
@click.option("--psi", type=float, default=1.0, show_default=True, help="Truncation psi, applied on every layer.")
@click.option("--noise", type=click.Choice(["const", "none"]), default="const", show_default=True,
              help="const: the network's stored noise; none: no noise.")
@click.option("--batch", default="dynamic", show_default=True, help="Batch size N, or 'dynamic'.")
@click.option("--w-input", is_flag=True, help="Take ws [N, num_ws, w_dim] instead of z [N, z_dim].")
@click.option("--force", is_flag=True, help="Overwrite OUT.onnx if it exists.")
def command(network: str, dest: Path, psi: float, noise: str, batch: str, w_input: bool, force: bool) -> None:
    """Export the generator of NETWORK (any file `stylegan.load` reads) to ONNX.

    Inputs: `z` [N, z_dim] (or `ws` [N, num_ws, w_dim] with --w-input), plus `c` [N, c_dim] one-hot
    labels for conditional networks; output `img` [N, C, H, W] in [-1, 1]. The model is checked
    with onnx.checker before it is written.
    """
    import torch

    from ..io.onnx_export import ONNX_INSTALL_HINT, ExportOptions, export_onnx, onnx_missing

    missing = onnx_missing()
    if missing:
        raise click.ClickException(f"ONNX export needs the '{missing}' package: {ONNX_INSTALL_HINT}")
    if dest.exists() and not force:
        raise click.ClickException(f"{dest} already exists (use --force to overwrite)")
    try:
        opts = ExportOptions(psi=psi, noise=noise, batch=_batch(batch), w_input=w_input)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    G = load_network(network, torch.device("cpu"))
    summary = export_onnx(G, dest, opts)
    ins = ", ".join(f"{k} {v}" for k, v in summary["inputs"].items())
    click.echo(f"wrote {dest} ({dest.stat().st_size / 2 ** 20:.1f} MiB, opset {summary['opset']}): "
               f"{ins} -> img {summary['output']}, psi {psi}, noise {noise}")
