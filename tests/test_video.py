"""Interpolation videos (synth.video) and the `video` command."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main
from stylegan.io.images import to_uint8
from stylegan.synth.figures import seed_ws
from stylegan.synth.video import (interpolation_frames, lerp, num_loop_frames, read_video, slerp, video_format,
                                  write_video)

R = 16


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=R, channel_base=256, channel_max=32,
                                  mapping=MappingConfig(num_layers=2)))
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def network(tmp_path_factory, G):
    path = tmp_path_factory.mktemp("net") / "tiny.safetensors"
    stylegan.save_checkpoint(path, {"G_ema": G})
    return path


def test_slerp_and_lerp():
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    mid = slerp(a, b, 0.5)
    # the direction halves the angle; the length is interpolated linearly
    ua, ub, um = (x / x.norm(dim=1, keepdim=True) for x in (a, b, mid))
    assert torch.allclose((ua * um).sum(1), (ub * um).sum(1), atol=1e-5)
    assert torch.allclose(mid.norm(dim=1), (a.norm(dim=1) + b.norm(dim=1)) / 2, atol=1e-5)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.allclose(slerp(a, b, t)[3], b[3], atol=1e-6)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-6)  # parallel: no NaN
    assert torch.equal(lerp(a, b, 0.0), a)
    assert torch.allclose(lerp(a, b, t)[2], (a[2] + b[2]) / 2)


@pytest.mark.parametrize("space", ["z", "w"])
def test_frames_count_loop_and_keyframes(G, space):
    seeds, fps = [0, 1, 2], 3
    frames = list(interpolation_frames(G, seeds, space, fps))
    assert len(frames) == len(seeds) * fps == num_loop_frames(seeds, fps)
    assert frames[0].shape == (R, R, 3) and frames[0].dtype == np.uint8
    longer = list(interpolation_frames(G, seeds, space, fps, num_frames=len(seeds) * fps + 1))
    assert np.array_equal(longer[-1], longer[0])  # the frame after the last is the first: a loop
    with torch.no_grad():
        keys = to_uint8(G.synthesis(seed_ws(G, seeds))).numpy()
    for i in range(len(seeds)):  # every fps-th frame is a seed's own image
        diff = np.abs(frames[i * fps].astype(int) - keys[i]).max()
        assert diff == 0 if space == "w" else diff <= 1
    assert not np.array_equal(frames[1], frames[0])


def test_grid_of_loops(G):
    frames = list(interpolation_frames(G, [0, 1, 2, 3, 4, 5], "w", 2, grid=(1, 3), batch=4))
    assert len(frames) == 4 and frames[0].shape == (R, 3 * R, 3)
    with torch.no_grad():
        keys = to_uint8(G.synthesis(seed_ws(G, [0, 2, 4]))).numpy()
    for c in range(3):  # cell c starts at its first seed (consecutive split: [0,1], [2,3], [4,5])
        assert np.array_equal(frames[0][:, c * R:(c + 1) * R], keys[c])
    with pytest.raises(ValueError, match="split evenly"):
        list(interpolation_frames(G, [0, 1, 2], "w", 2, grid=(1, 2)))


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_and_read_video(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (16, 32, 3), dtype=np.uint8) for _ in range(7)]
    frames.append(np.zeros((16, 32, 1), np.uint8))  # grayscale frames are expanded to RGB
    path = write_video(iter(frames), tmp_path / f"v{suffix}", fps=12, progress=False)
    back = read_video(path)
    assert back.shape == (8, 16, 32, 3)
    if suffix == ".gif":
        assert np.array_equal(back[-1], np.zeros((16, 32, 3), np.uint8))
    assert not list(tmp_path.glob(".*partial*"))


def test_video_format():
    assert video_format("a.mp4") == "mp4" and video_format("a.GIF") == "gif"
    assert video_format("a", "gif") == "gif"
    with pytest.raises(ValueError):
        video_format("a.avi")
    with pytest.raises(ValueError):
        video_format("a.mp4", "gif")


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_cli_video(network, tmp_path, fmt):
    out = tmp_path / f"loop.{fmt}"
    res = CliRunner().invoke(main, ["video", "--network", str(network), "--seeds", "0-3", "--space", "w",
                                    "--frames", "2", "--grid", "1x2", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert read_video(out).shape == (4, R, 2 * R, 3)


def test_cli_video_errors(network, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["video", "--network", str(network), "--seeds", "0-2", "--grid", "2x2",
                               "--out", str(tmp_path / "a.gif")])
    assert res.exit_code != 0 and "split evenly" in res.output
    res = runner.invoke(main, ["video", "--network", str(network), "--seeds", "0-2", "--format", "gif",
                               "--out", str(tmp_path / "a.mp4")])
    assert res.exit_code != 0 and "does not look like a gif" in res.output
    res = runner.invoke(main, ["video", "--network", str(tmp_path / "missing.pkl"), "--seeds", "0-2"])
    assert res.exit_code != 0 and "no such network file" in res.output
