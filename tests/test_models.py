"""StyleGAN2 networks: shapes at every resolution, truncation, mixing, noise, gradients, parity."""

import numpy as np
import pytest
import torch

from stylegan.models import (DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig,
                             build_discriminator, mix_styles)
from stylegan.synth.sample import z_from_seeds

from official_fixture import load_fixture_networks, needs_fixture


def tiny_g(res=16, arch="skip", c_dim=0, **kw):
    return Generator(GeneratorConfig(z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=res, architecture=arch,
                                     channel_base=8 * res, channel_max=16,
                                     mapping=MappingConfig(num_layers=2), **kw))


def tiny_d(res=16, arch="resnet", c_dim=0, **kw):
    return build_discriminator(DiscriminatorConfig(img_resolution=res, architecture=arch, c_dim=c_dim,
                                                   channel_base=8 * res, channel_max=16, mbstd_group_size=2, **kw))


@pytest.mark.parametrize("res", [4, 8, 16, 32, 64, 128, 256, 512, 1024])
def test_shapes_every_resolution(res):
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=res, channel_base=4 * res, channel_max=4,
                          mapping=MappingConfig(num_layers=1))
    G = Generator(cfg)
    assert G.num_ws == cfg.num_ws == 2 * int(np.log2(res)) - 2
    with torch.no_grad():
        img = G(torch.randn(2, 8))
        assert img.shape == (2, 3, res, res)
        D = build_discriminator(DiscriminatorConfig(img_resolution=res, channel_base=4 * res, channel_max=4,
                                                    mbstd_group_size=2))
        assert D(img).shape == (2, 1)


@pytest.mark.parametrize("g_arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("d_arch", ["orig", "skip", "resnet"])
def test_architectures_and_gradients_reach_every_parameter(g_arch, d_arch):
    G, D = tiny_g(arch=g_arch), tiny_d(arch=d_arch)
    img = G(torch.randn(4, 16), noise_mode="random")
    D(img).sum().backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_conditional_networks_and_label_errors():
    G, D = tiny_g(c_dim=5), tiny_d(c_dim=5)
    c = torch.eye(5)[:4]
    img = G(torch.randn(4, 16), c)
    assert D(img, c).shape == (4, 1)
    # Different labels change the image and the logit.
    assert not torch.allclose(img, G(torch.randn(4, 16), torch.eye(5)[1:5]))
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(4, 16))
    with pytest.raises(ValueError, match="conditional"):
        D(img)


def test_truncation_psi0_gives_w_avg_for_every_seed():
    G = tiny_g()
    G.mapping.w_avg.copy_(torch.randn(16))
    ws = G.mapping(z_from_seeds(range(6), 16), psi=0.0)
    torch.testing.assert_close(ws, G.w_avg.expand_as(ws))
    img = G(z_from_seeds(range(6), 16), psi=0.0)
    torch.testing.assert_close(img, img[:1].expand_as(img))


def test_truncation_cutoff_and_formula():
    G = tiny_g()
    G.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(3, 16)
    full = G.mapping(z)
    cut = G.mapping(z, psi=0.7, cutoff=3)
    torch.testing.assert_close(cut[:, :3], G.w_avg + 0.7 * (full[:, :3] - G.w_avg))
    torch.testing.assert_close(cut[:, 3:], full[:, 3:])


def test_style_mixing_uses_w1_before_and_w2_after_crossover():
    G = tiny_g()
    ws1, ws2 = G.mapping(torch.randn(3, 16)), G.mapping(torch.randn(3, 16))
    for k in range(G.num_ws + 1):
        mixed = mix_styles(ws1, ws2, k)
        torch.testing.assert_close(mixed[:, :k], ws1[:, :k])
        torch.testing.assert_close(mixed[:, k:], ws2[:, k:])
    per_sample = mix_styles(ws1, ws2, torch.tensor([0, 2, 5]))
    for i, k in enumerate([0, 2, 5]):
        torch.testing.assert_close(per_sample[i], mix_styles(ws1[i:i + 1], ws2[i:i + 1], k)[0])


def test_noise_modes_and_determinism():
    G = tiny_g()
    for m in G.noise_inputs().values():
        m.strength.data.fill_(0.5)
    ws = G.mapping(z_from_seeds([1, 2], 16))
    const1, const2 = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(const1, const2)
    torch.manual_seed(3)
    r1 = G.synthesis(ws, noise_mode="random")
    torch.manual_seed(3)
    r2 = G.synthesis(ws, noise_mode="random")
    torch.testing.assert_close(r1, r2)
    assert not torch.allclose(r1, G.synthesis(ws, noise_mode="random"))
    assert not torch.allclose(const1, G.synthesis(ws, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")


def test_w_avg_tracks_mapping_output():
    G = tiny_g()
    z = torch.randn(64, 16)
    with torch.no_grad():
        for _ in range(2000):
            G.mapping(z, update_w_avg=True)
    torch.testing.assert_close(G.w_avg, G.mapping(z)[:, 0].mean(0), atol=1e-4, rtol=1e-4)


def test_bad_shapes_are_named():
    G, D = tiny_g(), tiny_d()
    with pytest.raises(ValueError, match=r"z must be \[N, 16\]"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="images must be"):
        D(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(img_resolution=48)


def test_fp32_on_cpu_even_with_fp16_layers():
    G = tiny_g(num_fp16_res=2, conv_clamp=256)
    D = tiny_d(num_fp16_res=2, conv_clamp=256)
    img = G(torch.randn(2, 16))
    assert img.dtype == torch.float32 and D(img).dtype == torch.float32


@needs_fixture
def test_official_fixture_parity_direct_keys():
    """Our modules reproduce NVIDIA's official outputs given the same weights (keys renamed only)."""
    data, _, G, D = load_fixture_networks()
    z = torch.from_numpy(data["in.z"])
    with torch.no_grad():
        ws = G.mapping(z)
        outs = {"out.ws": ws, "out.ws_trunc": G.mapping(z, psi=0.7, cutoff=4),
                "out.img_const": G.synthesis(ws, noise_mode="const"),
                "out.img_none": G.synthesis(ws, noise_mode="none"),
                "out.img_trunc": G(z, psi=0.7, cutoff=4, noise_mode="const"),
                "out.d_logits": D(torch.from_numpy(data["out.img_const"]))}
        outs_unfused = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    for k, v in outs.items():
        assert (v - torch.from_numpy(data[k])).abs().max() <= 1e-4, k
    assert (outs_unfused - torch.from_numpy(data["out.img_const"])).abs().max() <= 1e-4
