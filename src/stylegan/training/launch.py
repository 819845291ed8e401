"""Starting a run: one process, N spawned processes, or processes started by torchrun.

    from stylegan.training.launch import train
    result = train(cfg, "builtin:mnist", "runs", device="cpu")   # -> TrainResult(run_dir, state, ...)

`prepare` joins torchrun's process group (when launched by it) and plans the run
(`training.plan`); `launch` makes the run directory and runs `loop.Trainer` in every process.
With `gpus > 1` outside torchrun it spawns the processes itself (CUDA: one GPU each over nccl;
CPU: gloo) and returns rank 0's result.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional

import torch

from .. import distributed as ddp
from .config import TrainingConfig
from .errors import TrainingSetupError, TrainingStopped
from .interrupt import forwarding_to
from .loop import TrainResult, Trainer
from .plan import Overrides, RunOptions, RunPlan, plan_run, resolve_device

_RUN_ID = re.compile(r"^(\d+)")


# ----------------------------------------------------------------------------------- run directory


def next_run_dir(outdir: str | os.PathLike, desc: str) -> Path:
    """Create and return `outdir/NNNNN-desc` with NNNNN one more than the highest existing id.

    Safe against a concurrent caller picking the same number (mkdir is atomic; we retry).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    desc = re.sub(r"[^A-Za-z0-9._+=-]+", "_", desc).strip("_") or "run"
    while True:
        ids = [int(m.group(1)) for m in (_RUN_ID.match(p.name) for p in outdir.iterdir()) if m]
        run_id = max(ids, default=-1) + 1
        path = outdir / f"{run_id:05d}-{desc}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def make_run_dir(opts: RunOptions) -> Optional[Path]:
    if not opts.write_files:
        return None
    if opts.run_dir:
        path = Path(opts.run_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return next_run_dir(opts.outdir, opts.desc or "run")


class Tee:
    """Copies everything written to stdout / stderr into a log file while active."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: Optional[IO[str]] = None
        self._stdout = self._stderr = None

    def __enter__(self) -> "Tee":
        self._file = open(self.path, "a", encoding="utf-8")
        self._stdout, self._stderr = sys.stdout, sys.stderr
        sys.stdout = _TeeStream(self._stdout, self._file)
        sys.stderr = _TeeStream(self._stderr, self._file)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self._stdout, self._stderr
        if self._file is not None:
            self._file.close()
            self._file = None


class _TeeStream:
    def __init__(self, stream, file):
        self._stream, self._file = stream, file

    def write(self, text: str) -> int:
        self._file.write(text)
        self._file.flush()
        return self._stream.write(text)

    def flush(self) -> None:
        self._file.flush()
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


# ----------------------------------------------------------------------------------- processes


def configure_process(device: torch.device, world: int, threads: Optional[int] = None,
                      retain_malloc: bool = False, cudnn_benchmark: bool = True, allow_tf32: bool = False) -> None:
    """Threads, allocator and CUDA flags of one training process."""
    if retain_malloc and device.type == "cpu":
        from ..perf import retain_malloc as _retain

        _retain()  # no-op off glibc
    if threads is not None:
        torch.set_num_threads(max(int(threads), 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32  # off as officially: reproducible fp32
        torch.backends.cudnn.allow_tf32 = allow_tf32
    elif world > 1 and threads is None:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))


def _run_process(plan: RunPlan, rank: int, device: torch.device, run_dir: Optional[Path],
                 callback: Optional[Callable[[Trainer], None]]) -> TrainResult:
    opts = plan.opts
    configure_process(device, plan.world, opts.threads, opts.retain_malloc, cudnn_benchmark=not opts.nobench,
                      allow_tf32=opts.allow_tf32)
    run_dir = run_dir if rank == 0 else None
    tee = Tee(run_dir / "log.txt") if run_dir is not None and not opts.quiet else nullcontext()
    with tee:
        return Trainer(plan, rank, device, run_dir, callback).run()


@dataclass
class _Outcome:
    """What rank 0 of a spawned run sends back to the parent: a result or the error that ended it."""

    result: Optional[TrainResult] = None
    error: Optional[Exception] = None  # TrainingStopped (picklable with its fields) or TrainingSetupError


def _spawned_worker(rank: int, world: int, plan: RunPlan, run_dir: Optional[str], callback, queue) -> None:
    device = resolve_device(plan.device_type, rank) if plan.device_type != "cpu" else torch.device("cpu")
    try:
        outcome = _Outcome(result=_run_process(plan, rank, device, Path(run_dir) if run_dir else None, callback))
    except (TrainingStopped, TrainingSetupError) as e:
        outcome = _Outcome(error=e)
    if rank == 0:
        queue.put(outcome)


# ----------------------------------------------------------------------------------- entry points


def prepare(opts: RunOptions, *, cfg: Optional[TrainingConfig] = None, preset: Optional[str] = None,
            overrides: Overrides = Overrides()) -> RunPlan:
    """Join torchrun's process group when launched by it, then plan the run (`plan.plan_run`)."""
    rank = 0
    if ddp.under_torchrun():
        device = resolve_device(opts.device, int(os.environ["LOCAL_RANK"]))
        rank = ddp.init_from_env(device.type).rank  # no-op for a world of one
    return plan_run(opts, cfg=cfg, preset=preset, overrides=overrides, rank=rank)


def launch(plan: RunPlan, callback: Optional[Callable[[Trainer], None]] = None) -> TrainResult:
    """Run a planned training in this process, under torchrun, or in `plan.world` spawned processes.

    `callback(trainer)` runs after every minibatch in every process (tests use it to stop, crash
    or inject faults). Raises TrainingSetupError, or a TrainingStopped (diverged, interrupted by
    SIGTERM / SIGINT, a run file not writable, the data failing); spawned processes get the
    signals this process receives.
    """
    if ddp.under_torchrun():
        info = ddp.current()
        device = resolve_device(plan.device_type, int(os.environ["LOCAL_RANK"]))
        run_dir = make_run_dir(plan.opts) if info.rank == 0 else None
        result = _run_process(plan, info.rank, device, run_dir, callback)
        ddp.barrier()
        return result
    run_dir = make_run_dir(plan.opts)
    if plan.world == 1:
        return _run_process(plan, 0, resolve_device(plan.device_type), run_dir, callback)
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    ddp.spawn(_spawned_worker, plan.world, args=(plan, None if run_dir is None else str(run_dir), callback, queue),
              backend="nccl" if plan.device_type == "cuda" else "gloo", while_running=forwarding_to)
    if queue.empty():
        raise RuntimeError("training processes ended without a result")
    outcome: _Outcome = queue.get()
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def train(cfg: TrainingConfig, data: str, outdir: str = "runs", *,
          callback: Optional[Callable[[Trainer], None]] = None, **options) -> TrainResult:
    """Train `cfg` on `data` (folder, zip or 'builtin:NAME'); returns the run directory and final state.

    `options`: any field of `RunOptions` (the same names as `stylegan train`'s options, e.g.
    device="cpu", gpus=2, resume=..., nan_ticks=3, max_minutes=5, quiet=True). gpus > 1 spawns that
    many processes (CUDA: one GPU each, nccl; CPU: gloo) unless already running under torchrun,
    which sets the process count itself. `resume`: a training snapshot (or a run directory: its
    newest) continues exactly (optimizers, counters, pl_mean, ADA, RNG, data position); a
    checkpoint without training state only provides weights. `callback(trainer)` runs after every
    minibatch in every process.
    """
    known = {f.name for f in dataclasses.fields(RunOptions)} - {"data", "outdir"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"train() got unknown option(s) {unknown}; the options are {sorted(known)}")
    if "device" in options:
        options["device"] = str(options["device"])
    opts = RunOptions(data=str(data), outdir=str(outdir), **options)
    return launch(prepare(opts, cfg=cfg), callback)


__all__ = ["train", "prepare", "launch", "next_run_dir", "make_run_dir", "Tee", "configure_process"]
