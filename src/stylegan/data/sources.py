"""Image sources for the dataset tool: a folder, a zip, a tar archive, or arrays in memory.

A :class:`Source` lists its images in a deterministic (sorted) order and decodes each one only
when asked, so converting a large folder keeps memory flat. Sources too large to list up front
(an LSUN LMDB with millions of records) hand out their images one at a time instead
(:class:`StreamedImages`; :mod:`stylegan.data.official_sources` builds those). Archive member
names are only ever used as keys, never as file-system paths (no path traversal). Labels that
ship with a source (its own ``dataset.json``) are read with the one parser in
:mod:`stylegan.data.format`.

``builtin:NAME`` specs are not resolved here: :mod:`stylegan.data.builtin` builds its sources on
these, and :mod:`stylegan.data.resolve` is the one place that maps a spec to either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Callable

import numpy as np
import PIL.Image

from stylegan.data.format import (
    LABELS_FILE,
    DatasetError,
    Label,
    clean_name,
    is_image_name,
    read_labels_json,
)

__all__ = [
    "Source",
    "SourceImage",
    "StreamedImages",
    "array_source",
    "folder_source",
    "open_path_source",
    "tar_source",
    "zip_source",
]


@dataclasses.dataclass(frozen=True)
class SourceImage:
    """One image of a source, decoded only when ``load`` is called (keeps memory flat)."""

    name: str  # source-relative path with '/' separators: the key for label files
    where: str  # human-readable location for messages (file path, or archive:member)
    load: Callable[[], PIL.Image.Image]


class StreamedImages(Collection[SourceImage]):
    """``count`` images made one at a time by ``iterate()`` (a fresh pass on every iteration).

    For sources whose images cannot (or should not) all be listed in memory first: the dataset
    tool only needs their number (the progress bar, ``--max-images``) and one pass in order.
    ``in`` works but costs a full pass; nothing in the tool uses it.
    """

    def __init__(self, count: int, iterate: Callable[[], Iterator[SourceImage]]) -> None:
        self._count = count
        self._iterate = iterate

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[SourceImage]:
        return self._iterate()

    def __contains__(self, item: object) -> bool:
        return any(item == im for im in self)


@dataclasses.dataclass(frozen=True)
class Source:
    """The images of a source in deterministic order, plus what ships with them."""

    spec: str
    images: Collection[SourceImage]  # a tuple, or StreamedImages for sources read as a stream
    labels: Mapping[str, Label] | None = None  # from the source's dataset.json, or a builtin
    default_resolution: int | None = None  # builtins pick their size; others keep theirs
    default_transform: str | None = None  # used when the options name no transform
    default_channels: int | None = None  # used when the options name no channel count
    note: str = ""  # shown in the summary (e.g. which backend a builtin came from)


def _open_image_file(path: str) -> PIL.Image.Image:
    return PIL.Image.open(path)


def _open_zip_member(zf: zipfile.ZipFile, name: str) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(zf.read(name)))


def _array_image(images: np.ndarray, i: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(images[i])


def folder_source(root: Path) -> Source:
    """All images under ``root`` (recursive), with labels from ``root/dataset.json`` if present."""
    names = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            if is_image_name(rel):
                names.append(rel)
    names.sort()
    images = tuple(
        SourceImage(n, str(root / n), functools.partial(_open_image_file, str(root / n)))
        for n in names
    )
    meta = root / LABELS_FILE
    labels = read_labels_json(meta.read_bytes(), str(meta)) if meta.is_file() else None
    return Source(str(root), images, labels)


@contextlib.contextmanager
def zip_source(path: Path) -> Iterator[Source]:
    """Images inside a zip, read member by member (random access is cheap in a zip)."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot open zip ({e})") from None
    with zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/") and is_image_name(n))
        images = tuple(
            SourceImage(n, f"{path}:{n}", functools.partial(_open_zip_member, zf, n)) for n in names
        )
        labels = None
        if LABELS_FILE in zf.namelist():
            labels = read_labels_json(zf.read(LABELS_FILE), f"{path}:{LABELS_FILE}")
        yield Source(str(path), images, labels)


@contextlib.contextmanager
def tar_source(path: Path, *, under: str = "", spec: str | None = None) -> Iterator[Source]:
    """Images inside a .tar / .tgz / .tar.gz, optionally only those below folder ``under``.

    A compressed tar can only be read front to back, while we want sorted order: so one pass
    copies the image members into a temporary folder (removed afterwards) and the images are
    then read from there.
    """
    prefix = clean_name(under).rstrip("/") + "/" if under else ""
    try:
        tf = tarfile.open(path)  # noqa: SIM115 - closed by `with tf` below; detects compression
    except (OSError, tarfile.TarError) as e:
        raise DatasetError(f"{path}: cannot open tar archive ({e})") from None
    with tf, tempfile.TemporaryDirectory(prefix="stylegan-tar-") as tmp:
        files: dict[str, str] = {}
        labels = None
        try:
            for member in tf:
                if not member.isfile():
                    continue
                name = clean_name(member.name)
                if not name.startswith(prefix):
                    continue
                name = name[len(prefix) :]
                if name == LABELS_FILE:
                    with _member_file(tf, member) as f:
                        labels = read_labels_json(f.read(), f"{path}:{member.name}")
                elif is_image_name(name):
                    target = os.path.join(tmp, f"{len(files):08d}")
                    with _member_file(tf, member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    files[name] = target
        except (OSError, EOFError, tarfile.TarError) as e:  # truncated / corrupt stream
            raise DatasetError(f"{path}: cannot read tar archive ({e})") from None
        images = tuple(
            SourceImage(n, f"{path}:{prefix}{n}", functools.partial(_open_image_file, files[n]))
            for n in sorted(files)
        )
        yield Source(spec or str(path), images, labels)


def _member_file(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = tf.extractfile(member)
    assert f is not None  # regular files (the only members we read) always have data
    return f


def array_source(
    spec: str,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    default_resolution: int | None = None,
    note: str = "",
) -> Source:
    """Images held in memory: uint8 ``[N, H, W]`` (grayscale) or ``[N, H, W, 3]`` (RGB).

    ``labels`` are int class indices ``[N]``. Image ``i`` is named ``{i:05d}.png`` (the label key)
    and reported as ``spec[i]``.
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            f"images must be uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} "
            f"{list(images.shape)}"
        )
    names = [f"{i:05d}.png" for i in range(len(images))]
    items = tuple(
        SourceImage(n, f"{spec}[{i}]", functools.partial(_array_image, images, i))
        for i, n in enumerate(names)
    )
    table = None if labels is None else {n: int(lab) for n, lab in zip(names, labels)}
    return Source(spec, items, table, default_resolution=default_resolution, note=note)


def _is_tar_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz"))


@contextlib.contextmanager
def open_path_source(path: str | os.PathLike) -> Iterator[Source]:
    """Open a folder, .zip, or .tar/.tgz/.tar.gz as a :class:`Source`."""
    path = Path(path).expanduser()
    if path.is_dir():
        yield folder_source(path)
    elif not path.exists():
        raise DatasetError(f"{path}: source not found")
    elif zipfile.is_zipfile(path):
        with zip_source(path) as src:
            yield src
    elif _is_tar_name(path) or tarfile.is_tarfile(path):
        with tar_source(path) as src:
            yield src
    else:
        raise DatasetError(
            f"{path}: not a folder, .zip, .tar/.tgz/.tar.gz archive, cifar-10-python.tar.gz, "
            f"*-images-idx3-ubyte[.gz] or LMDB folder (or builtin:NAME)"
        )
