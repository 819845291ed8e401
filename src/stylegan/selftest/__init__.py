"""`stylegan selftest`: is this installation correct on this device, and how fast is it?

Checks (each a small function; `runner.plan` lists them in order):

- fixture: NVIDIA's StyleGAN2 outputs (package data, see data/README.md) reproduced through the
  official-weight import, in fp32 to 1e-4 or in fp16 / bf16 to a stated looser bound;
- train/phases: a few steps of G main, G reg (path length), D main, D reg (R1) and the EMA at a
  small config: finite losses and gradients, parameters moved, G_ema followed;
- train/fp16-clamp: the fp16 + conv_clamp scheme of the official code (CUDA only);
- fast/*: each op's fast path against its reference form, values and 1st / 2nd order gradients,
  then whole networks through the four phases;
- speed/S32, speed/S64: generation and training img/s;
- ddp/N (with --ddp N): N training processes stay bit-identical.

The header names the environment and, on its second line, the code paths in force
(`stylegan.nn.Runtime.describe()`: fast paths, modconv policy, precision, weight cache, eager).

Python: `run_selftest(SelftestOptions(device="cuda", quick=True))` returns the `CheckResult`s.
"""
from .result import CheckResult
from .runner import SelftestOptions, run_selftest

__all__ = ["CheckResult", "SelftestOptions", "run_selftest"]
