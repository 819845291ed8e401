"""`stylegan figures`: the papers' figures (thin wrapper over synth.figures)."""
from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np

from ._common import device_option, load_network, precision_option, resolve_device, use_precision

KINDS = ("noise-variation", "noise-layers", "truncation", "uncurated")
DEFAULT_SEEDS = {"noise-variation": "0-2", "noise-layers": "0-3", "truncation": "0-5", "uncurated": "0-23"}


def parse_floats(spec: str) -> list[float]:
    """'1,0.7,0,-1' -> list; 'A:B:N' -> N evenly spaced values from A to B (e.g. '-1:1:9')."""
    spec = spec.strip()
    m = re.fullmatch(r"(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*:\s*(\d+)", spec)
    try:
        if m:
            n = int(m.group(3))
            if n < 1:
                raise ValueError
            return [round(float(v), 6) for v in np.linspace(float(m.group(1)), float(m.group(2)), n)]
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise click.BadParameter(f"expected numbers like '1,0.7,0,-1' or a range 'A:B:N', got {spec!r}")
    return values


def parse_cutoffs(spec: str | None) -> list[int | None]:
    """'none,4,8' -> [None, 4, 8]."""
    if spec is None:
        return [None]
    out: list[int | None] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if part in ("none", "all", ""):
            out.append(None)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise click.BadParameter(f"cutoff must be a positive integer or 'none', got {part!r}")
    return out


def _single(values: list, what: str, kind: str):
    if len(values) != 1:
        raise click.ClickException(f"--kind {kind} takes one {what}, got {values}")
    return values[0]


@click.command("figures")
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--kind", required=True, type=click.Choice(KINDS),
              help="noise-variation (Fig. 4), noise-layers (Fig. 5), truncation (psi sweep), uncurated.")
@click.option("--seeds", default=None, help="Seeds (default depends on --kind: " +
              ", ".join(f"{k} {v}" for k, v in DEFAULT_SEEDS.items()) + ").")
@click.option("--psi", "psi_spec", default=None,
              help="Truncation psi. truncation: the sweep (default 1,0.7,0.5,0,-0.5,-1; 'A:B:N' for a "
                   "range, e.g. -1:1:9); other kinds: one value (default 1).")
@click.option("--cutoff", "cutoff_spec", default=None,
              help="Truncate only the first N style inputs. truncation: a list ('none,8' -> one figure "
                   "each); other kinds: one value.")
@click.option("--samples", type=click.IntRange(min=2), default=100, show_default=True,
              help="noise-variation: noise draws for the standard-deviation map.")
@click.option("--std-scale", default="4", show_default=True,
              help="noise-variation: display scale of the std map (gray = 4 x std, official) or 'max'.")
@click.option("--crop", default=None, metavar="X,Y,S",
              help="noise-variation: crop box as fractions of the image (default the official 0.635,0.176,0.25).")
@click.option("--noise-seed", type=int, default=0, show_default=True, help="Seed of the random noise draws.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True,
              help="truncation / uncurated: noise mode.")
@click.option("--cols", type=click.IntRange(min=1), default=None, help="uncurated: images per row.")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@device_option
@precision_option
def command(network_path, kind, seeds, psi_spec, cutoff_spec, samples, std_scale, crop, noise_seed, noise_mode,
            cols, class_idx, batch, outdir, device, precision):
    """Write one of the papers' figures as OUTDIR/<kind>.png."""
    from ..io.images import save_image
    from ..synth import figures as fig
    from ..synth.sample import parse_range

    dev = resolve_device(device)
    try:
        seed_list = parse_range(seeds or DEFAULT_SEEDS[kind])
    except ValueError as e:
        raise click.ClickException(f"--seeds: {e}") from None
    psis = parse_floats(psi_spec) if psi_spec is not None else None
    cutoffs = parse_cutoffs(cutoff_spec)
    G = load_network(network_path, dev)
    outdir = Path(outdir)
    written = []
    try:
        with use_precision(G, precision, dev):
            if kind == "truncation":
                for cutoff in cutoffs:
                    img = fig.truncation_figure(G, seed_list, psis or fig.DEFAULT_PSIS, cutoff=cutoff,
                                                noise_mode=noise_mode, class_idx=class_idx, device=dev, batch=batch)
                    name = "truncation.png" if cutoff is None else f"truncation-cutoff{cutoff}.png"
                    written.append(save_image(img, outdir / name))
            else:
                psi = _single(psis, "psi", kind) if psis else 1.0
                cutoff = _single(cutoffs, "cutoff", kind)
                if kind == "uncurated":
                    img = fig.uncurated_figure(G, seed_list, psi=psi, cutoff=cutoff, noise_mode=noise_mode,
                                               class_idx=class_idx, cols=cols, device=dev, batch=batch)
                elif kind == "noise-layers":
                    img = fig.noise_layers_figure(G, seed_list, psi=psi, cutoff=cutoff, class_idx=class_idx,
                                                  noise_seed=noise_seed, device=dev, batch=batch)
                else:
                    scale = None if std_scale.strip().lower() == "max" else _float(std_scale, "--std-scale")
                    box = fig.DEFAULT_CROP if crop is None else _crop(crop)
                    maps: list = []
                    img = fig.noise_variation_figure(G, seed_list, num_samples=samples, psi=psi, cutoff=cutoff,
                                                     class_idx=class_idx, crop=box, std_scale=scale,
                                                     noise_seed=noise_seed, device=dev, batch=batch, std_maps=maps)
                    for s, m in zip(seed_list, maps):
                        written.append(save_image(fig.std_map_to_uint8(m, None)[:, :, None],
                                                  outdir / f"noise-std-seed{s:04d}.png"))
                written.insert(0, save_image(img, outdir / f"{kind}.png"))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for p in written:
        click.echo(f"wrote {p}")


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise click.ClickException(f"{what}: expected a number or 'max', got {text!r}") from None


def _crop(text: str) -> tuple[float, float, float]:
    try:
        x, y, s = (float(v) for v in text.split(","))
    except ValueError:
        raise click.ClickException(f"--crop: expected X,Y,S fractions, got {text!r}") from None
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < s <= 1):
        raise click.ClickException(f"--crop: fractions must lie in [0, 1), size in (0, 1], got {text!r}")
    return x, y, s
