"""Fast paths (stylegan.perf) against their plain forms: values, first- and second-order gradients."""
import itertools
import warnings

import pytest
import torch

from stylegan import perf
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from stylegan.ops import bias_act, conv2d_resample, modulated_conv2d, setup_filter, upfirdn2d
from stylegan.ops.bias_act import bias_act_reference
from stylegan.ops.conv import choose_fused
from stylegan.ops.filters import _upfirdn2d_fast, upfirdn2d_reference

from official_fixture import load_fixture_networks, needs_fixture


def grads(fn, inputs, create_graph=True):
    """Output, first-order gradients of a random projection, and the gradients of their squared norm."""
    out = fn(*inputs)
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    g1 = torch.autograd.grad((out * proj).sum(), inputs, create_graph=create_graph, allow_unused=True)
    g1 = [torch.zeros_like(x) if g is None else g for g, x in zip(g1, inputs)]
    total = sum((g.square().sum() for g in g1 if g.requires_grad), torch.zeros([], dtype=out.dtype))
    g2 = [torch.zeros_like(x) for x in inputs]
    if total.requires_grad:
        g2 = torch.autograd.grad(total, inputs, allow_unused=True)
        g2 = [torch.zeros_like(x) if g is None else g for g, x in zip(g2, inputs)]
    return out.detach(), [g.detach() for g in g1], [g.detach() for g in g2]


def assert_same(a, b, atol=1e-6, rtol=1e-5):
    (oa, g1a, g2a), (ob, g1b, g2b) = a, b
    torch.testing.assert_close(oa, ob, atol=atol, rtol=rtol)
    for x, y in zip(g1a + g2a, g1b + g2b):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)


def fast_vs_plain(fn, inputs, atol=1e-6, rtol=1e-5, **which):
    with perf.fast_paths(False):
        plain = grads(fn, inputs)
    with perf.fast_paths(True, **which):
        fast = grads(fn, inputs)
    assert_same(fast, plain, atol, rtol)


# ---------------------------------------------------------------------------------------------- ops

FILTERS = {"1331": setup_filter([1, 3, 3, 1]), "121": setup_filter([1, 2, 1]),
           "asym": torch.tensor([[1.0, 2.0], [3.0, 5.0]]), "none": None}
PADS = [(0, 0, 0, 0), (2, 1, 2, 1), (1, 1, 1, 1), (-1, 2, 1, 0), (3, -2, 0, 4), (1, 2, 0, 1)]


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (2, 2)])
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_fast_matches_reference_values(up, down, flip):
    covered = 0
    for (fname, f), pad in itertools.product(FILTERS.items(), PADS):
        x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
        ref = upfirdn2d_reference(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7)
        with perf.fast_paths(True):
            got = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7)
        assert got.shape == ref.shape, (fname, pad)
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10, msg=f"{fname} {pad}")
        ff = torch.ones(1, 1) if f is None else f
        covered += _upfirdn2d_fast(x, ff, up, up, down, down, *pad, flip, 1.7, f is None) is not None
    assert covered > 0 or (up > 1 and down > 1)  # the fast form really ran


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (1, 2, 1, 2)),
                                         (1, 1, (1, 1, 1, 1)), (2, 1, (0, 3, 1, 0))])
def test_upfirdn2d_fast_first_and_second_order_gradients(up, down, pad):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    # upfirdn2d is linear, so make the second order non-trivial with a nonlinearity after it.
    fast_vs_plain(lambda x: upfirdn2d(x, f, up=up, down=down, padding=pad).tanh(), [x], atol=1e-10,
                  rtol=1e-10, upfirdn2d=True)
    if pad in ((2, 1, 2, 1), (1, 1, 1, 1)):  # the resampling cases the networks use
        with perf.fast_paths(True):
            x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
            assert torch.autograd.gradgradcheck(lambda x: upfirdn2d(x, f, up=up, down=down, padding=pad), [x])


@pytest.mark.parametrize("up,down,k", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_fast_matches_plain_with_double_backward(up, down, k, flip_weight):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, k, k, dtype=torch.float64, requires_grad=True)
    fast_vs_plain(lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=k // 2,
                                               flip_weight=flip_weight).sin(), [x, w], atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("form", ["fused", "unfused", "auto"])
def test_modulated_conv2d_fast_forms_match_reference(up, demodulate, form):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    fused = {"fused": True, "unfused": False, "auto": "auto"}[form]

    def fn(fused):
        return lambda x, w, s: modulated_conv2d(x, w, s, up=up, padding=1, resample_filter=f, demodulate=demodulate,
                                                flip_weight=(up == 1), fused=fused).sin()

    with perf.reference_mode():  # the code as first written: reference ops, fused form
        plain = grads(fn(True), [x, w, s])
    with perf.fast_paths(True):
        fast = grads(fn(fused), [x, w, s])
    assert_same(fast, plain, atol=1e-9, rtol=1e-8)


def test_modconv_policy_forces_and_auto_rule():
    x, w = torch.randn(16, 512, 8, 8), torch.randn(512, 512, 3, 3)
    with perf.modconv_policy("fused"):
        assert choose_fused(x, w)
    with perf.modconv_policy("unfused"):
        assert not choose_fused(torch.randn(1, 4, 256, 256), torch.randn(4, 4, 3, 3))
    assert perf.get_modconv_policy() == "auto"
    assert not choose_fused(x, w)  # CPU, 512 channels at 8x8: a grouped conv is ~10x slower
    assert not choose_fused(torch.randn(2, 64, 128, 128), torch.randn(64, 64, 3, 3), up=2)
    assert choose_fused(torch.randn(2, 64, 256, 256), torch.randn(64, 64, 3, 3))  # small weight, big maps
    with pytest.raises(ValueError, match="policy"):
        perf.set_modconv_policy("sometimes")
    with pytest.raises(ValueError, match="fused"):
        modulated_conv2d(x[:1, :4], w[:4, :4], torch.randn(1, 4), fused="maybe")


@pytest.mark.parametrize("act", ["linear", "lrelu", "relu"])
@pytest.mark.parametrize("clamp", [None, 0.6])
@pytest.mark.parametrize("gain", [None, 0.5])
def test_bias_act_fast_matches_reference(act, clamp, gain):
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def fn(x, b):
        return bias_act(x, b, act=act, gain=gain, clamp=clamp) ** 3

    fast_vs_plain(fn, [x, b], atol=1e-10, rtol=1e-10, bias_act=True)
    with torch.no_grad(), perf.fast_paths(True):  # in-place inference form
        torch.testing.assert_close(bias_act(x, b, act=act, gain=gain, clamp=clamp),
                                   bias_act_reference(x, b, act=act, gain=gain, clamp=clamp))
    with perf.fast_paths(True):
        assert torch.autograd.gradgradcheck(lambda x, b: bias_act(x, b, act=act, gain=gain, clamp=clamp), [x, b])


def test_bias_act_fast_keeps_input_and_dim():
    x = torch.randn(4, 6, dtype=torch.float64)
    x0 = x.clone()
    b = torch.randn(4, dtype=torch.float64)
    with perf.fast_paths(True):
        y = bias_act(x, b, act="lrelu", clamp=0.5, dim=0)
    torch.testing.assert_close(y, bias_act_reference(x0, b, act="lrelu", clamp=0.5, dim=0))
    torch.testing.assert_close(x, x0)  # the in-place steps never touch the input
    with pytest.raises(ValueError, match="activation"):
        bias_act(x, act="gelu")


def test_fast_path_switches_restore_state():
    before = perf.get_fast_paths()
    with perf.fast_paths(False, upfirdn2d=True):
        assert perf.get_fast_paths() == {**{k: False for k in before}, "upfirdn2d": True}
    assert perf.get_fast_paths() == before
    with pytest.raises(ValueError, match="unknown fast path"):
        perf.set_fast_paths(warp_drive=True)


def test_switches_are_local_to_the_thread_that_sets_them():
    """A reference-mode block in one thread must not change what another thread computes."""
    import threading

    seen = {}
    inside, release = threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen["paths"], seen["policy"] = perf.get_fast_paths(), perf.get_modconv_policy()
        seen["eager"] = perf.eager_forced()
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with perf.reference_mode(), perf.eager():
        assert perf.get_modconv_policy() == "fused" and not any(perf.get_fast_paths().values())
        inside.set()
        release.wait(5)
    t.join()
    assert seen == {"paths": {"upfirdn2d": True, "demod": True, "bias_act": True, "effnet": True}, "policy": "auto",
                    "eager": False}
    assert perf.get_modconv_policy() == "auto" and all(perf.get_fast_paths().values())


# ------------------------------------------------------------------------------------------ networks


def tiny_nets(res=16, **g_kw):
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=res, channel_base=8 * res, channel_max=16,
                                  mapping=MappingConfig(num_layers=2), conv_clamp=256, **g_kw))
    D = build_discriminator(DiscriminatorConfig(img_resolution=res, channel_base=8 * res, channel_max=16,
                                                mbstd_group_size=2, conv_clamp=256))
    for m in G.noise_inputs().values():
        m.strength.data.fill_(0.3)
    return G, D


def r1_and_pl_grads(G, D, z, real, fused):
    """R1 and path-length penalties as in training (create_graph), and the parameter gradients."""
    out = {}
    real = real.detach().requires_grad_(True)
    logits = D(real)
    (g,) = torch.autograd.grad(logits.sum(), [real], create_graph=True)
    r1 = g.square().sum([1, 2, 3]).mean()
    out["r1_params"] = torch.autograd.grad(r1, list(D.parameters()), allow_unused=True)
    ws = G.mapping(z)
    img = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
    noise = torch.randn(img.shape, generator=torch.Generator().manual_seed(2)) / img.shape[2]
    (g,) = torch.autograd.grad((img * noise).sum(), [ws], create_graph=True)
    pl = g.square().sum(2).mean(1).sqrt().mean()
    out["pl_params"] = torch.autograd.grad(pl, list(G.synthesis.parameters()), allow_unused=True)
    out["img"] = img.detach()
    out["logits"] = logits.detach()
    return out


@pytest.mark.parametrize("channels_last", [False, True])
def test_networks_fast_paths_match_reference_including_r1_and_pl(channels_last):
    G, D = tiny_nets()
    z, real = torch.randn(4, 16), torch.randn(4, 3, 16, 16)
    with perf.reference_mode():
        ref = r1_and_pl_grads(G, D, z, real, fused=True)
    perf.set_channels_last(G, channels_last)
    perf.set_channels_last(D, channels_last)
    try:
        for fused in ("auto", False):
            fast = r1_and_pl_grads(G, D, z, real, fused=fused)
            torch.testing.assert_close(fast["img"], ref["img"], atol=1e-5, rtol=0)
            torch.testing.assert_close(fast["logits"], ref["logits"], atol=1e-5, rtol=0)
            for key in ("r1_params", "pl_params"):
                for a, b, p in zip(fast[key], ref[key], G.synthesis.parameters() if key == "pl_params" else D.parameters()):
                    # None (unused) and zeros are the same gradient
                    a = torch.zeros_like(p) if a is None else a
                    b = torch.zeros_like(p) if b is None else b
                    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    finally:
        perf.set_channels_last(G, False)
        perf.set_channels_last(D, False)


def test_set_channels_last_switches_every_block():
    G, D = tiny_nets()
    assert perf.set_channels_last(G) == len(G.synthesis.block_resolutions)
    assert perf.set_channels_last(D) == len(D.block_resolutions)
    assert perf.set_channels_last(G, False) == len(G.synthesis.block_resolutions)


@needs_fixture
@pytest.mark.parametrize("fused", [True, False, "auto"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_official_fixture_parity_on_every_fast_path(fused, channels_last):
    data, _, G, D = load_fixture_networks()
    perf.set_channels_last(G, channels_last)
    perf.set_channels_last(D, channels_last)
    z = torch.from_numpy(data["in.z"])
    with torch.no_grad(), perf.fast_paths(True):
        ws = G.mapping(z)
        outs = {"out.img_const": G.synthesis(ws, noise_mode="const", fused_modconv=fused),
                "out.img_none": G.synthesis(ws, noise_mode="none", fused_modconv=fused),
                "out.d_logits": D(torch.from_numpy(data["out.img_const"]))}
    for k, v in outs.items():
        assert (v - torch.from_numpy(data[k])).abs().max() <= 1e-5, k


# ------------------------------------------------------------------------------------------ compile


class _Boom(RuntimeError):
    pass


def failing_compiler(module, **kw):
    def compiled(*args, **kwargs):
        raise _Boom("simulated inductor failure")
    return compiled


def test_maybe_compile_falls_back_to_eager_with_a_warning():
    G, D = tiny_nets()
    wrapped = perf.maybe_compile(D, True, compiler=failing_compiler)
    x = torch.randn(2, 3, 16, 16)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        out = wrapped(x)
    torch.testing.assert_close(out, D(x))
    assert "simulated inductor failure" in wrapped.compile_failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; eager from now on
        torch.testing.assert_close(wrapped(x), D(x))
    # The wrapper behaves like the module: attributes, parameters, unwrap.
    assert wrapped.img_resolution == 16 and perf.unwrap(wrapped) is D
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in D.parameters()}
    # R1 (double backward) through the wrapper works and matches the module's.
    def r1(m):
        real = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(m(real).sum(), [real], create_graph=True)
        return torch.autograd.grad(g.square().sum(), [D.b16.conv0.weight, D.b4.fc.weight])

    for a, b in zip(r1(wrapped), r1(D)):
        torch.testing.assert_close(a, b)


def test_maybe_compile_unavailable_compiler_and_disabled():
    G, D = tiny_nets()

    def broken(module, **kw):
        raise RuntimeError("no compiler on this platform")

    with pytest.warns(RuntimeWarning, match="unavailable"):
        wrapped = perf.maybe_compile(D, True, compiler=broken)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(wrapped(x), D(x))
    assert perf.maybe_compile(D, False) is D


def test_maybe_compile_keeps_genuine_errors_and_eager_context():
    G, D = tiny_nets()
    calls = []

    def recording(module, **kw):
        def compiled(*args, **kwargs):
            calls.append(1)
            return module(*args, **kwargs)
        return compiled

    wrapped = perf.maybe_compile(D, True, compiler=recording)
    with pytest.raises(ValueError, match="images must be"):
        wrapped(torch.randn(2, 3, 8, 8))  # the module's own error, not a compiler failure
    assert wrapped.compile_failed is None
    wrapped(torch.randn(2, 3, 16, 16))
    n = len(calls)
    with perf.eager():
        wrapped(torch.randn(2, 3, 16, 16))
    assert len(calls) == n  # inside eager() the compiled callable is bypassed


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside torch
def test_torch_compile_forward_matches_and_r1_runs_eager():
    G, D = tiny_nets(res=8)
    wrapped = perf.maybe_compile(D, True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(wrapped(x), D(x), atol=1e-5, rtol=1e-5)
    with perf.eager():
        real = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(wrapped(real).sum(), [real], create_graph=True)
        g.square().sum().backward()


# --------------------------------------------------------------------------------- precision, malloc


def test_allocator_info_names_the_allocator(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1000000")
    info = perf.allocator_info()
    assert info["GLIBC_TUNABLES"] == "glibc.malloc.mmap_threshold=1000000"
    assert info["allocator"]


def test_retain_malloc_in_a_subprocess():
    """mallopt changes the whole process, so check it in a child (glibc only)."""
    import subprocess
    import sys

    code = ("from stylegan import perf; ok = perf.retain_malloc(); info = perf.allocator_info(); "
            "import torch; x = torch.ones(64 << 20, dtype=torch.uint8); del x; "
            "print(ok, info.get('mallopt', ''))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ok, _, mallopt = out.stdout.strip().partition(" ")
    if ok == "True":
        assert "M_MMAP_MAX=0" in mallopt
    else:
        assert ok == "False" and not mallopt  # not glibc: nothing applied, nothing claimed


@pytest.mark.parametrize("retain", [True, False])
def test_cpu_training_process_retains_malloc_unless_told_not_to(retain):
    """`stylegan train` on CPU applies retain_malloc (default) and leaves glibc alone with --no-retain-malloc."""
    import subprocess
    import sys

    code = ("import torch; from stylegan import perf; from stylegan.training.launch import configure_process; "
            f"configure_process(torch.device('cpu'), 1, None, {retain}); "
            "print(perf.allocator_info().get('mallopt', ''))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    glibc = subprocess.run([sys.executable, "-c", "from stylegan import perf; print(perf.retain_malloc(False))"],
                           capture_output=True, text=True, timeout=120).stdout.strip() == "True"
    assert ("M_MMAP_MAX=0" in out.stdout) == (retain and glibc)


# ------------------------------------------------------------------------- metrics' EfficientNet


def test_effnet_fast_features_match_reference_values_and_input_gradients(one_thread):
    from stylegan.metrics.effnet import EffNetFeatureDetector, fold_batchnorm, load_effnet_lite0, normalize_uint8

    det = EffNetFeatureDetector(load_effnet_lite0())
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)  # 6: chunks of 4 and 2
    with perf.fast_paths(False):
        ref, ref_p = det(images), det.probabilities(images)
    fast, fast_p = det(images), det.probabilities(images)
    assert det._fast is not None  # the fast form really ran
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast_p, ref_p, atol=1e-5, rtol=1e-4)
    # the folded network is the same differentiable function of its input (values and gradients)
    x = normalize_uint8(images[:2], size=64).requires_grad_(True)
    folded = fold_batchnorm(det.net)
    (g_ref,) = torch.autograd.grad(det.net.run(x).pooled.square().sum(), [x])
    (g_fast,) = torch.autograd.grad(folded.run(x.contiguous(memory_format=torch.channels_last)).pooled.square().sum(), [x])
    torch.testing.assert_close(g_fast, g_ref, atol=1e-4, rtol=1e-3)
    assert all(not isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())


def test_metrics_loader_processes_only_with_spare_cores(monkeypatch):
    import os

    from stylegan.metrics.features import MetricOptions, loader_workers

    opts = MetricOptions(device="cpu", batch=8, num_workers=2, progress=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert loader_workers(opts, 1000) == 0  # 2 detector threads on 2 cores: no room for loaders
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert loader_workers(opts, 1000) == 2
    assert loader_workers(opts, 20) == 0  # a few batches: not worth starting processes
