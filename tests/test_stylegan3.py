"""StyleGAN3 networks (configs T and R): NVIDIA's outputs reproduced, the layer schedule, the API shared
with the other generators, equivariance, and the fast / reference / cached forms agreeing."""
import pytest
import torch

from stylegan import perf
from stylegan.io.official import OfficialFormatError, stylegan3_config_from_kwargs
from stylegan.models import Generator, GeneratorConfig, MappingConfig, StyleGAN3Options, mix_styles
from stylegan.models.stylegan3 import input_transform, synthesis_schedule
from stylegan.nn import weight_cache
from stylegan.selftest.fixture import (SG3_FIXTURES, load_fixture, sg3_fixture_calls,
                                       sg3_fixture_errors, sg3_fixture_generator)
from stylegan.selftest.parity import SG3_GRAD_REL_TOL

from official_fixture import needs_fixture

# Layer names and filtered_lrelu paddings of NVIDIA's 256x256 generators (printed by their code):
# stylegan3-t-ffhqu-256x256 (channel_base 32768, channel_max 512) and stylegan3-r (doubled, 1x1, radial).
OFFICIAL_256 = {
    "T": ["L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512", "L6_84_512", "L7_148_512",
          "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181", "L12_276_128", "L13_256_128", "L14_256_3"],
    "R": ["L0_36_1024", "L1_36_1024", "L2_36_1024", "L3_52_1024", "L4_52_1024", "L5_84_1024", "L6_84_1024",
          "L7_148_1024", "L8_148_1024", "L9_148_724", "L10_276_512", "L11_276_362", "L12_276_256", "L13_256_256",
          "L14_256_3"],
}
OFFICIAL_256_PADDING = {
    "T": {0: (9, 8), 3: (-6, -9), 4: (9, 8), 13: (-11, -12), 14: (0, 0)},
    "R": {0: (11, 10), 3: (-2, -5), 4: (11, 10), 13: (-9, -10), 14: (0, 0)},
}


def sg3_config(config="T", res=256, **kw):
    opts = StyleGAN3Options() if config == "T" else StyleGAN3Options(conv_kernel=1, use_radial_filters=True)
    base = 32768 * (1 if config == "T" else 2)
    return GeneratorConfig(z_dim=512, w_dim=512, img_resolution=res, channel_base=base,
                           channel_max=512 * (1 if config == "T" else 2), version=3, v3=opts,
                           mapping=MappingConfig(num_layers=2, w_avg_beta=0.998), conv_clamp=256, **kw)


def tiny_generator(config="T", seed=0, c_dim=0):
    torch.manual_seed(seed)
    opts = StyleGAN3Options(num_layers=4, num_critical=1, conv_kernel=3 if config == "T" else 1,
                            use_radial_filters=config == "R")
    cfg = GeneratorConfig(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, channel_base=128, channel_max=8,
                          version=3, v3=opts, mapping=MappingConfig(num_layers=2, w_avg_beta=0.998), conv_clamp=256)
    G = Generator(cfg).eval()
    with torch.no_grad():  # non-trivial input transform and biases
        G.synthesis.input.affine.weight.normal_(0, 0.3)
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
    return G


# ----------------------------------------------------------------------------------- NVIDIA's outputs

@needs_fixture
@pytest.mark.parametrize("config", ["T", "R"])
@pytest.mark.parametrize("forms", ["fast", "reference"])
def test_fixture_parity(config, forms):
    fx = load_fixture(SG3_FIXTURES[config])
    G = sg3_fixture_generator(fx)
    assert G.cfg.version == 3 and G.cfg.sg3.config_name == config
    if forms == "fast":
        out = sg3_fixture_calls(G, fx)
    else:
        with perf.reference_mode():
            out = sg3_fixture_calls(G, fx)
    errors = sg3_fixture_errors(out, fx)
    grad_scale = fx.tensors["out.grad_ws"].abs().max().item()
    values = {k: e for k, e in errors.items() if k != "out.grad_ws"}
    assert all(e <= 1e-4 for e in values.values()), errors
    assert errors["out.grad_ws"] <= SG3_GRAD_REL_TOL * grad_scale, errors
    print(f"StyleGAN3-{config} ({forms}) max abs errors:", {k.removeprefix("out."): f"{v:.1e}" for k, v in errors.items()})


@needs_fixture
@pytest.mark.parametrize("config", ["T", "R"])
def test_schedule_and_filters_match_the_official_constructor(config):
    """Every attribute NVIDIA's layers recorded, and the filters our design gives, against theirs."""
    fx = load_fixture(SG3_FIXTURES[config])
    cfg, notes = stylegan3_config_from_kwargs(fx.meta["G_kwargs"])
    assert notes == []
    spec_in, specs = synthesis_schedule(cfg)
    assert [s.name for s in specs] == list(fx.meta["layers"])
    for s in specs:
        for attr, value in fx.meta["layers"][s.name].items():
            ours = list(s.padding) if attr == "padding" else getattr(s, attr)
            assert ours == pytest.approx(value, rel=1e-12, abs=1e-12), (s.name, attr)
    G = Generator(cfg)  # its own filter design, not loaded
    for name, buf in G.synthesis.named_buffers():
        if name.endswith("_filter"):
            torch.testing.assert_close(buf, fx.tensors[f"G.synthesis.{name}"], atol=3e-8, rtol=0)
    assert G.synthesis.input.freqs.norm(dim=1).max() <= spec_in.bandwidth


@pytest.mark.parametrize("config", ["T", "R"])
def test_schedule_of_the_official_256px_networks(config):
    spec_in, specs = synthesis_schedule(sg3_config(config))
    assert [s.name for s in specs] == OFFICIAL_256[config]
    for i, (lo, hi) in OFFICIAL_256_PADDING[config].items():
        assert specs[i].padding == (lo, hi, lo, hi)
    assert (spec_in.channels, spec_in.size, spec_in.sampling_rate, spec_in.bandwidth) == (
        512 if config == "T" else 1024, 36, 16, 2)
    assert [s.down_radial for s in specs] == [config == "R"] * 12 + [False] * 3
    assert sum(s.is_critically_sampled for s in specs) == 3 and specs[-1].is_torgb
    assert [s.up_factor for s in specs[:6]] == [2, 2, 2, 4, 2, 4]


def test_config_errors_and_names():
    assert sg3_config("T").num_ws == 16 and sg3_config("R").sg3.config_name == "R"
    assert StyleGAN3Options(conv_kernel=1).config_name == "custom"
    with pytest.raises(ValueError, match="v3 switches"):
        GeneratorConfig(v3=StyleGAN3Options())
    with pytest.raises(ValueError, match="num_critical"):
        StyleGAN3Options(num_layers=2, num_critical=2)
    with pytest.raises(OfficialFormatError, match="unknown"):
        stylegan3_config_from_kwargs(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, foo=1))
    with pytest.raises(OfficialFormatError, match="lack"):
        stylegan3_config_from_kwargs(dict(z_dim=8))


# ----------------------------------------------------------------------------------- the shared API

def test_generator_api_truncation_mixing_and_noise_mode():
    G = tiny_generator("T", c_dim=3)
    assert G.num_ws == 6 and G.noise_inputs() == {}
    z, c = torch.randn(3, 8), torch.eye(3)
    with torch.no_grad():
        img = G(z, c)
        assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
        for mode in ("const", "random", "none"):  # StyleGAN3 has no noise: every mode is the same image
            torch.testing.assert_close(G(z, c, noise_mode=mode), img, atol=0, rtol=0)
        G.mapping.w_avg.normal_()
        ws = G.mapping(z, c, psi=0.5, cutoff=2)
        torch.testing.assert_close(G(z, c, psi=0.5, cutoff=2), G.synthesis(ws), atol=1e-6, rtol=0)
        mixed = mix_styles(G.mapping(z, c), G.mapping(z.flip(0), c), 3)
        assert G.synthesis(mixed).shape == img.shape
        with pytest.raises(ValueError, match=r"ws must be \[N, 6, 8\]"):
            G.synthesis(ws[:, :5])


def test_transform_argument_equals_the_buffer():
    G = tiny_generator("T")
    ws = G.mapping(torch.randn(2, 8), None)
    m = input_transform((0.1, -0.2), 30)
    torch.testing.assert_close(input_transform((0, 0), 0), torch.eye(3))
    with torch.no_grad():
        by_arg = G.synthesis(ws, transform=m)
        per_sample = G.synthesis(ws, transform=torch.stack([m, torch.eye(3)]))
        G.synthesis.input.transform.copy_(m)
        by_buffer = G.synthesis(ws)
    torch.testing.assert_close(by_arg, by_buffer, atol=0, rtol=0)
    torch.testing.assert_close(per_sample[0], by_arg[0], atol=1e-6, rtol=0)
    assert not torch.allclose(per_sample[1], by_arg[1], atol=1e-3)


@needs_fixture
def test_translation_and_rotation_equivariance():
    """Config T: translating the input by k/R moves the image by exactly k pixels (the interior);
    config R: rotating the input by 90 degrees rotates the image (Sec. 3.2)."""
    for config in ("T", "R"):
        G = sg3_fixture_generator(load_fixture(SG3_FIXTURES[config]))
        R = G.img_resolution
        torch.manual_seed(1)
        c = torch.eye(G.c_dim)[:2] if G.c_dim else None
        with torch.no_grad():
            ws = G.mapping(torch.randn(2, G.z_dim), c)
            img = G.synthesis(ws)
            for k in (1, 3):
                moved = G.synthesis(ws, transform=input_transform((k / R, 0), 0))
                inner = (slice(None), slice(None), slice(4, R - 4))
                torch.testing.assert_close(moved[inner][..., 4 + k:R - 4], img[inner][..., 4:R - 4 - k],
                                           atol=1e-3, rtol=0)  # images of std ~0.5
            turned = G.synthesis(ws, transform=input_transform((0, 0), 90))
            err = (turned - img.rot90(1, dims=(2, 3)))[..., 4:-4, 4:-4].abs().max().item()
            if config == "R":
                assert err < 1e-3
            else:
                assert err > 1e-2  # config T is not rotation equivariant


# ----------------------------------------------------------------------------------- forms agree

@pytest.mark.parametrize("config", ["T", "R"])
def test_fast_reference_and_cached_forms_agree_with_double_backward(config):
    G = tiny_generator(config)
    ws = G.mapping(torch.randn(2, 8), None).detach()
    proj = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def run():
        w = ws.clone().requires_grad_(True)
        img = G.synthesis(w)
        (g,) = torch.autograd.grad((img * proj).sum(), w, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), w)  # path-length style second order
        return img.detach(), g.detach(), gg

    fast = run()
    with perf.reference_mode():
        ref = run()
    for policy in ("fused", "unfused"):
        with perf.modconv_policy(policy):
            other = run()
        for a, b in zip(other, ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad(), weight_cache():
        cached = [G.synthesis(ws) for _ in range(2)]
    for img in cached:
        torch.testing.assert_close(img, fast[0], atol=1e-5, rtol=1e-4)


def test_training_updates_move_the_running_averages():
    G = tiny_generator("T").train()
    before = [layer.magnitude_ema.clone() for layer in G.synthesis.layers()]
    G.synthesis(G.mapping(torch.randn(4, 8), None), update_emas=True)
    after = [layer.magnitude_ema for layer in G.synthesis.layers()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    loss = G(torch.randn(2, 8)).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in G.parameters())


def test_runtime_is_resolved_once_and_no_context_variable_is_read_inside(monkeypatch):
    """As every other network (tests/test_runtime.py): the public forwards resolve the Runtime once,
    and with it given, nothing below reads a context variable, forward or backward."""
    from stylegan.nn.runtime import Runtime
    from test_runtime import remove_context_vars

    G = tiny_generator("R", c_dim=3)
    z, c = torch.randn(2, 8), torch.eye(3)[[0, 2]]
    calls = []
    original = Runtime.current.__func__
    monkeypatch.setattr(Runtime, "current", classmethod(lambda cls: calls.append(1) or original(cls)))
    for call in (lambda: G(z, c), lambda: G.synthesis(torch.randn(2, G.num_ws, 8)), lambda: G.mapping(z, c)):
        calls.clear()
        call()
        assert len(calls) == 1
    monkeypatch.undo()
    rt = Runtime.current()
    with torch.no_grad():
        expected = [G(z, c), G.synthesis(G.mapping(z, c))]

    remove_context_vars(monkeypatch)
    G.requires_grad_(True)
    got = [G(z, c, runtime=rt), G.synthesis(G.mapping(z, c, runtime=rt), runtime=rt)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    sum(t.square().sum() for t in got).backward()


@needs_fixture
def test_low_precision_layers():
    """A Runtime precision puts the layers of the highest sampling rates in bf16 (the official fp16
    rule with s for the resolution): the image stays float32 and within a few % of float32."""
    from stylegan.nn import Precision, precision_scope

    G = sg3_fixture_generator(load_fixture(SG3_FIXTURES["T"]))
    ws = G.mapping(torch.randn(2, G.z_dim), torch.eye(3)[:2])
    with torch.no_grad():
        ref = G.synthesis(ws)
        with precision_scope(Precision("bf16", num_low_res=2)):
            low = G.synthesis(ws)
    assert low.dtype == torch.float32
    assert 0 < (low - ref).abs().max() <= 0.05 * ref.abs().max()
    w = ws.clone().requires_grad_(True)
    with precision_scope(Precision("bf16", num_low_res=2)):
        G.synthesis(w).sum().backward()
    assert torch.isfinite(w.grad).all()
