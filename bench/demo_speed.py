"""Seconds per kimg of the CPU demo's training step, for several configs, interleaved in one process.

    python bench/demo_speed.py                       # the demo's config vs the previous demo's
    python bench/demo_speed.py --variants new,old --rounds 4 --steps 16 --threads 1

Each variant is a full `training.stepper.Stepper` on builtin:mnist (the real loop: G main, path
length every 4, D main, R1 every 16, G_ema), built once; the rounds run the variants in turn
(`--steps` minibatches each), so a busy machine slows them alike. One process plays the part of
the demo's two gloo processes: per-process micro-batch batch/2 in 2 accumulation rounds, the same
arithmetic per image (the all-reduce is not timed). Prints the header (CPU, torch, threads, load)
and, per variant, the s/kimg of every round (CPU time of this process, or wall time with
`--timer wall`), its median and the ratio to the first variant.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from stylegan.device import cpu_model
from stylegan.training.config import DataShape
from stylegan.training.loop import Trainer
from stylegan.training.plan import RunOptions, plan_run
from stylegan.training.presets import resolve_preset


def variant_config(name: str):
    """'new': the demo's config (cpu preset, conditional with the classifier head); 'old': the
    previous demo's (unconditional, 16-32 channels); 'new-bf16': 'new' in bf16. Any name with
    '-compile' appended: the same with torch.compile (`--compile`)."""
    if name in ("new", "new-bf16"):
        cfg = resolve_preset("cpu", DataShape(32, 1, c_dim=10)).replace(cond=True)
        if name == "new-bf16":
            from stylegan.nn.precision import Precision
            cfg = cfg.replace(precision=Precision("bf16"))
        return cfg
    if name == "old":  # before 2026-12-06: unconditional, 16-32 channels, lr 0.0025
        from stylegan.training.config import OptimizerConfig

        cfg = resolve_preset("cpu", DataShape(32, 1))
        return cfg.replace(G=cfg.G.replace(channel_max=32), D=cfg.D.replace(channel_max=32),
                           G_opt=OptimizerConfig(lr=0.0025), D_opt=OptimizerConfig(lr=0.0025))
    raise SystemExit(f"unknown variant {name!r}: new, old, new-bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="new,old")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16, help="minibatches per variant and round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timer", choices=["process", "wall"], default="process")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.timer == "process" else time.perf_counter
    print(f"# demo_speed: {cpu_model()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.timer} time, python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    trainers = {}
    for name in args.variants.split(","):
        compiled = name.endswith("-compile")  # torch.compile of G and D for the main phases (--compile)
        cfg = variant_config(name.removesuffix("-compile"))
        cfg = cfg.replace(batch_gpu=cfg.batch // 2)  # as each of the demo's 2 processes: 2 rounds here
        opts = RunOptions(data="builtin:mnist", device="cpu", write_files=False, quiet=True, threads=args.threads,
                          compile=compiled)
        tr = Trainer(plan_run(opts, cfg=cfg), 0, "cpu").stepper  # the math alone: no ticks, no files
        t = time.perf_counter()
        for _ in range(4):  # warm-up (oneDNN primitives, allocator; compiling)
            tr.step()
        print(f"{name:12s} warm-up (4 minibatches) {time.perf_counter() - t:.1f} s wall", flush=True)
        trainers[name] = tr
    times: dict[str, list[float]] = {n: [] for n in trainers}
    for _ in range(args.rounds):
        for name, tr in trainers.items():
            batch = tr.cfg.batch
            t = clock()
            for _ in range(args.steps):
                tr.step()
            times[name].append((clock() - t) / (args.steps * batch) * 1000)
    first = statistics.median(next(iter(times.values())))
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:10s} s/kimg {' '.join(f'{t:.2f}' for t in ts)}  median {med:.2f}  ratio {med / first:.2f}")


if __name__ == "__main__":
    main()
