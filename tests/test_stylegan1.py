"""StyleGAN v1 / progressive networks: shapes at every lod, fade-in, AdaIN, gradients, buffers."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from stylegan.models import stylegan1 as s1
from stylegan.models.config import StyleGAN1Options
from stylegan.ops import instance_norm



pytestmark = pytest.mark.usefixtures("one_thread")


V1_A = StyleGAN1Options(const_input=False, use_styles=False, normalization="pixel")
V1_C = StyleGAN1Options(const_input=False, use_styles=True, normalization="instance")


def gcfg(res: int = 32, *, version: int = 1, v1: StyleGAN1Options | None = None, map_layers: int = 2,
         channel_base: int = 128, channel_max: int = 8, use_noise: bool = True, c_dim: int = 0,
         resample_filter=(1, 2, 1), z_dim: int = 16) -> GeneratorConfig:
    return GeneratorConfig(z_dim=z_dim, w_dim=z_dim, c_dim=c_dim, img_resolution=res,
                           mapping=MappingConfig(num_layers=map_layers), version=version, architecture="orig",
                           channel_base=channel_base, channel_max=channel_max, use_noise=use_noise,
                           resample_filter=resample_filter if version == 1 else (1, 3, 3, 1), growing=True,
                           v1=v1 if version == 1 else None)


def dcfg(res: int = 32, *, version: int = 1, channel_base: int = 128, channel_max: int = 8, c_dim: int = 0,
         resample_filter=(1, 2, 1)) -> DiscriminatorConfig:
    return DiscriminatorConfig(c_dim=c_dim, img_resolution=res, version=version, architecture="orig",
                               channel_base=channel_base, channel_max=channel_max, growing=True,
                               resample_filter=resample_filter if version == 1 else (1, 3, 3, 1))


def lods(res: int) -> list[float]:
    top = s1.max_lod(res)
    return [i / 4 for i in range(4 * top + 1)]


@pytest.fixture(scope="module")
def v1_pair():
    torch.manual_seed(0)
    return Generator(gcfg(32)), s1.Discriminator(dcfg(32))


# ----------------------------------------------------------------------------------- lod helpers

def test_split_lod_and_inverse():
    assert s1.split_lod(0, 1024) == (1024, 1.0)
    assert s1.split_lod(8, 1024) == (4, 1.0)
    assert s1.split_lod(6.25, 1024) == (16, 0.75)
    assert s1.split_lod(0.5, 32) == (32, 0.5)
    for res, alpha in [(16, 0.75), (32, 1.0), (8, 0.5), (4, 1.0)]:
        assert s1.split_lod(s1.lod_for(res, alpha, 32), 32) == (res, alpha)
    # alpha 0 at r is the stable lower resolution
    assert s1.split_lod(s1.lod_for(16, 0.0, 32), 32) == (8, 1.0)
    for bad in (-0.1, 3.01, float("nan")):
        with pytest.raises(ValueError):
            s1.split_lod(bad, 32)
    with pytest.raises(ValueError):
        s1.lod_for(4, 0.5, 32)  # nothing below 4x4 to fade from


# ----------------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("version,v1", [(1, None), (1, V1_A), (1, V1_C), (2, None)])
def test_shapes_at_every_lod(version, v1):
    torch.manual_seed(0)
    G = Generator(gcfg(32, version=version, v1=v1, map_layers=0 if v1 is V1_A else 2))
    D = s1.Discriminator(dcfg(32, version=version, resample_filter=(1,) if v1 is V1_A else (1, 2, 1)))
    S = G.synthesis if version == 1 else s1.SynthesisNetwork(G.cfg)
    assert S.num_ws == 2 * 5 - 2 and S.block_resolutions == [4, 8, 16, 32]
    z = torch.randn(4, 16)
    ws = G.mapping(z)
    for lod in lods(32):
        img = S(ws, lod=lod)
        assert img.shape == (4, 3, 32, 32) and torch.isfinite(img).all()
        logits = D(img, lod=lod)
        assert logits.shape == (4, 1) and torch.isfinite(logits).all()


@pytest.mark.parametrize("res", [4, 8, 16, 32, 64, 128, 256, 512, 1024])
def test_shapes_each_resolution(res):
    torch.manual_seed(0)
    tiny = 1 if res >= 256 else 4  # channels
    G = Generator(gcfg(res, channel_base=tiny * res * 2, channel_max=tiny, map_layers=1, z_dim=8))
    D = s1.Discriminator(dcfg(res, channel_base=tiny * res * 2, channel_max=tiny))
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    n = 1 if res >= 256 else 2
    z = torch.randn(n, 8)
    top = s1.max_lod(res)
    for lod in sorted({0.0, top / 2, float(top)}):
        img = G(z, lod=lod)
        assert img.shape == (n, 3, res, res)
        assert D(img, lod=lod).shape == (n, 1)


def test_channels_follow_pggan_table():
    cfg = gcfg(1024, channel_base=16384, channel_max=512)
    assert [cfg.channels(r) for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)] == \
        [512, 512, 512, 512, 256, 128, 64, 32, 16]


def test_invalid_configs():
    with pytest.raises(ValueError, match="orig"):
        s1.SynthesisNetwork(gcfg().replace(architecture="skip"))
    with pytest.raises(ValueError, match="fp32"):
        s1.Discriminator(dcfg().replace(num_fp16_res=2))
    with pytest.raises(ValueError, match="stylegan2"):
        s1.SynthesisNetwork(gcfg(version=2).replace(growing=False))
    with pytest.raises(ValueError, match="version 1"):
        s1.SynthesisNetwork(gcfg(version=2).replace(v1=V1_A))
    with pytest.raises(ValueError, match="w_dim"):  # 0-layer mapping: w is z, so sizes must agree
        Generator(gcfg(map_layers=0).replace(w_dim=32))


def test_zero_layer_mapping_is_normalized_z():
    G = Generator(gcfg(16, v1=V1_A, map_layers=0))
    z = torch.randn(3, 16) * 5
    ws = G.mapping(z)
    assert ws.shape == (3, G.num_ws, 16)
    torch.testing.assert_close(ws[:, 0], z / z.square().mean(1, keepdim=True).sqrt(), rtol=1e-5, atol=1e-6)
    assert len(list(G.mapping.parameters())) == 0


# ----------------------------------------------------------------------------------- fade-in

@pytest.mark.parametrize("version", [1, 2])
def test_fade_in_generator(version):
    torch.manual_seed(1)
    S = s1.SynthesisNetwork(gcfg(32, version=version)).eval()
    ws = torch.randn(2, S.num_ws, 16)
    for res in (8, 16, 32):
        lower = S.forward_at(ws, res // 2, 1.0)
        new = S.forward_at(ws, res, 1.0)
        # alpha = 0: exactly the lower-resolution network, upsampled
        assert torch.equal(S.forward_at(ws, res, 0.0), lower)
        # alpha in between: linear blend (nearest upsampling commutes with the blend)
        for a in (0.25, 0.5, 0.9):
            torch.testing.assert_close(S.forward_at(ws, res, a), torch.lerp(lower, new, a), rtol=1e-5, atol=1e-6)
            assert torch.equal(S.forward_at(ws, res, a), S(ws, lod=s1.lod_for(res, a, 32)))
        # alpha = 1: only the new path (the lower ToRGB does not matter)
        low_rgb = getattr(S, f"b{res // 2}").torgb
        with torch.no_grad():
            for p in low_rgb.parameters():
                p.add_(1.0)
        assert torch.equal(S.forward_at(ws, res, 1.0), new)
        assert not torch.equal(S.forward_at(ws, res, 0.5), torch.lerp(lower, new, 0.5))
    # the output before the final upsampling is the small image
    assert S.forward_at(ws, 8, 0.5, upsample=False).shape == (2, 3, 8, 8)
    small = S.forward_at(ws, 8, 1.0, upsample=False)
    assert torch.equal(S.forward_at(ws, 8, 1.0), s1.upsample_nearest(small, 4))


@pytest.mark.parametrize("version", [1, 2])
def test_fade_in_discriminator(version):
    torch.manual_seed(2)
    D = s1.Discriminator(dcfg(32, version=version)).eval()
    img = torch.randn(4, 3, 32, 32)
    for res in (8, 16, 32):
        lower = D.forward_at(img, None, res // 2, 1.0)
        assert torch.equal(D.forward_at(img, None, res, 0.0), lower)
        new = D.forward_at(img, None, res, 1.0)
        lower_rgb = (getattr(D, f"b{res // 2}") if res > 8 else D.b4).fromrgb
        with torch.no_grad():
            for p in lower_rgb.parameters():
                p.add_(1.0)
        assert torch.equal(D.forward_at(img, None, res, 1.0), new)
        assert torch.equal(D.forward_at(img, None, res, 0.5), D(img, lod=s1.lod_for(res, 0.5, 32)))
    # an image already at the current resolution is the same as its full-size nearest upsampling
    small = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(D.forward_at(small, None, 8, 0.3),
                               D.forward_at(s1.upsample_nearest(small, 4), None, 8, 0.3))


def test_lod_buffer_default_and_set_lod(v1_pair):
    G, D = v1_pair
    assert float(G.synthesis.lod) == 0.0 and float(D.lod) == 0.0
    assert "synthesis.lod" in G.state_dict() and "lod" in D.state_dict()
    z = torch.randn(2, 16)
    try:
        G_ema = copy.deepcopy(G)
        assert s1.set_lod(G, 1.5) == 1 and s1.set_lod(D, 1.5) == 1
        G_ema.load_state_dict(G.state_dict())  # EMA copies buffers: G_ema follows
        assert s1.get_lod(G_ema) == 1.5
        assert torch.equal(G(z), G(z, lod=1.5))
        assert torch.equal(G_ema(z), G(z))
        img = G(z)
        assert torch.equal(D(img), D(img, lod=1.5))
        assert not torch.equal(G(z), G(z, lod=0))
        with pytest.raises(ValueError):
            s1.set_lod(G, 3.5)  # below 4x4
    finally:
        s1.set_lod(G, 0.0)
        s1.set_lod(D, 0.0)
    v2 = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=4,
                                   mapping=MappingConfig(num_layers=1)))
    with pytest.raises(ValueError, match="progressive"):
        s1.set_lod(v2, 0.0)


# ----------------------------------------------------------------------------------- layers

def test_adain_output_has_style_mean_and_std():
    torch.manual_seed(3)
    epi = s1.StyleEpilogue(6, 16, 8, StyleGAN1Options(), use_noise=False)
    with torch.no_grad():
        epi.affine.weight.normal_()
        epi.affine.bias.normal_()
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 16)
    y = epi(x, w)
    scale, bias = epi.styles(w)
    torch.testing.assert_close(y.mean(dim=[2, 3]), bias, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(y.std(dim=[2, 3], unbiased=False), scale.abs(), rtol=1e-4, atol=1e-4)


def test_instance_norm_then_constant_style():
    torch.manual_seed(4)
    epi = s1.StyleEpilogue(5, 16, 8, StyleGAN1Options(), use_noise=False)
    # at init the scale's bias is 1 and the bias's bias is 0
    assert torch.equal(epi.affine.bias[:5], torch.ones(5)) and torch.equal(epi.affine.bias[5:], torch.zeros(5))
    with torch.no_grad():
        epi.affine.weight.zero_()  # constant style (1, 0): AdaIN = instance norm
        epi.bias.normal_()
    x = torch.randn(2, 5, 8, 8)
    a = epi(x, torch.randn(2, 16))
    b = epi(x, torch.randn(2, 16))
    expect = instance_norm(torch.nn.functional.leaky_relu(x + epi.bias.reshape(1, -1, 1, 1), 0.2))
    torch.testing.assert_close(a, expect, rtol=1e-5, atol=1e-5)
    assert torch.equal(a, b)
    with torch.no_grad():
        epi.affine.bias[:5] = 2.0
        epi.affine.bias[5:] = -1.0
    torch.testing.assert_close(epi(x, torch.randn(2, 16)), 2 * expect - 1, rtol=1e-5, atol=1e-5)


def test_pixel_norm_config_a():
    torch.manual_seed(5)
    G = Generator(gcfg(16, v1=V1_A, map_layers=0, use_noise=False))
    blk = G.synthesis.b8
    assert blk.epilogue0.affine is None and blk.epilogue0.noise is None
    x = G.synthesis.b4(None, G.mapping(torch.randn(2, 16))[:, :2])
    x = blk(x, torch.zeros(2, 2, 16))
    torch.testing.assert_close(x.square().mean(dim=1), torch.ones(2, 8, 8), rtol=1e-4, atol=1e-4)
    assert hasattr(G.synthesis.b4, "dense") and not hasattr(G.synthesis.b4, "const")


def test_constant_input_and_noise():
    G = Generator(gcfg(16))
    assert torch.equal(G.synthesis.b4.const, torch.ones(8, 4, 4))
    noises = G.noise_inputs()
    assert len(noises) == G.num_ws
    for n in noises.values():
        assert n.strength.shape == (n.strength.numel(),) and n.strength.numel() == 8  # per channel
        assert torch.equal(n.strength, torch.zeros_like(n.strength))
    z = torch.randn(2, 16)
    assert torch.equal(G(z, noise_mode="none"), G(z, noise_mode="const"))  # strength 0 at init
    with torch.no_grad():
        for n in noises.values():
            n.strength.fill_(0.5)
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="none"), G(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))


def test_blur_and_nearest_resampling():
    x = torch.randn(1, 2, 4, 4)
    conv = s1.V1Conv(2, 2, 1, bias=False, up=True, blur_filter=(1,))
    assert not conv.use_blur
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1) * math.sqrt(2) / math.sqrt(2))
    y = conv(x)  # 1x1 identity (gain sqrt(2) / sqrt(fan_in=2) = 1) after nearest upsampling
    torch.testing.assert_close(y, s1.upsample_nearest(x, 2))
    blur = s1.V1Conv(2, 2, 1, bias=False, up=True, blur_filter=(1, 2, 1))
    with torch.no_grad():
        blur.weight.copy_(conv.weight)
    y = blur(torch.ones(1, 2, 4, 4))
    assert torch.allclose(y[:, :, 1:-1, 1:-1], torch.ones(1, 2, 6, 6))  # DC preserved inside
    d = s1.V1Conv(2, 3, 3, down=True, blur_filter=(1, 2, 1))
    assert d(torch.randn(2, 2, 8, 8)).shape == (2, 3, 4, 4)


# ----------------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("version,v1", [(1, None), (1, V1_A), (2, None)])
def test_gradients_reach_every_parameter(version, v1):
    torch.manual_seed(6)
    a = v1 is V1_A
    G = Generator(gcfg(16, version=version, v1=v1, map_layers=0 if a else 2))
    if version == 2:
        G.synthesis = s1.SynthesisNetwork(G.cfg)
    D = s1.Discriminator(dcfg(16, version=version, resample_filter=(1,) if a else (1, 2, 1)))
    z = torch.randn(4, 16)

    def check(lod: float, unused: set[str]):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        D(G(z, noise_mode="random", lod=lod), lod=lod).square().sum().backward()
        for net, prefix in ((G, "G"), (D, "D")):
            for name, p in net.named_parameters():
                if f"{prefix}.{name}" in unused:
                    assert p.grad is None or not p.grad.any(), name
                else:
                    assert p.grad is not None and p.grad.abs().sum() > 0, f"{prefix}.{name} got no gradient"

    low_rgb = {f"G.synthesis.b{r}.torgb.{n}" for r in (4, 8) for n, _ in G.synthesis.b4.torgb.named_parameters()}
    low_rgb |= {f"D.b{r}.fromrgb.{n}" for r in (4, 8) for n, _ in D.b4.fromrgb.named_parameters()}
    check(0.0, low_rgb)  # full resolution: only the lower resolutions' ToRGB / fromRGB idle
    fading = {k for k in low_rgb if ".b4." in k}
    check(0.5, fading)  # fading in 16x16: 8x8's ToRGB / fromRGB are used too


def test_double_backward_r1_and_path_length(v1_pair):
    G, D = v1_pair
    img = torch.randn(4, 3, 32, 32, requires_grad=True)
    (g,) = torch.autograd.grad(D(img, lod=0.5).sum(), img, create_graph=True)
    g.square().sum().backward()
    assert D.b32.conv0.weight.grad is not None
    ws = G.mapping(torch.randn(2, 16)).detach().requires_grad_(True)
    out = G.synthesis(ws, lod=1.25)
    (jw,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), ws, create_graph=True)
    jw.square().sum().backward()
    assert G.synthesis.b16.conv0.weight.grad is not None
    D.zero_grad(set_to_none=True)
    G.zero_grad(set_to_none=True)


def test_conditional_projection():
    torch.manual_seed(7)
    D = s1.Discriminator(dcfg(16, c_dim=3))
    G = Generator(gcfg(16, c_dim=3))
    c = torch.eye(3)[[0, 1, 2, 1]]
    img = G(torch.randn(4, 16), c, lod=0.5)
    assert D(img, c, lod=0.5).shape == (4, 1)
    with pytest.raises(ValueError, match="conditional"):
        D(img)
    # routing: version 1 configs build these classes through the shared builders
    assert isinstance(build_discriminator(dcfg(16)), s1.Discriminator)
    assert isinstance(G.synthesis, s1.SynthesisNetwork)


def test_revised_matches_stylegan2_orig_at_full_resolution():
    """Config B's network at lod 0 is StyleGAN2's 'orig' generator (same weights, same output)."""
    from stylegan.models.stylegan2 import SynthesisNetwork as V2Synthesis

    torch.manual_seed(8)
    cfg = gcfg(16, version=2)
    ours = s1.SynthesisNetwork(cfg)
    ref = V2Synthesis(cfg.replace(growing=False))
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("resample_filter")}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected
    missing = {k for k in missing if not k.endswith("resample_filter")}
    assert missing == {"lod"} | {k for k in ours.state_dict() if ".torgb." in k and not k.startswith("b16.")}
    ws = torch.randn(2, ours.num_ws, 16)
    torch.testing.assert_close(ours(ws, lod=0.0), ref(ws), rtol=1e-5, atol=1e-5)
