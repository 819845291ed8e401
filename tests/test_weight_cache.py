"""Derived weights reused across calls (stylegan.nn.weight_cache): same function, never stale,
never in training."""
import threading

import pytest
import torch

from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.nn import WeightCache, weight_cache
from stylegan.ops import modulated_conv2d, prepare_weight, setup_filter
from stylegan.synth.sample import generate


def tiny_generator(res=16, seed=0):
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=res, channel_base=8 * res, channel_max=16,
                                  mapping=MappingConfig(num_layers=2)))
    with torch.no_grad():  # non-zero noise strengths and biases, so every term of a layer counts
        for p in G.parameters():
            if p.ndim <= 1:
                p.normal_(0, 0.3)
    return G.eval()


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_prepared_weight_gives_the_same_modulated_conv(up, flip, fused):
    g = torch.Generator().manual_seed(up * 4 + flip * 2 + fused)
    x = torch.randn(3, 5, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64)
    kw = dict(up=up, padding=1, resample_filter=setup_filter([1, 3, 3, 1]).double(), flip_weight=flip, fused=fused)
    plain = modulated_conv2d(x, w, s, **kw)
    prepared = modulated_conv2d(x, w, s, prepared=prepare_weight(w, up=up, flip_weight=flip), **kw)
    torch.testing.assert_close(prepared, plain, rtol=1e-12, atol=1e-12)
    assert (prepare_weight(w, up=up).transposed is None) == (up == 1)


def test_generator_output_is_unchanged_and_derivations_are_reused():
    G = tiny_generator()
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = G(z, None, noise_mode="const")
        cache = WeightCache()
        with weight_cache(cache):
            first = G(z, None, noise_mode="const")
            n = len(cache)
            second = G(z, None, noise_mode="const")
    layers = [m for m in G.modules() if type(m).__name__ == "ModulatedConv2d"]
    assert n == len(layers) > 0  # one entry per synthesis conv, made by the first call
    assert len(cache) == n  # the second call made none
    torch.testing.assert_close(first, plain, rtol=1e-5, atol=1e-6)
    assert torch.equal(first, second)


def test_in_place_weight_updates_invalidate_the_entry():
    G = tiny_generator()
    G2 = tiny_generator(seed=5)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    cache = WeightCache()
    with torch.no_grad(), weight_cache(cache):
        before = G(z, None, noise_mode="const")
        G.load_state_dict(G2.state_dict())  # copy_ into the same tensors: data pointers unchanged
        after = G(z, None, noise_mode="const")
        expected = G2(z, None, noise_mode="const")
        with torch.no_grad():  # an optimizer-like in-place step
            for m in G.modules():
                if type(m).__name__ == "ModulatedConv2d":
                    m.weight.mul_(-0.5)
        stepped = G(z, None, noise_mode="const")
    fresh = G(z, None, noise_mode="const").detach()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stepped, fresh, rtol=1e-5, atol=1e-6)


def test_training_never_uses_the_cache_and_frozen_networks_do():
    G = tiny_generator()
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    cache = WeightCache()
    with weight_cache(cache):  # autograd records gradients for the weights: no entries
        G(z, None).square().sum().backward()
    assert len(cache) == 0
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None for g in grads)

    # A frozen G (the projector): gradients flow to the latents only, and the entries are valid.
    G.requires_grad_(False)
    ws = G.mapping(z, None).detach().requires_grad_(True)
    ref = torch.autograd.grad(G.synthesis(ws, noise_mode="const").sin().sum(), ws)[0]
    with weight_cache(cache):
        got = torch.autograd.grad(G.synthesis(ws, noise_mode="const").sin().sum(), ws)[0]
    assert len(cache) > 0
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_scope_is_per_thread_and_ends_with_the_block():
    G = tiny_generator()
    z = torch.randn(1, 16)
    cache = WeightCache()
    seen = []

    def other():
        with torch.no_grad():
            G(z, None)
        seen.append(len(cache))

    with torch.no_grad(), weight_cache(cache):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == [0]  # the other thread never saw this thread's scope
    with torch.no_grad():
        G(z, None)
    assert len(cache) == 0  # nothing cached outside a scope
    del G
    import gc
    gc.collect()
    assert len(cache) == 0  # entries die with their weights


def test_generate_uses_it_and_matches_plain_calls():
    G = tiny_generator()
    images = generate(G, [0, 1, 2], batch=2)
    from stylegan.synth.sample import z_from_seeds
    with torch.no_grad():
        plain = G(z_from_seeds([0, 1, 2], G.z_dim), None, noise_mode="const")
    torch.testing.assert_close(images, plain, rtol=1e-4, atol=1e-5)  # batches of 2 vs 3: conv algorithms differ


def test_a_library_scope_inside_a_callers_scope_keeps_the_callers_cache():
    """`figures.render` opens `weight_cache()`; inside the explorer's scope it must reuse the
    explorer's (long-lived) cache, not shadow it with a new one per call."""
    from stylegan.synth.figures import render

    G = tiny_generator()
    ws = G.mapping(torch.randn(1, 16), None).detach()
    outer = WeightCache()
    with weight_cache(outer):
        render(G, ws)
        n = len(outer)
        with weight_cache() as inner:
            assert inner is outer
    assert n > 0
    with weight_cache() as fresh:  # no enclosing scope: a new cache for the block
        assert fresh is not outer and len(fresh) == 0
