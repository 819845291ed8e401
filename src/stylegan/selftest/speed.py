"""Check (d): generation and training throughput (img/s) at two small StyleGAN2 configs.

S32 and S64 are the configs of bench/bench.py (whose figures are in docs/performance.md), so the
numbers can be compared with those: S32 is the official `cifar` preset at 32x32 RGB (512 channels,
2 mapping layers); S64 is 64x64 RGB with channel_base 8192, at most 256 channels, 8 mapping
layers. Each measurement takes a few seconds: it is a smoke test of speed, not a benchmark.

gen: `G(z, noise_mode='const')` without autograd, under `_low_precision` for fp16 / bf16.
train: the amortised minibatch of StyleGAN2 training through the same phase code as the
training check: Gmain + Dmain + EMA every minibatch, Greg every `pl_interval` and Dreg every
`r1_interval` minibatches, so img/s = batch / (Gmain + Dmain + EMA + Greg / pl_interval +
Dreg / r1_interval). On CUDA the nets keep the presets' official mixed precision (fp16 in the 4
highest resolutions, clamp 256) unless --dtype fp32 asks for float32 throughout.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..training.config import TrainingConfig
from ..training.plan import fit_mbstd
from ..training.presets import DataShape, resolve_preset, stylegan2_config
from .phases import PhaseNets
from .precision import _low_precision
from .result import require


def _s64() -> TrainingConfig:
    return stylegan2_config(DataShape(64, 3), batch=32, mbstd=4, channel_base=8192, channel_max=256, lr=0.0025,
                            gamma=0.05, ema_kimg=10, map_layers=8, name="S64")


@dataclass(frozen=True)
class SpeedConfig:
    name: str
    make: Callable[[], TrainingConfig]  # the networks, loss and optimizer settings (batch is the budget's)


SPEED_CONFIGS = (SpeedConfig("S32", lambda: resolve_preset("cifar", DataShape(32, 3))), SpeedConfig("S64", _s64))


@dataclass(frozen=True)
class SpeedBudget:
    """Batch sizes and how long to repeat each timed call (at least once, after `warmup` calls)."""

    gen_batch: int
    train_batch: int
    seconds: float  # per timed call
    warmup: int

    @classmethod
    def for_device(cls, device: torch.device, quick: bool) -> "SpeedBudget":
        if device.type == "cuda":
            return cls(gen_batch=64, train_batch=32, seconds=0.3 if quick else 1.0, warmup=3)
        return cls(gen_batch=4 if quick else 16, train_batch=4 if quick else 8, seconds=0.0, warmup=0 if quick else 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_time(fn: Callable[[], object], device: torch.device, budget: SpeedBudget) -> float:
    """Median wall time of `fn` over repeats filling `budget.seconds` (at least one, at most 50)."""
    for _ in range(budget.warmup):
        fn()
    times: list[float] = []
    end = time.perf_counter() + budget.seconds
    while not times or (time.perf_counter() < end and len(times) < 50):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_speed(spec: SpeedConfig, device: torch.device, dtype: str, budget: SpeedBudget) -> dict[str, float]:
    """{'gen': img/s, 'train': img/s} for `spec` on `device`."""
    cfg = spec.make().replace(batch=budget.train_batch)
    if device.type != "cuda" or dtype == "fp32":
        cfg = cfg.replace(G=cfg.G.replace(num_fp16_res=0, conv_clamp=None), D=cfg.D.replace(num_fp16_res=0, conv_clamp=None))
    nets = PhaseNets.build(fit_mbstd(cfg, 1), device)
    z = torch.randn([budget.gen_batch, cfg.G.z_dim], device=device)

    def generate():
        with torch.no_grad(), _low_precision(device, dtype):
            return nets.G_ema(z, noise_mode="const")

    gen_s = _median_time(generate, device, budget)
    real, zt = nets.batch(seed=0)

    def phase(name: str) -> Callable[[], None]:
        def run():
            nets.gradients(name, real, zt)
            nets.network(name)[1].step()
        return run

    loss = cfg.loss
    t = {name: _median_time(phase(name), device, budget) for name in ("Gmain", "Dmain")}
    if loss.pl_weight > 0:
        t["Greg"] = _median_time(phase("Greg"), device, budget) / max(loss.pl_interval, 1)
    if loss.r1_gamma > 0:
        t["Dreg"] = _median_time(phase("Dreg"), device, budget) / max(loss.r1_interval, 1)
    t["ema"] = _median_time(nets.ema, device, budget)
    return {"gen": budget.gen_batch / gen_s, "train": cfg.batch / sum(t.values())}


def check_speed(spec: SpeedConfig, device: torch.device, dtype: str, budget: SpeedBudget) -> str:
    ips = measure_speed(spec, device, dtype, budget)
    require(all(math.isfinite(v) and v > 0 for v in ips.values()), f"no throughput measured: {ips}")
    precision = dtype if dtype == "fp32" or device.type != "cuda" else f"gen {dtype}, train fp16 blocks + clamp"
    return (f"gen {ips['gen']:.1f} img/s (batch {budget.gen_batch}), train {ips['train']:.2f} img/s "
            f"(batch {budget.train_batch}, amortised reg), {precision}")


__all__ = ["SPEED_CONFIGS", "SpeedBudget", "SpeedConfig", "check_speed", "measure_speed"]
