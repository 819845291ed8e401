"""The papers' figures (synth.figures) and the `mix` / `figures` commands on a tiny network."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main
from stylegan.io.images import to_uint8
from stylegan.models import mix_styles
from stylegan.synth import figures as fig
from stylegan.synth.sample import generate

R = 16


def tiny_generator(seed: int = 0, strength: float = 0.3) -> Generator:
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=R, channel_base=256, channel_max=32,
                                  mapping=MappingConfig(num_layers=2)))
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # a trained-looking w_avg, so psi != 1 changes the images
        for m in G.noise_inputs().values():
            m.strength.fill_(strength)  # noise strengths start at zero; make the noise visible
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def network(tmp_path_factory, G):
    path = tmp_path_factory.mktemp("net") / "tiny.safetensors"
    stylegan.save_checkpoint(path, {"G_ema": G})
    return path


def assert_same_image(a, b):
    """Equal up to rounding: a cell generated inside a batch may differ from the same image
    generated alone by float summation order (oneDNN picks kernels by batch size and threads),
    which can flip a value sitting on a .5 boundary by one level, never more."""
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


def synth_u8(G, ws, noise_mode="const"):
    with torch.no_grad():
        return to_uint8(G.synthesis(ws, noise_mode=noise_mode)).numpy()


# ----------------------------------------------------------------------------------- styles

def test_style_groups_follow_num_ws():
    assert fig.style_indices("coarse", 18) == [0, 1, 2, 3]
    assert fig.style_indices("middle", 18) == [4, 5, 6, 7]
    assert fig.style_indices("fine", 18) == list(range(8, 18))
    assert fig.style_indices("middle", 14) == [4, 5, 6, 7]
    assert fig.style_indices("fine", 14) == list(range(8, 14))
    assert fig.style_indices("coarse,fine", 14) == [0, 1, 2, 3] + list(range(8, 14))
    assert fig.style_indices("middle", 6) == [4, 5]  # 16x16 network: middle is clipped
    assert fig.style_indices("0-2,5", 6) == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="no 'fine' styles"):
        fig.style_indices("fine", 6)
    with pytest.raises(ValueError, match="out of range"):
        fig.style_indices("0-7", 6)


# ----------------------------------------------------------------------------------- mixing

def test_mixing_grid_layout_and_cells_equal_direct_generation(G):
    rows, cols = [85, 100, 75], [55, 821]
    cells: dict = {}
    grid = fig.style_mixing_grid(G, rows, cols, "coarse", psi=1.0, noise_mode="const", device="cpu", cells=cells)
    assert grid.shape == ((len(rows) + 1) * R, (len(cols) + 1) * R, 3) and grid.dtype == np.uint8
    assert (grid[:R, :R] == 0).all()  # blank corner
    sources = generate(G, rows + cols)
    src = {s: to_uint8(sources[i:i + 1])[0].numpy() for i, s in enumerate(rows + cols)}
    for j, c in enumerate(cols):  # top row: column sources
        assert_same_image(grid[:R, (j + 1) * R:(j + 2) * R], src[c])
    for i, r in enumerate(rows):  # left column: row sources
        assert_same_image(grid[(i + 1) * R:(i + 2) * R, :R], src[r])
    ws = fig.seed_ws(G, rows + cols)
    w = {s: ws[i:i + 1] for i, s in enumerate(rows + cols)}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            # styles 0-3 from the column source = mix_styles(col, row, crossover 4)
            expect = synth_u8(G, mix_styles(w[c], w[r], 4))[0]
            assert_same_image(grid[(i + 1) * R:(i + 2) * R, (j + 1) * R:(j + 2) * R], expect)
            assert_same_image(cells[(r, c)], expect)


def test_mixing_noncontiguous_styles_and_truncation(G):
    cells: dict = {}
    fig.style_mixing_grid(G, [1], [2], [1, 4], psi=0.5, cells=cells)
    ws = G.truncate(fig.seed_ws(G, [1, 2]), 0.5)
    mixed = ws[0:1].clone()
    mixed[:, [1, 4]] = ws[1:2, [1, 4]]
    assert_same_image(cells[(1, 2)], synth_u8(G, mixed)[0])
    assert not np.array_equal(cells[(1, 2)], cells[(1, 1)])


# ----------------------------------------------------------------------------------- noise

def test_restrict_noise_zeroes_and_restores(G):
    before = {n: m.strength.clone() for n, m in G.noise_inputs().items()}
    with fig.restrict_noise(G, "fine") as kept:
        assert kept == ["b16.conv0.noise", "b16.conv1.noise"]  # 16 px > split 8
        for n, m in G.noise_inputs().items():
            assert abs(float(m.strength) - (0.3 if n in kept else 0.0)) < 1e-6
    for n, m in G.noise_inputs().items():
        assert torch.equal(m.strength, before[n])
    with pytest.raises(RuntimeError):
        with fig.restrict_noise(G, "none"):
            assert all(float(m.strength) == 0 for m in G.noise_inputs().values())
            raise RuntimeError("boom")
    for n, m in G.noise_inputs().items():
        assert torch.equal(m.strength, before[n])
    assert fig.noise_layer_names(G, "coarse") == ["b4.conv1.noise", "b8.conv0.noise", "b8.conv1.noise"]
    with pytest.raises(ValueError):
        fig.noise_layer_names(G, "middle")


def test_noise_layers_figure(G):
    seeds = [0, 1]
    img = fig.noise_layers_figure(G, seeds, noise_seed=5)
    assert img.shape == (2 * R, 4 * R, 3)
    plain = synth_u8(G, fig.seed_ws(G, seeds), noise_mode="none")
    for i in range(2):
        assert np.array_equal(img[i * R:(i + 1) * R, R:2 * R], plain[i])  # column 'none'
        assert not np.array_equal(img[i * R:(i + 1) * R, :R], plain[i])  # column 'all'
    assert np.array_equal(img, fig.noise_layers_figure(G, seeds, noise_seed=5))  # re-seeded noise


def test_noise_variation_std_map_zero_without_noise_positive_with_it():
    G0 = tiny_generator(strength=0.0)
    maps: list = []
    img = fig.noise_variation_figure(G0, [3], num_samples=6, std_maps=maps, batch=4)
    assert img.shape == (R, 3 * R, 3)
    assert maps[0].shape == (R, R) and float(maps[0].abs().max()) == 0.0
    assert (img[:, 2 * R:] == 0).all()
    assert (fig.std_map_to_uint8(maps[0], None) == 0).all()

    G1 = tiny_generator(strength=0.3)
    maps = []
    img = fig.noise_variation_figure(G1, [3, 4], num_samples=6, std_maps=maps, batch=4)
    assert img.shape == (2 * R, 3 * R, 3)
    assert all(float((m > 0).float().mean()) > 0.5 for m in maps)  # clipped pixels may stay 0
    assert img[:, 2 * R:].max() > 0
    assert fig.std_map_to_uint8(maps[0], None).max() == 255


# ----------------------------------------------------------------------------------- truncation

def test_truncation_sweep_average_image(G):
    seeds, psis = [0, 1, 2], [1.0, 0.5, 0.0, -1.0]
    img = fig.truncation_figure(G, seeds, psis)
    assert img.shape == (3 * R, 4 * R, 3)
    avg = fig.average_image(G)
    col = [img[i * R:(i + 1) * R, 2 * R:3 * R] for i in range(3)]
    for c in col:
        assert np.array_equal(c, avg)
    plain = to_uint8(generate(G, seeds)).numpy()
    for i in range(3):
        assert np.array_equal(img[i * R:(i + 1) * R, :R], plain[i])
    assert not np.array_equal(img[:R, :R], img[R:2 * R, :R])
    cut = fig.truncation_figure(G, seeds, [0.0], cutoff=2)  # partial truncation keeps the seeds apart
    assert not np.array_equal(cut[:R], cut[R:2 * R])


def test_uncurated_grid(G):
    img = fig.uncurated_figure(G, list(range(5)), psi=0.7, cutoff=4, cols=3)
    assert img.shape == (2 * R, 3 * R, 3)
    first = to_uint8(generate(G, [0], psi=0.7, cutoff=4)).numpy()[0]
    assert np.array_equal(img[:R, :R], first)


# ----------------------------------------------------------------------------------- CLI

def test_cli_mix(network, tmp_path, G):
    out = tmp_path / "mix"
    res = CliRunner().invoke(main, ["mix", "--network", str(network), "--rows", "85,100", "--cols", "55,821,1789",
                                    "--styles", "0-3", "--outdir", str(out), "--save-cells", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (3 * R, 4 * R, 3)
    assert np.array_equal(grid, fig.style_mixing_grid(G, [85, 100], [55, 821, 1789], "0-3"))
    assert (out / "100-821.png").is_file() and (out / "55-55.png").is_file()


@pytest.mark.parametrize("args,match", [
    (["--styles", "fine"], "no 'fine' styles"),
    (["--rows", "1-x"], "cannot parse"),
    (["--class", "3"], "unconditional"),
])
def test_cli_mix_errors(network, tmp_path, args, match):
    base = {"--rows": "1,2", "--cols": "3", "--styles": "coarse"}
    extra = []
    for k, v in zip(args[::2], args[1::2]):
        if k in base:
            base[k] = v
        else:
            extra += [k, v]
    cmd = ["mix", "--network", str(network), "--outdir", str(tmp_path)] + [x for kv in base.items() for x in kv] + extra
    res = CliRunner().invoke(main, cmd)
    assert res.exit_code != 0 and match in res.output, res.output


def test_cli_missing_network(tmp_path):
    res = CliRunner().invoke(main, ["figures", "--network", str(tmp_path / "nope.safetensors"),
                                    "--kind", "uncurated"])
    assert res.exit_code != 0 and "no such network file" in res.output


def test_cli_figures_all_kinds(network, tmp_path):
    runner = CliRunner()
    cases = {
        "noise-variation": (["--seeds", "0,1", "--samples", "4"], {"noise-variation.png": (2 * R, 3 * R)}),
        "noise-layers": (["--seeds", "0-2"], {"noise-layers.png": (3 * R, 4 * R)}),
        "truncation": (["--seeds", "0,1", "--psi=-1:1:5", "--cutoff", "none,2"],
                       {"truncation.png": (2 * R, 5 * R), "truncation-cutoff2.png": (2 * R, 5 * R)}),
        "uncurated": (["--seeds", "0-5", "--psi", "0.7", "--cols", "3"], {"uncurated.png": (2 * R, 3 * R)}),
    }
    for kind, (args, files) in cases.items():
        out = tmp_path / kind
        res = runner.invoke(main, ["figures", "--network", str(network), "--kind", kind, "--outdir", str(out),
                                   "--device", "cpu"] + args)
        assert res.exit_code == 0, (kind, res.output)
        for name, shape in files.items():
            assert np.asarray(Image.open(out / name)).shape[:2] == shape, (kind, name)
    assert (tmp_path / "noise-variation" / "noise-std-seed0001.png").is_file()
    res = runner.invoke(main, ["figures", "--network", str(network), "--kind", "uncurated", "--psi", "0.5,0.7",
                               "--outdir", str(tmp_path)])
    assert res.exit_code != 0 and "takes one psi" in res.output
