"""`stylegan generate`: images from seeds (or a projected w), with truncation and noise control."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from ._common import (OFFICIAL_SPELLINGS, device_option, input_transform, load_network, precision_option,
                      resolve_device, use_precision)


@click.command("generate", context_settings=OFFICIAL_SPELLINGS)
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--seeds", help="Seeds, e.g. '0-7,12'.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, default=None, help="Truncate only the first N style inputs.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--class", "class_idx", default=None,
              help="Class index of a conditional network, or several ('0-9', '1,7'): then each class "
                   "gets every seed, one grid row per class.")
@click.option("--projected-w", type=click.Path(dir_okay=False), help="projected_w.npz from `stylegan project`.")
@click.option("--grid", is_flag=True, help="Also write all images as one grid.png.")
@click.option("--translate", default=None, metavar="X,Y",
              help="StyleGAN3: translate the image by X,Y image widths (gen_images.py's input transform).")
@click.option("--rotate", type=float, default=None, metavar="DEG",
              help="StyleGAN3: rotate the image by DEG degrees (gen_images.py's input transform).")
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where to write PNGs.")
@device_option
@precision_option
def command(network_path, seeds, psi, cutoff, noise_mode, class_idx, projected_w, grid, translate, rotate, batch,
            outdir, device, precision):
    """Generate images: one PNG per seed (seedNNNN.png), or per w in --projected-w."""
    from ..io.images import make_grid, save_image, to_uint8

    dev = resolve_device(device)
    G = load_network(network_path, dev)
    outdir = Path(outdir)
    classes = _classes(class_idx)
    with input_transform(G, translate, rotate), use_precision(G, precision, dev):
        images, names = _images(G, seeds, psi, cutoff, noise_mode, classes, projected_w, batch, dev)
    arrays = to_uint8(images).numpy()
    for a, name in zip(arrays, names):
        save_image(a, outdir / name)
    if grid:
        rows = len(classes) if classes is not None and len(classes) > 1 else None  # one row per class
        save_image(make_grid(arrays, rows=rows), outdir / "grid.png")
    click.echo(f"wrote {len(names)} image(s) of {G.img_resolution}x{G.img_resolution} to {outdir}")


def _images(G, seeds, psi, cutoff, noise_mode, classes, projected_w, batch, dev):
    """([N, C, H, W] images, file names) from --seeds (class-major over `classes`) or --projected-w."""
    from ..synth.sample import generate, parse_range

    if projected_w:
        if seeds:
            raise click.ClickException("--seeds and --projected-w are exclusive")
        return _from_projected_w(G, projected_w, noise_mode, dev)
    if not seeds:
        raise click.ClickException("give --seeds (e.g. 0-7) or --projected-w")
    try:
        seed_list = parse_range(seeds)
        images = torch.cat([generate(G, seed_list, psi=psi, cutoff=cutoff, noise_mode=noise_mode,
                                     class_idx=c, batch=batch, device=dev) for c in (classes or [None])])
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if classes is not None and len(classes) > 1:
        return images, [f"class{c:02d}-seed{s:04d}.png" for c in classes for s in seed_list]
    return images, [f"seed{s:04d}.png" for s in seed_list]


def _classes(spec: str | None) -> list[int] | None:
    """--class: None, one index or a list / range of indices."""
    from ..synth.sample import parse_range

    if spec is None:
        return None
    try:
        return parse_range(spec)
    except ValueError:
        raise click.ClickException(f"--class must be an index or a list / range like 0-9, got {spec!r}") from None


def _from_projected_w(G, path: str, noise_mode: str, device: torch.device):
    try:
        ws = np.load(path)["w"]
    except (OSError, KeyError, ValueError) as e:
        raise click.ClickException(f"cannot read key 'w' from {path}: {e}") from None
    if ws.ndim == 2:
        ws = ws[None]
    if ws.shape[1:] != (G.num_ws, G.w_dim):
        raise click.ClickException(f"{path}: w has shape {tuple(ws.shape)}, the network expects "
                                   f"[N, {G.num_ws}, {G.w_dim}]")
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(ws).float().to(device), noise_mode=noise_mode).cpu()
    return img, [f"proj{i:02d}.png" for i in range(len(ws))]
