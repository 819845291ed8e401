"""Detector lookup (explicit path, env dir, cache, simulated download), checksums, error messages,
the EfficientNet-Lite0 proxy and the perceptual distances. No network access."""
from __future__ import annotations

import dataclasses
import io
import urllib.request

import numpy as np
import pytest
import torch

from stylegan.metrics import DetectorError, load_detector, load_perceptual_distance, resolve_detector_file
from stylegan.metrics.detectors import OFFICIAL_DETECTORS, sha256_file
from metrics_helpers import save_fake_detector

INCEPTION = OFFICIAL_DETECTORS["inception"]


pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture(scope="module")
def effnet():
    from stylegan.metrics.effnet import load_effnet_lite0

    return load_effnet_lite0()


def uint8_images(n=2, c=3, res=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, res, res), generator=g, dtype=torch.uint8)


def test_load_by_path_file_and_directory(tmp_path):
    f = save_fake_detector(tmp_path / "somewhere" / "inception-2015-12-05.pt")
    for where in (f, f.parent):
        det = load_detector("inception", where, download=False)
        feats = det.features(uint8_images())
        assert feats.shape == (2, 18) and feats.dtype == torch.float32
        probs = det.probabilities(uint8_images())
        torch.testing.assert_close(probs.sum(1), torch.ones(2))
    gray = det.features(uint8_images(c=1))  # grayscale repeated to 3 channels
    rgb = det.features(uint8_images(c=1).repeat(1, 3, 1, 1))
    torch.testing.assert_close(gray, rgb)


def test_load_from_cache_dir_and_env_dir(tmp_path, monkeypatch):
    save_fake_detector(tmp_path / "cache" / "detectors" / "inception-2015-12-05.pt")
    assert load_detector("inception").path == tmp_path / "cache" / "detectors" / "inception-2015-12-05.pt"
    save_fake_detector(tmp_path / "other" / "detectors" / "vgg16.pt")
    assert load_detector("vgg16", cache_dir=tmp_path / "other").path.parent == tmp_path / "other" / "detectors"
    save_fake_detector(tmp_path / "envdir" / "vgg16.pt")
    monkeypatch.setenv("STYLEGAN_DETECTOR_DIR", str(tmp_path / "envdir"))
    assert load_detector("vgg16").path == tmp_path / "envdir" / "vgg16.pt"


def test_missing_file_message(tmp_path):
    with pytest.raises(DetectorError) as e:
        resolve_detector_file("inception", download=False)
    msg = str(e.value)
    assert "inception-2015-12-05.pt" in msg and INCEPTION.url in msg
    assert str(tmp_path / "cache" / "detectors" / "inception-2015-12-05.pt") in msg
    assert "--detector-dir" in msg and "STYLEGAN_DETECTOR_DIR" in msg and "downloads are disabled" in msg
    assert "effnet" in msg  # points at the offline proxy
    with pytest.raises(DetectorError, match="STYLEGAN_OFFLINE"):
        resolve_detector_file("vgg16")  # offline env var also blocks downloads
    with pytest.raises(DetectorError, match="given location"):
        load_detector("vgg16", tmp_path / "nope.pt")
    with pytest.raises(DetectorError, match="Unknown detector"):
        load_detector("resnet")


def test_sha256_mismatch_rejected_and_match_accepted(tmp_path):
    f = save_fake_detector(tmp_path / "cache" / "detectors" / "inception-2015-12-05.pt")
    bad = dataclasses.replace(INCEPTION, sha256="0" * 64)
    with pytest.raises(DetectorError, match="Checksum mismatch"):
        load_detector(bad, download=False)
    good = dataclasses.replace(INCEPTION, sha256=sha256_file(f))
    assert load_detector(good, download=False).path == f


def test_not_torchscript(tmp_path):
    p = tmp_path / "vgg16.pt"
    p.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="not a loadable TorchScript"):
        load_detector("vgg16", p)


def test_simulated_download_atomic_with_checksum(tmp_path, monkeypatch):
    """The download path with urlopen replaced by a local byte stream (no network)."""
    src = save_fake_detector(tmp_path / "src.pt")
    payload = src.read_bytes()
    monkeypatch.delenv("STYLEGAN_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))
    dest = tmp_path / "cache" / "detectors" / "inception-2015-12-05.pt"
    bad = dataclasses.replace(INCEPTION, sha256="f" * 64)
    with pytest.raises(DetectorError, match="discarded"):
        resolve_detector_file(bad)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    good = dataclasses.replace(INCEPTION, sha256=sha256_file(src))
    assert resolve_detector_file(good) == dest and dest.read_bytes() == payload
    dest.unlink()
    with pytest.raises(DetectorError, match="downloads are disabled"):
        resolve_detector_file(good, download=False)

    def boom(url, timeout=None):
        raise OSError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", boom)
    with pytest.raises(DetectorError, match="downloading it failed"):
        resolve_detector_file(good)


def test_effnet_loads_all_keys_and_gives_1280d(effnet):
    from stylegan.metrics.effnet import EffNetFeatureDetector, EfficientNetLite0, find_effnet_weights

    state = torch.load(find_effnet_weights(), map_location="cpu", weights_only=True)
    own = EfficientNetLite0().state_dict()
    assert set(state) == set(own)
    assert all(state[k].shape == own[k].shape for k in own)
    det = EffNetFeatureDetector(effnet)
    feats = det(uint8_images(3, res=48))
    assert feats.shape == (3, 1280) and torch.isfinite(feats).all() and (feats >= 0).all()  # ReLU6 pooled
    torch.testing.assert_close(det.probabilities(uint8_images(3, res=48)).sum(1), torch.ones(3))


def test_effnet_classifies_a_natural_image(effnet):
    """ImageNet sanity check on scikit-learn's bundled photo of a Chinese palace: class 698 'palace'
    must be in the top 5 (weights, padding and input normalisation are right)."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from stylegan.metrics.effnet import EffNetFeatureDetector

    china = np.asarray(sklearn_datasets.load_sample_image("china.jpg"))  # [427, 640, 3]
    img = torch.from_numpy(china[:, 100:527].copy()).permute(2, 0, 1)[None]  # square crop
    probs = EffNetFeatureDetector(effnet).probabilities(img)
    assert 698 in probs.topk(5).indices[0].tolist()


def test_perceptual_distances(effnet, tmp_path, monkeypatch):
    from stylegan.metrics.effnet import EffNetPerceptualDistance

    d = EffNetPerceptualDistance(effnet)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(d(a, a), torch.zeros(2), atol=1e-6)
    dab = d(a, b)
    assert (dab > 0).all()
    torch.testing.assert_close(dab, d(b, a))
    assert (d(a, a + 0.05 * (b - a)) < dab).all()  # closer image, smaller distance
    assert d.features(a).shape[0] == 2
    # Grayscale works.
    assert d(a[:, :1], b[:, :1]).shape == (2,)

    # Loader: proxy when vgg16.pt is missing, error when proxy is not allowed, vgg16 when present.
    pd = load_perceptual_distance(allow_proxy=True, warn=False)
    assert pd.name == "effnet-lite0-proxy" and not pd.official
    with pytest.raises(DetectorError, match="vgg16.pt"):
        load_perceptual_distance(allow_proxy=False)
    with pytest.raises(DetectorError):
        load_perceptual_distance(tmp_path / "missing.pt")  # explicit path: never falls back
    save_fake_detector(tmp_path / "cache" / "detectors" / "vgg16.pt")
    lp = load_perceptual_distance()
    assert lp.name == "lpips-vgg16" and lp.official
    expected = ((a + 1) * 127.5 / 255 - (b + 1) * 127.5 / 255).square().flatten(1).sum(1)
    torch.testing.assert_close(lp(a, b), expected)
