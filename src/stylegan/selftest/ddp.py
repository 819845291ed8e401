"""Check (e): N training processes (gloo on CPU, nccl on CUDA) stay identical.

Runs the library's own multi-process training (`stylegan.training.launch.train` with gpus=N, the
code `stylegan train --gpus N` runs) for a few minibatches of every phase on a small synthetic
dataset. Every process writes its G, D and G_ema after the last minibatch; they must agree bit for
bit: each process applies the same all-reduced gradients to the same weights, so any difference
means a collective or a kernel misbehaves on this machine. The weights must also have left their
initial values (training happened) and the logged losses must be finite.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..models import Generator
from ..training.launch import train
from .phases import small_config
from .result import CheckSkipped, require

STEPS = 3  # minibatches: Gmain / Dmain every one, Greg / Dreg (interval 2) at 0 and 2


class SaveRankWeights:
    """Training callback: after minibatch `last`, each process saves its networks (picklable for spawn)."""

    def __init__(self, folder: str, last: int):
        self.folder, self.last = folder, last

    def __call__(self, trainer) -> None:
        if trainer.state.batch_idx == self.last:
            state = {f"{name}.{k}": v.detach().cpu() for name, m in trainer.stepper.networks.items()
                     for k, v in m.state_dict().items()}
            torch.save(state, os.path.join(self.folder, f"rank{trainer.rank}.pt"))


def write_dataset(folder: Path, n: int = 16, res: int = 32) -> Path:
    """n smooth random RGB images (PNG) in `folder`: training data that needs no download."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rnd = np.random.RandomState(0)
    yy, xx = np.mgrid[:res, :res] / res
    for i in range(n):
        a, b, c = rnd.uniform(0, 2 * np.pi, 3)
        img = np.stack([np.sin(6 * xx + a), np.cos(5 * yy + b), np.sin(4 * (xx + yy) + c)], axis=2)
        Image.fromarray(((img + 1) * 127.5).astype(np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


def check_ddp(device: torch.device, world: int) -> str:
    if world < 2:
        raise CheckSkipped("needs --ddp N with N >= 2")
    if device.type == "mps":
        raise CheckSkipped("multi-process training is not supported on MPS")
    backend = "nccl" if device.type == "cuda" else "gloo"
    cfg = small_config(batch=4 * world)
    cfg = cfg.replace(loss=replace(cfg.loss, r1_interval=2, pl_interval=2), total_kimg=STEPS * cfg.batch / 1000,
                      kimg_per_tick=1000.0, snap=0)
    with tempfile.TemporaryDirectory(prefix="stylegan-selftest-") as tmp:
        data = write_dataset(Path(tmp) / "data")
        result = train(cfg, str(data), device=device.type, gpus=world, write_files=False, quiet=True,
                       threads=1 if device.type == "cpu" else None, workers=0,
                       callback=SaveRankWeights(tmp, STEPS))
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(world)]
    require(result.state.batch_idx == STEPS, f"trained {result.state.batch_idx} minibatches, expected {STEPS}")
    differ = sorted({k for r in ranks[1:] for k in ranks[0] if not torch.equal(ranks[0][k], r[k])})
    require(not differ, f"{len(differ)} tensor(s) differ between the {world} processes, e.g. {differ[:3]}")
    torch.manual_seed(cfg.seed)  # the trainer's initialisation
    init = Generator(cfg.G).state_dict()
    moved = sum(not torch.equal(v, ranks[0][f"G.{k}"]) for k, v in init.items() if v.is_floating_point())
    require(moved > 0, "the generator did not change during training")
    losses = {k: rec[k]["mean"] for rec in result.stats for k in ("Loss/G/loss", "Loss/D/loss") if k in rec}
    require(losses and all(math.isfinite(v) for v in losses.values()), f"logged losses not finite: {losses}")
    return (f"{world} processes ({backend}), {STEPS} minibatches of every phase: G, D, G_ema identical "
            f"({len(ranks[0])} tensors), weights trained, losses finite")


__all__ = ["STEPS", "SaveRankWeights", "check_ddp", "write_dataset"]
