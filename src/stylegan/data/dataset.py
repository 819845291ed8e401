"""Training-data loader: a folder or zip of same-sized square images, optional labels.

The on-disk format (the one NVIDIA's stylegan2-ada-pytorch uses, so datasets made by either tool
load in either loader) is defined in :mod:`stylegan.data.format`, whose label parser this loader
shares with the dataset tool. Class labels are served one-hot, label vectors as they are.

The dataset is validated when it is constructed (every image header is read, which is cheap) so a
bad file fails at start-up with its name, not hours into training inside a worker process.

``ImageDataset`` is picklable and opens its zip lazily in each process, so it works with
``DataLoader(num_workers > 0)`` under both the ``fork`` and ``spawn`` start methods, and with
``DistributedSampler``.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch.utils.data

from stylegan.data.format import (
    IMAGE_EXTENSIONS,
    LABELS_FILE,
    DatasetError,
    Label,
    is_image_name,
    is_valid_resolution,
    label_dim,
    read_labels_json,
)
from stylegan.data.resolve import dataset_path

__all__ = ["DatasetError", "ImageDataset", "open_dataset", "subset_indices"]

# Image modes the loader accepts and their channel counts. Anything else (RGBA, palette, 16-bit)
# needs the compositing / conversion that `stylegan dataset` does, so we refuse it with a hint.
_MODE_CHANNELS: dict[str, int] = {"L": 1, "RGB": 3}


def subset_indices(num_images: int, max_size: int | None, seed: int) -> np.ndarray:
    """Indices of the images to use: all, or a seeded random subset of ``max_size`` (sorted).

    Same algorithm as the official loader (shuffle with ``np.random.RandomState(seed)``, keep the
    first ``max_size``, sort), so ``--max-size`` picks the same images in both implementations.
    """
    idx = np.arange(num_images, dtype=np.int64)  # [N]
    if max_size is not None and idx.size > max_size:
        np.random.RandomState(seed).shuffle(idx)
        idx = np.sort(idx[:max_size])
    return idx


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode one image file into uint8 ``[C, H, W]``; ``where`` names it in errors."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            mode = img.mode
            if mode not in _MODE_CHANNELS:
                raise DatasetError(_bad_mode_message(where, mode))
            arr = np.asarray(img, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise DatasetError(f"{where}: cannot decode image ({e})") from None
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]  # [H, W] -> [H, W, 1]
    # PIL hands out a read-only view; one copy makes it writable (torch warns otherwise).
    return np.array(arr.transpose(2, 0, 1), order="C")  # [H, W, C] -> [C, H, W]


def _bad_mode_message(where: str, mode: str) -> str:
    return (
        f"{where}: image mode {mode!r} is not supported by the loader, which reads 1-channel (L) "
        f"or 3-channel (RGB) images; convert the source with `stylegan dataset` (it composites "
        f"alpha, expands palettes and scales 16-bit images)"
    )


def _label_array(values: Sequence[Label]) -> np.ndarray:
    """Labels aligned with the images: int64 ``[N]`` class indices or float32 ``[N, D]``."""
    if isinstance(values[0], tuple):
        return np.asarray(values, dtype=np.float32)  # [N, D]
    return np.asarray(values, dtype=np.int64).reshape(len(values))  # [N]


class ImageDataset(torch.utils.data.Dataset):
    """Square images of one power-of-two size from a folder or a zip, with optional labels.

    Args:
        path: folder or ``.zip`` file.
        use_labels: serve the labels from ``dataset.json`` (else ``label_dim`` is 0).
        xflip: append a mirrored copy of every image (``len`` doubles; the second half are the
            flips), as the official loader does for ``--mirror``.
        max_size: use a seeded random subset of at most this many images (before ``xflip``).
        seed: seed for that subset.

    Items are ``(image, label)``: uint8 ``[C, H, W]`` and float32 ``[label_dim]`` (one-hot for
    class labels).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        use_labels: bool = False,
        xflip: bool = False,
        max_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self._path = str(path)
        if max_size is not None and max_size < 1:
            raise DatasetError(f"{self._path}: max_size must be >= 1, got {max_size}")
        if os.path.isdir(self._path):
            self._kind = "dir"
        elif os.path.isfile(self._path) and zipfile.is_zipfile(self._path):
            self._kind = "zip"
        elif os.path.exists(self._path):
            raise DatasetError(f"{self._path}: not a folder or a zip file")
        else:
            raise DatasetError(f"{self._path}: dataset not found")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

        all_names = self._list_files()
        self._image_names: list[str] = sorted(n for n in all_names if is_image_name(n))
        if not self._image_names:
            raise DatasetError(
                f"{self._path}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        self._raw_shape = self._validate_headers()  # [C, H, W]
        self.name: str = os.path.splitext(os.path.basename(os.path.normpath(self._path)))[0]

        labels = self._read_labels() if LABELS_FILE in all_names else None  # N labels or None
        self._labels_available = labels is not None
        served = labels if use_labels else None
        self._raw_labels = None if served is None else _label_array(served)  # [N] or [N, D]
        self._label_dim = 0 if served is None else label_dim(served)

        base = subset_indices(len(self._image_names), max_size, seed)  # [M]
        flip = np.zeros(base.size, dtype=np.uint8)
        if xflip:
            base = np.concatenate([base, base])
            flip = np.concatenate([flip, np.ones_like(flip)])
        self._raw_idx: np.ndarray = base  # [len] index into _image_names
        self._xflip: np.ndarray = flip  # [len] 1 = serve mirrored
        self._close_zip()  # reopened lazily in whichever process reads items

    # ----------------------------------------------------------------------------- properties

    @property
    def path(self) -> str:
        return self._path

    @property
    def image_shape(self) -> list[int]:
        """``[C, H, W]``."""
        return list(self._raw_shape)

    @property
    def num_channels(self) -> int:
        return self._raw_shape[0]

    @property
    def resolution(self) -> int:
        return self._raw_shape[1]

    @property
    def label_dim(self) -> int:
        """Width of the served label: one-hot classes, or the label vector (0: no labels)."""
        return self._label_dim

    @property
    def has_labels(self) -> bool:
        """Labels are being served (``use_labels`` and the dataset has them)."""
        return self.label_dim > 0

    @property
    def labels_available(self) -> bool:
        """The dataset has labels, whether or not ``use_labels`` asked for them."""
        return self._labels_available

    @property
    def image_names(self) -> list[str]:
        """Relative paths of all images in the folder / zip (before subsetting and flipping)."""
        return list(self._image_names)

    # ---------------------------------------------------------------------------- data access

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raw = int(self._raw_idx[index])
        name = self._image_names[raw]
        image = decode_image(self._read_file(name), self._where(name))  # [C, H, W]
        if list(image.shape) != self._raw_shape:
            raise DatasetError(
                f"{self._where(name)}: image is {_shape_str(image.shape)} but the dataset is "
                f"{_shape_str(self._raw_shape)}"
            )
        if self._xflip[index]:
            image = np.ascontiguousarray(image[:, :, ::-1])  # mirror along W
        return image, self.get_label(index)

    def get_label(self, index: int) -> np.ndarray:
        """float32 ``[label_dim]``: one-hot for class labels, the vector for float labels."""
        if self._raw_labels is None:
            return np.zeros([0], dtype=np.float32)
        value = self._raw_labels[int(self._raw_idx[index])]
        if self._raw_labels.dtype == np.int64:
            onehot = np.zeros([self._label_dim], dtype=np.float32)
            onehot[int(value)] = 1
            return onehot
        return value.astype(np.float32, copy=True)

    # ----------------------------------------------------------------------- process handling

    def close(self) -> None:
        """Close the zip handle of this process (it is reopened on the next read)."""
        self._close_zip()

    def __getstate__(self) -> dict[str, Any]:
        # An open ZipFile is neither picklable nor safe to share across processes.
        return dict(self.__dict__, _zip=None, _zip_pid=None)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self._path!r}, len={len(self)}, shape={self.image_shape}, "
            f"label_dim={self.label_dim})"
        )

    # -------------------------------------------------------------------------------- helpers

    def _where(self, name: str) -> str:
        return os.path.join(self._path, name) if self._kind == "dir" else f"{self._path}:{name}"

    def _zipfile(self) -> zipfile.ZipFile:
        # A handle inherited through fork shares its file offset with the parent: reopen per pid.
        if self._zip is None or self._zip_pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self._path)
            except (OSError, zipfile.BadZipFile) as e:
                raise DatasetError(f"{self._path}: cannot open zip ({e})") from None
            self._zip_pid = os.getpid()
        return self._zip

    def _close_zip(self) -> None:
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None
        self._zip_pid = None

    def _list_files(self) -> set[str]:
        if self._kind == "zip":
            return {n for n in self._zipfile().namelist() if not n.endswith("/")}
        root = self._path
        return {
            os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            for d, _dirs, files in os.walk(root)
            for f in files
        }

    def _read_file(self, name: str) -> bytes:
        try:
            if self._kind == "zip":
                return self._zipfile().read(name)
            with open(os.path.join(self._path, name), "rb") as f:
                return f.read()
        except (OSError, zipfile.BadZipFile, KeyError) as e:
            raise DatasetError(f"{self._where(name)}: cannot read file ({e})") from None

    def _header(self, name: str) -> tuple[str, tuple[int, int]]:
        """(mode, (width, height)) from the file header, without decoding the pixels."""
        where = self._where(name)
        try:
            if self._kind == "zip":
                with self._zipfile().open(name) as f, PIL.Image.open(f) as img:
                    return img.mode, img.size
            with PIL.Image.open(os.path.join(self._path, name)) as img:
                return img.mode, img.size
        except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
            raise DatasetError(f"{where}: cannot read image ({e})") from None

    def _validate_headers(self) -> list[int]:
        """Check every image is square, power-of-two, L or RGB, and like the first one."""
        first = self._image_names[0]
        shape: list[int] | None = None
        for name in self._image_names:
            mode, (w, h) = self._header(name)
            if mode not in _MODE_CHANNELS:
                raise DatasetError(_bad_mode_message(self._where(name), mode))
            this = [_MODE_CHANNELS[mode], h, w]
            if shape is None:
                if w != h:
                    raise DatasetError(f"{self._where(name)}: image is {w}x{h}, not square")
                if not is_valid_resolution(w):
                    raise DatasetError(
                        f"{self._where(name)}: resolution {w} is not a power of two >= 4"
                    )
                shape = this
            elif this != shape:
                raise DatasetError(
                    f"{self._where(name)}: image is {_shape_str(this)} but {first!r} is "
                    f"{_shape_str(shape)}; all images must share one size and channel count "
                    f"(re-run `stylegan dataset` with --resolution / --channels)"
                )
        assert shape is not None
        return shape

    def _read_labels(self) -> list[Label] | None:
        """The labels of ``dataset.json`` in image order, or None if it says ``null``."""
        where = self._where(LABELS_FILE)
        table = read_labels_json(self._read_file(LABELS_FILE), where)
        if table is None:
            return None
        missing = [n for n in self._image_names if n not in table]
        if missing:
            raise DatasetError(f"{where}: no label for image {missing[0]!r}")
        return [table[n] for n in self._image_names]


def _shape_str(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{w}x{h}x{c}"


def open_dataset(spec: str | os.PathLike, **kwargs: Any) -> ImageDataset:
    """Open a dataset by folder path, zip path, or built-in name (``builtin:mnist``, ...).

    Built-in datasets are converted once into ``$STYLEGAN_CACHE/datasets`` (default
    ``~/.cache/stylegan/datasets``) and opened from there afterwards (see
    :func:`stylegan.data.resolve.dataset_path`). Keyword arguments go to :class:`ImageDataset`.
    """
    return ImageDataset(dataset_path(spec), **kwargs)
