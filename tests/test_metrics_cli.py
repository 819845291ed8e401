"""`stylegan metrics` through click's CliRunner with a monkeypatched loader (toy network and
dataset), the attribute classifier, linear separability end to end, jsonl output and the
multi-process (gloo, CPU) gather order."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stylegan.cli.metrics as cli
from stylegan.metrics import append_metric_jsonl, compute_metric
from stylegan.metrics.features import DetectorProvider, Extractor
from stylegan.metrics.separability import (load_attribute_classifier, save_attribute_classifier,
                                           train_attribute_classifier)
from metrics_helpers import ToyDataset, ToyGenerator, save_fake_detector


pytestmark = pytest.mark.usefixtures("offline")


def labelled_dataset(n=96, res=16, seed=0):
    """Bright vs dark images; label 0 = bright, label 1 = red channel dominates."""
    rng = np.random.default_rng(seed)
    bright = rng.random(n) < 0.5
    red = rng.random(n) < 0.5
    imgs = rng.integers(0, 60, size=(n, 3, res, res)).astype(np.int64)
    imgs += np.where(bright, 150, 0)[:, None, None, None]
    imgs[:, 0] += np.where(red, 90, 0)[:, None, None]
    labels = np.stack([bright, red], axis=1).astype(np.float32)
    return ToyDataset(np.clip(imgs, 0, 255).astype(np.uint8), labels, name="attrs")


@pytest.fixture
def toy_env(monkeypatch, tmp_path):
    G = ToyGenerator(img_resolution=16)
    ds = ToyDataset.random(48, seed=3, name="reals")
    opened = []

    def fake_open(spec, use_labels, xflip):
        opened.append((spec, use_labels, xflip))
        return labelled_dataset() if spec == "labelled" else ds

    monkeypatch.setattr(cli, "load_network", lambda path, device: G)
    monkeypatch.setattr(cli, "open_data", fake_open)
    det = tmp_path / "det"
    save_fake_detector(det / "inception-2015-12-05.pt")
    save_fake_detector(det / "vgg16.pt")
    return dict(G=G, ds=ds, det=det, opened=opened)


def test_cli_computes_metrics_and_writes_jsonl(toy_env, tmp_path):
    out = tmp_path / "m.jsonl"
    args = ["--network", "net.safetensors", "--data", "reals.zip", "--metrics", "fid1k_full,kid1k_full,ppl2_wend1k",
            "--detector-dir", str(toy_env["det"]), "--device", "cpu", "--batch", "64", "--out", str(out),
            "--workers", "0", "--mirror"]
    res = CliRunner().invoke(cli.command, args)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert [ln.split()[0] for ln in lines] == ["fid1k_full", "kid1k_full", "ppl2_wend1k"]
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["fid1k_full", "kid1k_full", "ppl2_wend1k"]
    assert rows[0]["results"]["fid1k_full"] > 0 and rows[0]["snapshot_pkl"] == "net.safetensors"
    assert all(xflip is False for _s, _l, xflip in toy_env["opened"])  # *_full ids never mirror


def test_cli_proxy_maps_ids(toy_env, tmp_path, monkeypatch):
    # A cheap stand-in for the EfficientNet detector keeps the test fast; the mapping is what matters.
    cheap = Extractor(id="effnet-lite0:pooled", fn=lambda img: img.float().mean((2, 3)))
    monkeypatch.setattr(DetectorProvider, "extractor", lambda self, kind: cheap)
    res = CliRunner().invoke(cli.command, ["--network", "n", "--data", "d", "--metrics", "fid1k_full", "--proxy",
                                           "--device", "cpu", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "computing fid_effnet1k_full instead of fid1k_full" in res.output
    assert "fid_effnet1k_full" in res.output and "proxy for fid1k_full" in res.output
    res = CliRunner().invoke(cli.command, ["--network", "n", "--metrics", "is50k", "--proxy", "--device", "cpu"])
    assert res.exit_code != 0 and "no offline proxy" in res.output


def test_cli_errors(toy_env):
    runner = CliRunner()
    res = runner.invoke(cli.command, ["--network", "n", "--metrics", "fid9k", "--device", "cpu"])
    assert res.exit_code != 0 and "Unknown metric 'fid9k'" in res.output and "fid50k_full" in res.output
    res = runner.invoke(cli.command, ["--network", "n", "--metrics", "fid1k_full", "--device", "cpu"])
    assert res.exit_code != 0 and "--data" in res.output
    res = runner.invoke(cli.command, ["--network", "n", "--data", "d", "--metrics", "fid1k_full", "--device", "cpu",
                                      "--offline", "--workers", "0"])
    assert res.exit_code != 0 and "inception-2015-12-05.pt" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli.command, ["--network", "n", "--metrics", "ls2k", "--device", "cpu"])
    assert res.exit_code != 0 and "--classifier" in res.output
    res = runner.invoke(cli.command, ["--list-metrics"])
    assert res.exit_code == 0 and "ppl2_wend" in res.output and "PROXY" in res.output


def test_cli_train_classifier_then_ls(toy_env, tmp_path):
    clf = tmp_path / "attrs.safetensors"
    runner = CliRunner()
    res = runner.invoke(cli.command, ["--train-classifier", "--data", "labelled", "--out", str(clf), "--epochs", "4",
                                      "--classifier-res", "16", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert clf.is_file() and "held-out accuracy" in res.output
    res = runner.invoke(cli.command, ["--network", "n", "--metrics", "ls2k", "--classifier", str(clf), "--device",
                                      "cpu", "--batch", "250"])
    assert res.exit_code == 0, res.output
    assert "ls2k_z" in res.output and "ls2k_w" in res.output


@pytest.mark.filterwarnings("ignore")  # torch.jit.trace deprecation / tracer warnings
def test_classifier_training_accuracy_and_roundtrip(tmp_path):
    ds = labelled_dataset(160)
    rep = train_attribute_classifier(ds, tmp_path / "c.safetensors", resolution=16, width=16, epochs=15, lr=3e-3,
                                     progress=False)
    assert min(rep.val_accuracy) >= 0.8, rep.val_accuracy
    back = load_attribute_classifier(rep.path)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(back(x), rep.model(x))
    # TorchScript classifiers load too.
    ts = tmp_path / "c.pt"
    torch.jit.trace(rep.model, x).save(str(ts))
    torch.testing.assert_close(load_attribute_classifier(ts)(x), rep.model(x))
    p = save_attribute_classifier(rep.model, tmp_path / "again.safetensors")
    assert load_attribute_classifier(p).cfg == rep.model.cfg


def test_ls_separable_generator_attribute_scores_low():
    """Attribute = sign of a linear function of w -> perfectly separable in W (score ~1)."""
    G = ToyGenerator(img_resolution=8)
    v = torch.randn(G.A.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def classifier(img):  # linear in the image = linear in w
        return (img.double().flatten(1) @ v)[:, None].float()

    r = compute_metric("ls2k", G, None, classifier=classifier, batch=500, progress=False)
    assert r["results"]["ls2k_w"] < 1.05
    assert r["results"]["ls2k_z"] < 1.05  # w is linear in z for the toy G


def test_append_metric_jsonl(tmp_path):
    res = dict(results=dict(fid50k_full=3.5), metric="fid50k_full", total_time=1.0)
    p = append_metric_jsonl(tmp_path / "run", res, snapshot=tmp_path / "run" / "snapshot-000100.safetensors")
    append_metric_jsonl(tmp_path / "run", res)
    rows = [json.loads(ln) for ln in p.read_text().splitlines()]
    assert p.name == "metric-fid50k_full.jsonl" and len(rows) == 2
    assert rows[0]["snapshot_pkl"] == "snapshot-000100.safetensors" and "timestamp" in rows[0]


def test_multiprocess_gather_matches_single_process(tmp_path):
    """Two gloo processes on CPU give the same features / path lengths, in the same order, as one."""
    import torch.multiprocessing as mp

    from stylegan.metrics.features import MetricOptions, compute_dataset_features, compute_generator_features
    from stylegan.metrics.ppl import PPLConfig, compute_ppl
    from metrics_helpers import distributed_features_worker

    mp.spawn(distributed_features_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    got = np.load(tmp_path / "dist.npz")
    opts = MetricOptions(G=ToyGenerator(), dataset=ToyDataset.random(11), batch=3, use_cache=False, progress=False,
                         num_workers=0)
    ext = Extractor(id="fake", fn=lambda img: img.float().flatten(1)[:, :5])
    np.testing.assert_array_equal(got["gen"], compute_generator_features(opts, ext, 10, capture_all=True).get_all())
    np.testing.assert_array_equal(got["real"], compute_dataset_features(opts, ext, capture_all=True).get_all())
    ppl = compute_ppl(opts, PPLConfig(num_samples=7, space="w", sampling="full"),
                      distance=lambda a, b: (a - b).square().flatten(1).sum(1), return_all=True)
    np.testing.assert_allclose(got["ppl"], ppl)
