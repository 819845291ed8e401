"""`stylegan project`: project an image into W / W+ (thin wrapper over synth.projector)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ._common import OFFICIAL_SPELLINGS, bool_flag, device_option, load_network, resolve_device


@click.command("project", context_settings=OFFICIAL_SPELLINGS)
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--target", "target_path", required=True, help="Image to project (center-cropped, resized).")
@click.option("--steps", "--num-steps", "num_steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Optimisation steps.")
@click.option("--w-plus", is_flag=True, help="Optimise one w per style input (W+) instead of a single w.")
@click.option("--seed", type=int, default=303, show_default=True, help="Seed of the noise initialisation.")
@click.option("--lpips", "lpips_path", default=None, type=click.Path(),
              help="Official LPIPS vgg16.pt (file or folder). Default: the detector cache, else the "
                   "offline EfficientNet-Lite0 proxy distance.")
@bool_flag("--save-video", help="Also write proj.mp4 (target | projection over the steps); takes the "
                               "official projector.py's BOOL too (--save-video=false).")
@click.option("--video-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Use every N-th step in proj.mp4.")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@device_option
def command(network_path, target_path, num_steps, w_plus, seed, lpips_path, save_video, video_every, class_idx,
            outdir, device):
    """Find the w (or W+ ws) whose image matches TARGET. Writes OUTDIR/target.png, proj.png and
    projected_w.npz (key 'w', [1, num_ws, w_dim]: `stylegan generate --projected-w` reads it),
    plus proj.mp4 with --save-video."""
    from ..synth.projector import load_target, project, resolve_distance, save_projection

    if not Path(target_path).is_file():
        raise click.ClickException(f"no such target image: {target_path}")
    if lpips_path is not None and not Path(lpips_path).exists():
        raise click.ClickException(f"--lpips: no such file or folder: {lpips_path}")
    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        target = load_target(G, target_path)
        distance = resolve_distance(lpips_path, device=dev, log=click.echo)
        start = time.time()
        ws_steps, hist = project(G, target, num_steps=num_steps, w_plus=w_plus, distance=distance, device=dev,
                                 seed=seed, verbose=True, class_idx=class_idx)
        click.echo(f"{'W+' if w_plus else 'W'} projection, {num_steps} steps in {time.time() - start:.1f} s: "
                   f"{hist.distance} distance {hist.dist[0]:.4g} -> {hist.dist[-1]:.4g}")
        paths = save_projection(G, target, ws_steps, outdir, save_video=save_video, video_every=video_every,
                                device=dev)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    for p in paths.values():
        click.echo(f"wrote {p}")
