"""The conditional CPU demo's pieces: D's auxiliary classifier (AC-GAN), its loss terms, the digit
coverage measure, class rows in `generate` / `mix`, and the run report (progress.png, curves.png)."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import stylegan
from stylegan.cli import main
from stylegan.metrics.digits import RealDigits, digit_diversity
from stylegan.models import DiscriminatorConfig, Generator, build_discriminator
from stylegan.training.config import DataShape, LossConfig
from stylegan.training.launch import train
from stylegan.training.losses import RoundInputs, StyleGANLoss, class_loss
from stylegan.training.presets import resolve_preset
from stylegan.training.report import ReportError, run_report

from test_training_helpers import make_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _D(aux: int = 3, c_dim: int = 3) -> torch.nn.Module:
    cfg = DiscriminatorConfig(c_dim=c_dim, img_resolution=16, img_channels=1, channel_base=128, channel_max=16,
                              mbstd_group_size=2, aux_classes=aux)
    torch.manual_seed(0)
    return build_discriminator(cfg)


def _onehot(idx, k=3):
    return torch.eye(k)[torch.as_tensor(idx)]


def test_class_loss_is_cross_entropy_closed_form():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = _onehot([0, 1])
    expect = -torch.log_softmax(logits, 1)[[0, 1], [0, 1]]
    torch.testing.assert_close(class_loss(logits, labels), expect.unsqueeze(1))
    assert class_loss(logits, labels).shape == (2, 1)


def test_discriminator_scores_and_head():
    D = _D()
    img, c = torch.randn(4, 1, 16, 16), _onehot([0, 1, 2, 0])
    logits, classes = D.scores(img, c)
    assert logits.shape == (4, 1) and classes.shape == (4, 3)
    torch.testing.assert_close(D(img, c), logits)  # forward is the logit of scores
    # The head reads the same features as the logit: changing the head leaves the logit alone.
    with torch.no_grad():
        D.b4.classifier.weight.add_(1.0)
    torch.testing.assert_close(D.scores(img, c)[0], logits)
    assert not torch.allclose(D.scores(img, c)[1], classes)
    # Without the head (every official network): no extra parameters, no class logits.
    plain = _D(aux=0)
    assert plain.scores(img, c)[1] is None
    assert not any("classifier" in k for k in plain.state_dict())
    assert {k for k in D.state_dict() if "classifier" in k} == {"b4.classifier.weight", "b4.classifier.bias"}


def test_aux_classes_only_for_stylegan2_discriminators():
    with pytest.raises(ValueError, match="StyleGAN2 discriminator only"):
        DiscriminatorConfig(c_dim=3, img_resolution=16, version=1, architecture="orig", aux_classes=3)
    with pytest.raises(ValueError, match=">= 0"):
        DiscriminatorConfig(c_dim=3, img_resolution=16, aux_classes=-1)


def _G(c_dim=3):
    cfg = resolve_preset("tiny", DataShape(16, 1, c_dim=c_dim)).G
    torch.manual_seed(1)
    return Generator(cfg)


def test_loss_needs_a_matching_head():
    G = _G()
    with pytest.raises(ValueError, match="aux_classes"):
        StyleGANLoss(G, _D(aux=0), LossConfig(cls_weight=1.0))
    StyleGANLoss(G, _D(aux=3), LossConfig(cls_weight=1.0))  # fine


@pytest.mark.parametrize("phase", ["Gmain", "Dmain"])
def test_ac_terms_match_the_written_out_loss(phase):
    """Gradients of accumulate_gradients with cls_weight equal those of the loss written out by hand:
    Gmain softplus(-D(G(z,c))) + w CE(cls(G(z,c)), c); Dmain softplus(D(G)) + softplus(-D(x)) + w CE(cls(x), c_x)."""
    w = 0.7
    G, D = _G(), _D()
    cfg = LossConfig(cls_weight=w, style_mixing_prob=0.0, pl_weight=0.0, r1_gamma=1.0)
    loss = StyleGANLoss(G, D, cfg)
    z, gc = torch.randn(4, G.z_dim), _onehot([2, 0, 1, 1])
    real, rc = torch.rand(4, 1, 16, 16) * 2 - 1, _onehot([0, 1, 2, 2])
    net = G if phase == "Gmain" else D
    net.requires_grad_(True)

    torch.manual_seed(5)
    result = loss.accumulate_gradients(phase, RoundInputs(real, rc, z, gc))
    ours = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    names = {n for n, _ in result.stats}
    assert ("Loss/G/cls" in names) == (phase == "Gmain") and ("Loss/D/cls_accuracy" in names) == (phase == "Dmain")

    torch.manual_seed(5)
    if phase == "Gmain":
        img, _ = loss.run_G(z, gc)
        logits, classes = D.scores(img, gc)
        total = (F.softplus(-logits) + w * class_loss(classes, gc)).mean()
    else:
        with torch.no_grad():
            img, _ = loss.run_G(z, gc)
        fake_logits = D(img, gc)
        real_logits, real_classes = D.scores(real, rc)
        total = (F.softplus(fake_logits) + F.softplus(-real_logits)).mean() + (w * class_loss(real_classes, rc)).mean()
    total.backward()
    ref = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    assert ours.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-5, atol=1e-7, msg=k)
    if phase == "Dmain":  # the head learns from the reals' labels: it gets a gradient
        assert ours["b4.classifier.weight"].abs().sum() > 0


def test_cpu_preset_is_conditional_with_a_head_only_with_labels():
    cond = resolve_preset("cpu", DataShape(32, 1, c_dim=10))
    assert cond.D.aux_classes == 10 and cond.loss.cls_weight == 1.0
    plain = resolve_preset("cpu", DataShape(32, 1))
    assert plain.D.aux_classes == 0 and plain.loss.cls_weight == 0.0
    for name in ("stylegan2", "paper256", "cifar", "auto"):  # the official presets stay official
        cfg = resolve_preset(name, DataShape(32, 3, c_dim=10))
        assert cfg.D.aux_classes == 0 and cfg.loss.cls_weight == 0.0


@pytest.fixture(scope="module")
def ac_run(tmp_path_factory):
    """A tiny conditional run with the AC head: 6 minibatches, a snapshot at every tick."""
    root = tmp_path_factory.mktemp("ac")
    data = str(make_dataset(root / "discs3", n=24, labels=True))
    cfg = tiny_config(cond=True, total_kimg=0.048)
    cfg = cfg.replace(D=cfg.D.replace(aux_classes=3), loss=dataclasses.replace(cfg.loss, cls_weight=1.0))
    return train(cfg, data, str(root / "runs"), device="cpu", quiet=True), data


def test_conditional_run_with_head_trains_and_resumes(ac_run, tmp_path):
    res, data = ac_run
    rec = res.stats[-1]
    assert 0.0 <= rec["Loss/D/cls_accuracy"]["mean"] <= 1.0 and math.isfinite(rec["Loss/G/cls"]["mean"])
    D = stylegan.load(res.last_snapshot, which="D")
    assert D.cfg.aux_classes == 3 and D.b4.classifier is not None
    r = CliRunner().invoke(main, ["train", "--resume", str(res.run_dir), "--kimg", "0.064", "--outdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "training for 0.064 kimg" in r.output


class _Stub(torch.nn.Module):
    """A 'generator' that draws real digits: of the class asked for, or always the same image."""

    def __init__(self, reals: RealDigits, c_dim: int, collapsed: bool = False):
        super().__init__()
        self.reals, self.c_dim, self.collapsed, self.z_dim = reals, c_dim, collapsed, 4
        self.p = torch.nn.Parameter(torch.zeros([]))

    def forward(self, z, c, noise_mode="const"):
        n = z.shape[0]
        if self.collapsed:
            idx = torch.zeros(n, dtype=torch.long)
        else:
            cls = c.argmax(1).numpy() if c is not None else np.arange(n) % 10
            idx = torch.as_tensor([int(np.flatnonzero(self.reals.classes == k)[i % 3]) for i, k in enumerate(cls)])
        return self.reals.images[idx].reshape(n, 1, 4, 4)


def _fake_digits():
    rnd = np.random.RandomState(0)
    centres = rnd.randn(10, 16) * 2
    images = np.concatenate([centres[k] + 0.1 * rnd.randn(5, 16) for k in range(10)]).astype(np.float32)
    return RealDigits(torch.from_numpy(images), np.repeat(np.arange(10), 5))


def test_digit_diversity_of_perfect_and_collapsed_generators():
    reals = _fake_digits()
    good = digit_diversity(_Stub(reals, c_dim=10), reals, num=100)
    assert good.digits == 10 and good.agreement == 1.0
    assert good.entropy == pytest.approx(math.log(10), abs=1e-3)
    assert 0.5 < good.pairwise_ratio < 1.5
    assert "draws 10 of 10 digits" in good.line()
    bad = digit_diversity(_Stub(reals, c_dim=0, collapsed=True), reals, num=100)
    assert bad.digits == 1 and bad.entropy == 0.0 and bad.pairwise_ratio < 0.01 and bad.agreement is None


def test_run_report_writes_pictures_and_measures(ac_run, monkeypatch):
    res, _ = ac_run
    with pytest.raises(ReportError, match="no such run directory"):
        run_report(res.run_dir / "missing")
    report = run_report(res.run_dir, digits=False)
    snaps = sorted(res.run_dir.glob("snapshot-*.safetensors"))
    assert len(snaps) >= 3 and report.digits == []
    for path in (report.progress, report.curves):
        assert path.is_file() and Image.open(path).size[0] > 100
    # progress.png holds one row per snapshot: its height grows with their number.
    full_height = Image.open(report.progress).size[1]
    few = run_report(res.run_dir, digits=False, max_rows=2)
    assert Image.open(few.progress).size[1] < full_height
    # The digit measure runs on every snapshot (32x32 1-channel network; synthetic reference digits).
    reals = RealDigits(torch.rand(20, 32 * 32) * 2 - 1, np.arange(20) % 10)
    monkeypatch.setattr("stylegan.training.report.RealDigits.from_dataset", classmethod(lambda cls, ds: reals))
    monkeypatch.setattr("stylegan.training.report.open_dataset", lambda *a, **k: None)
    measured = run_report(res.run_dir, digits=True)
    assert [k for k, _ in measured.digits] == [int(p.stem.split("-")[1]) / 1000 for p in snaps]
    assert measured.final_digits.agreement is not None  # conditional network


def test_report_cli(ac_run, tmp_path):
    res, _ = ac_run
    r = CliRunner().invoke(main, ["report", str(res.run_dir), "--no-digits"])
    assert r.exit_code == 0, r.output
    assert "progress.png" in r.output and "curves.png" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code != 0 and "has no snapshot" in r.output


def test_generate_class_rows_and_mix_classes(ac_run, tmp_path):
    res, _ = ac_run
    snap = str(res.last_snapshot)
    r = CliRunner().invoke(main, ["generate", "--network", snap, "--seeds", "0-3", "--class", "0-2", "--grid",
                                  "--outdir", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(tmp_path / "g" / "grid.png"))
    assert grid.shape[:2] == (3 * 32, 4 * 32)  # one row of seeds per class
    one = np.asarray(Image.open(tmp_path / "g" / "class01-seed0002.png"))
    np.testing.assert_array_equal(grid[32:64, 64:96].reshape(one.shape), one)
    r = CliRunner().invoke(main, ["generate", "--network", snap, "--seeds", "0", "--class", "x", "--outdir", str(tmp_path)])
    assert r.exit_code != 0 and "--class" in r.output
    r = CliRunner().invoke(main, ["mix", "--network", snap, "--rows", "1,2", "--cols", "3,4,5", "--row-classes", "0,1",
                                  "--col-classes", "2,0,1", "--outdir", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(tmp_path / "m" / "grid.png")).shape[:2] == (3 * 32, 4 * 32)
    r = CliRunner().invoke(main, ["mix", "--network", snap, "--rows", "1,2", "--cols", "3", "--row-classes", "0", "--outdir", str(tmp_path),
                                  "--col-classes", "2"])
    assert r.exit_code != 0 and "one class per row seed" in r.output
