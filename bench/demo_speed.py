"""Seconds per kimg of the CPU demo's training step, for several configs, interleaved in one process.

    python bench/demo_speed.py                       # the demo's config vs the previous demo's
    python bench/demo_speed.py --variants new,old --rounds 4 --steps 16 --threads 1
    python bench/demo_speed.py --variants new --isa native,avx2   # this CPU limited to AVX2

`--isa native,avx2` runs every round once per instruction set, each in a fresh process whose
PyTorch kernels (ATEN_CPU_CAPABILITY) and oneDNN (ONEDNN_MAX_CPU_ISA) are held to that set,
interleaved: how much of the speed is AVX-512's on this machine, the nearest this project gets
to an AVX2-only CPU without one (same clock and caches, so a real AVX2-only machine may be slower).

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
import subprocess
import sys
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


# Environment that holds PyTorch's own kernels and oneDNN's to one instruction set.
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
           "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}}


def by_isa(args) -> None:
    """Each round: one child process per instruction set (`ISA_ENV`), in turn; the medians."""
    isas = args.isa.split(",")
    unknown = [i for i in isas if i not in ISA_ENV]
    if unknown:
        raise SystemExit(f"unknown --isa {unknown}: {', '.join(ISA_ENV)}")
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for isa in isas:
            cmd = [sys.executable, __file__, "--variants", args.variants, "--rounds", "1", "--steps", str(args.steps),
                   "--threads", str(args.threads), "--timer", args.timer]
            out = subprocess.run(cmd, env={**os.environ, **ISA_ENV[isa]}, capture_output=True, text=True, check=True)
            for line in out.stdout.splitlines():
                if line.startswith("#"):
                    print(f"# [{isa}] {line[2:]}")
                elif " s/kimg " in line:
                    name, rest = line.split(" s/kimg ")
                    times.setdefault((isa, name.strip()), []).append(float(rest.split()[0]))
    first = statistics.median(next(iter(times.values())))
    for (isa, name), ts in times.items():
        med = statistics.median(ts)
        print(f"{isa:7s} {name:10s} s/kimg {' '.join(f'{t:.2f}' for t in ts)}  median {med:.2f}  ratio {med / first:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="new,old")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16, help="minibatches per variant and round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timer", choices=["process", "wall"], default="process")
    ap.add_argument("--isa", default=None, help="e.g. native,avx2: every round once per instruction set "
                                                "(child processes, interleaved)")
    args = ap.parse_args()
    if args.isa:
        return by_isa(args)
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.timer == "process" else time.perf_counter
    print(f"# demo_speed: {cpu_model()}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"{args.threads} thread(s), "
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
