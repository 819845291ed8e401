"""The loader: stylegan.data.dataset.ImageDataset / open_dataset.

Datasets are written by hand here (not by our tool) in the stylegan2-ada-pytorch layout, so these
tests also pin down that zips made by the official dataset_tool.py load in our loader.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from stylegan.data import DatasetError, ImageDataset, open_dataset
from stylegan.data.dataset import subset_indices


def _png(arr: np.ndarray) -> bytes:
    """uint8 [H, W] or [H, W, C] -> PNG bytes."""
    img = PIL.Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _images(n: int, res: int = 8, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    """n random uint8 [res, res, C] images."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (res, res, channels), dtype=np.uint8) for _ in range(n)]


def _official_zip(path: Path, images: list[np.ndarray], labels=None) -> list[str]:
    """Write a zip exactly as the official dataset_tool lays it out; return the image names."""
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in zip(names, images):
            zf.writestr(name, _png(arr))
        meta = {"labels": None if labels is None else [[n, lab] for n, lab in zip(names, labels)]}
        zf.writestr("dataset.json", json.dumps(meta))
    return names


def _chw(arr: np.ndarray) -> np.ndarray:
    return arr.transpose(2, 0, 1)  # [H, W, C] -> [C, H, W]


@pytest.fixture()
def labelled_zip(tmp_path: Path) -> tuple[Path, list[np.ndarray], list[int]]:
    images = _images(6)
    labels = [2, 0, 1, 2, 0, 1]
    path = tmp_path / "their.zip"
    _official_zip(path, images, labels)
    return path, images, labels


def test_official_zip_loads_with_labels(labelled_zip) -> None:
    path, images, labels = labelled_zip
    ds = ImageDataset(path, use_labels=True)
    assert (ds.name, len(ds), ds.resolution, ds.num_channels) == ("their", 6, 8, 3)
    assert ds.image_shape == [3, 8, 8]
    assert ds.label_dim == 3 and ds.has_labels and ds.labels_available
    for i in range(6):
        img, lab = ds[i]
        assert img.dtype == np.uint8 and img.shape == (3, 8, 8) and img.flags.writeable
        np.testing.assert_array_equal(img, _chw(images[i]))
        assert lab.dtype == np.float32
        np.testing.assert_array_equal(lab, np.eye(3, dtype=np.float32)[labels[i]])
        np.testing.assert_array_equal(ds.get_label(i), lab)


def test_labels_off_by_default(labelled_zip) -> None:
    ds = ImageDataset(labelled_zip[0])
    assert ds.label_dim == 0 and not ds.has_labels and ds.labels_available
    assert ds[0][1].shape == (0,) and ds[0][1].dtype == np.float32


def test_float_vector_labels(tmp_path: Path) -> None:
    path = tmp_path / "vec.zip"
    vecs = [[0.5, -1.0], [1.5, 2.0]]
    _official_zip(path, _images(2), vecs)
    ds = ImageDataset(path, use_labels=True)
    assert ds.label_dim == 2
    np.testing.assert_allclose(ds[1][1], [1.5, 2.0])


def test_folder_of_plain_images_grayscale(tmp_path: Path) -> None:
    images = _images(3, res=4, channels=1)
    for i, arr in enumerate(images):
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / f"{i}.png").write_bytes(_png(arr))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "._0.png").write_bytes(b"macOS resource fork, hidden: ignored")
    ds = open_dataset(str(tmp_path))
    assert ds.image_shape == [1, 4, 4] and len(ds) == 3
    assert ds[0][0].flags.writeable and ds[0][0].flags.c_contiguous
    np.testing.assert_array_equal(ds[2][0], _chw(images[2]))


def test_xflip_doubles_and_mirrors(labelled_zip) -> None:
    path, _, _ = labelled_zip
    plain = ImageDataset(path, use_labels=True)
    ds = ImageDataset(path, use_labels=True, xflip=True)
    assert len(ds) == 2 * len(plain)
    for i in range(len(plain)):
        np.testing.assert_array_equal(ds[i][0], plain[i][0])
        np.testing.assert_array_equal(ds[i + len(plain)][0], plain[i][0][:, :, ::-1])
        np.testing.assert_array_equal(ds[i + len(plain)][1], plain[i][1])


def test_max_size_subset_is_seeded_and_deterministic(tmp_path: Path) -> None:
    images = _images(20, res=4)
    path = tmp_path / "d.zip"
    _official_zip(path, images)

    def picked(ds: ImageDataset) -> list[int]:
        return [
            next(j for j, im in enumerate(images) if np.array_equal(_chw(im), ds[i][0]))
            for i in range(len(ds))
        ]

    a = picked(ImageDataset(path, max_size=5, seed=1))
    assert a == picked(ImageDataset(path, max_size=5, seed=1))
    assert len(a) == 5 and a == sorted(a)
    assert a == subset_indices(20, 5, 1).tolist()
    # The official algorithm: RandomState(seed).shuffle, keep the first max_size, sort.
    ref = np.arange(20)
    np.random.RandomState(1).shuffle(ref)
    assert a == sorted(ref[:5].tolist())
    assert picked(ImageDataset(path, max_size=5, seed=2)) != a
    assert len(ImageDataset(path, max_size=50)) == 20


def test_dataloader_two_workers_and_pickle(labelled_zip) -> None:
    path, _, labels = labelled_zip
    ds = ImageDataset(path, use_labels=True, xflip=True)
    _ = ds[0]  # open the zip in this process first: workers must not share its handle
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3][0], ds[3][0])
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    imgs, labs = zip(*loader)
    imgs, labs = torch.cat(imgs), torch.cat(labs)  # [12, 3, 8, 8], [12, 3]
    assert imgs.shape == (12, 3, 8, 8) and imgs.dtype == torch.uint8
    for i in range(12):
        np.testing.assert_array_equal(imgs[i].numpy(), ds[i][0])
        assert int(labs[i].argmax()) == labels[i % 6]


def test_distributed_sampler_partitions(labelled_zip) -> None:
    ds = ImageDataset(labelled_zip[0], xflip=True)  # 12 items
    parts = [
        list(DistributedSampler(ds, num_replicas=3, rank=r, shuffle=True, seed=7)) for r in range(3)
    ]
    assert sorted(i for p in parts for i in p) == list(range(12))
    for p in parts:
        batch = next(iter(DataLoader(ds, batch_size=len(p), sampler=p)))
        np.testing.assert_array_equal(batch[0][0].numpy(), ds[p[0]][0])


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize(
    "files, culprit, words",
    [
        ({"a.png": _png(_images(1)[0]), "b.png": _png(_images(1, res=16)[0])}, "b.png", "16x16"),
        ({"a.png": _png(np.zeros((8, 4, 3), np.uint8))}, "a.png", "not square"),
        ({"a.png": _png(np.zeros((12, 12, 3), np.uint8))}, "a.png", "power of two"),
        ({"a.png": _png(np.zeros((8, 8, 4), np.uint8))}, "a.png", "RGBA"),
        (
            {"a.png": _png(_images(1)[0]), "b.png": _png(_images(1, channels=1)[0])},
            "b.png",
            "8x8x1",
        ),
        ({"a.png": _png(_images(1)[0]), "b.png": b"not a png"}, "b.png", "cannot read"),
    ],
    ids=["mixed-size", "non-square", "non-pow2", "rgba", "mixed-channels", "corrupt"],
)
def test_validation_names_the_file(tmp_path: Path, files, culprit, words) -> None:
    _write_folder(tmp_path, files)
    with pytest.raises(DatasetError, match=words) as err:
        ImageDataset(tmp_path)
    assert culprit in str(err.value)


def test_missing_label_names_the_image(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    names = _official_zip(path, _images(2), [0, 1])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("00000/img00000002.png", _png(_images(1)[0]))
    with pytest.raises(DatasetError, match=r"img00000002\.png"):
        ImageDataset(path, use_labels=True)
    assert names[0] == "00000/img00000000.png"


def test_empty_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images"):
        ImageDataset(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope.zip")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a folder or a zip"):
        ImageDataset(tmp_path / "x.txt")
