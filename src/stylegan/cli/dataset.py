"""`stylegan dataset`: a thin click wrapper around :func:`stylegan.data.convert_dataset`."""

from __future__ import annotations

from pathlib import Path

import click

from stylegan.data import DatasetError, convert_dataset
from stylegan.data.tool import RESIZE_FILTERS, TRANSFORMS


def _parse_background(
    ctx: click.Context, param: click.Parameter, value: str
) -> tuple[int, int, int]:
    parts = value.split(",")
    try:
        rgb = tuple(int(p) for p in parts)
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise click.BadParameter(f"expected R,G,B with values 0-255, got {value!r}")
    return rgb  # type: ignore[return-value]


@click.command("dataset")
@click.option(
    "--source",
    required=True,
    metavar="SRC",
    help="Folder of images (recursive), .zip, .tar/.tgz/.tar.gz, builtin:mnist / "
    "builtin:emoji[32|64|128], or what NVIDIA's dataset_tool.py reads: cifar-10-python.tar.gz, "
    "*-images-idx3-ubyte[.gz] (MNIST, labels from the file beside it), an LSUN *_lmdb folder.",
)
@click.option(
    "--dest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .zip (stylegan2-ada-pytorch layout).",
)
@click.option(
    "--resolution", type=int, metavar="N", help="Output size N x N (power of two); resizes."
)
@click.option("--transform", type=click.Choice(TRANSFORMS), help="Crop non-square images.")
@click.option(
    "--resize-filter",
    type=click.Choice(list(RESIZE_FILTERS)),
    default="lanczos",
    show_default=True,
    help="PIL filter used for resizing.",
)
@click.option("--max-images", type=click.IntRange(min=1), metavar="N", help="Stop after N images.")
@click.option(
    "--labels",
    metavar="folders|none|FILE",
    help="Class labels: 'folders' (one subfolder per class, sorted), 'none', or a .csv/.json "
    "file. Default: the source's own dataset.json (or a builtin's labels), if any.",
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    help="Force grayscale (1) or RGB (3). Default: keep the source's.",
)
@click.option(
    "--background",
    default="255,255,255",
    show_default=True,
    metavar="R,G,B",
    callback=_parse_background,
    help="Colour that transparent images are composited on.",
)
@click.option(
    "--skip-bad", is_flag=True, help="Skip (and list) unusable files instead of stopping."
)
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def command(
    source: str,
    dest: Path,
    resolution: int | None,
    transform: str | None,
    resize_filter: str,
    max_images: int | None,
    labels: str | None,
    channels: str | None,
    background: tuple[int, int, int],
    skip_bad: bool,
    force: bool,
) -> None:
    """Convert images into a training dataset (zip of PNGs + dataset.json).

    \b
    Examples:
      stylegan dataset --source ~/photos --dest photos.zip --transform center-crop --resolution 256
      stylegan dataset --source ~/pets --dest data/pets.zip --labels folders --resolution 64
      stylegan dataset --source builtin:mnist --dest data/mnist.zip
      stylegan dataset --source cifar-10-python.tar.gz --dest data/cifar10.zip
      stylegan dataset --source train-images-idx3-ubyte.gz --dest data/mnist60k.zip
      stylegan dataset --source lsun/church_outdoor_train_lmdb --dest data/church256.zip \\
          --transform center-crop --resolution 256
    """
    try:
        summary = convert_dataset(
            source,
            dest,
            resolution=resolution,
            transform=transform,
            resize_filter=resize_filter,
            max_images=max_images,
            labels=labels,
            channels=int(channels) if channels is not None else None,
            background=background,
            skip_bad=skip_bad,
            force=force,
        )
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    click.echo(summary.format())
