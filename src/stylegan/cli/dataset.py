"""`stylegan dataset`: a thin click wrapper around :func:`stylegan.data.convert_dataset`.

It takes both official dataset_tool.py spellings of the size (stylegan2-ada-pytorch's --width /
--height, stylegan3's --resolution WxH) and a folder --dest, so their command lines run here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from stylegan.data import DatasetError, convert_dataset

from ._common import OFFICIAL_SPELLINGS
from stylegan.data.tool import RESIZE_FILTERS, TRANSFORMS, ConversionSummary


def _parse_resolution(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """--resolution N, or stylegan3 dataset_tool.py's WxH -> (width, height)."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", value)
    if not m:
        raise click.BadParameter(f"expected N or WxH (e.g. 256 or 256x256), got {value!r}")
    w = int(m.group(1))
    return w, int(m.group(2)) if m.group(2) else w


def output_size(
    resolution: tuple[int, int] | None, width: int | None, height: int | None, transform: str | None
) -> tuple[int | None, int | None]:
    """(resolution, band height of center-crop-wide) from --resolution N / WxH or the official
    --width / --height. Outputs are square, as the official tool requires; only center-crop-wide
    has a height of its own (the letterboxed band: LSUN Car's --width 512 --height 384)."""
    if resolution is not None and (width is not None or height is not None):
        raise click.UsageError("give --resolution or --width/--height, not both")
    if resolution is None and (width is None) != (height is None):
        width = width if width is not None else height  # one of them: a square of that size
        height = width
    w, h = resolution if resolution is not None else (width, height)
    if w is None or w == h:
        return w, None
    if transform != "center-crop-wide":
        raise click.UsageError(
            f"output images are square: {w}x{h} needs --transform center-crop-wide (a {w}x{h} band "
            f"letterboxed on {w}x{w}), else give one size"
        )
    return w, h


def folder_dest(dest: Path) -> bool:
    """A --dest without a .zip suffix is a folder, as in the official dataset_tool.py."""
    return dest.suffix.lower() != ".zip"


def write_folder(dest: Path, force: bool, convert) -> "ConversionSummary":
    """Write the dataset into the folder `dest` (official layout: 00000/img00000000.png ...,
    dataset.json): converted into a zip beside it, unpacked, then renamed into place, so an error
    leaves nothing half-written. Like the official tool, an existing folder must be empty (or
    --force replaces it)."""
    import dataclasses
    import shutil
    import tempfile
    import zipfile

    if dest.is_file():
        raise click.ClickException(f"{dest}: is a file (a folder --dest is written as a folder)")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise click.ClickException(f"{dest}: --dest folder must be empty (pass --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        summary = convert(Path(tmp) / "dataset.zip")
        unpacked = Path(tmp) / "folder"
        with zipfile.ZipFile(Path(tmp) / "dataset.zip") as zf:
            zf.extractall(unpacked)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(unpacked, dest)
    return dataclasses.replace(summary, dest=dest)


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


@click.command("dataset", context_settings=OFFICIAL_SPELLINGS)
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
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Output .zip, or a folder (any other name), in the stylegan2-ada-pytorch layout.",
)
@click.option(
    "--resolution",
    metavar="N|WxH",
    callback=_parse_resolution,
    help="Output size N x N (power of two); resizes. WxH as stylegan3's dataset_tool.py (W = H, "
    "or a W x H band with --transform center-crop-wide).",
)
@click.option("--width", type=click.IntRange(min=1), metavar="N", help="stylegan2-ada-pytorch's: output width.")
@click.option(
    "--height",
    type=click.IntRange(min=1),
    metavar="N",
    help="stylegan2-ada-pytorch's: output height (= width, or the band of center-crop-wide).",
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
    resolution: tuple[int, int] | None,
    width: int | None,
    height: int | None,
    transform: str | None,
    resize_filter: str,
    max_images: int | None,
    labels: str | None,
    channels: str | None,
    background: tuple[int, int, int],
    skip_bad: bool,
    force: bool,
) -> None:
    """Convert images into a training dataset (zip or folder of PNGs + dataset.json).

    \b
    Examples:
      stylegan dataset --source ~/photos --dest photos.zip --transform center-crop --resolution 256
      stylegan dataset --source ~/pets --dest data/pets.zip --labels folders --resolution 64
      stylegan dataset --source builtin:mnist --dest data/mnist.zip
      stylegan dataset --source cifar-10-python.tar.gz --dest data/cifar10.zip
      stylegan dataset --source train-images-idx3-ubyte.gz --dest data/mnist60k.zip
      stylegan dataset --source lsun/church_outdoor_train_lmdb --dest data/church256.zip \\
          --transform center-crop --resolution 256
      stylegan dataset --source lsun/car_lmdb --dest data/car512 --transform center-crop-wide \\
          --width 512 --height 384
    """
    size, wide_height = output_size(resolution, width, height, transform)

    def convert(to: Path) -> ConversionSummary:
        return convert_dataset(
            source,
            to,
            resolution=size,
            transform=transform,
            resize_filter=resize_filter,
            max_images=max_images,
            labels=labels,
            channels=int(channels) if channels is not None else None,
            background=background,
            skip_bad=skip_bad,
            force=force,
            wide_height=wide_height,
        )

    try:
        summary = write_folder(dest, force, convert) if folder_dest(dest) else convert(dest)
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    click.echo(summary.format())
