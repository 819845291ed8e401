"""The on-disk dataset format, in one place: file names, image rules, and labels.

The format is the one NVIDIA's stylegan2-ada-pytorch uses, so datasets made by either tool load
in either loader:

    00000/img00000000.png ... 00000/img00000999.png, 00001/img00001000.png, ...   (1000 per folder)
    dataset.json   {"labels": [["00000/img00000000.png", 3], ...]}  or  {"labels": null}

* every file whose extension is an image extension is one image, in sorted path order;
* images are square, one power-of-two size >= 4, 1 (L) or 3 (RGB) channels;
* ``dataset.json`` labels are keyed by the path relative to the root with '/' separators; a label
  is a class index (an integer >= 0, served one-hot) or a list of numbers (served as is).

This module is the single label parser: the loader reads a dataset's ``dataset.json`` with it and
the dataset tool reads sources' ``dataset.json`` files and users' ``--labels`` files with it, so
both accept the same inputs and reject bad ones with the same message. It depends on nothing else
in ``stylegan.data``; everything else there builds on it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

__all__ = [
    "IMAGES_PER_FOLDER",
    "IMAGE_EXTENSIONS",
    "LABELS_FILE",
    "DatasetError",
    "Label",
    "LabelTable",
    "archive_name",
    "clean_name",
    "dataset_json",
    "folder_labels",
    "is_image_name",
    "is_valid_resolution",
    "label_dim",
    "parse_labels",
    "read_label_file",
    "read_labels_json",
]

# Extensions read as images, by both the dataset tool and the loader (compared lower-cased).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABELS_FILE = "dataset.json"
IMAGES_PER_FOLDER = 1000  # the official layout: folder = index // 1000

# A class index, or a label vector (kept as Python floats so a conversion writes back exactly
# the numbers it read).
Label = Union[int, tuple[float, ...]]
LabelTable = dict[str, Label]  # image name ('/'-separated, relative to the root) -> label


class DatasetError(ValueError):
    """Bad dataset input: the message names the offending file and says what to do."""


# ================================================================================== names


def archive_name(index: int) -> str:
    """Official name of image ``index`` inside a dataset: ``00001/img00001234.png``."""
    return f"{index // IMAGES_PER_FOLDER:05d}/img{index:08d}.png"


def clean_name(name: str) -> str:
    """Normalise a relative path to the '/'-separated form used as the label key."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def is_image_name(name: str) -> bool:
    """True for a (relative, '/'-separated) path that is an image and not hidden.

    Hidden entries (any path component starting with '.') and macOS ``__MACOSX`` folders are
    skipped: zips made on a Mac carry ``__MACOSX/._img.png`` resource forks that look like images
    but are not.
    """
    parts = name.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_valid_resolution(n: int) -> bool:
    """A dataset's side length: a power of two >= 4 (the smallest synthesis block is 4x4)."""
    return n >= 4 and (n & (n - 1)) == 0


# ================================================================================= labels


def parse_labels(doc: Any, where: str) -> LabelTable | None:
    """Labels from a parsed ``dataset.json`` (or ``--labels`` .json file); None for no labels.

    Accepts the official ``{"labels": [[name, label], ...] | null}`` and the shorthand
    ``{name: label, ...}``. Names are normalised with :func:`clean_name`; every label must be of
    one kind (see :func:`_label`); a name listed twice must carry the same label both times.
    """
    if isinstance(doc, dict) and "labels" in doc:
        pairs = doc["labels"]  # the official format
        if pairs is None:
            return None
        if not isinstance(pairs, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs
        ):
            raise DatasetError(
                f"{where}: 'labels' must be null or a list of [filename, label] pairs"
            )
    elif isinstance(doc, dict):
        pairs = list(doc.items())
    else:
        raise DatasetError(
            f'{where}: expected {{"labels": [[filename, label], ...]}} or {{filename: label}}'
        )
    return _label_table(((str(n), v) for n, v in pairs), where)


def read_labels_json(data: bytes, where: str) -> LabelTable | None:
    """:func:`parse_labels` of the raw bytes of a ``dataset.json``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where}: invalid JSON ({e})") from None
    return parse_labels(doc, where)


def read_label_file(path: str | os.PathLike) -> LabelTable:
    """Read ``name -> label`` from a .csv (``filename,label``, header optional) or .json file.

    Names are paths relative to the source root with '/' separators (``cat/001.jpg``); CSV
    labels are class indices.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        table = read_labels_json(path.read_bytes(), str(path))
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


def folder_labels(names: Sequence[str], where: str) -> tuple[LabelTable, list[str]]:
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


def label_dim(labels: Iterable[Label]) -> int:
    """Width of the served label: max class + 1 (one-hot), or the vector length; 0 if none."""
    dims = [len(v) if isinstance(v, tuple) else v + 1 for v in labels]
    return max(dims, default=0)


def dataset_json(labelled: Sequence[tuple[str, Label]] | None) -> bytes:
    """The ``dataset.json`` of a written dataset: ``(archive name, label)`` pairs, or None."""
    labels = None if labelled is None else [[n, lab] for n, lab in labelled]
    return json.dumps({"labels": labels}).encode("utf-8")


def _label(value: Any, where: str, name: str) -> Label:
    """One label: an integer >= 0 (CSV gives strings of digits) or a non-empty list of numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise DatasetError(
                f"{where}: label {value} for {name!r} is negative; class labels are integers >= 0"
            )
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    if (
        isinstance(value, list)
        and value
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        and all(math.isfinite(x) for x in value)
    ):
        return tuple(float(x) for x in value)
    raise DatasetError(
        f"{where}: label {value!r} for {name!r} is not a class index (an integer >= 0) or a "
        f"list of finite numbers"
    )


def _label_table(pairs: Iterable[tuple[str, Any]], where: str) -> LabelTable:
    table: LabelTable = {}
    for raw_name, value in pairs:
        name = clean_name(raw_name)
        label = _label(value, where, name)
        if table.get(name, label) != label:
            raise DatasetError(f"{where}: {name!r} has two different labels")
        table[name] = label
    kinds = {len(v) if isinstance(v, tuple) else 0 for v in table.values()}  # 0: class index
    if len(kinds) > 1:
        raise DatasetError(
            f"{where}: labels must all be class indices (int) or all be lists of numbers of "
            f"the same length"
        )
    return table
