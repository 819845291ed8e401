"""rosinality/stylegan2-pytorch checkpoints: safe reading, parity with their outputs, writing.

tests/data/rosinality_sg2_64.{pt,npz} were made with their own model.py (see tests/data/README.md):
every output they computed is reproduced here to 1e-4. Written checkpoints are checked by round
trip and by loading them, strictly, into `TheirLayout`: a re-implementation of their module tree
(names and shapes only) written here from their documented layout, not from their code.
"""
import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import stylegan
from stylegan.cli import main
from stylegan.io.checkpoint import CheckpointError, save_checkpoint
from stylegan.io.load import convert, load_all, read_foreign, sniff
from stylegan.io.rosinality import RosinalityFormatError, channel_table, stock_channel_multiplier
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator

DATA = Path(__file__).resolve().parent / "data"
PT, NPZ = DATA / "rosinality_sg2_64.pt", DATA / "rosinality_sg2_64.npz"
TOL = 1e-4


def reference():
    return {k: torch.from_numpy(v) for k, v in np.load(NPZ).items()}


def their_checkpoint(path=PT):
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def max_err(a, b):
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------------- reading

def test_every_output_matches_their_model(one_thread):
    ref = reference()
    G = stylegan.load(PT)
    G_train, D = stylegan.load(PT, which="G"), stylegan.load(PT, which="D")
    num_ws = G.cfg.num_ws
    with torch.no_grad():
        w = G.mapping(ref["z"])  # [N, num_ws, w_dim]
        errors = {"w": max_err(w[:, 0], ref["w"]),
                  "img_const": max_err(G(ref["z"], noise_mode="const"), ref["img_const"]),
                  "img_w": max_err(G.synthesis(ref["w"][:, None].repeat(1, num_ws, 1), noise_mode="const"),
                                   ref["img_w"]),
                  "img_g": max_err(G_train(ref["z"], noise_mode="const"), ref["img_g"]),
                  "d_logits": max_err(D(ref["img_const"]), ref["d_logits"])}
        # Their inject_index=3: the first 3 ws from z, the rest from z2.
        mixed = torch.cat([w[:, :3], G.mapping(ref["z2"])[:, 3:]], dim=1)
        errors["mix"] = max_err(G.synthesis(mixed, noise_mode="const"), ref["mix"])
        # Their truncation acts on every layer, towards the given mean: our psi with cutoff=None.
        G.mapping.w_avg.copy_(ref["mean_latent"][0])
        errors["img_trunc"] = max_err(G(ref["z"], psi=0.6, noise_mode="const"), ref["img_trunc"])
    assert all(e <= TOL for e in errors.values()), errors
    # A different output for a different network: the comparison can fail.
    assert max_err(G_train(ref["z"], noise_mode="const"), ref["img_const"]) > 10 * TOL


def test_shape_facts_come_from_the_tensors():
    f = read_foreign(PT)
    assert f.source_format == "rosinality" and set(f.networks) == {"G", "D", "G_ema"}
    g = f.networks["G_ema"].cfg
    assert (g.img_resolution, g.z_dim, g.w_dim, g.mapping.num_layers) == (64, 64, 64, 3)
    assert all(g.channels(r) == 64 for r in (4, 8, 16, 32, 64))
    assert f.info["args"]["channel_multiplier"] == 2 and f.info["augment_pipe_p"] == 0.0
    assert f.info["w_avg"].startswith("computed")
    assert any("not their stock table" in n for n in f.networks["G_ema"].notes)


def test_w_avg_without_latent_avg_is_a_seeded_mean(tmp_path):
    G = stylegan.load(PT)
    assert torch.equal(G.mapping.w_avg, stylegan.load(PT).mapping.w_avg)  # seeded: reproducible
    ref = reference()
    # Their mean_latent came from other random z; both are means of 4096 samples of one distribution.
    assert max_err(G.mapping.w_avg, ref["mean_latent"][0]) < 0.2
    ck = their_checkpoint()
    ck["latent_avg"] = ref["mean_latent"][0]
    path = tmp_path / "with_avg.pt"
    torch.save(ck, path)
    assert torch.equal(stylegan.load(path).mapping.w_avg, ref["mean_latent"][0])
    assert read_foreign(path).info["w_avg"] == "latent_avg"


def test_bare_state_dicts_and_legacy_serialization(tmp_path):
    ck = their_checkpoint()
    bare = tmp_path / "g_ema_only.pt"
    torch.save(ck["g_ema"], bare)
    legacy = tmp_path / "legacy.pt"
    torch.save({"g_ema": ck["g_ema"], "d": ck["d"]}, legacy, _use_new_zipfile_serialization=False)
    assert sniff(bare) == "torch" and sniff(legacy) == "torch"
    want = stylegan.load(PT).state_dict()
    for path in (bare, legacy):
        got = stylegan.load(path).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    bare_d = tmp_path / "d_only.pt"
    torch.save(ck["d"], bare_d)
    assert set(read_foreign(bare_d).networks) == {"D"}


class Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, zipfile_format):
    marker = tmp_path / "pwned"
    ck = their_checkpoint()
    ck["args"] = Evil(os.system, f"touch {marker}")
    path = tmp_path / "evil.pt"
    torch.save(ck, path, _use_new_zipfile_serialization=zipfile_format)
    with pytest.raises(RosinalityFormatError, match="refused to load.*nothing from it was run"):
        stylegan.load(path)
    r = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "out.safetensors")])
    assert r.exit_code != 0 and "refused" in r.output and "Traceback" not in r.output
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_namespace_is_allowed_only_during_the_read():
    # (torch registers some of its own rebuild functions lazily, so compare only what we add)
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    stylegan.load(PT)
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):  # the global default still refuses it
        torch.load(PT, weights_only=True)


def test_clear_errors(tmp_path):
    ck = their_checkpoint()
    ck["args"].size = 128
    path = tmp_path / "lying_args.pt"
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match=r"args.size=128 but the tensors say 64"):
        stylegan.load(path)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(PT.read_bytes()[:100_000])
    with pytest.raises(RosinalityFormatError, match="damaged"):
        stylegan.load(damaged)
    other = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    with pytest.raises(RosinalityFormatError, match="not a rosinality"):
        stylegan.load(other)
    g = dict(ck["g_ema"])
    g["convs.0.conv.blur.kernel"] = torch.ones(4, 4) / 4
    odd = tmp_path / "odd_filter.pt"
    torch.save(g, odd)
    with pytest.raises(RosinalityFormatError, match="blur filter"):
        stylegan.load(odd)
    with pytest.raises(RosinalityFormatError, match="channel table"):
        channel_table({4: 64, 8: 48, 16: 64}, "x")


def test_channel_tables():
    assert channel_table({4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256}, "x") == (32768, 512)
    assert stock_channel_multiplier({r: min(32768 // r, 512) for r in (4, 8, 16, 32, 64, 128, 256)}) == 2
    assert stock_channel_multiplier({r: min(16384 // r, 512) for r in (4, 8, 16, 32, 64, 128, 256)}) == 1
    assert stock_channel_multiplier({4: 64, 8: 64}) is None


def test_info_and_network_options(tmp_path):
    r = CliRunner().invoke(main, ["info", str(PT)])
    assert r.exit_code == 0, r.output
    assert "rosinality checkpoint" in r.output and "w_avg computed" in r.output and "G_ema" in r.output
    r = CliRunner().invoke(main, ["generate", "--network", str(PT), "--seeds", "0-1", "--outdir",
                                  str(tmp_path / "out"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


# ----------------------------------------------------------------------------------- writing

class TheirLayout(nn.Module):
    """Their Generator / Discriminator module tree (names and shapes), from the documented layout.

    Generator: `style` = [PixelNorm, EqualLinear x n_mlp]; `input.input` [1, C4, 4, 4]; `conv1`,
    `to_rgb1`; per resolution two StyledConvs in `convs` and one ToRGB in `to_rgbs`; `noises`
    buffers noise_0..; modulated convs hold weight [1, O, I, k, k] and `modulation` (EqualLinear),
    StyledConv `noise.weight` [1] and `activate.bias` [O]; ToRGB `bias` [1, 3, 1, 1]; upsampling
    layers hold a 4x4 blur kernel. Discriminator: ConvLayer = Sequential([Blur], EqualConv2d,
    [FusedLeakyReLU]) numbered in that order; ResBlock conv1, conv2 (down), skip (down, no bias).
    """

    @staticmethod
    def param(*shape):
        return nn.Parameter(torch.zeros(shape))

    @classmethod
    def equal_linear(cls, i, o):
        m = nn.Module()
        m.weight, m.bias = cls.param(o, i), cls.param(o)
        return m

    @classmethod
    def modconv(cls, i, o, k, style_dim, up):
        m = nn.Module()
        m.weight = cls.param(1, o, i, k, k)
        m.modulation = cls.equal_linear(style_dim, i)
        if up:
            m.blur = nn.Module()
            m.blur.register_buffer("kernel", torch.zeros(4, 4))
        return m

    @classmethod
    def styled_conv(cls, i, o, style_dim, up):
        m = nn.Module()
        m.conv = cls.modconv(i, o, 3, style_dim, up)
        m.noise = nn.Module()
        m.noise.weight = cls.param(1)
        m.activate = nn.Module()
        m.activate.bias = cls.param(o)
        return m

    @classmethod
    def to_rgb(cls, i, style_dim, up):
        m = nn.Module()
        if up:
            m.upsample = nn.Module()
            m.upsample.register_buffer("kernel", torch.zeros(4, 4))
        m.conv = cls.modconv(i, 3, 1, style_dim, False)
        m.bias = cls.param(1, 3, 1, 1)
        return m

    @classmethod
    def generator(cls, size, style_dim, n_mlp, channels):
        g = nn.Module()
        g.style = nn.Sequential(nn.Identity(), *[cls.equal_linear(style_dim, style_dim) for _ in range(n_mlp)])
        g.input = nn.Module()
        g.input.input = cls.param(1, channels[4], 4, 4)
        g.conv1 = cls.styled_conv(channels[4], channels[4], style_dim, False)
        g.to_rgb1 = cls.to_rgb(channels[4], style_dim, False)
        g.convs, g.to_rgbs, g.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        g.noises.register_buffer("noise_0", torch.zeros(1, 1, 4, 4))
        res, c_in = 8, channels[4]
        while res <= size:
            g.convs.append(cls.styled_conv(c_in, channels[res], style_dim, True))
            g.convs.append(cls.styled_conv(channels[res], channels[res], style_dim, False))
            g.to_rgbs.append(cls.to_rgb(channels[res], style_dim, True))
            for _ in range(2):
                g.noises.register_buffer(f"noise_{len(g.noises._buffers)}", torch.zeros(1, 1, res, res))
            res, c_in = res * 2, channels[res]
        return g

    @classmethod
    def conv_layer(cls, i, o, k, down=False, bias=True, activate=True):
        layers = []
        if down:
            blur = nn.Module()
            blur.register_buffer("kernel", torch.zeros(4, 4))
            layers.append(blur)
        conv = nn.Module()
        conv.weight = cls.param(o, i, k, k)
        layers.append(conv)
        if activate:
            act = nn.Module()
            act.bias = cls.param(o)
            layers.append(act)
        elif bias:
            conv.bias = cls.param(o)
        return nn.Sequential(*layers)

    @classmethod
    def discriminator(cls, size, channels):
        d = nn.Module()
        d.convs = nn.ModuleList([cls.conv_layer(3, channels[size], 1)])
        res = size
        while res > 4:
            block = nn.Module()
            block.conv1 = cls.conv_layer(channels[res], channels[res], 3)
            block.conv2 = cls.conv_layer(channels[res], channels[res // 2], 3, down=True)
            block.skip = cls.conv_layer(channels[res], channels[res // 2], 1, down=True, activate=False, bias=False)
            d.convs.append(block)
            res //= 2
        d.final_conv = cls.conv_layer(channels[4] + 1, channels[4], 3)
        d.final_linear = nn.Sequential(cls.equal_linear(channels[4] * 16, channels[4]),
                                       cls.equal_linear(channels[4], 1))
        return d


def test_round_trip_through_the_fixture(tmp_path, one_thread):
    ours = tmp_path / "ours.safetensors"
    convert(PT, ours)
    back = tmp_path / "back.pt"
    with pytest.raises(RosinalityFormatError, match="not their stock table"):
        convert(ours, back, to="rosinality")
    summary = convert(ours, back, to="rosinality", allow_custom_channels=True)
    assert summary["args"] == {"size": 64, "style_dim": 64, "n_mlp": 3, "channel_multiplier": None}
    written = torch.load(back, weights_only=True)  # plain tensors: no allow-list needed
    original = their_checkpoint()
    for name in ("g_ema", "g", "d"):
        assert written[name].keys() == original[name].keys(), name
        for k, v in original[name].items():
            assert torch.equal(written[name][k], v), (name, k)
    assert torch.equal(written["latent_avg"], stylegan.load(PT).mapping.w_avg)
    channels = {r: 64 for r in (4, 8, 16, 32, 64)}
    TheirLayout.generator(64, 64, 3, channels).load_state_dict(written["g_ema"], strict=True)
    TheirLayout.generator(64, 64, 3, channels).load_state_dict(written["g"], strict=True)
    TheirLayout.discriminator(64, channels).load_state_dict(written["d"], strict=True)
    ref = reference()
    with torch.no_grad():
        assert max_err(stylegan.load(back)(ref["z"]), ref["img_const"]) <= TOL


def test_stock_table_writes_their_constructor_args(tmp_path):
    """At 8 px their stock table is {4: 512, 8: 512}: `Generator(8, 32, 1)` with the default cm=2."""
    G = Generator(GeneratorConfig(z_dim=32, w_dim=32, img_resolution=8, channel_base=32768, channel_max=512,
                                  mapping=MappingConfig(num_layers=1)))
    D = build_discriminator(DiscriminatorConfig(img_resolution=8, channel_base=32768, channel_max=512))
    src = tmp_path / "g.safetensors"
    save_checkpoint(src, {"G_ema": G, "D": D})
    summary = convert(src, tmp_path / "g.pt", to="rosinality")
    assert summary["args"] == {"size": 8, "style_dim": 32, "n_mlp": 1, "channel_multiplier": 2}
    assert summary["notes"] == []
    written = torch.load(tmp_path / "g.pt", weights_only=True)
    channels = {4: 512, 8: 512}
    TheirLayout.generator(8, 32, 1, channels).load_state_dict(written["g_ema"], strict=True)
    TheirLayout.discriminator(8, channels).load_state_dict(written["d"], strict=True)
    back = load_all(tmp_path / "g.pt")
    for name, mine in (("G_ema", G), ("D", D)):
        a, b = mine.state_dict(), back[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("change, why", [
    (dict(architecture="orig"), "architecture 'orig'"),
    (dict(c_dim=4), "conditional"),
    (dict(w_dim=48), "z_dim 64 != w_dim 48"),
    (dict(conv_clamp=256.0), "conv_clamp"),
    (dict(version=1, architecture="orig"), "StyleGAN2"),
])
def test_networks_without_an_equivalent_are_refused(tmp_path, change, why):
    cfg = GeneratorConfig(z_dim=64, w_dim=64, img_resolution=8, channel_base=256, channel_max=32,
                          mapping=MappingConfig(num_layers=1)).replace(**change)
    src = tmp_path / "g.safetensors"
    save_checkpoint(src, {"G_ema": Generator(cfg)})
    r = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "g.pt"), "--to", "rosinality"])
    assert r.exit_code != 0 and why in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "g.pt").exists()
