"""`stylegan directions`: find edit directions in W (SeFa, GANSpace, or from labels) and write the
direction file every editing tool reads, with a preview grid of the strongest components."""
from __future__ import annotations

from pathlib import Path

import click

from ._common import device_option, load_network, resolve_device


@click.command("directions")
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--method", type=click.Choice(["sefa", "ganspace", "labels"]), required=True,
              help="sefa: closed form from the style weights (Shen & Zhou 2021); ganspace: PCA of W samples "
                   "(Härkönen et al. 2020); labels: linear boundaries in W (InterFaceGAN, Shen et al. 2020).")
@click.option("--layers", default="all", show_default=True,
              help="Style inputs: all | coarse | middle | fine | indices like 0-3. SeFa factorizes their "
                   "weights; every method records them as where its edits apply by default.")
@click.option("--num", type=click.IntRange(min=1), default=None,
              help="Directions to keep (default: all w_dim for sefa / ganspace, one per attribute for labels).")
@click.option("--samples", type=click.IntRange(min=2), default=None,
              help="W samples: ganspace 100000 (the paper: 1000000), labels 20000, sefa 10000 (only for the "
                   "scales: W's standard deviation along each direction).")
@click.option("--classes", "classes", default=None,
              help="labels, conditional network: the classes to find (each against the others), e.g. '3' or "
                   "'0-9' (default all).")
@click.option("--classifier", default=None,
              help="labels: module:function or file.py:function, img [N, C, H, W] in [-1, 1] -> logits [N] or "
                   "[N, A] (logit > 0: present); one direction per attribute.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="labels: a CSV of seed,label rows (label 1/0, true/false) made by hand.")
@click.option("--keep", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="labels with --classifier: fit each boundary to this most confident fraction (|logit|).")
@click.option("--class", "class_idx", type=int, default=None,
              help="Conditional networks: draw W of this class only (ganspace, --classifier) / of the --csv seeds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the W samples.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Samples per batch.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="The direction file (default <method>.npz).")
@click.option("--preview", "preview_num", type=click.IntRange(min=0), default=8, show_default=True,
              help="Components in the preview grid <out>-preview.png (0: none).")
@click.option("--preview-seed", type=int, default=0, show_default=True, help="Seed of the preview's latent.")
@click.option("--preview-class", type=int, default=None,
              help="Conditional networks: the preview's class (default --class, else 0).")
@click.option("--alpha", "alpha_spec", default="-3:3:7", show_default=True,
              help="Preview strengths in standard deviations of W along each direction: lo:hi:n or a list.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation of the preview latent.")
@device_option
def command(network_path, method, layers, num, samples, classes, classifier, csv_path, keep, class_idx, seed,
            batch, out_path, preview_num, preview_seed, preview_class, alpha_spec, psi, device):
    """Write a direction file (.npz: unit vectors in W, W's standard deviation along each, the style
    inputs they apply to, method, network sha256, samples, date) and a preview grid: rows = the
    strongest components, columns = strengths. `stylegan edit` and the explorer read the file."""
    from ..synth.directions import DirectionError, parse_alphas, range_spec, save_directions
    from ..synth.figures import style_indices

    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        layer_idx = style_indices(layers, G.num_ws) if layers != "all" else list(range(G.num_ws))
        alphas = parse_alphas(alpha_spec)
        d = _find(G, method, layer_idx, num, samples, classes, classifier, csv_path, keep, class_idx, seed, batch,
                  network_path)
    except (DirectionError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    out = Path(out_path or f"{method}.npz")
    save_directions(d, out)
    click.echo(f"{method}: {d.count} direction(s) on style inputs {range_spec(d.layers)} from {d.provenance.samples} "
               f"W samples; wrote {out}")
    for k in range(min(d.count, max(preview_num, 1), 10)):
        click.echo(f"  {k:3d} {d.name(k):<14} {d.value_name} {d.values[k]:.4g}  std {d.scales[k]:.4g}")
    if preview_num:
        preview_class = class_idx if preview_class is None else preview_class
        _preview(G, d, preview_num, preview_seed, psi, preview_class, alphas, out.with_name(f"{out.stem}-preview.png"))


def _find(G, method, layers, num, samples, classes, classifier, csv_path, keep, class_idx, seed, batch, network):
    from ..synth import ganspace, interfacegan, sefa

    kw = {} if batch is None else {"batch": batch}
    if method != "labels" and (classes or classifier or csv_path):
        raise click.ClickException("--classes, --classifier and --csv belong to --method labels")
    if method == "sefa":
        return sefa.sefa_directions(G, layers, num=num, scale_samples=samples or sefa.SCALE_SAMPLES, seed=seed,
                                    network=network)
    if method == "ganspace":
        return ganspace.ganspace_directions(G, samples or ganspace.DEFAULT_SAMPLES, num=num, layers=layers, seed=seed,
                                            class_idx=class_idx, network=network, **kw)
    sources = [s for s in (classes, classifier, csv_path) if s]
    if len(sources) > 1:
        raise click.ClickException("give one source of labels: --classes, --classifier or --csv")
    n = samples or interfacegan.DEFAULT_SAMPLES
    if csv_path:
        path = Path(csv_path)
        if not path.is_file():
            raise click.ClickException(f"--csv: no such file: {path}")
        seeds, labels = interfacegan.read_label_csv(path.read_text(), str(path))
        data, params = interfacegan.seed_samples(G, seeds, labels, class_idx=class_idx), {"csv": path.name}
    elif classifier:
        fn = interfacegan.load_classifier(classifier)
        data = interfacegan.classifier_samples(G, fn, n, seed=seed, class_idx=class_idx, **kw)
        params = {"classifier": classifier, "class": class_idx}
    else:
        if G.c_dim == 0:
            raise click.ClickException("--method labels needs --classifier or --csv for an unconditional network "
                                       "(--classes: the classes of a conditional one)")
        from ..synth.sample import parse_range

        wanted = parse_range(classes) if classes else None
        data, params = interfacegan.class_samples(G, n, wanted, seed=seed, **kw), {"classes": wanted}
    d = interfacegan.labels_directions(G, data, keep=keep, seed=seed, layers=layers, network=network, params=params)
    return d.head(num) if num else d


def _preview(G, d, num, seed, psi, class_idx, alphas, path):
    from ..io.images import save_image
    from ..synth.edit import preview_grid
    from ..synth.figures import seed_ws

    if G.c_dim and class_idx is None:
        class_idx = 0
    try:
        ws = seed_ws(G, [seed], psi=psi, class_idx=class_idx)
    except ValueError as e:
        raise click.ClickException(f"preview: {e}") from None
    save_image(preview_grid(G, ws, d, num, alphas), path)
    which = "" if class_idx is None else f", class {class_idx}"
    click.echo(f"wrote {path} (rows: components 0-{min(num, d.count) - 1}, columns: strengths "
               f"{', '.join(f'{a:g}' for a in alphas)}, seed {seed}{which})")


__all__ = ["command"]
