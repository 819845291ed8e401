"""Interpolation videos (synth.video) and the `video` command."""
import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main
from stylegan.io.images import to_uint8
from stylegan.synth.figures import seed_ws
from stylegan.synth.video import (cubic_loop, interpolation_frames, interpolation_latents, keyframe_seeds, lerp,
                                  num_loop_frames, read_video, slerp, video_format, write_video)

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
                                    "--frames", "2", "--grid", "2x1", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert read_video(out).shape == (4, R, 2 * R, 3)  # --grid WxH: 2 wide, 1 high


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


# ------------------------------------------------------------------ stylegan3's gen_video.py options

def official_layout(seeds, grid_w, grid_h, num_keyframes=None, shuffle_seed=None):
    """gen_video.py's seed layout, restated from its gen_interp_video (cell after cell, row-major)."""
    if num_keyframes is None:
        assert len(seeds) % (grid_w * grid_h) == 0
        num_keyframes = len(seeds) // (grid_w * grid_h)
    all_seeds = np.zeros(num_keyframes * grid_h * grid_w, dtype=np.int64)
    for idx in range(num_keyframes * grid_h * grid_w):
        all_seeds[idx] = seeds[idx % len(seeds)]
    if shuffle_seed is not None:
        np.random.RandomState(seed=shuffle_seed).shuffle(all_seeds)
    return all_seeds.tolist()


@pytest.mark.parametrize("num_keyframes,shuffle_seed", [(None, None), (None, 7), (5, None), (5, 3)])
def test_keyframe_seeds_follow_gen_video(num_keyframes, shuffle_seed):
    seeds = list(range(10, 22))
    got = keyframe_seeds(seeds, (2, 3), num_keyframes, shuffle_seed)  # (rows, cols) = grid 3x2
    assert got == official_layout(seeds, 3, 2, num_keyframes, shuffle_seed)
    assert len(got) == 6 * (num_keyframes or 2)
    with pytest.raises(ValueError, match="split evenly"):
        keyframe_seeds(list(range(5)), (2, 3))
    assert keyframe_seeds([1, 2], (1, 1), num_keyframes=5) == [1, 2, 1, 2, 1]  # cycles


def test_cubic_loop_is_gen_videos_spline():
    from scipy.interpolate import interp1d

    rng = np.random.default_rng(0)
    for k in (1, 2, 5):
        keys = rng.standard_normal((k, 3, 4)).astype(np.float32)
        wraps = 2  # gen_video.py's interpolation, as written there
        x = np.arange(-k * wraps, k * (wraps + 1))
        official = interp1d(x, np.tile(keys, [wraps * 2 + 1, 1, 1]), kind="cubic", axis=0)
        t = np.linspace(0, k, 7 * k, endpoint=False)
        assert np.allclose(cubic_loop(keys, t), official(t), rtol=0, atol=1e-12)
        assert np.allclose(cubic_loop(keys, np.arange(k)), keys, atol=1e-6)  # through the keyframes
        assert np.allclose(cubic_loop(keys, [k]), keys[:1], atol=1e-6)  # t = K is t = 0: a loop
    keys = rng.standard_normal((4, 2)).astype(np.float32)
    eps = 1e-4  # smooth across the seam: the slope just before K equals the slope just after 0
    before = (cubic_loop(keys, [4 - eps]) - cubic_loop(keys, [4 - 2 * eps])) / eps
    after = (cubic_loop(keys, [eps]) - cubic_loop(keys, [0])) / eps
    assert np.allclose(before, after, atol=1e-2)


def test_cubic_frames_pass_through_the_keyframes(G):
    seeds, fpk = [0, 1, 2], 3
    frames = list(interpolation_frames(G, seeds, "w", fpk, interp="cubic"))
    assert len(frames) == 9
    with torch.no_grad():
        keys = to_uint8(G.synthesis(seed_ws(G, seeds))).numpy()
    for i in range(len(seeds)):
        assert np.abs(frames[i * fpk].astype(int) - keys[i]).max() <= 1
    linear = list(interpolation_frames(G, seeds, "w", fpk))
    assert not np.array_equal(frames[1], linear[1])  # between keyframes the curves differ
    with pytest.raises(ValueError, match="use space 'w'"):
        next(interpolation_frames(G, seeds, "z", fpk, interp="cubic"))
    with pytest.raises(ValueError, match="use space 'w'"):
        interpolation_latents(torch.zeros(3, 4), [0], 2, "z", interp="cubic")


def test_grid_is_width_x_height_as_gen_video():
    from stylegan.cli.video import _grid

    assert _grid(None, None, "4x2") == (2, 4) and _grid(None, None, "3,1") == (1, 3)
    with pytest.raises(click.BadParameter, match="width x height"):
        _grid(None, None, "4")


def test_cli_takes_a_gen_video_command_line(network, tmp_path):
    """`python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 --network=...` as
    stylegan3's README writes it, smaller: 3 wide x 2 high, 2 keyframes per cell, 2 frames each."""
    out = tmp_path / "lerp.mp4"
    res = CliRunner().invoke(main, ["video", f"--output={out}", "--trunc=1", "--seeds=0-11", "--grid=3x2",
                                    "--w-frames=2", f"--network={network}", "--space", "w", "--interp", "cubic",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert read_video(out).shape == (4, 2 * R, 3 * R, 3)
    out2 = tmp_path / "more.gif"  # --num-keyframes cycles the seeds; --shuffle-seed permutes them
    res = CliRunner().invoke(main, ["video", "--network", str(network), "--seeds", "0-2", "--num-keyframes", "4",
                                    "--shuffle-seed", "1", "--w-frames", "2", "--grid", "2x1", "--output", str(out2),
                                    "--space", "w", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert read_video(out2).shape == (8, R, 2 * R, 3)
    res = CliRunner().invoke(main, ["video", "--network", str(network), "--seeds", "0-3", "--interp", "cubic",
                                    "--output", str(tmp_path / "z.gif")])
    assert res.exit_code != 0 and "add --space w" in res.output
