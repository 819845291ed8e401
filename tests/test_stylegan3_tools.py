"""`stylegan project` and `stylegan metrics` on a StyleGAN3 network (issue 24, item 3): a tiny random
config T generator saved as our checkpoint, projected for a few steps (no noise buffers to
regularise: StyleGAN3 has none) and measured with an offline metric (PPL over a stand-in VGG16)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import stylegan.cli.metrics as metrics_cli
import stylegan.cli.project as project_cli
from stylegan.io.checkpoint import save_checkpoint

from metrics_helpers import save_fake_detector
from sg3_helpers import tiny_sg3

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def sg3(tmp_path):
    G = tiny_sg3()
    path = tmp_path / "sg3.safetensors"
    save_checkpoint(path, {"G_ema": G})
    return dict(path=str(path), G=G)


def test_project_gives_a_finite_w(sg3, tmp_path):
    target = tmp_path / "target.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(target)
    out = tmp_path / "proj"
    res = CliRunner().invoke(project_cli.command, ["--network", sg3["path"], "--target", str(target), "--steps", "3",
                                                   "--outdir", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    w = np.load(out / "projected_w.npz")["w"]
    G = sg3["G"]
    assert w.shape == (1, G.num_ws, G.w_dim) and np.isfinite(w).all()
    assert (out / "proj.png").is_file()


def test_metrics_ppl_is_finite(sg3, tmp_path):
    det = tmp_path / "det"
    save_fake_detector(det / "vgg16.pt")
    out = tmp_path / "m.jsonl"
    res = CliRunner().invoke(metrics_cli.command, ["--network", sg3["path"], "--metrics", "ppl2_wend1k",
                                                   "--detector-dir", str(det), "--device", "cpu", "--offline",
                                                   "--workers", "0", "--batch", "64", "--out", str(out)])
    assert res.exit_code == 0, res.output
    value = json.loads(out.read_text().splitlines()[-1])["results"]["ppl2_wend1k"]
    assert np.isfinite(value) and value > 0
