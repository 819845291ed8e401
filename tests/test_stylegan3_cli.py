"""`stylegan generate / video / mix --translate X,Y --rotate DEG` on StyleGAN3 networks (issue 24):
gen_images.py's input transform; a one-line error for networks without a Fourier-feature input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan.cli import generate, mix, video
from stylegan.io.checkpoint import save_checkpoint
from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.synth.sample import generate as generate_images
from stylegan.synth.sample import input_transform_scope

from sg3_helpers import tiny_sg3


def _save(path, G):
    save_checkpoint(path, {"G_ema": G})
    return str(path)


@pytest.fixture(scope="module")
def sg3(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("n") / "sg3.safetensors", tiny_sg3())


@pytest.fixture(scope="module")
def sg2(tmp_path_factory):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, channel_base=64, channel_max=8,
                                  mapping=MappingConfig(num_layers=2))).eval()
    return _save(tmp_path_factory.mktemp("n") / "sg2.safetensors", G)


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _generate(net, outdir, *extra):
    res = CliRunner().invoke(generate.command, ["--network", net, "--seeds", "1-2", "--outdir", str(outdir), *extra])
    assert res.exit_code == 0, res.output
    return [_png(outdir / f"seed{s:04d}.png") for s in (1, 2)]


def test_generate_translate_rotate(sg3, tmp_path):
    plain = _generate(sg3, tmp_path / "a")
    zero = _generate(sg3, tmp_path / "b", "--translate", "0,0", "--rotate", "0")
    assert all(np.array_equal(a, b) for a, b in zip(plain, zero))
    for i, extra in enumerate((["--translate", "0.2,-0.1"], ["--rotate", "30"], ["--translate=0.1,0", "--rotate=-15"])):
        moved = _generate(sg3, tmp_path / f"m{i}", *extra)
        assert all(not np.array_equal(a, b) for a, b in zip(plain, moved)), extra


def test_transform_scope_restores_and_matches_the_matrix(sg3):
    import stylegan
    from stylegan.models.stylegan3 import input_transform

    G = stylegan.load(sg3)
    before = G.synthesis.input.transform.clone()
    with input_transform_scope(G, (0.25, 0.0), 90.0):
        assert torch.allclose(G.synthesis.input.transform, input_transform((0.25, 0), 90))
        moved = generate_images(G, [3])
    assert torch.equal(G.synthesis.input.transform, before)
    # the same as passing the transform per call
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(np.random.RandomState(3).randn(1, 8)).float(), None)
        direct = G.synthesis(ws, transform=input_transform((0.25, 0), 90))
    assert torch.allclose(moved, direct, atol=1e-6)


def test_stylegan2_network_is_a_one_line_error(sg2, tmp_path):
    for cmd, args in ((generate.command, ["--seeds", "0", "--outdir", str(tmp_path)]),
                      (video.command, ["--seeds", "0-1", "--frames", "2", "--out", str(tmp_path / "v.gif")]),
                      (mix.command, ["--rows", "0", "--cols", "1", "--outdir", str(tmp_path)])):
        res = CliRunner().invoke(cmd, ["--network", sg2, *args, "--rotate", "10"])
        assert res.exit_code != 0
        msg = res.output.strip()
        assert len(msg.splitlines()) == 1 and "StyleGAN3 networks only" in msg, msg
    res = CliRunner().invoke(generate.command, ["--network", sg2, "--seeds", "0", "--outdir", str(tmp_path),
                                                "--translate", "1"])
    assert res.exit_code != 0 and "two comma-separated numbers" in res.output


def test_video_and_mix_take_the_transform(sg3, tmp_path):
    from stylegan.synth.video import read_video

    def run_video(name, *extra):
        out = tmp_path / name
        res = CliRunner().invoke(video.command, ["--network", sg3, "--seeds", "0-1", "--frames", "2", "--out",
                                                 str(out), *extra])
        assert res.exit_code == 0, res.output
        return read_video(out)

    plain, moved = run_video("a.gif"), run_video("b.gif", "--translate", "0.3,0.3", "--rotate", "45")
    assert plain.shape == moved.shape and not np.array_equal(plain, moved)
    grids = []
    for i, extra in enumerate(([], ["--rotate", "20"])):
        res = CliRunner().invoke(mix.command, ["--network", sg3, "--rows", "0", "--cols", "1", "--outdir",
                                               str(tmp_path / f"mix{i}"), *extra])
        assert res.exit_code == 0, res.output
        grids.append(_png(tmp_path / f"mix{i}" / "grid.png"))
    assert not np.array_equal(*grids)


@pytest.mark.parametrize("batch", ["dynamic", "2"])
def test_export_onnx_matches(sg3, tmp_path, batch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import stylegan
    from stylegan.cli import export

    out = tmp_path / "g.onnx"
    res = CliRunner().invoke(export.command, [sg3, str(out), "--psi", "0.7", "--batch", batch])
    assert res.exit_code == 0, res.output
    G = stylegan.load(sg3)
    z = np.random.RandomState(0).randn(2, G.z_dim).astype(np.float32)
    img = ort.InferenceSession(str(out)).run(None, {"z": z})[0]
    with torch.no_grad():
        ref = G(torch.from_numpy(z), psi=0.7).numpy()
    assert np.abs(img - ref).max() < 1e-5
