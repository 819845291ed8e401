"""ops/ against naive float64 references written from the definitions (not from ops/ itself)."""
import math

import numpy as np
import pytest
import torch

from stylegan.ops import (adain, bias_act, conv2d_resample, conv2d_resample_reference, downsample2d,
                          filter2d, instance_norm, modulated_conv2d, normalize_2nd_moment, setup_filter,
                          upfirdn2d, upsample2d)


def naive_upfirdn2d(x, f, up, down, pad):
    """Loops over output pixels: zero-insert, pad/crop, true 2-D convolution, decimate. float64."""
    x = np.asarray(x, np.float64)
    f = np.asarray(f, np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    up_img = np.zeros((n, c, h * up, w * up))
    up_img[:, :, ::up, ::up] = x
    H, W = h * up, w * up
    kh, kw = f.shape
    out_h = (H + py0 + py1 - kh) // down + 1
    out_w = (W + px0 + px1 - kw) // down + 1
    out = np.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            acc = np.zeros((n, c))
            for ky in range(kh):
                for kx in range(kw):
                    # correlation with the flipped filter == convolution with f
                    iy = oy * down + ky - py0
                    ix = ox * down + kx - px0
                    if 0 <= iy < H and 0 <= ix < W:
                        acc += up_img[:, :, iy, ix] * f[kh - 1 - ky, kw - 1 - kx]
            out[:, :, oy, ox] = acc
    return out


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 0, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (0, 0, 1, -1)), (3, 1, (-1, 2, 1, 0)), (1, 1, (-1, -1, 2, 2))])
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1, 2, 3, 4, 5, 4, 3, 2]])
def test_upfirdn2d_matches_naive(up, down, pad, taps):
    x = torch.randn(2, 3, 9, 10)
    f = setup_filter(taps)
    got = upfirdn2d(x, f, up=up, down=down, padding=pad)
    ref = naive_upfirdn2d(x.numpy(), f.numpy(), up, down, pad)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)


def test_upfirdn2d_asymmetric_2d_filter_is_a_convolution():
    x = torch.randn(1, 2, 6, 6)
    f = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    got = upfirdn2d(x, f, padding=(1, 0, 1, 0))
    np.testing.assert_allclose(got.numpy(), naive_upfirdn2d(x.numpy(), f.numpy(), 1, 1, (1, 0, 1, 0)), atol=1e-5)
    flipped = upfirdn2d(x, f.flip([0, 1]), padding=(1, 0, 1, 0), flip_filter=True)
    torch.testing.assert_close(got, flipped)


def test_setup_filter_normalises_and_keeps_dc():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and math.isclose(f.sum().item(), 1.0, rel_tol=1e-6)
    assert setup_filter([1] * 8).ndim == 1  # long filters stay separable
    x = torch.full((1, 1, 8, 8), 0.7)
    assert torch.allclose(upsample2d(x, f)[..., 2:-2, 2:-2], torch.tensor(0.7))
    assert torch.allclose(downsample2d(x, f)[..., 1:-1, 1:-1], torch.tensor(0.7))
    assert torch.allclose(filter2d(x, f)[..., 2:-2, 2:-2], torch.tensor(0.7))
    assert upsample2d(x, f).shape == (1, 1, 16, 16) and downsample2d(x, f).shape == (1, 1, 4, 4)
    assert filter2d(x, f).shape == x.shape
    with pytest.raises(ValueError, match="filter"):
        setup_filter(torch.zeros(2, 2, 2))


def test_bias_act_formula():
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    pre = x + b[None, :, None, None]
    lrelu = torch.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(bias_act(x, b, act="lrelu"), lrelu)
    torch.testing.assert_close(bias_act(x, b, act="lrelu", gain=0.5, clamp=0.3),
                               (torch.where(pre >= 0, pre, 0.2 * pre) * 0.5).clamp(-0.3, 0.3))
    torch.testing.assert_close(bias_act(x, b), pre)
    with pytest.raises(ValueError, match="bias"):
        bias_act(x, torch.zeros(3))
    with pytest.raises(ValueError, match="activation"):
        bias_act(x, act="gelu-ish")


def test_normalize_2nd_moment_and_norms():
    z = torch.randn(6, 32) * 5
    y = normalize_2nd_moment(z)
    torch.testing.assert_close(y.square().mean(1), torch.ones(6), atol=1e-5, rtol=0)
    x = torch.randn(2, 3, 8, 8) * 4 + 2
    n = instance_norm(x)
    torch.testing.assert_close(n.mean([2, 3]), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(n.std([2, 3], unbiased=False), torch.ones(2, 3), atol=1e-4, rtol=0)
    s, b = torch.randn(2, 3), torch.randn(2, 3)
    a = adain(x, s, b)
    torch.testing.assert_close(a.mean([2, 3]), b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.std([2, 3], unbiased=False), s.abs(), atol=1e-4, rtol=0)


def naive_conv_valid(x, w, true_conv):
    """float64 'valid' conv via explicit sums; true_conv flips the kernel."""
    if true_conv:
        w = w[:, :, ::-1, ::-1]
    n, ci, h, wd = x.shape
    co, _, k, _ = w.shape
    oh, ow = h - k + 1, wd - k + 1
    out = np.zeros((n, co, oh, ow))
    for ky in range(k):
        for kx in range(k):
            out += np.einsum("nihw,oi->nohw", x[:, :, ky:ky + oh, kx:kx + ow], w[:, :, ky, kx])
    return out


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_matches_naive(up, down, k, flip_weight):
    """Definition: zero-extend, FIR-upsample (gain up^2), valid conv, FIR-downsample; 'same' size out."""
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 3, k, k, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    p = k // 2
    got = conv2d_resample(x, w, f, up=up, down=down, padding=p, flip_weight=flip_weight)
    xn = x.numpy()
    if up > 1:  # 4-tap filter, factor 2: pad (p + 2, p + 1)
        y = naive_upfirdn2d(xn, f.numpy() * up * up, up, 1, (p + 2, p + 1, p + 2, p + 1))
    else:
        y = np.pad(xn, ((0, 0), (0, 0), (p + (down > 1),) * 2, (p + (down > 1),) * 2))
    y = naive_conv_valid(y, w.numpy(), true_conv=not flip_weight)
    if down > 1:
        y = naive_upfirdn2d(y, f.numpy(), 1, down, (0, 0, 0, 0))
    assert got.shape == y.shape == (2, 4, 6 * up // down, 6 * up // down)
    np.testing.assert_allclose(got.numpy(), y, atol=1e-9)
    ref = conv2d_resample_reference(x, w, f, up=up, down=down, padding=p, flip_weight=flip_weight)
    torch.testing.assert_close(got, ref)


def naive_modconv(x, weight, styles, demodulate):
    """Per-sample weight (StyleGAN2 Eq. 1-3) in float64, then an ordinary conv."""
    x, weight, styles = (t.double() for t in (x, weight, styles))
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n][None, :, None, None]
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        outs.append(torch.nn.functional.conv2d(x[n:n + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_matches_naive(demodulate, fused):
    x = torch.randn(3, 5, 7, 7)
    weight = torch.randn(6, 5, 3, 3)
    styles = torch.randn(3, 5)
    got = modulated_conv2d(x, weight, styles, padding=1, demodulate=demodulate, fused=fused)
    torch.testing.assert_close(got.double(), naive_modconv(x, weight, styles, demodulate), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv2d_fused_equals_unfused_with_resampling(up):
    x = torch.randn(4, 8, 8, 8, dtype=torch.float64)
    weight = torch.randn(5, 8, 3, 3, dtype=torch.float64)
    styles = torch.randn(4, 8, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    kw = dict(up=up, padding=1, resample_filter=f, flip_weight=up == 1)
    a = modulated_conv2d(x, weight, styles, fused=True, **kw)
    b = modulated_conv2d(x, weight, styles, fused=False, **kw)
    torch.testing.assert_close(a, b)
    # Second-order gradients (needed by R1 / path length) agree too.
    ga = torch.autograd.grad(modulated_conv2d(x.requires_grad_(), weight, styles, fused=True, **kw).square().sum(),
                             x, create_graph=True)[0].sum()
    gb = torch.autograd.grad(modulated_conv2d(x, weight, styles, fused=False, **kw).square().sum(),
                             x, create_graph=True)[0].sum()
    torch.testing.assert_close(ga, gb)


def test_demodulation_gives_unit_std_on_unit_variance_input():
    """StyleGAN2 Sec. 2.2: with i.i.d. unit-variance inputs, demodulated outputs have unit std."""
    torch.manual_seed(1)
    x = torch.randn(8, 64, 24, 24)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.rand(8, 64) * 3 + 0.1  # arbitrary positive styles of very different scales
    y = modulated_conv2d(x, weight, styles, padding=1, demodulate=True)[:, :, 1:-1, 1:-1]
    std = y.std(dim=[0, 2, 3])
    assert torch.all((std > 0.9) & (std < 1.1)), std
    raw = modulated_conv2d(x, weight, styles, padding=1, demodulate=False)[:, :, 1:-1, 1:-1]
    assert raw.std() > 5  # without demodulation the scale follows the styles


def test_modulated_conv2d_shape_errors():
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(torch.randn(2, 3, 4, 4), torch.randn(4, 3, 3, 3), torch.randn(2, 5))
    with pytest.raises(ValueError, match="channels"):
        modulated_conv2d(torch.randn(2, 2, 4, 4), torch.randn(4, 3, 3, 3), torch.randn(2, 3))
