"""Check (a): NVIDIA's fixtures (StyleGAN2; StyleGAN3 configs T and R) reproduced on the chosen
device and precision."""
from __future__ import annotations

import torch

from .fixture import (OUTPUTS, SG3_FIXTURES, SG3_OUTPUTS, fixture_calls, fixture_errors, fixture_networks,
                      load_fixture, sg3_fixture_calls, sg3_fixture_errors, sg3_fixture_generator)
from .precision import _low_precision, strict_fp32
from .result import require

# fp32: an absolute bound, the same as the tests (tests/test_official.py). fp16 / bf16: relative to
# each output's largest |value| (outputs span 4-8 here). Measured on CPU under autocast: fp16 <= 0.2%,
# bf16 <= 1.6% of the range, i.e. a few units of the formats' rounding (2^-11, 2^-8) carried through
# 8 mapping and 10 synthesis layers; the bounds leave 3-5x headroom for other kernels.
FP32_ABS_TOL = 1e-4
LOW_PRECISION_REL_TOL = {"fp16": 1e-2, "bf16": 5e-2}


def tolerance_text(dtype: str) -> str:
    if dtype == "fp32":
        return f"max abs error <= {FP32_ABS_TOL:g}"
    return f"max abs error <= {LOW_PRECISION_REL_TOL[dtype]:g} x max |official output|"


def check_fixture(device: torch.device, dtype: str = "fp32") -> str:
    """Our networks, loaded through the official-weight mapping, reproduce every fixture output."""
    fx = load_fixture()
    G, D = (m.to(device) for m in fixture_networks(fx))
    with strict_fp32(device), _low_precision(device, dtype):
        out = fixture_calls(G, D, fx.tensors["in.z"].to(device))
    errors = fixture_errors(out, fx)
    if dtype == "fp32":
        bounds = {k: FP32_ABS_TOL for k in OUTPUTS}
    else:
        bounds = {k: LOW_PRECISION_REL_TOL[dtype] * fx.tensors[k].abs().max().item() for k in OUTPUTS}
    short = {k.removeprefix("out."): v for k, v in errors.items()}
    worst = max(errors, key=lambda k: errors[k] / bounds[k])
    bad = [k.removeprefix("out.") for k in OUTPUTS if not errors[k] <= bounds[k]]  # NaN fails too
    summary = ", ".join(f"{k} {v:.1e}" for k, v in short.items())
    require(not bad, f"{', '.join(bad)} off NVIDIA's outputs ({tolerance_text(dtype)}): {summary}")
    return (f"{len(OUTPUTS)} official outputs, worst {worst.removeprefix('out.')} {errors[worst]:.1e} "
            f"({tolerance_text(dtype)})")


# StyleGAN3's gradient w.r.t. ws sums ~10^4 float32 terms whose leaky-ReLU branch flips where a
# pre-activation is within rounding of 0; NVIDIA's own float32 gradient is 1.3e-4 of its largest
# value off a float64 evaluation (ours: 1e-6). Gradients are held to 1e-3 of their largest value.
SG3_GRAD_REL_TOL = 1e-3
# 16 bits in every synthesis layer (autocast; the mapping in float32), relative to each output's
# largest |value|. Measured on CPU: fp16 <= 0.7%, bf16 <= 5.5% (15 layers of 8-bit mantissas; the
# StyleGAN2 fixture's 10 layers stay under 1.6%).
SG3_LOW_PRECISION_REL_TOL = {"fp16": 3e-2, "bf16": 1.2e-1}


def check_sg3_fixture(device: torch.device, dtype: str = "fp32") -> str:
    """StyleGAN3 configs T and R, built from NVIDIA's kwargs and loaded through the official-weight
    mapping, reproduce the recorded mapping, images (plain, truncated, user-transformed),
    intermediate feature maps and the gradient w.r.t. ws."""
    parts, bad = [], []
    for config, path in SG3_FIXTURES.items():
        fx = load_fixture(path)
        G = sg3_fixture_generator(fx).to(device)
        with strict_fp32(device):
            out = sg3_fixture_calls(G, fx, device, lambda: _low_precision(device, dtype))
        errors = sg3_fixture_errors(out, fx)
        scale = {k: fx.tensors[k].abs().max().item() for k in SG3_OUTPUTS}
        if dtype == "fp32":
            bounds = {k: SG3_GRAD_REL_TOL * scale[k] if k == "out.grad_ws" else FP32_ABS_TOL for k in SG3_OUTPUTS}
        else:  # values only: a 16-bit backward is not what this fixture checks
            rel = SG3_LOW_PRECISION_REL_TOL[dtype]
            bounds = {k: rel * scale[k] if k != "out.grad_ws" else float("inf") for k in SG3_OUTPUTS}
        bad += [f"{config}:{k.removeprefix('out.')}" for k in SG3_OUTPUTS if not errors[k] <= bounds[k]]
        values = [k for k in SG3_OUTPUTS if k != "out.grad_ws"]
        if dtype == "fp32":
            worst = max(values, key=lambda k: errors[k])
            text = f"worst {worst.removeprefix('out.')} {errors[worst]:.1e}"
        else:
            worst = max(values, key=lambda k: errors[k] / scale[k])
            text = f"worst {worst.removeprefix('out.')} {errors[worst] / scale[worst]:.1%} of its range"
        parts.append(f"{config}: {text}, grad {errors['out.grad_ws'] / scale['out.grad_ws']:.1e} rel")
    if dtype == "fp32":
        rule = f"{tolerance_text(dtype)}, gradients {SG3_GRAD_REL_TOL:g} x max |official gradient|"
    else:
        rule = f"max abs error <= {SG3_LOW_PRECISION_REL_TOL[dtype]:g} x max |official output|"
    require(not bad, f"{', '.join(bad)} off NVIDIA's StyleGAN3 outputs ({rule}): " + "; ".join(parts))
    return f"configs T and R, {len(SG3_OUTPUTS)} official outputs each: " + "; ".join(parts)


__all__ = ["FP32_ABS_TOL", "LOW_PRECISION_REL_TOL", "SG3_GRAD_REL_TOL", "SG3_LOW_PRECISION_REL_TOL", "check_fixture", "check_sg3_fixture",
           "tolerance_text"]
