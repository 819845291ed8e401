"""ADA augmentation (Karras et al. 2020, App. B): transforms, double backward, adaptive p."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegan.ops import setup_filter
from stylegan.training import augment as A
from stylegan.ops import grid_sample as GS
from stylegan.training.ada import AdaConfig, AdaController, ada_adjust, build_augment
from stylegan.training.augment import AugmentConfig, AugmentPipe, PRESETS, P_MAX


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def structured(n: int = 8, c: int = 3, h: int = 32, w: int = 32, dtype=torch.float32) -> torch.Tensor:
    """Images with sharp structure (checkerboard, disc, ramps) and noise, all samples different."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    g = torch.Generator().manual_seed(123)
    base = torch.stack([
        ((xx // 4 + yy // 4) % 2).float() * 2 - 1,
        ((xx - w / 3) ** 2 + (yy - h / 4) ** 2 < (h / 5) ** 2).float() - 0.5 + xx / w,
        yy / h - 0.5 * xx / w,
    ])[:c]
    return (base[None] + 0.3 * torch.randn(n, c, h, w, generator=g)).to(dtype)


def smooth(n: int = 8, c: int = 3, h: int = 32, w: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
    k = torch.arange(1, c + 1)[:, None, None]
    img = 0.4 * torch.sin(2 * math.pi * (xx * k + 0.5 * yy)) + 0.3 * torch.cos(2 * math.pi * yy * k)
    return img[None].repeat(n, 1, 1, 1) + 0.2


def pipe_for(**multipliers: float) -> AugmentPipe:
    return AugmentPipe(AugmentConfig(**multipliers), p=1.0)


# -------------------------------------------------------------------------------------------------
# Configuration, presets, identity.

EXPECTED_PRESETS = {
    "blit": {"xflip", "rotate90", "xint"},
    "geom": {"scale", "rotate", "aniso", "xfrac"},
    "color": {"brightness", "contrast", "lumaflip", "hue", "saturation"},
    "filter": {"imgfilter"},
    "noise": {"noise"},
    "cutout": {"cutout"},
}
EXPECTED_PRESETS["bg"] = EXPECTED_PRESETS["blit"] | EXPECTED_PRESETS["geom"]
EXPECTED_PRESETS["bgc"] = EXPECTED_PRESETS["bg"] | EXPECTED_PRESETS["color"]
EXPECTED_PRESETS["bgcf"] = EXPECTED_PRESETS["bgc"] | {"imgfilter"}
EXPECTED_PRESETS["bgcfn"] = EXPECTED_PRESETS["bgcf"] | {"noise"}
EXPECTED_PRESETS["bgcfnc"] = EXPECTED_PRESETS["bgcfn"] | {"cutout"}


def test_presets_enable_exactly_the_listed_transforms():
    assert set(PRESETS) == set(EXPECTED_PRESETS)
    for name, expected in EXPECTED_PRESETS.items():
        cfg = A.augment_preset(name)
        assert set(cfg.enabled) == expected, name
        assert all(getattr(cfg, t) == 1.0 for t in expected)
        assert cfg.xint_max == 0.125 and cfg.noise_std == 0.1 and cfg.cutout_size == 0.5
    with pytest.raises(ValueError):
        A.augment_preset("nope")
    with pytest.raises(TypeError):
        PRESETS["mine"] = AugmentConfig()  # type: ignore[index]


def test_config_roundtrip_and_validation():
    cfg = AugmentConfig(xflip=1, imgfilter=0.5, imgfilter_bands=[1, 0, 1, 0], noise_std=0.2)
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        AugmentConfig(hue=-1)
    with pytest.raises(ValueError):
        AugmentConfig(imgfilter_bands=(1, 1))
    with pytest.raises(ValueError):
        AugmentConfig.from_dict({"xflipp": 1})


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_p_zero_is_bitwise_identity(name):
    x = structured(4)
    out = AugmentPipe(name, p=0.0)(x)
    assert torch.equal(out, x)


def test_pipe_p_buffer_state_dict_roundtrip():
    pipe = AugmentPipe("bgc", p=0.25)
    assert pipe.p.dtype == torch.float32 and pipe.p.ndim == 0
    sd = pipe.state_dict()
    assert set(sd) == {"p"}  # filters are rebuilt, not saved
    pipe.p.fill_(0.7)
    other = AugmentPipe("bgc")
    other.load_state_dict(pipe.state_dict())
    assert float(other.p) == pytest.approx(0.7) and torch.equal(other.p, pipe.p)


# -------------------------------------------------------------------------------------------------
# Pixel blitting: exact.

def test_xflip_flips_exactly():
    x = structured(16)
    out = pipe_for(xflip=1)(x, generator=gen(1))
    flipped = 0
    for o, xi in zip(out, x):
        if torch.equal(o, xi.flip(2)):
            flipped += 1
        else:
            assert torch.equal(o, xi)
    assert 0 < flipped < 16


def test_rotate90_rotates_exactly():
    x = structured(16)
    out = pipe_for(rotate90=1)(x, generator=gen(2))
    seen = set()
    for o, xi in zip(out, x):
        ks = [k for k in range(4) if torch.equal(o, torch.rot90(xi, k, dims=(1, 2)))]
        assert len(ks) == 1
        seen.add(ks[0])
    assert len(seen) >= 3


def test_xint_translates_by_integers():
    x = structured(16, h=32, w=32)
    out = pipe_for(xint=1)(x, generator=gen(3))
    m = 4  # round(0.125 * 32): the largest shift
    moved = 0
    for o, xi in zip(out, x):
        hits = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)
                if torch.equal(o[:, m:-m, m:-m], torch.roll(xi, (dy, dx), dims=(1, 2))[:, m:-m, m:-m])]
        assert len(hits) == 1
        moved += hits[0] != (0, 0)
    assert moved >= 12


def test_blit_non_square_images():
    x = structured(6, h=16, w=32)
    out = pipe_for(rotate90=1, xflip=1, xint=1)(x, generator=gen(4))
    assert out.shape == x.shape
    # odd W - H: centres are off-grid for odd rotations, the blit goes through resampling
    x = smooth(6, h=15, w=32)
    blit_inv, general_inv = A.geometric_matrices(AugmentConfig(rotate90=1), 1.0, 6, 32, 15,
                                                 torch.device("cpu"), gen(4))
    assert blit_inv is None and general_inv is not None
    assert pipe_for(rotate90=1)(x, generator=gen(4)).shape == x.shape


# -------------------------------------------------------------------------------------------------
# General geometric transforms: one resampling.

def test_resampling_chain_is_aligned():
    """Identity reconstructs the input (orthogonal wavelet); integer moves land on the pixel grid."""
    x = structured(4, h=24, w=24)
    f = setup_filter(A.SYM6_TAPS)
    one = torch.ones(4)
    assert torch.allclose(A.apply_geometric(x, torch.eye(3).expand(4, 3, 3), f), x, atol=1e-5)
    shifted = A.apply_geometric(x, A.translate2d(-3 * one, 2 * one), f)  # right 3, up 2
    assert torch.allclose(shifted[..., 4:-4, 4:-4], torch.roll(x, (-2, 3), (2, 3))[..., 4:-4, 4:-4], atol=1e-5)
    # a smooth image rotated by 90 degrees through the general path matches torch.rot90 closely
    s = smooth(4, h=24, w=24)
    rot = A.apply_geometric(s, A.rotate2d(one * math.pi / 2), f)
    assert (rot - torch.rot90(s, 1, dims=(2, 3))).abs().max() < 0.04


def test_general_geometric_preserves_shape_and_mean():
    x = smooth(16)
    out = AugmentPipe("geom", p=1.0)(x, generator=gen(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out.mean() - x.mean()).abs() < 0.05
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every sample moved
    const = torch.full((8, 3, 32, 32), 0.37)
    out = AugmentPipe("bg", p=1.0)(const, generator=gen(6))
    assert torch.allclose(out, const, atol=2e-3)


def test_rotation_probability_is_p():
    """Two rotation slots firing with 1 - sqrt(1 - p) each: P(any rotation) = p."""
    n = 20000
    _, g_inv = A.geometric_matrices(AugmentConfig(rotate=1), 0.4, n, 32, 32, torch.device("cpu"), gen(7))
    rotated = (g_inv[:, 0, 1].abs() > 0).float().mean().item()
    assert rotated == pytest.approx(0.4, abs=0.015)


def test_probability_is_p_times_multiplier():
    n = 20000
    c_mat = A.color_matrix(AugmentConfig(brightness=0.5), 0.6, n, 3, torch.device("cpu"), gen(8))
    assert (c_mat[:, 0, 3] != 0).float().mean().item() == pytest.approx(0.3, abs=0.015)


# -------------------------------------------------------------------------------------------------
# Color.

def test_brightness_adds_a_constant():
    x = structured(16)
    out = pipe_for(brightness=1)(x, generator=gen(9))
    d = out - x
    b = d.flatten(1).mean(1)
    assert torch.allclose(d, b[:, None, None, None].expand_as(d), atol=1e-6)
    assert (b != 0).all() and 0.1 < b.std() < 0.35


def test_contrast_scales_about_zero():
    """Contrast multiplies by c (about 0, the mid-gray of [-1, 1]); the image mean scales by c too."""
    x = structured(16)
    out = pipe_for(contrast=1)(x, generator=gen(10))
    c = (out.flatten(1) * x.flatten(1)).sum(1) / x.flatten(1).square().sum(1)
    assert torch.allclose(out, x * c[:, None, None, None], atol=1e-5)
    assert torch.allclose(out.flatten(1).mean(1), c * x.flatten(1).mean(1), atol=1e-5)
    assert (c > 0).all() and 0.25 < torch.log2(c).std() < 0.8


def test_lumaflip_is_a_reflection_of_the_gray_axis():
    m = A.lumaflip_matrix(torch.tensor([1.0, 0.0]))
    r = m[0, :3, :3]
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6)
    assert torch.det(r).item() == pytest.approx(-1, abs=1e-5)
    assert torch.allclose(r @ torch.ones(3), -torch.ones(3), atol=1e-6)
    chroma = torch.tensor([1.0, -1.0, 0.0])
    assert torch.allclose(r @ chroma, chroma, atol=1e-6)
    assert torch.equal(m[1], torch.eye(4))
    x = structured(16)
    out = pipe_for(lumaflip=1)(x, generator=gen(11))
    flipped = x - 2 * x.mean(dim=1, keepdim=True)
    n_flip = sum(torch.allclose(o, f, atol=1e-5) for o, f in zip(out, flipped))
    n_same = sum(torch.equal(o, xi) for o, xi in zip(out, x))
    assert n_flip + n_same == 16 and 0 < n_flip < 16


def test_hue_rotation_keeps_the_luma_axis():
    theta = torch.tensor([0.3, -2.0, 2 * math.pi / 3])
    m = A.hue_matrix(theta)
    r = m[:, :3, :3]
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.det(r), torch.ones(3), atol=1e-5)
    assert torch.allclose(r @ torch.ones(3), torch.ones(3).expand(3, 3), atol=1e-6)  # gray stays gray
    assert torch.allclose(r.sum(dim=1), torch.ones(3, 3), atol=1e-6)  # R + G + B preserved
    # a third of a turn about the gray axis permutes the channels cyclically
    assert torch.allclose(r[2], torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]), atol=1e-6)
    assert torch.equal(m[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(3, 4))


def test_saturation():
    x = structured(4)
    gray = A.apply_color(x, A.saturation_matrix(torch.zeros(4)))
    assert torch.allclose(gray, x.mean(dim=1, keepdim=True).expand_as(x), atol=1e-6)
    assert torch.allclose(A.apply_color(x, A.saturation_matrix(torch.ones(4))), x, atol=1e-6)
    s2 = A.apply_color(x, A.saturation_matrix(torch.full((4,), 2.0)))
    mean = x.mean(dim=1, keepdim=True)
    assert torch.allclose(s2, mean + 2 * (x - mean), atol=1e-5)
    m = A.saturation_matrix(torch.tensor([0.5]))[0, :3, :3]
    assert torch.allclose(torch.linalg.eigvalsh(m), torch.tensor([0.5, 0.5, 1.0]), atol=1e-6)


def test_grayscale_color_definition():
    """1 channel = R = G = B: the 3-channel result averaged; hue and saturation are skipped."""
    x = structured(16, c=1)
    c_mat = A.color_matrix(PRESETS["color"], 1.0, 16, 3, torch.device("cpu"), gen(12))
    expect = A.apply_color(x.expand(-1, 3, -1, -1), c_mat).mean(dim=1, keepdim=True)
    assert torch.allclose(A.apply_color(x, c_mat), expect, atol=1e-5)
    assert A.color_matrix(AugmentConfig(hue=1, saturation=1), 1.0, 16, 1, torch.device("cpu")) is None
    assert torch.equal(pipe_for(hue=1, saturation=1)(x), x)
    out = AugmentPipe("color", p=1.0)(x, generator=gen(13))  # per sample affine: a x + b
    for o, xi in zip(out.flatten(1), x.flatten(1)):
        a, b = np.polyfit(xi.numpy(), o.numpy(), 1)
        assert torch.allclose(o, a * xi + b, atol=1e-4)
    with pytest.raises(ValueError):
        AugmentPipe("color", p=1.0)(torch.zeros(2, 2, 8, 8))


# -------------------------------------------------------------------------------------------------
# Image-space filtering, noise, cutout.

def test_imgfilter_bank():
    bank = A.imgfilter_bank().double()
    assert bank.shape == (4, 43)
    delta = torch.zeros(43, dtype=torch.float64)
    delta[21] = 1
    assert torch.allclose(bank.sum(0), delta, atol=1e-6)  # unit gains: identity
    assert torch.allclose(bank, bank.flip(1), atol=1e-7)  # zero phase
    assert torch.allclose(bank.sum(1), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64), atol=1e-6)
    # frequency responses peak in increasing order (low -> high)
    resp = torch.fft.rfft(bank, n=256).abs()
    peaks = resp.argmax(dim=1).tolist()
    assert peaks == sorted(peaks) and len(set(peaks)) == 4
    x = structured(2)
    assert torch.allclose(A.apply_imgfilter(x, torch.ones(2, 4), A.imgfilter_bank()), x, atol=1e-5)


def test_imgfilter_gains_keep_expected_power():
    cfg = AugmentConfig(imgfilter=1, imgfilter_bands=(0, 0, 1, 0))
    g = A.imgfilter_gains(cfg, 1.0, 64, torch.device("cpu"), gen(14))
    power = torch.tensor(A.IMGFILTER_EXPECTED_POWER)
    assert torch.allclose((power * g.square()).sum(1), torch.ones(64), atol=1e-5)
    out = pipe_for(imgfilter=1)(structured(4), generator=gen(15))
    assert out.shape == (4, 3, 32, 32) and torch.isfinite(out).all()
    small = AugmentPipe("filter", p=1.0)(structured(2, h=8, w=8))  # pad > size: mirrored extension
    assert small.shape == (2, 3, 8, 8)


def test_reflect_pad_matches_numpy_for_large_pads():
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    out = A.reflect_pad(x, [9, 7, 3, 11])
    ref = np.pad(x.numpy(), [(0, 0), (0, 0), (3, 11), (9, 7)], mode="reflect")
    assert np.array_equal(out.numpy(), ref)
    assert torch.equal(A.reflect_pad(x, [2, 1, 3, 0]), F.pad(x, [2, 1, 3, 0], mode="reflect"))


def test_noise_has_configured_std():
    x = torch.zeros(512, 1, 16, 16)
    out = AugmentPipe(AugmentConfig(noise=1, noise_std=0.1), p=1.0)(x, generator=gen(16))
    assert out.std().item() == pytest.approx(0.1, rel=0.08)  # E[sigma^2] = noise_std^2
    per_sample = out.flatten(1).std(1)
    assert per_sample.mean().item() == pytest.approx(0.1 * math.sqrt(2 / math.pi), rel=0.08)


def test_cutout_zeroes_a_rectangle_of_configured_size():
    mask = A.cutout_mask(torch.tensor([[0.5, 0.5]]), torch.tensor([0.5]), 32, 32)
    expect = torch.ones(1, 1, 32, 32)
    expect[..., 8:24, 8:24] = 0
    assert torch.equal(mask, expect)
    x = torch.ones(32, 1, 32, 32)
    out = AugmentPipe(AugmentConfig(cutout=1, cutout_size=0.25), p=1.0)(x, generator=gen(17))
    full = 0
    for o in out[:, 0]:
        rows, cols = torch.nonzero(o == 0, as_tuple=True)
        assert len(rows) > 0
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        assert (o[r0:r1 + 1, c0:c1 + 1] == 0).all() and (o == 0).sum() == (r1 - r0 + 1) * (c1 - c0 + 1)
        assert r1 - r0 + 1 <= 8 and c1 - c0 + 1 <= 8
        full += bool(r1 - r0 + 1 == 8 and c1 - c0 + 1 == 8)
    assert full >= 10


# -------------------------------------------------------------------------------------------------
# Gradients.

def test_gradients_flow_to_the_input():
    x = structured(4).requires_grad_()
    out = AugmentPipe("bgcfnc", p=1.0)(x, generator=gen(18))
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradfix_grid_sample_matches_native_to_second_order():
    g = torch.Generator().manual_seed(19)
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    grid = (torch.rand(2, 4, 3, 2, dtype=torch.float64, generator=g) * 2.4 - 1.2)
    assert torch.autograd.gradgradcheck(lambda t: GS.grid_sample_gradfix(t, grid), (x,))
    grid_rg = grid.clone().requires_grad_()
    assert torch.autograd.gradcheck(GS.grid_sample_gradfix, (x, grid_rg))  # first order w.r.t. grid

    def r1_grad(fn):
        x.grad = None
        y = fn(x, grid)
        (gx,) = torch.autograd.grad((y.square() * y).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.square().sum(), x)
        return y, gx, ggx

    for a, b in zip(r1_grad(GS.grid_sample_gradfix), r1_grad(GS.grid_sample_native)):
        assert torch.allclose(a, b, atol=1e-12)


def test_native_double_backward_probe():
    """torch >= 2.12 differentiates grid_sampler_2d_backward natively; older releases need the fix."""
    has = GS.native_grid_sample_has_double_backward()
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 13):
        assert has
    assert AugmentPipe().grid_sample_impl == ("native" if has else "gradfix")


class TinyD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(20)
        self.w1 = torch.nn.Parameter(torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) * 0.3)
        self.w2 = torch.nn.Parameter(torch.randn(1, 4, 3, 3, generator=g, dtype=torch.float64) * 0.3)

    def forward(self, x):
        x = F.leaky_relu(F.conv2d(x, self.w1, padding=1), 0.2)
        return F.conv2d(x, self.w2, padding=1).mean(dim=(1, 2, 3))


@pytest.mark.parametrize("impl", ["native", "gradfix"])
def test_r1_double_backward_through_pipe(impl):
    """R1 on augmented reals: d/dtheta ||grad_x D_theta(aug(x))||^2 matches finite differences."""
    x = structured(2, h=16, w=16, dtype=torch.float64)
    pipe = AugmentPipe("bgcf", p=1.0, grid_sample=impl)
    d = TinyD()

    def penalty(w1):
        xr = x.detach().requires_grad_()
        logits = torch.func.functional_call(d, {"w1": w1, "w2": d.w2}, (pipe(xr, generator=gen(21)),))
        (gx,) = torch.autograd.grad(logits.sum(), xr, create_graph=True)
        return gx.square().sum()

    w1 = d.w1.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(penalty, (w1,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    penalty(d.w1).backward()  # into D's parameters, as in training
    assert torch.isfinite(d.w1.grad).all() and d.w1.grad.abs().sum() > 0


# -------------------------------------------------------------------------------------------------
# Adaptive p.

def test_ada_adjust_step():
    step = 32 * 4 / (500 * 1000)
    assert ada_adjust(0.5, 0.9, 0.6, 128, 500) == 0.5 + step
    assert ada_adjust(0.5, 0.1, 0.6, 128, 500) == 0.5 - step
    assert ada_adjust(0.5, 0.6, 0.6, 128, 500) == 0.5
    assert ada_adjust(0.0, -1.0, 0.6, 128, 500) == 0.0
    assert ada_adjust(0.99999, 1.0, 0.6, 128, 500) == P_MAX < 1.0


def test_controller_moves_p_by_exactly_the_step():
    pipe = AugmentPipe("bgc")
    ctrl = AdaController(pipe, AdaConfig(mode="ada", p=0.5))
    logits = torch.tensor([1.0] * 30 + [-1.0] * 2)  # E[sign] = 0.875 > 0.6
    for i in range(4):
        ctrl.accumulate(logits)
        assert ctrl.step(32) == (i == 3)
        if i < 3:
            assert float(pipe.p) == 0.5
    up = torch.tensor(0.5 + 32 * 4 / 500_000, dtype=torch.float32)
    assert torch.equal(pipe.p, up)
    for _ in range(4):
        ctrl.accumulate(-logits)
        ctrl.step(32)
    assert torch.equal(pipe.p, torch.tensor(float(up) - 32 * 4 / 500_000, dtype=torch.float32))


def test_controller_resume_is_exact():
    def run(ctrl, logits_seq):
        ps = []
        for lg in logits_seq:
            ctrl.accumulate(lg)
            ctrl.step(lg.numel())
            ps.append(float(ctrl.p))
        return ps

    g = torch.Generator().manual_seed(22)
    seq = [torch.randn(8, generator=g) + 0.8 for _ in range(14)]
    ref = run(AdaController(AugmentPipe("bgc"), AdaConfig(interval=4, speed_kimg=0.1)), seq)
    assert ref[-1] > 0

    pipe = AugmentPipe("bgc")
    ctrl = AdaController(pipe, AdaConfig(interval=4, speed_kimg=0.1))
    first = run(ctrl, seq[:6])  # stop mid-interval with partial statistics
    state, pipe_state = ctrl.state_dict(), pipe.state_dict()
    pipe2 = AugmentPipe("bgc")
    pipe2.load_state_dict(pipe_state)
    ctrl2 = AdaController(pipe2, AdaConfig(interval=4, speed_kimg=0.1))
    ctrl2.load_state_dict(state)
    assert first + run(ctrl2, seq[6:]) == ref


def test_fixed_and_noaug_modes():
    pipe, ctrl = build_augment(AdaConfig(mode="fixed", pipe="bgc", p=0.3))
    for _ in range(8):
        ctrl.accumulate(torch.ones(4))
        assert not ctrl.step(4)
    assert float(pipe.p) == pytest.approx(0.3)
    pipe, ctrl = build_augment(AdaConfig(mode="noaug"))
    assert pipe is None and ctrl.p == 0.0 and not ctrl.step(4)
    with pytest.raises(ValueError):
        build_augment(AdaConfig(mode="fixed"))
    with pytest.raises(ValueError):
        AdaConfig(mode="sometimes")
    pipe, ctrl = build_augment(AdaConfig(mode="ada", pipe="bgcfnc", target=0.7))
    assert pipe.config == PRESETS["bgcfnc"] and ctrl.config.target == 0.7 and ctrl.p == 0.0


def _ddp_worker(rank, world, store_path, result_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank,
                                         world_size=world)
    try:
        pipe = AugmentPipe("blit")
        ctrl = AdaController(pipe, AdaConfig(p=0.5, interval=1))
        # rank 0: all positive, rank 1: 3/4 negative -> global E[sign] = 0.25 < 0.6 -> down
        ctrl.accumulate(torch.ones(8) if rank == 0 else torch.tensor([1.0, 1, -1, -1, -1, -1, -1, -1]))
        ctrl.step(16)
        torch.save(pipe.p, f"{result_path}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_controller_reduces_statistics_across_ranks(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "p")), nprocs=2)
    expect = torch.tensor(0.5 - 16 / 500_000, dtype=torch.float32)
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"p.{rank}"), expect)
