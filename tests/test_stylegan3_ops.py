"""StyleGAN3's ops: the Kaiser / jinc low-pass design and filtered_lrelu (fast form vs reference form,
values and first- and second-order gradients)."""
import importlib
import itertools

import numpy as np
import pytest
import torch

from stylegan import perf
from stylegan.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_output_size, filtered_lrelu_reference
from stylegan.ops.filters import upfirdn2d_reference
from stylegan.ops.lowpass import design_lowpass_filter, kaiser_beta, kaiser_window
from stylegan.ops.settings import OpSettings

flr = importlib.import_module("stylegan.ops.filtered_lrelu")  # the module (stylegan.ops.filtered_lrelu is the op)
FAST, PLAIN = OpSettings(), OpSettings(upfirdn2d=False)

# Taps printed by NVIDIA's SynthesisLayer.design_lowpass_filter (stylegan3 repository, run locally):
# numtaps 12, cutoff 4, width 8, fs 32 (separable) and numtaps 6, cutoff 2, width 4, fs 16 (radial,
# the upper-left 3x3 of the symmetric 6x6).
OFFICIAL_12 = [-0.0038537278305739164, -0.006146250758320093, 0.0153733491897583, 0.07964865118265152,
               0.1723518967628479, 0.24262608587741852]
OFFICIAL_RADIAL_6 = [[0.006873408332467079, 0.015010503120720387, 0.021164484322071075],
                     [0.015010503120720387, 0.030413037165999413, 0.04177281633019447],
                     [0.021164484322071075, 0.04177281633019447, 0.05681794881820679]]


# ---------------------------------------------------------------------------------------- design

def test_design_matches_official_numbers():
    f = design_lowpass_filter(12, 4.0, 8.0, 32)
    assert f.dtype == torch.float32 and f.shape == (12,)
    torch.testing.assert_close(f, torch.tensor(OFFICIAL_12 + OFFICIAL_12[::-1]), atol=1e-8, rtol=0)
    r = design_lowpass_filter(6, 2.0, 4.0, 16, radial=True)
    assert r.shape == (6, 6)
    torch.testing.assert_close(r[:3, :3], torch.tensor(OFFICIAL_RADIAL_6), atol=1e-8, rtol=0)
    torch.testing.assert_close(r, r.flip(0))
    torch.testing.assert_close(r, r.t())
    assert design_lowpass_filter(1, 2.0, 4.0, 16) is None  # identity


CASES = [(12, 2.0, 12.0, 32), (12, 4.0, 8.0, 32), (24, 11.3137, 13.3726, 64), (12, 181.02, 20.0, 512),
         (6, 1.5, 1.0, 8), (13, 3.1, 2.2, 16), (24, 8.0, 0.5, 64)]


@pytest.mark.parametrize("numtaps,cutoff,width,fs", CASES)
def test_design_matches_scipy(numtaps, cutoff, width, fs):
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    ref = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    np.testing.assert_allclose(design_lowpass_filter(numtaps, cutoff, width, fs).numpy(), ref, atol=3e-8, rtol=0)
    beta = signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2)))
    np.testing.assert_allclose(kaiser_window(numtaps, beta), np.kaiser(numtaps, beta), atol=1e-15)
    assert kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2))) == pytest.approx(beta, rel=1e-12)
    # The jinc filter, written out with scipy's J1 (even tap counts: no sample at r = 0).
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(r > 0, special.j1(2 * cutoff * np.pi * r) / (np.pi * r), cutoff)
    f = f * np.outer(np.kaiser(numtaps, beta), np.kaiser(numtaps, beta))
    np.testing.assert_allclose(design_lowpass_filter(numtaps, cutoff, width, fs, radial=True).numpy(),
                               f / f.sum(), atol=3e-8, rtol=0)


def test_design_is_a_lowpass():
    f = design_lowpass_filter(24, 4.0, 4.0, 32).double()
    assert f.sum().item() == pytest.approx(1.0, abs=1e-6)
    spectrum = np.abs(np.fft.rfft(f.numpy(), 4096))  # frequency axis: 0 .. fs/2 = 16
    freq = np.linspace(0, 16, spectrum.size)
    assert np.all(np.abs(spectrum[freq < 2.0] - 1) < 0.02)  # passband
    assert np.all(spectrum[freq > 8.5] < 0.01)  # stopband beyond cutoff + width
    with pytest.raises(ValueError, match="cutoff"):
        design_lowpass_filter(12, 20.0, 4.0, 32)


# ---------------------------------------------------------------------------------------- filtered_lrelu

FU = design_lowpass_filter(12, 2.0, 12.0, 32)
FU4 = design_lowpass_filter(24, 2.0, 12.0, 64)
FD = design_lowpass_filter(12, 4.0, 8.0, 32)
FR = design_lowpass_filter(12, 4.0, 8.0, 32, radial=True)
ASYM = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
FILTER_PAIRS = {"sep": (FU, FD), "radial": (FU, FR), "none": (None, None), "up_only": (FU, None),
                "down_only": (None, FD), "2d_asym": (ASYM, FR), "up4": (FU4, FD)}
PADS = [(9, 8, 9, 8), (-11, -12, -11, -12), (0, 0, 0, 0), (3, -2, 1, 4)]


def _settings(name, monkeypatch):
    if name == "plain":
        return PLAIN
    monkeypatch.setattr(flr, "MATMUL_MAX_SIZE", {"fast-matmul": 10 ** 6, "fast-conv": 0}[name])
    return FAST


@pytest.mark.parametrize("form", ["fast-matmul", "fast-conv"])
@pytest.mark.parametrize("filters", list(FILTER_PAIRS))
def test_fast_matches_reference_values(filters, form, monkeypatch):
    fu, fd = FILTER_PAIRS[filters]
    settings = _settings(form, monkeypatch)
    checked = 0
    for (up, down), pad, flip, clamp, slope, gain in itertools.product(
            [(2, 2), (1, 1), (2, 1), (1, 2), (4, 2)], PADS, [False, True], [None, 0.5], [0.2, 1.0], [2 ** 0.5, 1.0]):
        x = torch.randn(2, 3, 20, 17, dtype=torch.float64)
        b = torch.randn(3, dtype=torch.float64)
        size = filtered_lrelu_output_size((20, 17), fu, fd, up, down, pad)
        if min(size) < 1 or (17 * up + pad[0] + pad[1] < (1 if fu is None else fu.shape[-1])):
            with pytest.raises(ValueError, match="too small"):
                filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=pad, settings=settings)
            continue
        ref = filtered_lrelu_reference(x, fu, fd, b, up=up, down=down, padding=pad, gain=gain, slope=slope,
                                       clamp=clamp, flip_filter=flip)
        got = filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=pad, gain=gain, slope=slope, clamp=clamp,
                             flip_filter=flip, settings=settings)
        assert got.shape == ref.shape == (2, 3, *size)
        torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-12)
        checked += 1
    assert checked > 40


def test_reference_is_the_definition():
    """Step by step with the separable filter as two 1-D passes of the literal upfirdn."""
    x = torch.randn(1, 2, 9, 7, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    pad = (5, 4, 3, 6)
    y = upfirdn2d_reference(x + b.reshape(1, -1, 1, 1), torch.outer(FU, FU).double(), up=2, padding=pad, gain=4.0)
    y = torch.where(y >= 0, y, 0.2 * y) * 1.5
    y = y.clamp(-0.3, 0.3)
    y = upfirdn2d_reference(y, torch.outer(FD, FD).double(), down=2)
    got = filtered_lrelu_reference(x, FU, FD, b, up=2, down=2, padding=pad, gain=1.5, slope=0.2, clamp=0.3)
    torch.testing.assert_close(got, y, atol=1e-6, rtol=1e-6)  # the outer product rounds in float32


@pytest.mark.parametrize("bias", [True, False])
def test_channel_groups_give_the_same_result(monkeypatch, bias):
    """Inference on groups of channels (large intermediates) is the same function."""
    x = torch.randn(2, 5, 20, 20)
    b = torch.randn(5) if bias else None
    kw = dict(up=2, down=2, padding=(9, 8, 9, 8), clamp=0.5, settings=FAST)
    with torch.no_grad():
        whole = filtered_lrelu(x, FU, FR, b, **kw)
        monkeypatch.setattr(flr, "CHUNK_BYTES", 1)  # one channel per group
        grouped = filtered_lrelu(x, FU, FR, b, **kw)
    torch.testing.assert_close(grouped, whole, atol=0, rtol=0)


def test_inputs_are_not_modified_and_dtype_kept():
    x = torch.randn(1, 2, 8, 8)
    keep = x.clone()
    for fu, fd, b, gain in [(None, None, None, 1.0), (FU, FD, None, 1.0), (None, None, torch.zeros(2), 2.0)]:
        y = filtered_lrelu(x, fu, fd, b, up=2 if fu is not None else 1, down=2 if fd is not None else 1,
                           padding=(9, 8, 9, 8) if fu is not None else 0, gain=gain, clamp=0.1, settings=FAST)
        assert y.dtype == x.dtype
        torch.testing.assert_close(x, keep, atol=0, rtol=0)
    y = filtered_lrelu(x.half(), FU, FD, None, up=2, down=2, padding=(9, 8, 9, 8), settings=FAST)
    assert y.dtype == torch.float16


def test_argument_errors():
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="bias"):
        filtered_lrelu(x, b=torch.zeros(3))
    with pytest.raises(ValueError, match="gain"):
        filtered_lrelu(x, gain=0.0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        filtered_lrelu(x[0])
    with pytest.raises(ValueError, match="up and down"):
        filtered_lrelu(x, up=0)
    with pytest.raises(ValueError, match="too small"):
        filtered_lrelu(x, FU, FD, up=2, down=2, padding=-8)


def _grads(fn, inputs):
    """Output, first-order gradients of a random projection, and the gradients of their squared norm."""
    out = fn(*inputs)
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    g1 = torch.autograd.grad((out * proj).sum(), inputs, create_graph=True)
    total = sum(g.square().sum() for g in g1)
    g2 = torch.autograd.grad(total, inputs, allow_unused=True)
    g2 = [torch.zeros_like(x) if g is None else g for g, x in zip(g2, inputs)]
    return [out.detach()] + [g.detach() for g in g1] + [g.detach() for g in g2]


@pytest.mark.parametrize("filters,up,pad", [("sep", 2, (9, 8, 9, 8)), ("radial", 2, (5, 4, 5, 4)),
                                            ("up4", 4, (-6, -9, -6, -9)), ("none", 1, (0, 0, 0, 0))])
@pytest.mark.parametrize("form", ["fast-matmul", "fast-conv"])
def test_fast_first_and_second_order_gradients(filters, up, pad, form, monkeypatch):
    fu, fd = FILTER_PAIRS[filters]
    settings = _settings(form, monkeypatch)
    down = 1 if fd is None else 2
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def op(settings):
        # The bias (and x) enter the second order through x * x, so the lrelu's kink is not all there is.
        return lambda x, b: filtered_lrelu(x * x, fu, fd, b, up=up, down=down, padding=pad, clamp=2.0,
                                           settings=settings)
    fast, plain = _grads(op(settings), [x, b]), _grads(op(PLAIN), [x, b])
    for a, r in zip(fast, plain):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)


def test_gradcheck_fast_form():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def fn(x, b):
        return filtered_lrelu(x, FU, FD, b, up=2, down=2, padding=(9, 8, 9, 8), settings=FAST)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_fast_paths_switch_selects_the_form(monkeypatch):
    calls = []
    monkeypatch.setattr(flr, "filtered_lrelu_reference",
                        lambda *a, **k: calls.append(1) or torch.zeros(1, 1, 1, 1))
    x = torch.randn(1, 1, 8, 8)
    with perf.fast_paths(False):
        filtered_lrelu(x)
    assert calls == [1]
    with perf.fast_paths(True):
        filtered_lrelu(x)
    assert calls == [1]
