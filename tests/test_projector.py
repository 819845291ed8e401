"""Projection into W / W+ (synth.projector) and the `project` command."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main
from stylegan.io.images import save_image, to_uint8
from stylegan.synth.figures import seed_ws
from stylegan.synth.projector import (PixelMSE, noise_regularization, project, resolve_distance,
                                      save_projection, w_stats)
from stylegan.synth.video import read_video

R = 16


def mse(a, b):  # a plain injected distance: [N]
    return (a - b).square().flatten(1).mean(1)


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=R, channel_base=256, channel_max=32,
                                  mapping=MappingConfig(num_layers=2)))
    with torch.no_grad():
        for m in G.noise_inputs().values():
            m.strength.fill_(0.05)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def target(G):
    with torch.no_grad():
        return G.synthesis(seed_ws(G, [7]), noise_mode="const")  # [1, 3, R, R]


@pytest.fixture(scope="module")
def projection(G, target):
    return project(G, target, num_steps=60, distance=mse, device="cpu", seed=303, w_avg_samples=2000)


def test_projection_recovers_generated_image(G, target, projection):
    before = {n: m.const.clone() for n, m in G.noise_inputs().items()}
    ws_steps, hist = projection
    assert ws_steps.shape == (60, G.num_ws, G.w_dim)
    assert len(hist.dist) == len(hist.loss) == len(hist.noise_reg) == 60
    assert hist.dist[-1] < hist.dist[0] / 10, (hist.dist[0], hist.dist[-1])
    assert torch.equal(ws_steps[-1, 0], ws_steps[-1, -1])  # W: one w for every layer
    assert set(hist.noise) == set(G.noise_inputs())
    for v in hist.noise.values():  # renormalised after every step
        assert abs(float(v.mean())) < 1e-4 and abs(float(v.std(unbiased=False)) - 1) < 1e-3
    for n, m in G.noise_inputs().items():  # the caller's network is untouched
        assert torch.equal(m.const, before[n])
    runs = [project(G, target, num_steps=3, distance=mse, seed=s, w_avg_samples=100)[0] for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])  # seeded


def test_w_plus_projection(G, target):
    ws_steps, hist = project(G, target, num_steps=20, w_plus=True, distance=mse, w_avg_samples=500)
    assert ws_steps.shape == (20, G.num_ws, G.w_dim)
    assert not torch.equal(ws_steps[-1, 0], ws_steps[-1, -1])
    assert hist.dist[-1] < hist.dist[0]


def test_w_stats_and_noise_regularization(G):
    w_avg, w_std = w_stats(G, 500)
    assert w_avg.shape == (1, 1, G.w_dim) and w_std > 0
    torch.manual_seed(1)
    white = [torch.randn(32, 32), torch.randn(4, 4)]
    smooth = [torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4), size=32, mode="bilinear")[0, 0]]
    assert noise_regularization(smooth) > 100 * noise_regularization(white[:1])
    assert float(noise_regularization([])) == 0.0


def test_save_projection_files(G, target, projection, tmp_path):
    ws_steps, _ = projection
    paths = save_projection(G, target, ws_steps, tmp_path, save_video=True, video_every=10, progress=False)
    w = np.load(paths["w"])["w"]
    assert w.shape == (1, G.num_ws, G.w_dim) and w.dtype == np.float32
    with torch.no_grad():
        expect = to_uint8(G.synthesis(torch.from_numpy(w)))[0].numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "proj.png")), expect)
    assert np.asarray(Image.open(tmp_path / "target.png")).shape == (R, R, 3)
    assert read_video(paths["video"]).shape == (7, R, 2 * R, 3)  # steps 0, 10, .., 50, then 59


def test_bad_inputs(G):
    with pytest.raises(ValueError, match="target must be"):
        project(G, torch.zeros(1, 3, 8, 8), num_steps=1, distance=mse)
    with pytest.raises(Exception):
        resolve_distance("/nonexistent/vgg16.pt")
    assert PixelMSE()(torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)).tolist() == [1.0, 1.0]


def test_cli_project_and_generate_reads_w(G, target, tmp_path, monkeypatch):
    import stylegan.synth.projector as projector

    net = tmp_path / "tiny.safetensors"
    stylegan.save_checkpoint(net, {"G_ema": G})
    img = tmp_path / "target.png"
    save_image(to_uint8(target)[0], img)
    monkeypatch.setattr(projector, "resolve_distance", lambda *a, **k: PixelMSE())  # keep it fast
    out = tmp_path / "proj"
    res = CliRunner().invoke(main, ["project", "--network", str(net), "--target", str(img), "--steps", "5",
                                    "--w-plus", "--outdir", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    w = np.load(out / "projected_w.npz")["w"]
    assert w.shape == (1, G.num_ws, G.w_dim)
    assert (out / "proj.png").is_file() and (out / "target.png").is_file()
    res = CliRunner().invoke(main, ["generate", "--network", str(net), "--projected-w", str(out / "projected_w.npz"),
                                    "--outdir", str(tmp_path / "gen")])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gen" / "proj00.png")),
                          np.asarray(Image.open(out / "proj.png")))


def test_cli_project_errors(G, tmp_path):
    net = tmp_path / "tiny.safetensors"
    stylegan.save_checkpoint(net, {"G_ema": G})
    runner = CliRunner()
    res = runner.invoke(main, ["project", "--network", str(net), "--target", str(tmp_path / "none.png")])
    assert res.exit_code != 0 and "no such target image" in res.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    res = runner.invoke(main, ["project", "--network", str(net), "--target", str(bad), "--steps", "1",
                               "--outdir", str(tmp_path / "o")])
    assert res.exit_code != 0 and "cannot read image" in res.output
    res = runner.invoke(main, ["project", "--network", str(net), "--target", str(bad),
                               "--lpips", str(tmp_path / "vgg16.pt")])
    assert res.exit_code != 0 and "no such file" in res.output


@pytest.mark.parametrize("save_video", ["--save-video", "--save-video=true", "--save-video=False"])
def test_cli_project_takes_projector_py_options(G, target, tmp_path, monkeypatch, save_video):
    """The official projector.py command line: --num-steps, --seed, --save-video (a flag here, and the
    official BOOL value too); the video holds target | projection for every step."""
    import stylegan.synth.projector as projector

    net = tmp_path / "tiny.safetensors"
    stylegan.save_checkpoint(net, {"G_ema": G})
    img = tmp_path / "target.png"
    save_image(to_uint8(target)[0], img)
    monkeypatch.setattr(projector, "resolve_distance", lambda *a, **k: PixelMSE())  # keep it fast
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["project", f"--outdir={out}", f"--target={img}", f"--network={net}",
                                    "--num-steps=4", "--seed=303", save_video, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (out / "projected_w.npz").is_file()
    if save_video.endswith("False"):
        assert not (out / "proj.mp4").exists()
        return
    frames = read_video(out / "proj.mp4")
    assert frames.shape == (4, R, 2 * R, 3)  # one frame per step, target on the left
    tgt, proj = (np.asarray(Image.open(out / n)).astype(int) for n in ("target.png", "proj.png"))
    left, right = frames[-1][:, :R].astype(int), frames[-1][:, R:].astype(int)

    def d(a, b):
        return np.abs(a - b).mean()

    assert d(left, tgt) < d(left, proj) and d(right, proj) < d(right, tgt)  # H.264 is lossy: nearer, not equal
