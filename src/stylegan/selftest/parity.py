"""Check (a): NVIDIA's fixture reproduced on the chosen device and precision."""
from __future__ import annotations

import torch

from .fixture import OUTPUTS, fixture_calls, fixture_errors, fixture_networks, load_fixture
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


__all__ = ["FP32_ABS_TOL", "LOW_PRECISION_REL_TOL", "check_fixture", "tolerance_text"]
