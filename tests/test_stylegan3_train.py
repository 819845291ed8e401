"""StyleGAN3 training (issue 24): the `stylegan3-t` / `stylegan3-r` presets with the official
defaults, the D input blur of config R (fading with the images shown), the magnitude EMAs moving
in D main only, and a few tiny CPU steps of each config."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import main as cli_main
from stylegan.models import Generator
from stylegan.models.stylegan2 import Discriminator
from stylegan.training.launch import train
from stylegan.training.losses import PhaseContext, RoundInputs, StyleGANLoss, blur_images, d_blur_sigma
from stylegan.training.presets import DataShape, resolve_preset
from test_training_helpers import make_dataset, module_tensors


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("sg3") / "discs", n=24))


def small(name: str, *, fade_kimg: float | None = None):
    """The preset shrunk to CPU size (same switches, few channels and layers)."""
    cfg = resolve_preset(name, DataShape(32, 1))
    v3 = dataclasses.replace(cfg.G.v3, num_layers=4, num_critical=1, margin_size=4)
    G = cfg.G.replace(z_dim=16, w_dim=16, channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None, v3=v3)
    D = cfg.D.replace(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None)
    loss = dataclasses.replace(cfg.loss, r1_interval=2, r1_gamma=1.0)
    if fade_kimg is not None:
        loss = dataclasses.replace(loss, blur_fade_kimg=fade_kimg)
    return cfg.replace(G=G, D=D, loss=loss, batch=8, ema_kimg=0.5, kimg_per_tick=0.016, snap=1, total_kimg=0.032)


def test_presets_have_the_official_defaults():
    for name, r in (("stylegan3-t", False), ("stylegan3-r", True)):
        cfg = resolve_preset(name, DataShape(256, 3))
        G, D, loss = cfg.G, cfg.D, cfg.loss
        assert G.version == 3 and G.sg3.config_name == ("R" if r else "T") and G.mapping.num_layers == 2
        assert (G.channel_base, G.channel_max) == ((65536, 1024) if r else (32768, 512))
        assert (D.version, D.architecture, D.channel_base, D.channel_max, D.mbstd_group_size) == (
            2, "resnet", 32768, 512, 4)
        assert G.sg3.magnitude_ema_beta == 0.5 ** (32 / 20e3) and G.mapping.w_avg_beta == 0.998
        assert (cfg.G_opt.lr, cfg.D_opt.lr, cfg.G_opt.betas, cfg.D_opt.betas) == (0.0025, 0.002, (0, 0.99), (0, 0.99))
        assert (cfg.batch, cfg.ema_kimg, cfg.ema_rampup) == (32, 10, 0.05)
        assert (loss.pl_weight, loss.style_mixing_prob, loss.r1_interval) == (0, 0, 16)
        assert loss.r1_gamma == 2  # stylegan3 docs/configs.md: 0.5 / 2 / 8 / 32 at 128 / 256 / 512 / 1024
        assert [resolve_preset(name, DataShape(r, 3)).loss.r1_gamma for r in (128, 512, 1024)] == [0.5, 8, 32]
        assert (loss.blur_init_sigma, loss.blur_fade_kimg) == ((10, 200) if r else (0, 0))
        assert cfg.preset == name


def test_blur_sigma_fades_and_filter_is_the_official_one():
    cfg = resolve_preset("stylegan3-r", DataShape(32, 1)).loss
    assert d_blur_sigma(cfg, 0) == 10 and d_blur_sigma(cfg, 100_000) == 5 and d_blur_sigma(cfg, 250_000) == 0
    assert d_blur_sigma(resolve_preset("stylegan3-t", DataShape(32, 1)).loss, 0) == 0
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1
    y = blur_images(x, 1.0)  # floor(3 sigma) = 3: 7 taps of 2^-(x/sigma)^2, separable, sum 1
    f = torch.tensor([2.0 ** -(i * i) for i in range(-3, 4)])
    f = f / f.sum()
    assert y.shape == x.shape and torch.allclose(y[0, 0, 7:14, 7:14], torch.outer(f, f), atol=1e-7)
    assert blur_images(x, 0.3) is x  # one tap: no filter


def _loss_and_inputs(cfg, n=4):
    torch.manual_seed(0)
    G, D = Generator(cfg.G), Discriminator(cfg.D)
    loss = StyleGANLoss(G, D, cfg.loss)
    inputs = RoundInputs(torch.rand(n, 1, 32, 32) * 2 - 1, None, torch.randn(n, cfg.G.z_dim), None)
    return G, D, loss, inputs


def test_magnitude_emas_move_in_d_main_only_and_d_sees_blurred_images(monkeypatch):
    cfg = small("stylegan3-r", fade_kimg=0.032)
    G, D, loss, inputs = _loss_and_inputs(cfg)
    emas = lambda: torch.stack([layer.magnitude_ema.clone() for layer in G.synthesis.layers()])  # noqa: E731
    before = emas()
    loss.accumulate_gradients("Gmain", inputs, PhaseContext())
    assert torch.equal(emas(), before)
    seen = []
    real_forward = D.forward
    monkeypatch.setattr(D, "forward", lambda img, c=None, **kw: seen.append(img.detach()) or real_forward(img, c, **kw))
    loss.accumulate_gradients("Dmain", inputs, PhaseContext(cur_nimg=16))  # sigma 5
    moved = emas()
    assert not torch.equal(moved, before) and torch.isfinite(moved).all()
    assert torch.allclose(seen[1], blur_images(inputs.real_img, 5.0))  # fakes, then reals
    seen.clear()
    loss.accumulate_gradients("Dmain", inputs, PhaseContext(cur_nimg=32))  # faded out: the reals as they are
    assert torch.equal(seen[1], inputs.real_img)


@pytest.mark.parametrize("name", ["stylegan3-t", "stylegan3-r"])
def test_a_few_tiny_steps_train(tmp_path, data, name):
    cfg = small(name, fade_kimg=0.016)
    res = train(cfg, data, str(tmp_path / "runs"), device="cpu", quiet=True)
    lines = [json.loads(x) for x in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    for rec in lines:
        for key in ("Loss/G/loss", "Loss/D/loss"):
            assert math.isfinite(rec[key]["mean"])
    assert "Loss/r1_penalty" in lines[0] and "Loss/pl_penalty" not in lines[0]
    t = module_tensors(res.last_snapshot)
    mags = [v for k, v in t.items() if k.startswith("G.synthesis.") and k.endswith("magnitude_ema")]
    assert mags and all(torch.isfinite(m) and m.item() != 1.0 for m in mags)
    assert all(torch.equal(t[k], t["G_ema" + k[1:]]) for k in t if k.startswith("G.") and k.endswith("magnitude_ema"))


def test_dry_run_prints_the_official_values(data):
    out = CliRunner().invoke(cli_main, ["train", "--data", data, "--cfg", "stylegan3-r", "--dry-run"])
    assert out.exit_code == 0, out.output
    rec = json.loads(out.output[out.output.index("{"):])["training"]
    assert rec["G"]["version"] == 3 and rec["G"]["v3"]["conv_kernel"] == 1 and rec["G"]["channel_base"] == 65536
    assert rec["loss"]["blur_init_sigma"] == 10 and rec["loss"]["blur_fade_kimg"] == 200
    assert rec["loss"]["pl_weight"] == 0 and rec["G_opt"]["lr"] == 0.0025 and rec["D_opt"]["lr"] == 0.002


def _dry_run(data, *args):
    out = CliRunner().invoke(cli_main, ["train", "--data", data, *args, "--dry-run"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output[out.output.index("{"):])["training"]


def test_batch_and_cbase_rederive_what_the_official_train_py_derives(data):
    """stylegan3's train.py computes ema, magnitude EMA beta and R's blur fade from --batch, and
    doubles R's G channels after --cbase / --cmax: the same options here give the same values."""
    rec = _dry_run(data, "--cfg", "stylegan3-r", "--batch", "16", "--cbase", "16384", "--cmax", "256")
    assert rec["batch"] == 16 and rec["ema_kimg"] == 16 * 10 / 32
    assert rec["loss"]["blur_fade_kimg"] == 16 * 200 / 32 and rec["loss"]["blur_init_sigma"] == 10
    assert rec["G"]["v3"]["magnitude_ema_beta"] == 0.5 ** (16 / 20e3)
    assert (rec["G"]["channel_base"], rec["G"]["channel_max"]) == (32768, 512)  # doubled for R
    assert (rec["D"]["channel_base"], rec["D"]["channel_max"]) == (16384, 256)
    rec = _dry_run(data, "--cfg", "stylegan3-t", "--batch", "64", "--cbase", "16384")
    assert (rec["batch"], rec["ema_kimg"], rec["loss"]["blur_fade_kimg"]) == (64, 20, 0)
    assert (rec["G"]["channel_base"], rec["G"]["channel_max"], rec["D"]["channel_base"]) == (16384, 512, 16384)
    # `--ema` after the knobs still wins, as it is an option of its own.
    assert _dry_run(data, "--cfg", "stylegan3-t", "--batch", "64", "--ema", "3")["ema_kimg"] == 3
    # stylegan2-ada-pytorch's presets derive nothing from --batch: it sets the batch alone.
    rec = _dry_run(data, "--cfg", "stylegan2", "--batch", "64", "--cbase", "16384")
    assert (rec["batch"], rec["ema_kimg"], rec["G"]["channel_base"], rec["D"]["channel_base"]) == (64, 10, 16384, 16384)


class _Crash(Exception):
    pass


def test_stylegan3_r_resumes_exactly(tmp_path, data):
    """Crash after minibatch 3, resume from the last snapshot: the blur's sigma (a function of the
    images shown) and the magnitude EMAs (snapshot buffers) continue as if uninterrupted."""
    from stylegan.io.checkpoint import read_checkpoint

    cfg = small("stylegan3-r", fade_kimg=0.032).replace(total_kimg=0.048)  # 6 minibatches, blur over 4
    full = train(cfg, data, str(tmp_path / "a"), device="cpu", quiet=True)

    def crash(trainer):
        if trainer.state.batch_idx == 3:
            raise _Crash()

    with pytest.raises(_Crash):
        train(cfg, data, str(tmp_path / "b"), device="cpu", quiet=True, callback=crash)
    snap = sorted((tmp_path / "b").glob("*/snapshot-*.safetensors"))[-1]
    assert 0 < read_checkpoint(snap).state["progress"]["batch_idx"] < 3
    resumed = train(cfg, data, str(tmp_path / "c"), device="cpu", quiet=True, resume=str(snap))
    a, b = read_checkpoint(full.last_snapshot).tensors, read_checkpoint(resumed.last_snapshot).tensors
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
