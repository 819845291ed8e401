"""`stylegan mix`: the style-mixing grid of StyleGAN Fig. 3 (thin wrapper over synth.figures)."""
from __future__ import annotations

from pathlib import Path

import click

from ._common import (OFFICIAL_SPELLINGS, device_option, input_transform, load_network, precision_option,
                      resolve_device, use_precision)


@click.command("mix", context_settings=OFFICIAL_SPELLINGS)
@click.option("--network", "network_path", required=True, help="Checkpoint (.safetensors) or official .pkl.")
@click.option("--rows", "row_seeds", required=True, help="Row source seeds (left column), e.g. '85,100,75'.")
@click.option("--cols", "col_seeds", required=True, help="Column source seeds (top row), e.g. '55,821,1789'.")
@click.option("--styles", default="coarse", show_default=True,
              help="Styles taken from the column source: coarse (4-8 px, 0-3) | middle (16-32, 4-7) | "
                   "fine (64+, 8..) or indices like '0-3'.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--row-classes", default=None, help="Conditional networks: one class per row seed, e.g. '0,1,2'.")
@click.option("--col-classes", default=None, help="Conditional networks: one class per column seed.")
@click.option("--translate", default=None, metavar="X,Y",
              help="StyleGAN3: translate the image by X,Y image widths (gen_images.py's input transform).")
@click.option("--rotate", type=float, default=None, metavar="DEG",
              help="StyleGAN3: rotate the image by DEG degrees (gen_images.py's input transform).")
@click.option("--save-cells", is_flag=True, help="Also write every cell as ROW-COL.png.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@device_option
@precision_option
def command(network_path, row_seeds, col_seeds, styles, psi, noise_mode, class_idx, row_classes, col_classes,
            translate, rotate, save_cells, batch, outdir, device, precision):
    """Style-mixing grid: top row = column sources, left column = row sources; cell (r, c) = the row
    source with the --styles style inputs taken from the column source. Writes OUTDIR/grid.png."""
    from ..io.images import save_image
    from ..synth.figures import style_indices, style_mixing_grid
    from ..synth.sample import parse_range

    dev = resolve_device(device)
    G = load_network(network_path, dev)
    try:
        rows, cols = parse_range(row_seeds), parse_range(col_seeds)
        row_classes = None if row_classes is None else parse_range(row_classes)
        col_classes = None if col_classes is None else parse_range(col_classes)
        idx = style_indices(styles, G.num_ws)
        cells: dict = {}
        with input_transform(G, translate, rotate), use_precision(G, precision, dev):
            grid = style_mixing_grid(G, rows, cols, idx, psi=psi, noise_mode=noise_mode, device=dev,
                                     class_idx=class_idx, row_classes=row_classes, col_classes=col_classes,
                                     batch=batch, cells=cells)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    outdir = Path(outdir)
    save_image(grid, outdir / "grid.png")
    if save_cells:
        for (r, c), img in cells.items():
            save_image(img, outdir / f"{r}-{c}.png")
    click.echo(f"styles {idx} from the column sources; wrote {outdir / 'grid.png'} "
               f"({len(rows)} x {len(cols)} cells{', plus cells' if save_cells else ''})")
