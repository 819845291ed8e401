"""Check (c): every op's fast path agrees with its reference form on this device.

`stylegan.ops` evaluates upfirdn2d, bias_act and the demodulation by a fast form unless
`stylegan.perf.fast_paths(False)` selects the plain form as first written, and picks the fused or
unfused modulated convolution per layer (`perf.modconv_policy`). tests/test_perf.py proves them
equal on the CPU in float64; a new device has its own kernels (grouped and transposed
convolutions, strided depthwise filters), so here each pair is compared on the chosen device in
float32: the values, the gradients of a fixed random projection, and the gradients of that
gradient's squared norm (R1 and path length differentiate twice). Then whole networks: the four
training phases' losses and parameter gradients in reference mode against the defaults.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, ContextManager, Sequence

import torch

from .. import perf
from ..models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from ..nn import WeightCache, weight_cache
from ..ops import bias_act, conv2d_resample, conv2d_resample_reference, modulated_conv2d, setup_filter, upfirdn2d
from ..training.config import LossConfig
from .phases import PHASES, _phase_losses
from .precision import strict_fp32
from .result import require

# Largest |fast - reference| allowed, relative to the largest |reference| of the same tensor. The
# forms differ only in summation order (float32 rounding ~1e-7 per op); a wrong index or scale
# shows up at 1e-3 and above.
REL_TOL = 1e-4


def _value_and_grads(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[fn(inputs), d<fn, P>/d inputs..., d|d<fn, P>/d inputs|^2 / d inputs...] for a fixed random P."""
    out = fn(*inputs)
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device, out.dtype)
    g1 = torch.autograd.grad((out * proj).sum(), inputs, create_graph=True, allow_unused=True)
    g1 = [torch.zeros_like(x) if g is None else g for g, x in zip(g1, inputs)]
    norm = sum((g.square().sum() for g in g1 if g.requires_grad), torch.zeros([], device=out.device))
    g2 = torch.autograd.grad(norm, inputs, allow_unused=True) if norm.requires_grad else [None] * len(inputs)
    g2 = [torch.zeros_like(x) if g is None else g for g, x in zip(g2, inputs)]
    return [t.detach() for t in (out, *g1, *g2)]


def _worst_error(fast: Sequence[torch.Tensor], ref: Sequence[torch.Tensor], labels: Sequence[str]) -> tuple[float, str]:
    """(largest relative error, label of the tensor it is in) over paired tensors."""
    worst, where = 0.0, labels[0]
    for a, b, label in zip(fast, ref, labels):
        scale = b.abs().max().item()
        err = (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()
        if not err <= worst:  # NaN propagates as the worst
            worst, where = err, label
    return worst, where


def _compare(what: str, fn_fast: Callable, fn_ref: Callable, inputs: Sequence[torch.Tensor],
             fast_ctx: Callable[[], ContextManager], ref_ctx: Callable[[], ContextManager], device: torch.device) -> float:
    """Run both forms, require agreement of values and 1st / 2nd order gradients; worst error."""
    inputs = [x.to(device).requires_grad_(True) for x in inputs]
    with strict_fp32(device):
        with ref_ctx():
            ref = _value_and_grads(fn_ref, inputs)
        with fast_ctx():
            fast = _value_and_grads(fn_fast, inputs)
    n = len(inputs)
    labels = ["value"] + [f"grad{i}" for i in range(n)] + [f"grad2_{i}" for i in range(n)]
    err, where = _worst_error(fast, ref, labels)
    require(err <= REL_TOL, f"{what}: fast vs reference differ by {err:.2e} (relative, in {where}) > {REL_TOL:g}")
    return err


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


FILTER = setup_filter([1, 3, 3, 1])


def check_upfirdn2d(device: torch.device) -> str:
    f = FILTER.to(device)
    worst = 0.0
    for up, down, pad in ((2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (1, 2, 1, 2))):
        def fn(x, up=up, down=down, pad=pad):  # tanh: a non-linearity, so 2nd order gradients are not 0
            return upfirdn2d(x, f, up=up, down=down, padding=pad).tanh()

        worst = max(worst, _compare(f"upfirdn2d up {up} down {down}", fn, fn, [_randn(2, 3, 9, 9, seed=up + down)],
                                    lambda: perf.fast_paths(True), lambda: perf.fast_paths(False), device))
    return f"up 2, down 2, filter only: worst {worst:.1e} (values, 1st + 2nd order grads; <= {REL_TOL:g})"


def check_conv2d_resample(device: torch.device) -> str:
    """The fused resampling convolutions (transposed / strided) against FIR -> conv -> FIR."""
    f = FILTER.to(device)
    worst = 0.0
    for up, down, k in ((2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)):
        def fast(x, w, up=up, down=down, k=k):
            return conv2d_resample(x, w, f, up=up, down=down, padding=k // 2).sin()

        def ref(x, w, up=up, down=down, k=k):
            return conv2d_resample_reference(x, w, f, up=up, down=down, padding=k // 2).sin()

        worst = max(worst, _compare(f"conv2d_resample up {up} down {down} {k}x{k}", fast, ref,
                                    [_randn(2, 3, 8, 8, seed=1), _randn(4, 3, k, k, seed=2)],
                                    lambda: perf.fast_paths(True), lambda: perf.fast_paths(False), device))
    return f"up 2 / down 2, 3x3 and 1x1 kernels: worst {worst:.1e}"


def check_modulated_conv2d(device: torch.device) -> str:
    """Fused, unfused and auto forms with the fast demodulation against the code as first written."""
    f = FILTER.to(device)
    inputs = [_randn(2, 3, 6, 6, seed=3), _randn(4, 3, 3, 3, seed=4), _randn(2, 3, seed=5)]
    worst = 0.0
    for up in (1, 2):
        for fused in (True, False, "auto"):
            def fn(x, w, s, fused=fused, up=up):
                return modulated_conv2d(x, w, s, up=up, padding=1, resample_filter=f, flip_weight=(up == 1),
                                        fused=fused).sin()

            def ref(x, w, s, up=up):  # run in reference mode: the code as first written
                return modulated_conv2d(x, w, s, up=up, padding=1, resample_filter=f, flip_weight=(up == 1),
                                        fused=True).sin()

            worst = max(worst, _compare(f"modulated_conv2d up {up} fused={fused}", fn, ref, inputs,
                                        lambda: perf.fast_paths(True), perf.reference_mode, device))
    return f"fused / unfused / auto, up 1 and 2: worst {worst:.1e}"


def check_bias_act(device: torch.device) -> str:
    worst = 0.0
    for act, clamp in (("lrelu", None), ("lrelu", 0.8), ("linear", None)):
        def fn(x, b, act=act, clamp=clamp):
            return bias_act(x, b, act=act, clamp=clamp).sin()

        worst = max(worst, _compare(f"bias_act {act} clamp {clamp}", fn, fn, [_randn(3, 5, 4, 4, seed=6), _randn(5, seed=7)],
                                    lambda: perf.fast_paths(True), lambda: perf.fast_paths(False), device))
    return f"lrelu (with and without clamp), linear: worst {worst:.1e}"


def _tiny_networks(device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """16 px G and D with 16 channels; noise strengths non-zero so the noise path is exercised."""
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=128, channel_max=16,
                                  mapping=MappingConfig(num_layers=2), conv_clamp=256))
    D = build_discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16,
                                                mbstd_group_size=2, conv_clamp=256))
    for m in G.noise_inputs().values():
        m.strength.data.fill_(0.3)
    return G.to(device).train().requires_grad_(False), D.to(device).train().requires_grad_(False)


def _phase_gradients(G, D, phase: str, real: torch.Tensor, z: torch.Tensor) -> tuple[list[torch.Tensor], list[str]]:
    """The phase's reported losses and its network's parameter gradients (one random draw, seed 0)."""
    module = G if phase.startswith("G") else D
    module.requires_grad_(True)
    torch.manual_seed(0)  # style mixing, noise inputs and path-length probes: the same for both forms
    losses = _phase_losses(G, D, LossConfig(r1_gamma=1.0), phase, real, z)
    module.requires_grad_(False)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in module.parameters()]
    for p in module.parameters():
        p.grad = None
    names = sorted(losses)
    return [losses[k].reshape(1) for k in names] + [torch.cat([g.flatten() for g in grads])], names + ["grads"]


def check_networks(device: torch.device) -> str:
    """The four training phases (incl. R1 and path length) in reference mode vs the defaults."""
    G, D = _tiny_networks(device)
    real, z = _randn(4, 3, 16, 16, seed=8).to(device), _randn(4, 16, seed=9).to(device)
    worst, notes = 0.0, []
    for phase in PHASES:
        with strict_fp32(device):
            with perf.reference_mode():
                ref, labels = _phase_gradients(copy.deepcopy(G), copy.deepcopy(D), phase, real, z)
            fast, _ = _phase_gradients(copy.deepcopy(G), copy.deepcopy(D), phase, real, z)  # the defaults
        err, where = _worst_error(fast, ref, labels)
        require(err <= REL_TOL, f"{phase}: defaults vs reference mode differ by {err:.2e} (relative, in {where})")
        worst = max(worst, err)
        notes.append(phase)
    return f"G + D losses and parameter gradients of {', '.join(notes)}: worst {worst:.1e}"


def check_weight_cache(device: torch.device) -> str:
    """Inference that reuses derived weights (`stylegan.nn.weight_cache`: sum_k w^2 and the
    transposed upsampling weights, computed once) against recomputing them every call: the
    synthesis image and its first / second-order gradients w.r.t. ws (what the projector needs)."""
    G, _ = _tiny_networks(device)
    ws = G.mapping(_randn(3, 16, seed=10).to(device), None).detach()
    cache = WeightCache()
    with torch.no_grad(), weight_cache(cache):
        G.synthesis(ws, noise_mode="const")  # fill it: the compared call reuses the entries
    require(len(cache) > 0, "no synthesis layer stored derived weights inside weight_cache()")

    def fn(w):
        return G.synthesis(w, noise_mode="const").sin()

    worst = _compare("synthesis with reused derived weights", fn, fn, [ws.cpu()],
                     lambda: weight_cache(cache), contextlib.nullcontext, device)
    return f"{len(cache)} layers' entries reused; image and ws gradients: worst {worst:.1e}"


# name -> check, in the order they run
CHECKS: dict[str, Callable[[torch.device], str]] = {
    "fast/upfirdn2d": check_upfirdn2d,
    "fast/conv2d_resample": check_conv2d_resample,
    "fast/modconv": check_modulated_conv2d,
    "fast/bias_act": check_bias_act,
    "fast/networks": check_networks,
    "fast/weight_cache": check_weight_cache,
}

__all__ = ["CHECKS", "REL_TOL", "check_upfirdn2d", "check_conv2d_resample", "check_modulated_conv2d",
           "check_bias_act", "check_networks", "check_weight_cache"]
