"""`stylegan video`: looping latent interpolation video (thin wrapper over synth.video)."""
from __future__ import annotations

import re

import click

from ._common import device_option, load_network, precision_option, resolve_device, use_precision


def _grid(ctx, param, value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise click.BadParameter(f"expected ROWSxCOLS like 2x3, got {value!r}")
    return int(m.group(1)), int(m.group(2))


@click.command("video")
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--seeds", required=True, help="Keyframe seeds in loop order, e.g. '0-7'.")
@click.option("--space", type=click.Choice(["z", "w"]), default="z", show_default=True,
              help="z: slerp between latents, then map; w: map first, then lerp.")
@click.option("--frames", "frames_per_seed", type=click.IntRange(min=1), default=60, show_default=True,
              help="Frames per transition from one seed to the next.")
@click.option("--loops", type=click.IntRange(min=1), default=1, show_default=True, help="Times to run the loop.")
@click.option("--fps", type=click.FloatRange(min=1), default=30, show_default=True)
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, default=None, help="Truncate only the first N style inputs.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--grid", default="1x1", show_default=True, callback=_grid,
              help="ROWSxCOLS loops side by side; the seeds are split evenly, consecutively, over the cells.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif"]), default=None,
              help="Output format (default from --out's suffix, else mp4).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Output file (default interp-<space>.<format>).")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@device_option
@precision_option
def command(network_path, seeds, space, frames_per_seed, loops, fps, psi, cutoff, noise_mode, grid, fmt,
            out_path, class_idx, batch, device, precision):
    """Write a seamlessly looping interpolation video through the seeds' latents."""
    from ..synth.sample import parse_range
    from ..synth.video import interpolation_frames, num_loop_frames, video_format, write_video

    try:
        seed_list = parse_range(seeds)
    except ValueError as e:
        raise click.ClickException(f"--seeds: {e}") from None
    if out_path is None:
        out_path = f"interp-{space}.{fmt or 'mp4'}"
    try:
        kind = video_format(out_path, fmt)
        total = num_loop_frames(seed_list, frames_per_seed, grid) * loops
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        with use_precision(G, precision, dev):  # frames are generated lazily, while writing
            frames = interpolation_frames(G, seed_list, space, frames_per_seed, psi=psi, cutoff=cutoff,
                                          noise_mode=noise_mode, class_idx=class_idx, grid=grid,
                                          num_frames=total, batch=batch, device=dev)
            path = write_video(frames, out_path, fps=fps, fmt=kind, total=total)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path} ({total} frames, {total / fps:.1f} s at {fps:g} fps)")

