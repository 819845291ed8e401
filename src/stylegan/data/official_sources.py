"""The other inputs of NVIDIA's ``dataset_tool.py``: CIFAR-10's python archive, MNIST idx files
and LSUN LMDB folders, each opened as a :class:`~stylegan.data.sources.Source`.

stylegan2-ada-pytorch's ``dataset_tool.py`` (``open_dataset``) picks these by name, and so do we
(:func:`detect`). Each source has the official tool's images in the official order with its
labels, so ``stylegan dataset`` writes the same dataset (``00000/img00000000.png``, ...):

* **CIFAR-10** ``cifar-10-python.tar.gz``: ``cifar-10-batches-py/data_batch_1`` .. ``_5`` in that
  order (the official ``open_cifar10`` reads these five, not ``test_batch``), each a Python 2
  pickle of ``{'data': uint8 [N, 3072] (planes R, G, B of 32x32), 'labels': [N]}`` -> 32x32 RGB,
  labels 0-9. Read through :mod:`stylegan.data.safe_pickle` (containers and numpy arrays only),
  never ``pickle.load``.
* **MNIST** ``X-images-idx3-ubyte[.gz]`` with ``X-labels-idx1-ubyte[.gz]`` beside it: 28x28
  padded with 2 black pixels on each side to 32x32 (the official ``np.pad(images, [(0, 0), (2,
  2), (2, 2)])``), 1 channel, labels 0-9. The official tool takes only
  ``train-images-idx3-ubyte.gz`` and skips the headers by offset; we take any prefix (``t10k``,
  Fashion-MNIST), plain or gzip (sniffed), ``.idx3-ubyte`` spellings too, and check the headers
  (magic, counts, sizes).
* **LSUN** a folder ending in ``_lmdb`` (the official rule) or holding an LMDB ``data.mdb``: the
  records' values are encoded images (JPEG, WebP in some categories), read in key order (the
  cursor's, as the official tool) and decoded with PIL. They are made 3-channel by default: the
  official tool decodes with OpenCV's ``IMREAD_COLOR`` (always BGR -> RGB, PIL as fallback).
  Needs the ``lmdb`` package (``pip install 'stylegan[lsun]'``).

Memory stays flat for any size: MNIST and LSUN are read as a stream, one record at a time; a
CIFAR batch is unpickled once while the archive is opened, and its pixels are parked in a
temporary ``.npy`` (removed afterwards) that is read back memory-mapped, so at most one batch
(30 MB, streamed from the archive into its array) is in memory. Damaged input raises
:class:`~stylegan.data.format.DatasetError` naming the file (and member or record); an
undecodable LSUN record is a bad image like any other (an error naming its key, or skipped with
``--skip-bad``; the official tool prints it and goes on).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import os
import re
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import PIL.Image

from stylegan.data.format import DatasetError
from stylegan.data.safe_pickle import load_data_pickle
from stylegan.data.sources import Source, SourceImage, StreamedImages

__all__ = [
    "CIFAR10_BATCHES",
    "cifar10_source",
    "detect",
    "lmdb_source",
    "mnist_labels_path",
    "mnist_source",
    "open_official_source",
]

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = tuple(f"{CIFAR10_DIR}/data_batch_{i}" for i in range(1, 6))  # no test_batch
CIFAR10_CLASSES = 10
MNIST_PAD = 2  # black pixels added on each side: 28x28 -> 32x32, as the official tool
_IDX3_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (images)
_IDX1_MAGIC = 0x00000801  # unsigned byte, 1 dimension (labels)
_MNIST_IMAGES = re.compile(r"^(?P<stem>.+)-images(?P<sep>[-.])idx3-ubyte(?P<gz>\.gz)?$")
_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)  # truncated / corrupt streams


def detect(path: str | os.PathLike) -> str | None:
    """'cifar10', 'mnist', 'lmdb' when ``path`` is one of these formats (by name, as the
    official ``open_dataset``; an LMDB folder also by its ``data.mdb``), else None."""
    p = Path(path).expanduser()
    name = p.name.lower()
    if p.is_dir():
        return "lmdb" if name.endswith("_lmdb") or (p / "data.mdb").is_file() else None
    if name.startswith("cifar-10-python") and name.endswith((".tar.gz", ".tgz", ".tar")):
        return "cifar10"
    if _MNIST_IMAGES.match(name):
        return "mnist"
    return None


@contextlib.contextmanager
def open_official_source(path: str | os.PathLike, kind: str) -> Iterator[Source]:
    """Open ``path`` as the ``kind`` :func:`detect` named."""
    opener = {"cifar10": cifar10_source, "mnist": mnist_source, "lmdb": lmdb_source}[kind]
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: source not found")
    with opener(p) as src:
        yield src


def _name(i: int) -> str:
    """Image ``i``'s key in the label table (the written archive names are the tool's)."""
    return f"{i:08d}.png"


# ================================================================================ CIFAR-10


def _cifar_batch(obj: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """An unpickled batch -> (uint8 [N, 3, 32, 32], int64 [N]), checked as the official asserts."""
    if not isinstance(obj, dict) or "data" not in obj or "labels" not in obj:
        raise DatasetError(
            f"{where}: not a CIFAR-10 batch (expected a dict with 'data' and 'labels')"
        )
    data, labels = obj["data"], np.asarray(obj["labels"])
    is_array = isinstance(data, np.ndarray)
    if not is_array or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {list(data.shape)}" if is_array else type(data).__name__
        raise DatasetError(
            f"{where}: not a CIFAR-10 batch ('data' is {what}, expected uint8 [N, 3072])"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise DatasetError(f"{where}: 'labels' must be {len(data)} integers, one per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= CIFAR10_CLASSES):
        raise DatasetError(f"{where}: labels must be 0-{CIFAR10_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)  # NCHW (a view: no copy)


class _ArchiveReadError(Exception):
    """Reading the archive itself failed (truncated / corrupt stream), not the pickle in it."""


class _MemberReader:
    """A tar member's file for the unpickler, with the archive's read errors told apart from the
    pickle's (both can be an EOFError) and streamed, so no second copy of a batch is held."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except _READ_ERRORS as e:
            raise _ArchiveReadError(f"{type(e).__name__}: {e}") from None

    def readline(self, n: int = -1) -> bytes:
        try:
            return self._f.readline(n)
        except _READ_ERRORS as e:
            raise _ArchiveReadError(f"{type(e).__name__}: {e}") from None


def _unpickle_member(tf: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> Any:
    f = tf.extractfile(member)
    if f is None:
        raise DatasetError(f"{where}: not a regular file")
    with f:
        try:
            return load_data_pickle(_MemberReader(f))  # type: ignore[arg-type]
        except _ArchiveReadError:
            raise  # the caller names the archive
        except Exception as e:  # a damaged pickle raises anything from UnpicklingError to TypeError
            raise DatasetError(
                f"{where}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})"
            ) from None


def _chw_image(images: np.ndarray, i: int) -> PIL.Image.Image:
    """Image ``i`` of ``[N, 3, 32, 32]`` (a memory map) as RGB: CHW -> HWC, as the official."""
    return PIL.Image.fromarray(np.ascontiguousarray(images[i].transpose(1, 2, 0)))


@contextlib.contextmanager
def cifar10_source(path: Path) -> Iterator[Source]:
    """``cifar-10-python.tar.gz``: the five training batches, 32x32 RGB, labels 0-9 (see module)."""
    with tempfile.TemporaryDirectory(prefix="stylegan-cifar-") as tmp:
        files: dict[str, str] = {}  # batch member -> its images as .npy
        found: dict[str, np.ndarray] = {}  # batch member -> its labels
        try:
            with tarfile.open(path) as tf:
                for member in tf:
                    name = member.name.lstrip("./")
                    if name not in CIFAR10_BATCHES or not member.isfile():
                        continue
                    where = f"{path}:{name}"
                    images, found[name] = _cifar_batch(_unpickle_member(tf, member, where), where)
                    files[name] = os.path.join(tmp, f"{name.rsplit('_', 1)[1]}.npy")
                    np.save(files[name], images)
                    del images  # one batch in memory at a time
        except (*_READ_ERRORS, _ArchiveReadError) as e:
            why = str(e) if isinstance(e, _ArchiveReadError) else f"{type(e).__name__}: {e}"
            raise DatasetError(f"{path}: cannot read the CIFAR-10 archive ({why})") from None
        missing = [b for b in CIFAR10_BATCHES if b not in files]
        if missing:
            raise DatasetError(f"{path}: not a CIFAR-10 python archive (no {', '.join(missing)})")
        labels = np.concatenate([found[b] for b in CIFAR10_BATCHES])
        table = {_name(i): int(lab) for i, lab in enumerate(labels)}

        def iterate() -> Iterator[SourceImage]:
            i = 0
            for batch in CIFAR10_BATCHES:
                images = np.load(files[batch], mmap_mode="r")  # pages in as images are read
                for j in range(len(images)):
                    load = functools.partial(_chw_image, images, j)
                    yield SourceImage(_name(i), f"{path}:{batch}[{j}]", load)
                    i += 1

        yield Source(str(path), StreamedImages(len(labels), iterate), table, note="CIFAR-10")


# ================================================================================== MNIST


def mnist_labels_path(images: Path) -> Path:
    """The labels file beside ``images``: ``X-images-idx3-ubyte[.gz]`` ->
    ``X-labels-idx1-ubyte[.gz]`` (the official tool's name replacement), the images' compression
    first."""
    m = _MNIST_IMAGES.match(images.name.lower())
    if m is None:
        raise DatasetError(f"{images}: not an MNIST images file name (*-images-idx3-ubyte[.gz])")
    stem = images.name[: len(m["stem"])]
    base = f"{stem}-labels{m['sep']}idx1-ubyte"
    candidates = [base + ".gz", base] if m["gz"] else [base, base + ".gz"]
    for c in candidates:
        if (images.parent / c).is_file():
            return images.parent / c
    raise DatasetError(
        f"{images}: the labels file {images.parent / candidates[0]} is missing "
        f"(the official tool needs it too)"
    )


def _open_idx(path: Path) -> IO[bytes]:
    """A plain or gzip idx file (sniffed by the gzip magic bytes, not the name)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _idx_header(f: IO[bytes], path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    head = f.read(4 * (1 + ndim))
    if len(head) < 4 * (1 + ndim):
        raise DatasetError(f"{path}: not an idx file (shorter than its header)")
    got, *dims = struct.unpack(f">{1 + ndim}I", head)
    if got != magic:
        raise DatasetError(
            f"{path}: not an idx{ndim}-ubyte file (magic {got:#010x}, expected {magic:#010x})"
        )
    return tuple(dims)


def _read_mnist_labels(path: Path) -> np.ndarray:
    try:
        with _open_idx(path) as f:
            (n,) = _idx_header(f, path, _IDX1_MAGIC, 1)
            raw = f.read(n + 1)
    except _READ_ERRORS as e:
        raise DatasetError(f"{path}: cannot read MNIST labels ({type(e).__name__}: {e})") from None
    if len(raw) != n:
        raise DatasetError(f"{path}: header says {n} labels, the file holds {len(raw)}")
    return np.frombuffer(raw, np.uint8)


def _gray_image(raw: bytes, rows: int, cols: int) -> PIL.Image.Image:
    img = np.frombuffer(raw, np.uint8).reshape(rows, cols)
    return PIL.Image.fromarray(np.pad(img, MNIST_PAD), "L")


@contextlib.contextmanager
def mnist_source(path: Path) -> Iterator[Source]:
    """``X-images-idx3-ubyte[.gz]`` + its labels file: padded to 32x32, 1 channel (see module)."""
    labels_path = mnist_labels_path(path)
    labels = _read_mnist_labels(labels_path)
    try:
        with _open_idx(path) as f:
            n, rows, cols = _idx_header(f, path, _IDX3_MAGIC, 3)
    except _READ_ERRORS as e:
        raise DatasetError(f"{path}: cannot read MNIST images ({type(e).__name__}: {e})") from None
    if n != len(labels):
        raise DatasetError(f"{path} holds {n} images but {labels_path} {len(labels)} labels")
    size = rows * cols
    if not size:
        raise DatasetError(f"{path}: images of {rows}x{cols} pixels")
    with open(path, "rb") as f:
        plain = f.read(2) != b"\x1f\x8b"
    if plain and (have := os.path.getsize(path)) != 16 + n * size:
        raise DatasetError(
            f"{path}: header says {n} images of {rows}x{cols}, the file has {have} bytes "
            f"(truncated?)"
        )

    def iterate() -> Iterator[SourceImage]:
        try:
            with _open_idx(path) as f:
                f.read(16)
                for i in range(n):
                    raw = f.read(size)
                    if len(raw) < size:
                        raise DatasetError(f"{path}: truncated: the file ends in image {i} of {n}")
                    load = functools.partial(_gray_image, raw, rows, cols)
                    yield SourceImage(_name(i), f"{path}[{i}]", load)
        except _READ_ERRORS as e:
            raise DatasetError(
                f"{path}: cannot read MNIST images ({type(e).__name__}: {e})"
            ) from None

    table = {_name(i): int(lab) for i, lab in enumerate(labels)}
    note = f"MNIST idx, labels from {labels_path.name}"
    yield Source(str(path), StreamedImages(n, iterate), table, note=note)


# =================================================================================== LSUN


def _import_lmdb() -> Any:
    try:
        import lmdb
    except ImportError:
        raise DatasetError(
            "reading LMDB folders (LSUN) needs the lmdb package: pip install 'stylegan[lsun]'"
        ) from None
    return lmdb


def _encoded_image(value: bytes) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(value))


@contextlib.contextmanager
def lmdb_source(path: Path) -> Iterator[Source]:
    """An LMDB folder of encoded images (LSUN), in key order, 3 channels by default (see module)."""
    lmdb = _import_lmdb()
    if not (path / "data.mdb").is_file():
        raise DatasetError(f"{path}: not an LMDB folder (no data.mdb)")
    try:  # read-only and without the lock file, as the official tool (the folder may be read-only)
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
        count = int(env.stat()["entries"])
    except lmdb.Error as e:
        raise DatasetError(f"{path}: cannot open the LMDB ({type(e).__name__}: {e})") from None

    def iterate() -> Iterator[SourceImage]:
        try:
            with env.begin(write=False) as txn:
                for key, value in txn.cursor():
                    name = bytes(key).decode("utf-8", "backslashreplace")
                    load = functools.partial(_encoded_image, bytes(value))
                    yield SourceImage(name, f"{path}:{name}", load)
        except lmdb.Error as e:
            raise DatasetError(f"{path}: cannot read the LMDB ({type(e).__name__}: {e})") from None

    try:
        yield Source(str(path), StreamedImages(count, iterate), default_channels=3, note="LMDB")
    finally:
        env.close()
