"""`stylegan dataset`: turn a folder / archive / built-in set of images into a training zip.

The output is the layout NVIDIA's stylegan2-ada-pytorch ``dataset_tool.py`` writes, so it loads
unchanged in their loader and theirs in ours:

    00000/img00000000.png ... 00000/img00000999.png, 00001/img00001000.png, ...   (1000 per folder)
    dataset.json   {"labels": [["00000/img00000000.png", 3], ...]}  or  {"labels": null}

Pipeline for each source image (sorted by source-relative path, so the output is deterministic):
decode -> EXIF orientation -> alpha composited on ``background`` -> 1 or 3 channels -> crop /
resize to ``resolution`` -> PNG. Every image must come out with the same square power-of-two
size and channel count. A bad file stops the run with its name, or is skipped and listed when
``skip_bad`` is set. The zip is written to a temporary file beside the destination and renamed
into place at the end, so an error or Ctrl-C never leaves a half-written dataset behind.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import PIL.Image
import PIL.ImageOps
from tqdm import tqdm

from stylegan.data.dataset import (
    IMAGE_EXTENSIONS,
    LABELS_FILE,
    DatasetError,
    is_image_name,
    is_power_of_two,
)

__all__ = [
    "ConversionSummary",
    "ConvertOptions",
    "SkippedFile",
    "Source",
    "SourceImage",
    "archive_name",
    "convert_dataset",
    "folder_labels",
    "open_source",
    "prepare_image",
    "read_label_file",
    "tar_source",
    "write_dataset",
]

_Resampling = getattr(PIL.Image, "Resampling", PIL.Image)  # Pillow >= 9.1 moved the constants
RESIZE_FILTERS: Mapping[str, int] = {"box": _Resampling.BOX, "lanczos": _Resampling.LANCZOS}
TRANSFORMS: tuple[str, ...] = ("center-crop", "center-crop-wide")
IMAGES_PER_FOLDER = 1000  # the official layout: folder = index // 1000
PNG_COMPRESS_LEVEL = 6
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same input -> byte-identical zip


class _BadImage(Exception):
    """One source file cannot be used; the message says why (the caller adds the file name)."""


# =============================================================================== sources


@dataclasses.dataclass(frozen=True)
class SourceImage:
    """One image of a source, decoded only when ``load`` is called (keeps memory flat)."""

    name: str  # source-relative path with '/' separators: the key for label files
    where: str  # human-readable location for messages (file path, or archive:member)
    load: Callable[[], PIL.Image.Image]


@dataclasses.dataclass(frozen=True)
class Source:
    """The images of a source in deterministic (sorted) order, plus what ships with them."""

    spec: str
    images: tuple[SourceImage, ...]
    labels: Mapping[str, int] | None = None  # from the source's dataset.json, or a builtin
    default_resolution: int | None = None  # builtins pick their size; others keep theirs
    default_transform: str | None = None  # used when the options name no transform
    note: str = ""  # shown in the summary (e.g. which backend a builtin came from)


def _open_image_file(path: str) -> PIL.Image.Image:
    return PIL.Image.open(path)


def _open_zip_member(zf: zipfile.ZipFile, name: str) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(zf.read(name)))


def _clean_name(name: str) -> str:
    """Normalise a relative path to the '/'-separated form used as the label key."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _labels_from_json_bytes(data: bytes, where: str) -> dict[str, int] | None:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where}: invalid JSON ({e})") from None
    return parse_label_json(obj, where)


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
    labels = _labels_from_json_bytes(meta.read_bytes(), str(meta)) if meta.is_file() else None
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
            labels = _labels_from_json_bytes(zf.read(LABELS_FILE), f"{path}:{LABELS_FILE}")
        yield Source(str(path), images, labels)


@contextlib.contextmanager
def tar_source(path: Path, *, under: str = "", spec: str | None = None) -> Iterator[Source]:
    """Images inside a .tar / .tgz / .tar.gz, optionally only those below folder ``under``.

    A compressed tar can only be read front to back, while we want sorted order: so one pass
    copies the image members into a temporary folder (removed afterwards) and the images are
    then read from there. Member names never become file-system paths (no path traversal).
    """
    prefix = _clean_name(under).rstrip("/") + "/" if under else ""
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
                name = _clean_name(member.name)
                if not name.startswith(prefix):
                    continue
                name = name[len(prefix) :]
                if name == LABELS_FILE:
                    data = _extract_bytes(tf, member)
                    labels = _labels_from_json_bytes(data, f"{path}:{member.name}")
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


def _extract_bytes(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    with _member_file(tf, member) as f:
        return f.read()


def _is_tar_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz"))


@contextlib.contextmanager
def open_source(spec: str | os.PathLike) -> Iterator[Source]:
    """Open a folder, .zip, .tar/.tgz/.tar.gz, or ``builtin:NAME`` as a :class:`Source`."""
    spec_str = os.fspath(spec)
    if spec_str.startswith("builtin:"):
        from stylegan.data.builtin import open_builtin_source  # builtin builds on this module

        with open_builtin_source(spec_str) as src:
            yield src
        return
    path = Path(spec_str).expanduser()
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
            f"{path}: not a folder, .zip, or .tar/.tgz/.tar.gz archive (or builtin:NAME)"
        )


# ================================================================================= labels


def _as_label(value: Any, where: str, name: str) -> int:
    """A class label: a non-negative int (CSV gives strings of digits)."""
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DatasetError(f"{where}: label {value!r} for {name!r} is not a non-negative integer")


def parse_label_json(obj: Any, where: str) -> dict[str, int] | None:
    """Labels from parsed JSON: ``{"labels": [[name, int], ...] | null}`` or ``{name: int}``."""
    if isinstance(obj, dict) and "labels" in obj and isinstance(obj["labels"], (list, type(None))):
        pairs = obj["labels"]  # the official format
        if pairs is None:
            return None
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise DatasetError(f"{where}: 'labels' must be a list of [filename, label] pairs")
    elif isinstance(obj, dict):
        pairs = list(obj.items())
    else:
        raise DatasetError(
            f'{where}: expected {{"labels": [[filename, label], ...]}} or {{filename: label}}'
        )
    return _label_table(((str(n), v) for n, v in pairs), where)


def _label_table(pairs: Iterable[tuple[str, Any]], where: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for raw_name, value in pairs:
        name = _clean_name(raw_name)
        label = _as_label(value, where, name)
        if table.get(name, label) != label:
            raise DatasetError(f"{where}: {name!r} has two different labels")
        table[name] = label
    return table


def read_label_file(path: str | os.PathLike) -> dict[str, int]:
    """Read ``name -> class`` from a .csv (``filename,label``, header optional) or .json file.

    Names are paths relative to the source root with '/' separators (``cat/001.jpg``).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        table = _labels_from_json_bytes(path.read_bytes(), str(path))
        if table is None:
            raise DatasetError(f"{path}: 'labels' is null; pass --labels none instead")
        return table
    if suffix != ".csv":
        raise DatasetError(f"{path}: label file must be .csv or .json")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise DatasetError(f"{path}:{line_no}: expected 2 columns (filename,label)")
            if not rows and line_no == 1 and not row[1].strip().isdecimal():
                continue  # a header row such as "filename,label"
            rows.append((row[0], row[1]))
    if not rows:
        raise DatasetError(f"{path}: no labels in file")
    return _label_table(rows, str(path))


def folder_labels(names: Sequence[str], where: str) -> tuple[dict[str, int], list[str]]:
    """``--labels folders``: class = first path component, numbered in sorted order.

    Every image must sit inside a class folder (``cat/1.jpg``, ``dog/x/2.jpg``); an image at the
    top level has no class, which is an error rather than a silent extra class.
    """
    loose = [n for n in names if "/" not in n]
    if loose:
        raise DatasetError(
            f"{where}: --labels folders needs every image inside a class subfolder, but "
            f"{loose[0]!r} is at the top level"
        )
    classes = sorted({n.split("/", 1)[0] for n in names})
    index = {c: i for i, c in enumerate(classes)}
    return {n: index[n.split("/", 1)[0]] for n in names}, classes


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
    img: PIL.Image.Image, resolution: int | None, transform: str | None, resample: int
) -> PIL.Image.Image:
    """Crop / resize to a ``resolution`` x ``resolution`` square.

    * no transform: the image must already be square; resized only if ``resolution`` is given.
    * ``center-crop``: the largest centred square, resized.
    * ``center-crop-wide``: the largest centred 2:1 (wide) region, resized to ``N x N/2`` and
      letterboxed on a black ``N x N`` canvas, as the official tool does for LSUN Car.
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
        cw, ch = (2 * h, h) if w >= 2 * h else (w, w // 2)
        if ch < 1:
            raise _BadImage(f"image is {w}x{h}, too small for center-crop-wide")
        left, top = (w - cw) // 2, (h - ch) // 2
        band = _resize(
            img.crop((left, top, left + cw, top + ch)), (resolution, resolution // 2), resample
        )
        canvas = PIL.Image.new(img.mode, (resolution, resolution), 0)
        canvas.paste(band, (0, (resolution - resolution // 2) // 2))
        return canvas
    raise ValueError(f"unknown transform {transform!r}")  # options are validated earlier


def prepare_image(img: PIL.Image.Image, opts: ConvertOptions) -> np.ndarray:
    """Decoded source image -> uint8 ``[H, W, C]`` ready to be written."""
    img = to_channels(img, opts.channels, opts.background)
    img = fit_geometry(img, opts.resolution, opts.transform, RESIZE_FILTERS[opts.resize_filter])
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


def archive_name(index: int) -> str:
    """Official output name of image ``index``: ``00001/img00001234.png``."""
    return f"{index // IMAGES_PER_FOLDER:05d}/img{index:08d}.png"


# ================================================================================ options


def _parse_labels_option(labels: str | os.PathLike | None) -> str | Path | None:
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

    def __post_init__(self) -> None:
        if self.resolution is not None and not (
            is_power_of_two(self.resolution) and self.resolution >= 4
        ):
            raise DatasetError(f"--resolution must be a power of two >= 4, got {self.resolution}")
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise DatasetError(f"--transform must be one of {', '.join(TRANSFORMS)}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise DatasetError(f"--resize-filter must be one of {', '.join(RESIZE_FILTERS)}")
        if self.max_images is not None and self.max_images < 1:
            raise DatasetError(f"--max-images must be >= 1, got {self.max_images}")
        if self.channels not in (None, 1, 3):
            raise DatasetError(f"--channels must be 1 or 3, got {self.channels}")
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
    """What a conversion wrote (returned by :func:`convert_dataset`, printed by the CLI)."""

    dest: Path
    source: str
    num_images: int
    resolution: int
    num_channels: int
    num_classes: int  # 0: no labels
    label_dim: int  # 0: no labels; else max label + 1 (what the loader's one-hot uses)
    skipped: tuple[SkippedFile, ...] = ()
    seconds: float = 0.0
    note: str = ""

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    def format(self) -> str:
        labels = f"yes ({_plural(self.num_classes, 'class')})" if self.has_labels else "no"
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


def _check_dest(dest: Path, force: bool) -> None:
    if dest.suffix.lower() != ".zip":
        raise DatasetError(f"{dest}: destination must be a .zip file")
    if dest.is_dir():
        raise DatasetError(f"{dest}: destination is a folder")
    if dest.exists() and not force:
        raise DatasetError(f"{dest}: already exists (pass --force to overwrite)")


def _resolve_labels(src: Source, rule: str | Path | None) -> tuple[Mapping[str, int] | None, str]:
    """(name -> class or None, where-label-errors-point-to) for the chosen label rule."""
    if rule == "none":
        return None, ""
    if rule == "folders":
        table, _classes = folder_labels([im.name for im in src.images], src.spec)
        return table, src.spec
    if rule is None:
        return src.labels, f"{src.spec} ({LABELS_FILE})"
    return read_label_file(rule), str(rule)


def _label_of(item: SourceImage, table: Mapping[str, int] | None, where: str) -> int | None:
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
    _check_dest(dest, force)
    if not src.images:
        raise DatasetError(
            f"{src.spec}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    resolution = opts.resolution if opts.resolution is not None else src.default_resolution
    transform = opts.transform if opts.transform is not None else src.default_transform
    if transform is not None and resolution is None:
        raise DatasetError(f"--transform {transform} needs --resolution")
    opts = dataclasses.replace(opts, resolution=resolution, transform=transform)
    label_table, label_where = _resolve_labels(src, opts.labels)
    dest.parent.mkdir(parents=True, exist_ok=True)

    shape: tuple[int, int, int] | None = None  # (H, W, C) of the first good image
    first = ""
    written: list[tuple[str, int | None]] = []  # (archive name, label)
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
                written.append((name, label))
                bar.update(1)
        if not written:
            reason = f"; first: {skipped[0].where}: {skipped[0].reason}" if skipped else ""
            raise DatasetError(f"{src.spec}: all {len(skipped)} images were skipped{reason}")
        has_labels = label_table is not None
        meta = {"labels": [[n, lab] for n, lab in written] if has_labels else None}
        _zip_write(zf, LABELS_FILE, json.dumps(meta).encode("utf-8"))

    assert shape is not None
    classes = sorted({lab for _, lab in written if lab is not None})
    return ConversionSummary(
        dest=dest,
        source=src.spec,
        num_images=len(written),
        resolution=shape[0],
        num_channels=shape[2],
        num_classes=len(classes),
        label_dim=(classes[-1] + 1) if classes else 0,
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
        if not (is_power_of_two(w) and w >= 4):
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
) -> ConversionSummary:
    """Convert ``source`` (folder, .zip, .tar/.tgz, ``builtin:NAME``) into the dataset zip ``dest``.

    ``labels``: None uses the source's own ``dataset.json`` (or a builtin's labels) if it has
    one; ``"folders"`` numbers the top-level subfolders in sorted order; ``"none"`` drops labels;
    anything else is a .csv / .json label file. Raises :class:`DatasetError` on bad input.
    """
    opts = ConvertOptions(
        resolution=resolution,
        transform=transform,
        resize_filter=resize_filter,
        max_images=max_images,
        labels=_parse_labels_option(labels),
        channels=channels,
        background=tuple(int(c) for c in background),  # type: ignore[arg-type]
        skip_bad=skip_bad,
    )
    _check_dest(Path(dest).expanduser(), force)  # fail before opening (maybe fetching) a source
    with open_source(source) as src:
        return write_dataset(src, dest, opts, force=force, progress=progress)
