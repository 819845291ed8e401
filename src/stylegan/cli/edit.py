"""`stylegan edit`: move latents along directions of a direction file (thin wrapper over
synth.edit): a grid per component (rows = latents, columns = strengths) or a looping video sweep."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from ._common import device_option, load_network, precision_option, resolve_device, use_precision


@click.command("edit")
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--directions", "directions_path", required=True, type=click.Path(dir_okay=False),
              help="Direction file from `stylegan directions`.")
@click.option("--seeds", help="Seeds to edit, e.g. '0-3' (one grid row each).")
@click.option("--projected-w", type=click.Path(dir_okay=False), help="projected_w.npz from `stylegan project`.")
@click.option("--component", "components", default="0", show_default=True,
              help="Component(s) of the file, e.g. '0' or '0-2,5': one output each (or one with --combine).")
@click.option("--combine", is_flag=True, help="Edit along the sum of the components (the same strength each).")
@click.option("--alpha", "alpha_spec", default="-3:3:7", show_default=True,
              help="Strengths in standard deviations of W along the direction: lo:hi:n (ends included) or a list.")
@click.option("--layers", default=None,
              help="Style inputs to edit: coarse | middle | fine | all | indices like 0-3 (default: the file's).")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi, before the edit.")
@click.option("--trunc-cutoff", "cutoff", type=int, default=None, help="Truncate only the first N style inputs.")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--video", is_flag=True,
              help="Write a looping sweep lo -> hi -> lo (the latents side by side) instead of a grid.")
@click.option("--frames", type=click.IntRange(min=2), default=60, show_default=True, help="Frames of one sweep.")
@click.option("--fps", type=click.FloatRange(min=1), default=30, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif"]), default="mp4", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@device_option
@precision_option
def command(network_path, directions_path, seeds, projected_w, components, combine, alpha_spec, layers, psi, cutoff,
            class_idx, noise_mode, video, frames, fps, fmt, batch, outdir, device, precision):
    """Edit seeds (or a projected w) along directions: OUTDIR/edit-c<K>.png per component, row =
    latent, column = strength (alpha 0 is the unedited image); with --video edit-c<K>.<format>."""
    from ..io.images import save_image
    from ..synth.directions import DirectionError, check_network, load_directions, parse_alphas, range_spec
    from ..synth.edit import edit_grid, sweep_alphas, sweep_frames
    from ..synth.figures import style_indices
    from ..synth.sample import parse_range
    from ..synth.video import write_video

    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        d = load_directions(directions_path)
        warning = check_network(d, G)
        comps = parse_range(components)
        alphas = parse_alphas(alpha_spec)
        layer_idx = None if layers is None else \
            (list(range(G.num_ws)) if layers == "all" else style_indices(layers, G.num_ws))
        bad = [k for k in comps if not 0 <= k < d.count]
        if bad:
            raise DirectionError(f"--component {bad} out of range: {directions_path} has {d.count} (0..{d.count - 1})")
        ws, names = _latents(G, seeds, projected_w, psi, cutoff, class_idx, dev)
    except (DirectionError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if warning:
        click.echo(f"warning: {warning}", err=True)
    outdir = Path(outdir)
    groups = [comps] if combine else [[k] for k in comps]
    with use_precision(G, precision, dev):
        for group in groups:
            tag = "+".join(str(k) for k in group)
            if video:
                lo, hi = min(alphas), max(alphas)
                path = write_video(sweep_frames(G, ws, d, group, sweep_alphas(lo, hi, frames), layers=layer_idx,
                                                noise_mode=noise_mode, batch=batch),
                                   outdir / f"edit-c{tag}.{fmt}", fps=fps, total=frames)
            else:
                path = save_image(edit_grid(G, ws, d, group, alphas, layers=layer_idx, noise_mode=noise_mode,
                                            batch=batch), outdir / f"edit-c{tag}.png")
            click.echo(f"wrote {path}")
    where = range_spec(d.layers if layer_idx is None else layer_idx)
    click.echo(f"{d.provenance.method} component(s) {components} on style inputs {where}; rows: {', '.join(names)}; "
               f"strengths {', '.join(f'{a:g}' for a in alphas)} (x W's std along each)")


def _latents(G, seeds, projected_w, psi, cutoff, class_idx, dev):
    """ws [N, num_ws, w_dim] of --seeds (truncated) or --projected-w, and their names."""
    from ..synth.figures import seed_ws
    from ..synth.sample import parse_range

    if bool(seeds) == bool(projected_w):
        raise click.ClickException("give --seeds (e.g. 0-3) or --projected-w, not both")
    if seeds:
        seed_list = parse_range(seeds)
        return seed_ws(G, seed_list, psi=psi, cutoff=cutoff, class_idx=class_idx, device=dev), \
            [f"seed {s}" for s in seed_list]
    try:
        with np.load(projected_w, allow_pickle=False) as f:
            w = np.asarray(f["w"])
    except (OSError, KeyError, ValueError) as e:
        raise click.ClickException(f"cannot read key 'w' from {projected_w}: {e}") from None
    w = w[None] if w.ndim == 2 else w
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
        raise click.ClickException(f"{projected_w}: w has shape {tuple(w.shape)}, the network expects "
                                   f"[N, {G.num_ws}, {G.w_dim}]")
    ws = torch.from_numpy(w.astype(np.float32)).to(dev)
    with torch.no_grad():
        ws = G.truncate(ws, psi, cutoff) if psi != 1 else ws
    return ws, [f"{Path(projected_w).name}[{i}]" for i in range(ws.shape[0])]


__all__ = ["command"]
