"""The official dataset tool's other inputs: CIFAR-10 python archive, MNIST idx files, LSUN LMDB.

Every file here is written by the test in the exact on-disk format of the real download (the
CIFAR batches as the Python 2 pickles they are, byte for byte the opcodes cPickle writes), and the
expected images and labels are computed the way NVIDIA's ``dataset_tool.py`` computes them.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from stylegan.cli.dataset import command as dataset_command
from stylegan.data import DatasetError, ImageDataset, convert_dataset
from stylegan.data.official_sources import detect, mnist_source
from stylegan.data.resolve import open_source
from stylegan.data.safe_pickle import UnsafePickleError, load_data_pickle

# ------------------------------------------------------------------ Python 2 pickles (CIFAR)


def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` as cPickle protocol 2 writes it (SHORT_BINSTRING / BINSTRING)."""
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _py2_int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _py2_list(items: list[bytes]) -> bytes:
    return b"]" + (b"(" + b"".join(items) + b"e" if items else b"")


def _py2_uint8_array(a: np.ndarray) -> bytes:
    """numpy 1.x on Python 2: ``_reconstruct(ndarray, (0,), 'b')`` + BUILD with the raw bytes."""
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    shape = b"(" + b"".join(_py2_int(d) for d in a.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85"
        + _py2_str(b"b") + b"\x87R" + b"(K\x01" + shape + dtype + b"\x89"
        + _py2_str(a.tobytes()) + b"tb"
    )


def _cifar_batch_pickle(data: np.ndarray, labels: list[int], name: bytes) -> bytes:
    """A CIFAR-10 batch: {'batch_label', 'labels', 'data', 'filenames'} as cPickle.dump(d, f, 2)."""
    items = [
        (b"data", _py2_uint8_array(data)),
        (b"labels", _py2_list([_py2_int(v) for v in labels])),
        (b"batch_label", _py2_str(name)),
        (b"filenames", _py2_list([_py2_str(b"img_%d.png" % i) for i in range(len(labels))])),
    ]
    body = b"".join(_py2_str(k) + v for k, v in items)
    return b"\x80\x02}(" + body + b"u."


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _write_cifar(path: Path, per_batch: int = 3, seed: int = 0, replace: dict | None = None):
    """cifar-10-python.tar.gz with 5 training batches, test_batch and batches.meta."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            blob = _cifar_batch_pickle(data, labels, name.encode())
            if replace and name in replace:
                blob = replace[name]
            _tar_add(tf, f"cifar-10-batches-py/{name}", blob)
        _tar_add(tf, "cifar-10-batches-py/batches.meta", b"\x80\x02}q\x01.")
    return path


def _official_cifar(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """What the official ``open_cifar10`` yields (data_batch_1..5, pickle.load latin1, NHWC)."""
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for batch in range(1, 6):
            member = tar.getmember(f"cifar-10-batches-py/data_batch_{batch}")
            with tar.extractfile(member) as file:
                data = pickle.load(file, encoding="latin1")
            images.append(data["data"].reshape(-1, 3, 32, 32))
            labels.append(data["labels"])
    return np.concatenate(images).transpose([0, 2, 3, 1]), np.concatenate(labels)


def _loaded(path: Path) -> tuple[np.ndarray, list]:
    """A written dataset: uint8 [N, H, W, C] and its class indices (None without labels)."""
    ds = ImageDataset(path, use_labels=True)
    images = np.stack([ds[i][0].transpose(1, 2, 0) for i in range(len(ds))])
    labels = [int(np.argmax(ds[i][1])) for i in range(len(ds))] if ds.has_labels else None
    return images, labels


def _one_line_error(args: list[str]) -> str:
    """Run `stylegan dataset`: it must fail with exactly one 'Error:' line and no traceback."""
    result = CliRunner().invoke(dataset_command, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


# ============================================================================== CIFAR-10


def test_py2_pickle_writer_matches_the_standard_unpickler():
    data = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    blob = _cifar_batch_pickle(data, [3, 7], b"training batch 1 of 5")
    ref = pickle.loads(blob, encoding="latin1")  # the official tool's call
    ours = load_data_pickle(io.BytesIO(blob))
    assert ours.keys() == ref.keys() == {"data", "labels", "batch_label", "filenames"}
    np.testing.assert_array_equal(ours["data"], ref["data"])
    assert ours["data"].dtype == np.uint8 and ours["labels"] == [3, 7] == ref["labels"]


def test_cifar10_is_converted_like_the_official_tool(tmp_path):
    src = _write_cifar(tmp_path / "cifar-10-python.tar.gz")
    assert detect(src) == "cifar10"
    summary = convert_dataset(src, tmp_path / "c.zip", progress=False)
    images, labels = _loaded(tmp_path / "c.zip")
    want_images, want_labels = _official_cifar(src)
    assert summary.num_images == 15 and summary.resolution == 32 and summary.num_channels == 3
    np.testing.assert_array_equal(images, want_images)  # test_batch is not included
    assert labels == [int(v) for v in want_labels]


def test_cifar10_refuses_code_in_a_pickle(tmp_path):
    evil = b"\x80\x02cos\nsystem\n" + _py2_str(b"touch pwned") + b"\x85R."
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_data_pickle(io.BytesIO(evil))
    src = _write_cifar(tmp_path / "cifar-10-python.tar.gz", replace={"data_batch_2": evil})
    with pytest.raises(DatasetError, match=r"data_batch_2.*refused the global 'os.system'"):
        convert_dataset(src, tmp_path / "c.zip", progress=False)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "c.zip").exists()


def test_damaged_cifar10_archives_give_one_line_errors(tmp_path):
    good = _write_cifar(tmp_path / "good" / "cifar-10-python.tar.gz", per_batch=50)
    cut = tmp_path / "cut" / "cifar-10-python.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    line = _one_line_error(["--source", str(cut), "--dest", str(tmp_path / "a.zip")])
    assert str(cut) in line and "cannot read the CIFAR-10 archive" in line

    garbage = _write_cifar(tmp_path / "cifar-10-python.tar.gz", replace={"data_batch_4": b"\x80\x02}(U\x04data"})
    line = _one_line_error(["--source", str(garbage), "--dest", str(tmp_path / "b.zip")])
    assert "data_batch_4: not a readable CIFAR-10 batch" in line

    wrong = _write_cifar(tmp_path / "w" / "cifar-10-python.tar.gz",
                         replace={"data_batch_1": pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]})})
    line = _one_line_error(["--source", str(wrong), "--dest", str(tmp_path / "c.zip")])
    assert "data_batch_1: not a CIFAR-10 batch ('data' is uint8 [2, 5]" in line

    empty = tmp_path / "e" / "cifar-10-python.tar.gz"
    empty.parent.mkdir()
    with tarfile.open(empty, "w:gz") as tf:
        _tar_add(tf, "cifar-10-batches-py/data_batch_1", _cifar_batch_pickle(np.zeros((1, 3072), np.uint8), [0], b"x"))
    line = _one_line_error(["--source", str(empty), "--dest", str(tmp_path / "d.zip")])
    assert "not a CIFAR-10 python archive (no cifar-10-batches-py/data_batch_2" in line


def test_cifar10_keeps_at_most_one_batch_in_memory(tmp_path):
    src = _write_cifar(tmp_path / "cifar-10-python.tar.gz", per_batch=400)  # 1.2 MB a batch
    tracemalloc.start()
    try:
        with open_source(src) as source:
            n = sum(1 for _ in source.images)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 2000
    assert peak < 3 * 400 * 3072, f"peak {peak / 1e6:.1f} MB for 5 batches of 1.2 MB"


# ================================================================================= MNIST


def _idx(magic: int, dims: tuple[int, ...], data: np.ndarray) -> bytes:
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + data.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, n: int = 7, prefix: str = "train", gz: bool = True, seed: int = 0):
    """``{prefix}-images-idx3-ubyte[.gz]`` and the labels file; returns (images path, images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write = (lambda p, b: gzip.open(p, "wb").write(b)) if gz else (lambda p, b: p.write_bytes(b))
    img_path = folder / f"{prefix}-images-idx3-ubyte{ext}"
    write(img_path, _idx(0x803, (n, 28, 28), images))
    write(folder / f"{prefix}-labels-idx1-ubyte{ext}", _idx(0x801, (n,), labels))
    return img_path, images, labels


@pytest.mark.parametrize("prefix,gz", [("train", True), ("t10k", False)])
def test_mnist_is_padded_to_32_with_labels_like_the_official_tool(tmp_path, prefix, gz):
    path, images, labels = _write_mnist(tmp_path / "mnist", prefix=prefix, gz=gz)
    assert detect(path) == "mnist"
    summary = convert_dataset(path, tmp_path / "m.zip", progress=False)
    got, got_labels = _loaded(tmp_path / "m.zip")
    official = np.pad(images, [(0, 0), (2, 2), (2, 2)], "constant", constant_values=0)
    assert summary.resolution == 32 and summary.num_channels == 1 and summary.num_classes == len(set(labels))
    np.testing.assert_array_equal(got[..., 0], official)
    assert got_labels == [int(v) for v in labels]


def test_damaged_mnist_files_give_one_line_errors(tmp_path):
    path, _, _ = _write_mnist(tmp_path / "cut", n=50)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw)[:-300])  # a gzip stream that stops early
    line = _one_line_error(["--source", str(path), "--dest", str(tmp_path / "a.zip")])
    assert str(path) in line and "cannot read MNIST images" in line

    path, _, _ = _write_mnist(tmp_path / "magic", gz=False)
    data = bytearray(path.read_bytes())
    data[3] = 0x01  # an idx1 header where idx3 belongs
    path.write_bytes(bytes(data))
    line = _one_line_error(["--source", str(path), "--dest", str(tmp_path / "b.zip")])
    assert "not an idx3-ubyte file (magic 0x00000801, expected 0x00000803)" in line

    path, _, _ = _write_mnist(tmp_path / "short", gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    line = _one_line_error(["--source", str(path), "--dest", str(tmp_path / "c.zip")])
    assert "truncated" in line and str(path) in line

    path, _, _ = _write_mnist(tmp_path / "nolabels")
    (tmp_path / "nolabels" / "train-labels-idx1-ubyte.gz").unlink()
    line = _one_line_error(["--source", str(path), "--dest", str(tmp_path / "d.zip")])
    assert "train-labels-idx1-ubyte.gz is missing" in line

    path, _, _ = _write_mnist(tmp_path / "count", n=4)
    gzip.open(tmp_path / "count" / "train-labels-idx1-ubyte.gz", "wb").write(_idx(0x801, (3,), np.zeros(3)))
    line = _one_line_error(["--source", str(path), "--dest", str(tmp_path / "e.zip")])
    assert "holds 4 images but" in line and "3 labels" in line


def test_mnist_is_read_as_a_stream(tmp_path):
    path, images, _ = _write_mnist(tmp_path, n=20000)  # 15.7 MB of pixels
    tracemalloc.start()
    try:
        with mnist_source(path) as src:
            it = iter(src.images)
            first = [np.asarray(next(it).load()) for _ in range(10)]
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(src.images) == 20000
    np.testing.assert_array_equal(first[9][2:-2, 2:-2], images[9])
    assert peak < 4e6, f"peak {peak / 1e6:.1f} MB to read 10 of 20000 images"


def test_conversion_shows_a_progress_bar(tmp_path, capsys):
    path, _, _ = _write_mnist(tmp_path, n=9)
    convert_dataset(path, tmp_path / "m.zip", progress=True)
    assert "9/9" in capsys.readouterr().err


# ================================================================================== LSUN


def _encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _write_lmdb(folder: Path, values: dict[bytes, bytes]) -> Path:
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(folder), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for k, v in values.items():
            txn.put(k, v)
    env.close()
    return folder


def _lsun_values(n: int, seed: int = 0) -> dict[bytes, bytes]:
    """LSUN-like records: hex keys, JPEG (and one grayscale PNG) of non-square sizes."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        gray = i == 1
        arr = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
        key = bytes(rng.integers(0, 256, 20, dtype=np.uint8)).hex().encode()
        out[key] = _encoded(arr, "PNG" if gray else "JPEG")
    return out


def _official_center_crop(value: bytes, res: int) -> np.ndarray:
    """The official tool's LSUN path: decode as 3-channel RGB, centre square, Lanczos to res."""
    img = np.array(PIL.Image.open(io.BytesIO(value)).convert("RGB"))
    crop = np.min(img.shape[:2])
    img = img[(img.shape[0] - crop) // 2: (img.shape[0] + crop) // 2,
              (img.shape[1] - crop) // 2: (img.shape[1] + crop) // 2]
    return np.array(PIL.Image.fromarray(img, "RGB").resize((res, res), PIL.Image.LANCZOS))


def test_lsun_lmdb_is_converted_in_key_order_like_the_official_tool(tmp_path):
    values = _lsun_values(6)
    src = _write_lmdb(tmp_path / "church_outdoor_train_lmdb", values)
    assert detect(src) == "lmdb"
    summary = convert_dataset(src, tmp_path / "l.zip", transform="center-crop", resolution=16,
                              max_images=4, progress=False)
    images, labels = _loaded(tmp_path / "l.zip")
    keys = sorted(values)[:4]  # LMDB's cursor order is the keys' byte order
    assert summary.num_images == 4 and summary.num_channels == 3 and labels is None
    np.testing.assert_array_equal(images, np.stack([_official_center_crop(values[k], 16) for k in keys]))


def test_lsun_bad_records_and_damaged_lmdbs(tmp_path):
    values = _lsun_values(3)
    bad_key = sorted(values)[1]
    values[bad_key] = b"\xff\xd8\xff\xe0 not really a jpeg"
    src = _write_lmdb(tmp_path / "cat_lmdb", values)
    line = _one_line_error(["--source", str(src), "--dest", str(tmp_path / "a.zip"),
                            "--transform", "center-crop", "--resolution", "8"])
    assert f"{src}:{bad_key.decode()}: cannot read image" in line and "--skip-bad" in line
    summary = convert_dataset(src, tmp_path / "b.zip", transform="center-crop", resolution=8,
                              skip_bad=True, progress=False)
    assert summary.num_images == 2 and summary.skipped[0].where == f"{src}:{bad_key.decode()}"

    broken = tmp_path / "dog_lmdb"
    broken.mkdir()
    (broken / "data.mdb").write_bytes(b"\x00" * 100)
    line = _one_line_error(["--source", str(broken), "--dest", str(tmp_path / "c.zip")])
    assert f"{broken}: cannot open the LMDB" in line

    empty = tmp_path / "bridge_lmdb"
    empty.mkdir()
    line = _one_line_error(["--source", str(empty), "--dest", str(tmp_path / "d.zip")])
    assert "not an LMDB folder (no data.mdb)" in line


def test_lsun_conversion_keeps_memory_flat(tmp_path):
    rng = np.random.default_rng(1)
    values = {b"%08d" % i: _encoded(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "PNG") for i in range(300)}
    src = _write_lmdb(tmp_path / "x_lmdb", values)
    total = sum(len(v) for v in values.values())  # 3.7 MB of encoded images
    tracemalloc.start()
    try:
        convert_dataset(src, tmp_path / "x.zip", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < total / 3, f"peak {peak / 1e6:.1f} MB for {total / 1e6:.1f} MB of records"
