"""`stylegan video`: looping latent interpolation video (thin wrapper over synth.video).

Takes stylegan3's `gen_video.py` options too (`--grid WxH`, `--w-frames`, `--num-keyframes`,
`--shuffle-seed`, `--output`), so its command lines run here unchanged; `--space w --interp cubic
--fps 60 --frames 120` is its video.
"""
from __future__ import annotations

import re

import click

from ._common import (OFFICIAL_SPELLINGS, device_option, input_transform, load_network, precision_option,
                      resolve_device, use_precision)


def _grid(ctx, param, value: str) -> tuple[int, int]:
    """--grid 'WxH' (or 'W,H', as gen_video.py) -> (rows, cols) = (H, W), the Python API's order."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise click.BadParameter(f"expected COLSxROWS (width x height, as gen_video.py) like 4x2, got {value!r}")
    return int(m.group(2)), int(m.group(1))


@click.command("video", context_settings=OFFICIAL_SPELLINGS)
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--seeds", required=True, help="Keyframe seeds in loop order, e.g. '0-7'.")
@click.option("--space", type=click.Choice(["z", "w"]), default="z", show_default=True,
              help="z: slerp between latents, then map; w: map first, then interpolate.")
@click.option("--interp", type=click.Choice(["linear", "cubic"]), default="linear", show_default=True,
              help="linear: slerp in Z, lerp in W; cubic (W only): gen_video.py's looping cubic spline.")
@click.option("--frames", "--w-frames", "frames_per_seed", type=click.IntRange(min=1), default=60,
              show_default=True, help="Frames per transition from one keyframe to the next.")
@click.option("--num-keyframes", type=click.IntRange(min=1), default=None,
              help="Keyframes per grid cell, cycling through --seeds (default: the seeds split evenly "
                   "over the cells).")
@click.option("--shuffle-seed", type=int, default=None,
              help="Shuffle the keyframe seeds with this seed (as gen_video.py).")
@click.option("--loops", type=click.IntRange(min=1), default=1, show_default=True, help="Times to run the loop.")
@click.option("--fps", type=click.FloatRange(min=1), default=30, show_default=True)
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, default=None, help="Truncate only the first N style inputs.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--grid", default="1x1", show_default=True, callback=_grid,
              help="COLSxROWS (width x height, as gen_video.py) loops side by side; each cell loops "
                   "through its own consecutive share of the keyframe seeds.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif"]), default=None,
              help="Output format (default from --out's suffix, else mp4).")
@click.option("--out", "--output", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Output file (default interp-<space>.<format>).")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--translate", default=None, metavar="X,Y",
              help="StyleGAN3: translate the image by X,Y image widths (gen_images.py's input transform).")
@click.option("--rotate", type=float, default=None, metavar="DEG",
              help="StyleGAN3: rotate the image by DEG degrees (gen_images.py's input transform).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@device_option
@precision_option
def command(network_path, seeds, space, interp, frames_per_seed, num_keyframes, shuffle_seed, loops, fps, psi,
            cutoff, noise_mode, grid, fmt, out_path, class_idx, translate, rotate, batch, device, precision):
    """Write a seamlessly looping interpolation video through the seeds' latents."""
    from ..synth.sample import parse_range
    from ..synth.video import interpolation_frames, keyframe_seeds, num_loop_frames, video_format, write_video

    try:
        seed_list = parse_range(seeds)
    except ValueError as e:
        raise click.ClickException(f"--seeds: {e}") from None
    if interp == "cubic" and space != "w":
        raise click.UsageError("--interp cubic runs in W (as gen_video.py): add --space w")
    if out_path is None:
        out_path = f"interp-{space}.{fmt or 'mp4'}"
    try:
        seed_list = keyframe_seeds(seed_list, grid, num_keyframes, shuffle_seed)
        kind = video_format(out_path, fmt)
        total = num_loop_frames(seed_list, frames_per_seed, grid) * loops
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        with input_transform(G, translate, rotate), use_precision(G, precision, dev):  # frames are generated lazily, while writing
            frames = interpolation_frames(G, seed_list, space, frames_per_seed, psi=psi, cutoff=cutoff,
                                          noise_mode=noise_mode, class_idx=class_idx, grid=grid,
                                          num_frames=total, batch=batch, device=dev, interp=interp)
            path = write_video(frames, out_path, fps=fps, fmt=kind, total=total)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path} ({total} frames, {total / fps:.1f} s at {fps:g} fps)")
