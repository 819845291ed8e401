"""`stylegan dataset`: write an opened image source as a training zip.

Writes the layout of :mod:`stylegan.data.format` (the one NVIDIA's stylegan2-ada-pytorch
``dataset_tool.py`` writes, so it loads unchanged in their loader and theirs in ours).

Pipeline for each source image (sorted by source-relative path, so the output is deterministic):
decode -> EXIF orientation -> alpha composited on ``background`` -> 1 or 3 channels -> crop /
resize to ``resolution`` -> PNG. Every image must come out with the same square power-of-two
size and channel count. A bad file stops the run with its name, or is skipped and listed when
``skip_bad`` is set. The zip is written to a temporary file beside the destination and renamed
into place at the end, so an error or Ctrl-C never leaves a half-written dataset behind.

Sources come from :mod:`stylegan.data.sources`; ``convert_dataset`` (a spec in, a zip out) lives
in :mod:`stylegan.data.resolve`, above the built-in datasets that are themselves made with
:func:`write_dataset`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
from tqdm import tqdm

from stylegan.data.format import (
    IMAGE_EXTENSIONS,
    LABELS_FILE,
    DatasetError,
    Label,
    archive_name,
    dataset_json,
    folder_labels,
    is_valid_resolution,
    label_dim,
    read_label_file,
)
from stylegan.data.sources import Source, SourceImage

__all__ = [
    "RESIZE_FILTERS",
    "TRANSFORMS",
    "ConversionSummary",
    "ConvertOptions",
    "SkippedFile",
    "check_dest",
    "encode_png",
    "labels_rule",
    "prepare_image",
    "write_dataset",
]

_Resampling = getattr(PIL.Image, "Resampling", PIL.Image)  # Pillow >= 9.1 moved the constants
RESIZE_FILTERS: Mapping[str, int] = {"box": _Resampling.BOX, "lanczos": _Resampling.LANCZOS}
TRANSFORMS: tuple[str, ...] = ("center-crop", "center-crop-wide")
PNG_COMPRESS_LEVEL = 6
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same input -> byte-identical zip

class _BadImage(Exception):
    """One source file cannot be used; the message says why (the caller adds the file name)."""



# ================================================================================= images


def read_image(item: SourceImage) -> PIL.Image.Image:
    """Fully decode one source image (so corrupt data fails here) and apply EXIF orientation."""
    try:
        img = item.load()
        img.load()
        return PIL.ImageOps.exif_transpose(img)
    except Exception as e:  # PIL's decoders raise OSError, SyntaxError, ValueError, IndexError...
        raise _BadImage(f"cannot read image ({type(e).__name__}: {e})") from None


_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")


def to_channels(
    img: PIL.Image.Image, channels: int | None, background: tuple[int, int, int]
) -> PIL.Image.Image:
    """Return an ``L`` (1 channel) or ``RGB`` (3 channel) image.

    Transparency is composited over ``background`` first (a GAN has no alpha channel, and
    dropping alpha would expose whatever colour the transparent pixels happen to store).
    Grayscale sources stay 1-channel unless ``channels == 3``; ``channels == 1`` makes luma.
    16-bit grayscale is scaled to 8 bits (PIL's own conversion would clip it).
    """
    mode = img.mode
    gray = mode in _GRAY_MODES
    if mode == "F":
        raise _BadImage("32-bit float images are not supported")
    if mode.startswith("I"):
        wide = np.asarray(img).astype(np.float64)  # [H, W] 0..65535
        img = PIL.Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = PIL.Image.new("RGBA", rgba.size, (*background, 255))
        img = PIL.Image.alpha_composite(canvas, rgba)
    want = channels if channels is not None else (1 if gray else 3)
    return img.convert("L" if want == 1 else "RGB")


def _resize(img: PIL.Image.Image, size: tuple[int, int], resample: int) -> PIL.Image.Image:
    return img if img.size == size else img.resize(size, resample)


def fit_geometry(
    img: PIL.Image.Image,
    resolution: int | None,
    transform: str | None,
    resample: int,
    wide_height: int | None = None,
) -> PIL.Image.Image:
    """Crop / resize to a ``resolution`` x ``resolution`` square.

    * no transform: the image must already be square; resized only if ``resolution`` is given.
    * ``center-crop``: the largest centred square, resized.
    * ``center-crop-wide``: the largest centred region of aspect ``N : wide_height`` (default
      2:1), resized to ``N x wide_height`` and letterboxed on a black ``N x N`` canvas, as the
      official tool does for LSUN Car (its ``--width 512 --height 384``).
    """
    w, h = img.size
    if transform is None:
        if w != h:
            raise _BadImage(
                f"image is {w}x{h}, not square; pass --transform center-crop (or "
                f"center-crop-wide) with --resolution"
            )
        return img if resolution is None else _resize(img, (resolution, resolution), resample)
    assert resolution is not None  # write_dataset requires it with a transform
    if transform == "center-crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        square = img.crop((left, top, left + s, top + s))
        return _resize(square, (resolution, resolution), resample)
    if transform == "center-crop-wide":
        bh = resolution // 2 if wide_height is None else wide_height
        # the largest centred region of aspect resolution : bh, in integers (2:1 -> w // 2)
        cw, ch = (h * resolution // bh, h) if w * bh >= h * resolution else (w, w * bh // resolution)
        if ch < 1 or cw < 1:
            raise _BadImage(f"image is {w}x{h}, too small for center-crop-wide")
        left, top = (w - cw) // 2, (h - ch) // 2
        band = _resize(img.crop((left, top, left + cw, top + ch)), (resolution, bh), resample)
        canvas = PIL.Image.new(img.mode, (resolution, resolution), 0)
        canvas.paste(band, (0, (resolution - bh) // 2))
        return canvas
    raise ValueError(f"unknown transform {transform!r}")  # options are validated earlier


def prepare_image(img: PIL.Image.Image, opts: ConvertOptions) -> np.ndarray:
    """Decoded source image -> uint8 ``[H, W, C]`` ready to be written."""
    img = to_channels(img, opts.channels, opts.background)
    img = fit_geometry(
        img, opts.resolution, opts.transform, RESIZE_FILTERS[opts.resize_filter], opts.wide_height
    )
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, np.newaxis] if arr.ndim == 2 else arr  # [H, W] -> [H, W, 1]


def encode_png(arr: np.ndarray) -> bytes:
    """uint8 ``[H, W, C]`` (C = 1 or 3) -> PNG bytes."""
    img = PIL.Image.fromarray(
        arr[:, :, 0] if arr.shape[2] == 1 else arr, "L" if arr.shape[2] == 1 else "RGB"
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


# ================================================================================ options


def labels_rule(labels: str | os.PathLike | None) -> str | Path | None:
    """The ``--labels`` option as :attr:`ConvertOptions.labels`: "folders", "none", or a file."""
    if labels is None:
        return None
    text = os.fspath(labels)
    return text if text in ("folders", "none") else Path(text).expanduser()


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """What `stylegan dataset` does to each image; validated on construction."""

    resolution: int | None = None
    transform: str | None = None
    resize_filter: str = "lanczos"
    max_images: int | None = None
    labels: str | Path | None = None  # None: the source's own; "folders"; "none"; or a file
    channels: int | None = None
    background: tuple[int, int, int] = (255, 255, 255)
    skip_bad: bool = False
    wide_height: int | None = None  # center-crop-wide: the band's height (default resolution // 2)

    def __post_init__(self) -> None:
        if self.resolution is not None and not is_valid_resolution(self.resolution):
            raise DatasetError(f"--resolution must be a power of two >= 4, got {self.resolution}")
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise DatasetError(f"--transform must be one of {', '.join(TRANSFORMS)}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise DatasetError(f"--resize-filter must be one of {', '.join(RESIZE_FILTERS)}")
        if self.max_images is not None and self.max_images < 1:
            raise DatasetError(f"--max-images must be >= 1, got {self.max_images}")
        if self.channels not in (None, 1, 3):
            raise DatasetError(f"--channels must be 1 or 3, got {self.channels}")
        if self.wide_height is not None and (
            self.transform != "center-crop-wide"
            or self.resolution is None
            or not 1 <= self.wide_height <= self.resolution
        ):
            raise DatasetError(
                f"a band height ({self.wide_height}) other than the width needs --transform "
                f"center-crop-wide and must be 1 .. the width ({self.resolution})"
            )
        if len(self.background) != 3 or not all(0 <= int(c) <= 255 for c in self.background):
            raise DatasetError(
                f"--background must be R,G,B with values 0-255, got {self.background}"
            )


# ================================================================================ summary


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    where: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
    """What a conversion wrote (returned by :func:`write_dataset`, printed by the CLI)."""

    dest: Path
    source: str
    num_images: int
    resolution: int
    num_channels: int
    num_classes: int  # 0: no class labels (none, or label vectors)
    label_dim: int  # 0: no labels; else max class + 1 or the vector length (as the loader)
    skipped: tuple[SkippedFile, ...] = ()
    seconds: float = 0.0
    note: str = ""

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    def format(self) -> str:
        if not self.has_labels:
            labels = "no"
        elif self.num_classes:
            labels = f"yes ({_plural(self.num_classes, 'class')})"
        else:
            labels = f"yes (vectors of {self.label_dim})"
        lines = [
            f"Wrote {_plural(self.num_images, 'image')} to {self.dest} in {self.seconds:.1f} s",
            f"  source: {self.source}" + (f" ({self.note})" if self.note else ""),
            f"  resolution: {self.resolution}x{self.resolution}, channels: {self.num_channels}, "
            f"labels: {labels}",
        ]
        if self.skipped:
            lines.append(f"  skipped {_plural(len(self.skipped), 'bad file')}:")
            lines += [f"    {s.where}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


# ================================================================================ writing


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success.

    Any exception, KeyboardInterrupt included, removes the temporary file, so ``dest`` is either
    the complete new dataset or untouched. (The temp file is created with ``open(..., "xb")``
    rather than ``mkstemp`` so it gets normal umask permissions, not 0600.)
    """
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    open(tmp, "xb").close()
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED  # PNG is already compressed
    zf.writestr(info, data)


def check_dest(dest: Path, force: bool) -> None:
    if dest.suffix.lower() != ".zip":
        raise DatasetError(f"{dest}: destination must be a .zip file")
    if dest.is_dir():
        raise DatasetError(f"{dest}: destination is a folder")
    if dest.exists() and not force:
        raise DatasetError(f"{dest}: already exists (pass --force to overwrite)")


def _resolve_labels(
    src: Source, rule: str | Path | None
) -> tuple[Mapping[str, Label] | None, str]:
    """(name -> label or None, where-label-errors-point-to) for the chosen label rule."""
    if rule == "none":
        return None, ""
    if rule == "folders":
        table, _classes = folder_labels([im.name for im in src.images], src.spec)
        return table, src.spec
    if rule is None:
        return src.labels, f"{src.spec} ({LABELS_FILE})"
    return read_label_file(rule), str(rule)


def _label_of(item: SourceImage, table: Mapping[str, Label] | None, where: str) -> Label | None:
    if table is None:
        return None
    if item.name not in table:
        raise _BadImage(f"no label for {item.name!r} in {where}")
    return table[item.name]


def write_dataset(
    src: Source,
    dest: str | os.PathLike,
    opts: ConvertOptions = ConvertOptions(),
    *,
    force: bool = False,
    progress: bool = True,
) -> ConversionSummary:
    """Convert an opened :class:`Source` into the zip ``dest`` (see the module docstring)."""
    start = time.perf_counter()
    dest = Path(dest).expanduser()
    check_dest(dest, force)
    if not src.images:
        raise DatasetError(
            f"{src.spec}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    resolution = opts.resolution if opts.resolution is not None else src.default_resolution
    transform = opts.transform if opts.transform is not None else src.default_transform
    channels = opts.channels if opts.channels is not None else src.default_channels
    if transform is not None and resolution is None:
        raise DatasetError(f"--transform {transform} needs --resolution")
    opts = dataclasses.replace(
        opts, resolution=resolution, transform=transform, channels=channels
    )
    label_table, label_where = _resolve_labels(src, opts.labels)
    dest.parent.mkdir(parents=True, exist_ok=True)

    shape: tuple[int, int, int] | None = None  # (H, W, C) of the first good image
    first = ""
    written: list[str] = []  # archive names
    labels: list[Label] = []  # their labels, when there is a label table
    skipped: list[SkippedFile] = []
    total = len(src.images) if opts.max_images is None else min(len(src.images), opts.max_images)
    with atomic_output(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        bar = tqdm(
            total=total, unit="img", desc="dataset", disable=not progress, dynamic_ncols=True
        )
        with bar:
            for item in src.images:
                if opts.max_images is not None and len(written) >= opts.max_images:
                    break
                try:
                    label = _label_of(item, label_table, label_where)
                    arr = prepare_image(read_image(item), opts)  # [H, W, C]
                    shape, first = _check_shape(arr.shape, shape, first, item)
                except _BadImage as e:
                    if not opts.skip_bad:
                        raise DatasetError(
                            f"{item.where}: {e}; or use --skip-bad to skip bad files"
                        ) from None
                    skipped.append(SkippedFile(item.where, str(e)))
                    continue
                name = archive_name(len(written))
                _zip_write(zf, name, encode_png(arr))
                written.append(name)
                if label is not None:
                    labels.append(label)
                bar.update(1)
        if not written:
            reason = f"; first: {skipped[0].where}: {skipped[0].reason}" if skipped else ""
            raise DatasetError(f"{src.spec}: all {len(skipped)} images were skipped{reason}")
        labelled = None if label_table is None else list(zip(written, labels))
        _zip_write(zf, LABELS_FILE, dataset_json(labelled))

    assert shape is not None
    return ConversionSummary(
        dest=dest,
        source=src.spec,
        num_images=len(written),
        resolution=shape[0],
        num_channels=shape[2],
        num_classes=len({lab for lab in labels if isinstance(lab, int)}),
        label_dim=label_dim(labels),
        skipped=tuple(skipped),
        seconds=time.perf_counter() - start,
        note=src.note,
    )


def _check_shape(
    this: tuple[int, ...],
    shape: tuple[int, int, int] | None,
    first: str,
    item: SourceImage,
) -> tuple[tuple[int, int, int], str]:
    """The first good image fixes (H, W, C); later ones must match it. Returns (shape, first)."""
    h, w, c = this
    if shape is None:
        if not is_valid_resolution(w):
            raise _BadImage(
                f"image is {w}x{h}; the resolution must be a power of two >= 4"
                f"; pass --resolution N to resize"
            )
        return (h, w, c), item.where
    if (h, w) != shape[:2]:
        raise _BadImage(
            f"image is {w}x{h} but {first} is {shape[1]}x{shape[0]}"
            f"; pass --resolution N to resize all images"
        )
    if c != shape[2]:
        kinds = {1: "grayscale", 3: "RGB"}
        raise _BadImage(
            f"image is {kinds[c]} but {first} is {kinds[shape[2]]}"
            f"; pass --channels 1 or --channels 3"
        )
    return shape, first
