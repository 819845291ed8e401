"""Dataset specs -- a folder, a .zip, a .tar/.tgz, or ``builtin:NAME`` -- resolved in one place.

The loader and the dataset tool both take a spec string. Paths are handled by
:mod:`stylegan.data.sources` and :mod:`stylegan.data.official_sources` (the official tool's
CIFAR-10 / MNIST / LSUN inputs, tool only) and :class:`stylegan.data.dataset.ImageDataset` (loader); a
``builtin:`` spec needs :mod:`stylegan.data.builtin`, which itself builds on the tool. Sitting
above all of them, this module is where that choice is made, so nothing below it has to import
upwards:

    format  <-  sources  <-  official_sources, tool  <-  builtin  <-  resolve  <-  dataset.open_dataset
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from stylegan.data import builtin
from stylegan.data.official_sources import detect, open_official_source
from stylegan.data.sources import Source, open_path_source
from stylegan.data.tool import (
    ConversionSummary,
    ConvertOptions,
    check_dest,
    labels_rule,
    write_dataset,
)

__all__ = ["convert_dataset", "dataset_path", "open_source"]


def dataset_path(spec: str | os.PathLike) -> Path:
    """Where the loader reads ``spec``: the path itself, or a builtin's converted zip.

    Built-in datasets are converted once into ``$STYLEGAN_CACHE/datasets`` (default
    ``~/.cache/stylegan/datasets``) and read from there afterwards.
    """
    if builtin.is_builtin(spec):
        return builtin.materialize(os.fspath(spec))
    return Path(spec).expanduser()


@contextlib.contextmanager
def open_source(spec: str | os.PathLike) -> Iterator[Source]:
    """Open a folder, .zip, .tar/.tgz/.tar.gz, ``builtin:NAME``, or one of the official tool's
    CIFAR-10 / MNIST / LSUN inputs (:func:`~stylegan.data.official_sources.detect`) as a tool
    :class:`Source`."""
    if builtin.is_builtin(spec):
        with builtin.open_builtin_source(os.fspath(spec)) as src:
            yield src
    elif (kind := detect(spec)) is not None:
        with open_official_source(spec, kind) as src:
            yield src
    else:
        with open_path_source(spec) as src:
            yield src


def convert_dataset(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    resolution: int | None = None,
    transform: str | None = None,
    resize_filter: str = "lanczos",
    max_images: int | None = None,
    labels: str | os.PathLike | None = None,
    channels: int | None = None,
    background: Sequence[int] = (255, 255, 255),
    skip_bad: bool = False,
    force: bool = False,
    progress: bool = True,
    wide_height: int | None = None,
) -> ConversionSummary:
    """Convert ``source`` (see :func:`open_source`) into the dataset zip ``dest``.

    ``wide_height``: with ``transform="center-crop-wide"``, the height of the letterboxed band
    (the official tool's ``--height`` beside ``--width``); default half the resolution.

    ``labels``: None uses the source's own ``dataset.json`` (or a builtin's labels) if it has
    one; ``"folders"`` numbers the top-level subfolders in sorted order; ``"none"`` drops labels;
    anything else is a .csv / .json label file. Raises :class:`DatasetError` on bad input.
    """
    opts = ConvertOptions(
        resolution=resolution,
        transform=transform,
        resize_filter=resize_filter,
        max_images=max_images,
        labels=labels_rule(labels),
        channels=channels,
        background=tuple(int(c) for c in background),  # type: ignore[arg-type]
        skip_bad=skip_bad,
        wide_height=wide_height,
    )
    check_dest(Path(dest).expanduser(), force)  # fail before opening (maybe fetching) a source
    with open_source(source) as src:
        return write_dataset(src, dest, opts, force=force, progress=progress)
