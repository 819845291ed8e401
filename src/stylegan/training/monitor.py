"""What the loop watches at every tick: loss statistics, the NaN policy, the tick line and record.

Per-sample values reported by the loss are summed on the device (no host sync per minibatch) and
reduced over processes once per tick, like the official `training_stats`; the tick line and the
stats.jsonl record are built from the reduced values by pure functions.
"""
from __future__ import annotations

import math
import os
import resource
import sys
from dataclasses import dataclass
from typing import Optional

import torch

from .. import distributed as ddp
from ..util import format_time

# Statistics reported by the loss and reduced over ranks at every tick (a fixed list keeps the
# all_reduce layout identical on every rank).
STAT_NAMES = ("Loss/G/loss", "Loss/G/reg", "Loss/pl_penalty", "Loss/D/loss", "Loss/D/reg", "Loss/r1_penalty",
              "Loss/gp", "Loss/scores/real", "Loss/scores/fake", "Loss/signs/real", "Loss/signs/fake",
              "Loss/G/cls", "Loss/D/cls", "Loss/D/cls_accuracy")  # the last three: AC-GAN (cls_weight)
# Values whose non-finiteness counts as a diverging run.
LOSS_NAMES = ("Loss/G/loss", "Loss/G/reg", "Loss/D/loss", "Loss/D/reg", "Loss/G/cls", "Loss/D/cls")


class TickStats:
    """Sums / squares / counts of reported per-sample values on the device; reduced at tick end."""

    def __init__(self, device: torch.device):
        self.device = device
        self.index = {n: i for i, n in enumerate(STAT_NAMES)}
        self.reset()

    def reset(self) -> None:
        self.acc = torch.zeros([len(STAT_NAMES), 3], dtype=torch.float32, device=self.device)
        self.nonfinite = torch.zeros([], dtype=torch.float32, device=self.device)

    def report(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().flatten().to(torch.float32)
        if name in LOSS_NAMES:
            self.nonfinite += (~torch.isfinite(v)).sum()
        self.acc[self.index[name]] += torch.stack([v.sum(), v.square().sum(),
                                                   torch.tensor(float(v.numel()), device=v.device)])

    def collect(self) -> tuple[dict[str, dict], int]:
        """{name: {num, mean, std}} over all processes since the last call, and the non-finite count."""
        flat = torch.cat([self.acc.flatten(), self.nonfinite.reshape(1)])
        ddp.all_reduce_(flat)
        flat = flat.cpu().to(torch.float64)
        self.reset()
        acc, nonfinite = flat[:-1].reshape(len(STAT_NAMES), 3), int(flat[-1])
        out = {}
        for name, (s, sq, n) in zip(STAT_NAMES, acc.tolist()):
            if n > 0:
                mean = s / n
                var = max(sq / n - mean * mean, 0.0) if math.isfinite(mean) else float("nan")
                out[name] = {"num": int(n), "mean": mean, "std": math.sqrt(var) if math.isfinite(var) else var}
        return out, nonfinite


class DivergenceMonitor:
    """The NaN policy (docs/training.md 'Non-finite values').

    Per minibatch the gradients go through nan_to_num (NaN -> 0, +-Inf -> +-1e5) before the
    optimizer step, as in the official loop, so a single bad minibatch does not poison the weights.
    At every tick:
      * any non-finite weight or buffer in G, D or G_ema -> stop now (it cannot recover);
      * a non-finite loss value (G / D main or regularization term) makes the tick *bad*: no
        snapshot is written for it (the last good one is kept), and after `nan_ticks`
        consecutive bad ticks the run stops.
    """

    def __init__(self, nan_ticks: int = 3, bad_ticks: int = 0):
        self.nan_ticks = max(int(nan_ticks), 1)
        self.bad_ticks = bad_ticks

    def update(self, nonfinite_losses: int, weights_finite: bool) -> tuple[bool, Optional[str]]:
        """-> (this tick may be snapshotted, reason to stop or None)."""
        if not weights_finite:
            self.bad_ticks += 1
            return False, "network weights became NaN/Inf"
        if nonfinite_losses > 0:
            self.bad_ticks += 1
            if self.bad_ticks >= self.nan_ticks:
                return False, (f"losses were NaN/Inf in {self.bad_ticks} consecutive ticks "
                               f"({nonfinite_losses} non-finite values in the last one)")
            return False, None
        self.bad_ticks = 0
        return True, None


def all_finite(*modules: torch.nn.Module) -> bool:
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return False
    return True


def cpu_memory_gb() -> float:
    """Resident set size of this process in GiB (peak when the current value is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)


@dataclass(frozen=True)
class TickTiming:
    """Wall-clock facts of one tick (seconds) and the memory it peaked at (GiB)."""

    total: float  # since the run (or the resumed run) started
    tick: float  # this tick's training time
    kimg: float  # thousands of images this tick trained on
    maintenance: float  # snapshots, grids and metrics of the previous tick
    cpu_mem: float
    gpu_mem: float


def tick_line(tick: int, kimg: float, timing: TickTiming, augment_p: float, stats: dict[str, dict],
              progressive: Optional[tuple[int, float]] = None) -> str:
    """The official-style log line of a tick (progressive: (resolution, lod) of the current phase)."""

    def m(name):
        return stats[name]["mean"] if name in stats else float("nan")

    sec_per_kimg = timing.tick / max(timing.kimg, 1e-3)
    fields = [f"tick {tick:<5d}", f"kimg {kimg:<8.1f}", f"time {format_time(timing.total):<12s}",
              f"sec/tick {timing.tick:<7.1f}", f"sec/kimg {sec_per_kimg:<7.2f}",
              f"maintenance {timing.maintenance:<6.1f}", f"cpumem {timing.cpu_mem:<6.2f}",
              f"gpumem {timing.gpu_mem:<6.2f}", f"augment {augment_p:.3f}",
              f"G {m('Loss/G/loss'):.3f}", f"D {m('Loss/D/loss'):.3f}"]
    for key, label in (("Loss/r1_penalty", "R1"), ("Loss/gp", "GP"), ("Loss/pl_penalty", "PL"),
                       ("Loss/G/cls", "Gcls"), ("Loss/D/cls", "Dcls")):
        if key in stats:
            fields.append(f"{label} {m(key):.4f}")
    if "Loss/D/cls_accuracy" in stats:
        fields.append(f"Dacc {m('Loss/D/cls_accuracy'):.2f}")
    if progressive is not None:
        fields.append(f"res {progressive[0]} lod {progressive[1]:.3f}")
    return " ".join(fields)


def tick_record(tick: int, kimg: float, timing: TickTiming, augment_p: float, stats: dict[str, dict],
                nonfinite: int, timestamp: float) -> dict:
    """The stats.jsonl record of a tick: the reduced loss statistics plus progress and timing."""
    record = dict(stats)
    sec_per_kimg = timing.tick / max(timing.kimg, 1e-3)
    for key, val in (("Progress/tick", tick), ("Progress/kimg", kimg), ("Progress/augment", augment_p),
                     ("Progress/nonfinite_losses", nonfinite), ("Timing/total_sec", timing.total),
                     ("Timing/sec_per_tick", timing.tick), ("Timing/sec_per_kimg", sec_per_kimg),
                     ("Timing/maintenance_sec", timing.maintenance), ("Resources/cpu_mem_gb", timing.cpu_mem),
                     ("Resources/peak_gpu_mem_gb", timing.gpu_mem)):
        record[key] = {"num": 1, "mean": val, "std": 0.0}
    record["timestamp"] = timestamp
    return record


__all__ = ["STAT_NAMES", "LOSS_NAMES", "TickStats", "DivergenceMonitor", "all_finite", "cpu_memory_gb",
           "TickTiming", "tick_line", "tick_record"]
