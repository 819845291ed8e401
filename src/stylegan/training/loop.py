"""The run driver of one process: ticks, logs, grids, snapshots and metrics around a `Stepper`.

`Trainer.run` asks its `training.stepper.Stepper` (all training state, the math of a minibatch) for
one minibatch at a time. A tick ends every `kimg_per_tick` thousand images (the first after one
minibatch); at a tick the driver prints one line, appends to stats.jsonl and, every `snap` ticks,
writes a fakes grid, an atomic snapshot and the metrics. It also stops the run: at the end, at
`--max-minutes` (all processes agree on the minibatch), or by the NaN policy (`DivergenceMonitor`).

State has one owner each: the stepper's counters (images, minibatches, data position, growth
stage), the driver's tick counters and last snapshot, the monitor's bad ticks. `Trainer.state`
composes them into the `TrainingState` record a snapshot stores; resume splits it again.

Faults (docs/training.md, "Faults") end the run at a minibatch boundary with a `TrainingStopped`
that names the newest good snapshot: SIGTERM / SIGINT after writing a snapshot
(`TrainingInterrupted`), a run file that cannot be written (`TrainingIOError`: the previous
snapshot stays, no partial file is left), training data that fails to read (`TrainingDataError`),
and the NaN policy (`TrainingDiverged`). Nothing beyond the current minibatch is lost.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .. import distributed as ddp
from ..data.dataset import DatasetError, open_dataset
from ..data.stream import DataStream, grid_indices
from ..io.images import make_grid, save_image, to_uint8
from ..io.serialize import to_dict
from ..nn.precision import precision_scope
from ..nn.runtime import Runtime
from .errors import TrainingDataError, TrainingDiverged, TrainingInterrupted, TrainingIOError, TrainingSetupError
from .interrupt import StopRequests
from .monitor import DivergenceMonitor, TickTiming, all_finite, cpu_memory_gb, tick_line, tick_record
from .plan import RunPlan, run_record
from .snapshot import (Resume, TrainingState, fakes_name, read_resume, seed_host_rngs, snapshot_name,
                       write_snapshot)
from .stepper import OPTIMIZER_KEYS, Stepper
from .tensorboard import TensorBoardWriter


@dataclass
class TrainResult:
    run_dir: Optional[Path]
    state: TrainingState
    last_snapshot: Optional[Path]
    stats: list = field(default_factory=list)  # the stats.jsonl records of this run (rank 0)


@dataclass
class TickCounters:
    """Where the ticks stand; owned by the driver."""

    cur_tick: int = 0  # index of the tick in progress
    tick_start_nimg: int = 0
    last_snapshot: Optional[str] = None


class Trainer:
    """One process of a planned training run. `callback(trainer)` runs after every minibatch."""

    def __init__(self, plan: RunPlan, rank: int = 0, device: torch.device | str = "cpu",
                 run_dir: Optional[Path] = None, callback: Optional[Callable[["Trainer"], None]] = None):
        cfg = plan.cfg
        self.plan, self.cfg, self.opts, self.rank, self.world = plan, cfg, plan.opts, rank, plan.world
        self.device = torch.device(device)
        self.run_dir = run_dir
        self.callback = callback
        self.is_leader = rank == 0
        self.write = self.is_leader and run_dir is not None

        try:  # planned and validated already: this opens this process's handle
            self.dataset = open_dataset(plan.data.spec, use_labels=cfg.cond, xflip=cfg.mirror, max_size=cfg.subset,
                                        seed=cfg.seed)
            data = DataStream(self.dataset, cfg.seed, rank, self.world, self.opts.workers)
        except DatasetError as e:
            raise TrainingSetupError(f"cannot open --data {plan.data.spec}: {e}") from None
        seed_host_rngs(cfg.seed, rank)
        self.stepper = Stepper(cfg, data, rank=rank, world=self.world, device=self.device, compile=self.opts.compile)

        self.ticks = TickCounters()
        self.records: list[dict] = []
        self.resume: Optional[Resume] = None
        bad_ticks = 0
        if self.opts.resume:
            self.resume = read_resume(self.opts.resume, cfg, OPTIMIZER_KEYS, fresh_labels=self.opts.fresh_labels)
            progress = self.stepper.restore(self.resume)
            if progress is not None:
                self.ticks = TickCounters(progress.cur_tick, progress.tick_start_nimg, progress.last_snapshot)
                bad_ticks = progress.bad_ticks
        self.monitor = DivergenceMonitor(self.opts.nan_ticks, bad_ticks=bad_ticks)
        self.stop_requests = StopRequests()
        self.tensorboard: Optional[TensorBoardWriter] = None
        self._metrics_disabled = False

    @property
    def state(self) -> TrainingState:
        """The progress record as it stands (what a snapshot written now would store)."""
        n, t = self.stepper.counters, self.ticks
        return TrainingState(cur_nimg=n.cur_nimg, cur_tick=t.cur_tick, batch_idx=n.batch_idx,
                             tick_start_nimg=t.tick_start_nimg, data_pos=n.data_pos, growth_stage=n.growth_stage,
                             bad_ticks=self.monitor.bad_ticks, last_snapshot=t.last_snapshot)

    # --------------------------------------------------------------------------- files

    def log(self, msg: str) -> None:
        if not self.is_leader:
            return
        if not self.opts.quiet:
            print(msg, flush=True)  # also lands in log.txt through the Tee
        elif self.run_dir is not None:
            with self.writing(self.run_dir / "log.txt", "the log"), \
                    open(self.run_dir / "log.txt", "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    @contextlib.contextmanager
    def writing(self, path: Path, what: str) -> Iterator[None]:
        """Turn a failed write of a run file (full disk, no permission, I/O error) into one clear stop."""
        try:
            yield
        except OSError as e:
            last = self.ticks.last_snapshot
            cause = f"{e.strerror} (errno {e.errno})" if e.strerror else str(e)
            raise TrainingIOError(
                f"cannot write {what} {path}: {cause}. "
                + (f"The last good snapshot is {last} (intact); " if last else "No snapshot was written yet; ")
                + f"free space or fix permissions, then resume with `stylegan train --resume {self.run_dir}`.",
                last) from None

    def _grid_setup(self) -> None:
        from ..synth.sample import z_from_seeds

        res, G = self.cfg.G.img_resolution, self.stepper.G
        cols, rows = self.opts.grid or (int(np.clip(1920 // res, 4, 16)), int(np.clip(1080 // res, 4, 16)))
        self.grid_shape = (cols, rows)
        idx = grid_indices(self.dataset, cols, rows, self.cfg.seed)
        self.grid_reals = torch.stack([torch.from_numpy(self.dataset[int(i)][0]) for i in idx])
        self.grid_c = self.stepper.data.labels[torch.from_numpy(idx)] if G.c_dim > 0 else None
        self.grid_z = z_from_seeds(range(cols * rows), G.z_dim)

    @torch.no_grad()
    def save_fakes(self, path: Path) -> None:
        """G_ema's images of the grid latents (const noise), as in the official fakes grids."""
        imgs = []
        bs = max(self.cfg.batch_gpu or (self.cfg.batch // self.world), 8)
        for i in range(0, self.grid_z.shape[0], bs):
            z = self.grid_z[i:i + bs].to(self.device)
            c = None if self.grid_c is None else self.grid_c[i:i + bs].to(self.device)
            with precision_scope(self.cfg.precision):
                imgs.append(self.stepper.G_ema(z, c, noise_mode="const").float().cpu())
        cols, rows = self.grid_shape
        grid = make_grid(to_uint8(torch.cat(imgs)).numpy(), rows=rows, cols=cols)  # [H, W, C] uint8
        with self.writing(path, "the fakes grid"):
            save_image(grid, path)
        if self.tensorboard is not None and path.name != "fakes_init.png":
            with self.writing(self.run_dir, "TensorBoard events into"):
                self.tensorboard.image("Fakes", grid if grid.ndim == 3 else grid[:, :, None],
                                       self.stepper.counters.cur_nimg / 1000, time.time())

    def save_snapshot(self, path: Path) -> None:
        # The progress as the next tick starts: a resumed run continues from there.
        now = self.state
        progress = dataclasses.replace(now, cur_tick=now.cur_tick + 1, tick_start_nimg=now.cur_nimg,
                                       last_snapshot=str(path))
        info = {"kimg": now.cur_nimg / 1000, "tick": now.cur_tick, "training": to_dict(self.cfg),
                "run": to_dict(self.opts), "world_size": self.world, "timestamp": time.time()}
        with self.writing(path, "the snapshot"):
            write_snapshot(path, self.stepper.networks, self.stepper.snapshot_state(progress), info)

    def _run_metrics(self, snapshot: Optional[Path]) -> None:
        if not self.cfg.metrics or self._metrics_disabled:
            return
        from ..metrics import MetricError, append_metric_jsonl, compute_metric

        for name in self.cfg.metrics:
            try:
                result = compute_metric(name, self.stepper.G_ema, self.opts.data, device=self.device,
                                        batch=max(self.cfg.batch // self.world, 1), num_gpus=self.world,
                                        rank=self.rank, mirror=self.cfg.mirror, progress=False)
            except MetricError as e:
                self.log(f"metric {name} failed, metrics disabled for this run: {e}")
                self._metrics_disabled = True
                return
            if self.write:
                with self.writing(self.run_dir, "the metric results into"):
                    append_metric_jsonl(self.run_dir, result, snapshot=snapshot)
                    if self.tensorboard is not None:
                        self.tensorboard.metric(result["results"], self.stepper.counters.cur_nimg / 1000, time.time())
                vals = " ".join(f"{k} {v:.4g}" for k, v in result["results"].items())
                self.log(f"metric {name}: {vals} ({result.get('total_time_str', '')})")

    def _write_config(self) -> None:
        record = run_record(self.plan, device_resolved=str(self.device), dataset_name=self.dataset.name,
                            dataset_size=len(self.dataset),
                            resumed_from=None if self.resume is None else self.resume.path)
        path = self.run_dir / "config.json"
        with self.writing(path, "the run config"), open(path, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)

    # --------------------------------------------------------------------------- the loop

    def _start(self) -> None:
        """Config, reals and initial fakes grids, and what the log should say before the first step."""
        cfg = self.cfg
        if self.write:
            self._write_config()
        if self.resume is not None:
            self.log(self.resume.note)
            if self.resume.config_changed:
                self.log("note: the training config differs from the snapshot's: this is not an exact continuation")
        if self.is_leader:
            self._grid_setup()
        if self.write:
            cols, rows = self.grid_shape
            with self.writing(self.run_dir / "reals.png", "the reals grid"):
                save_image(make_grid(self.grid_reals.permute(0, 2, 3, 1).numpy(), rows=rows, cols=cols),
                           self.run_dir / "reals.png")
            self.save_fakes(self.run_dir / "fakes_init.png")
        self.log(f"training for {cfg.total_kimg:g} kimg on {self.world} process(es), device {self.device}, "
                 f"batch {cfg.batch} (per process {cfg.batch // self.world}), dataset {len(self.dataset)} images")
        with precision_scope(cfg.precision):  # the switches every training forward resolves to
            self.log(Runtime.current().describe())
        if (growth := self.stepper.schedule.describe()) is not None:
            self.log(growth)
        if cfg.precision is not None:
            p = cfg.precision
            self.log(f"precision {p.dtype}: {p.num_low_res} highest resolutions of G and D, clamp {p.conv_clamp}")
        for note in self.plan.notes:
            self.log(note)

    def _stop_reasons(self, deadline: Optional[float]) -> tuple[bool, bool]:
        """(past --max-minutes, a stop signal received) on any process: all agree, so all stop after
        the same minibatch. One all-reduce per minibatch (none in a single process)."""
        flags = torch.tensor([1.0 if deadline is not None and time.time() >= deadline else 0.0,
                              1.0 if self.stop_requests.first else 0.0], device=self.device)
        late, signalled = (ddp.all_reduce_(flags, "max") > 0).tolist()
        return late, signalled

    def _end_tick(self, timing_start: tuple[float, float, float], done: bool,
                  interrupted: bool = False) -> Optional[str]:
        """Statistics, log line, snapshot and metrics of the tick that ends now -> reason to stop, if any."""
        cfg, stepper, ticks = self.cfg, self.stepper, self.ticks
        cur_nimg = stepper.counters.cur_nimg
        start_time, tick_start_time, maintenance = timing_start
        tick_end_time = time.time()
        stats, nonfinite = stepper.stats.collect()
        flag = torch.tensor([1.0 if all_finite(*stepper.networks.values()) else 0.0], device=self.device)
        weights_ok = bool(ddp.all_reduce_(flag, "min").item() > 0)
        good, stop = self.monitor.update(nonfinite, weights_ok)
        gpumem = 0.0
        if self.device.type == "cuda":
            gpumem = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
            torch.cuda.reset_peak_memory_stats(self.device)
        timing = TickTiming(total=tick_end_time - start_time, tick=tick_end_time - tick_start_time,
                            kimg=(cur_nimg - ticks.tick_start_nimg) / 1000, maintenance=maintenance,
                            cpu_mem=cpu_memory_gb(), gpu_mem=gpumem)
        p = 0.0 if stepper.ada is None else stepper.ada.p
        last = stepper.last_settings
        growth = (last.resolution, last.lod) if last is not None and last.lod is not None else None
        self.log(tick_line(ticks.cur_tick, cur_nimg / 1000, timing, p, stats, growth))

        if interrupted or (cfg.snap > 0 and (done or ticks.cur_tick % cfg.snap == 0)):
            if good:
                self._snapshot_and_metrics()
            else:
                self.log(f"not writing a snapshot for tick {ticks.cur_tick}: non-finite values "
                         f"(last good snapshot: {ticks.last_snapshot})")
        record = tick_record(ticks.cur_tick, cur_nimg / 1000, timing, p, stats, nonfinite, time.time())
        if self.is_leader:
            self.records.append(record)
        if self.write:
            path = self.run_dir / "stats.jsonl"
            with self.writing(path, "the tick statistics"), open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            if self.tensorboard is not None:
                with self.writing(self.run_dir, "TensorBoard events into"):
                    self.tensorboard.tick(record, cur_nimg / 1000, record["timestamp"])
        return stop

    def _snapshot_and_metrics(self) -> None:
        cur_nimg = self.stepper.counters.cur_nimg
        path = None
        if self.write:
            self.save_fakes(self.run_dir / fakes_name(cur_nimg))
            path = self.run_dir / snapshot_name(cur_nimg)
            self.save_snapshot(path)
            self.ticks.last_snapshot = str(path)
        self._run_metrics(path)

    def _diverged(self, reason: str) -> TrainingDiverged:
        st = self.state
        last = st.last_snapshot
        msg = (f"training stopped at tick {st.cur_tick}, kimg {st.cur_nimg / 1000:.3f}: {reason}. "
               + (f"The last good snapshot is {last}; resume from it with `stylegan train --resume {last}` "
                  f"(perhaps with a lower --lr or --gamma)." if last else
                  "No good snapshot was written before this happened."))
        self.log(msg)
        return TrainingDiverged(msg, last)

    def _interrupted(self) -> TrainingInterrupted:
        st, how = self.state, self.stop_requests.first or "a stop signal on another process"
        where = self.run_dir if self.run_dir is not None else st.last_snapshot
        msg = (f"interrupted by {how} at tick {st.cur_tick}, kimg {st.cur_nimg / 1000:.3f}: "
               + (f"snapshot written to {st.last_snapshot}; continue with `stylegan train --resume {where}`."
                  if st.last_snapshot else "no run directory, nothing written."))
        self.log(msg)
        return TrainingInterrupted(msg, st.last_snapshot)

    def _step(self) -> None:
        """One minibatch; training data that fails to read now stops the run with its one-line reason."""
        try:
            self.stepper.step()
        except DatasetError as e:
            st, last = self.state, self.ticks.last_snapshot
            msg = (f"training data failed at tick {st.cur_tick}, kimg {st.cur_nimg / 1000:.3f}: {e}. "
                   + (f"The last good snapshot is {last}; repair or re-create the dataset and resume with "
                      f"`stylegan train --resume {self.run_dir or last}`." if last else "No snapshot was written yet."))
            self.log(msg)
            raise TrainingDataError(msg, last) from None

    def run(self) -> TrainResult:
        if self.write and self.opts.tensorboard:
            self.tensorboard, why_not = TensorBoardWriter.open(self.run_dir, time.time())
            if why_not:
                self.log(why_not)
        try:
            with self.stop_requests.installed():
                return self._run()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()

    def _run(self) -> TrainResult:
        cfg, counters, ticks = self.cfg, self.stepper.counters, self.ticks
        self._start()
        total_nimg = int(round(cfg.total_kimg * 1000))
        start_time = tick_start_time = time.time()
        maintenance = 0.0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        deadline = None if self.opts.max_minutes is None else start_time + 60 * self.opts.max_minutes
        done = counters.cur_nimg >= total_nimg
        while not done:
            self._step()
            if self.callback is not None:
                self.callback(self)
            done = counters.cur_nimg >= total_nimg
            late, interrupted = self._stop_reasons(deadline)
            if interrupted:
                done = True
                self.log(f"{self.stop_requests.first or 'stop signal on another process'}: stopping after minibatch "
                         f"{counters.batch_idx} with a snapshot (a second signal does not interrupt it)")
            elif not done and late:
                done = True
                self.log(f"--max-minutes {self.opts.max_minutes:g} reached: stopping at kimg "
                         f"{counters.cur_nimg / 1000:.3f} of {cfg.total_kimg:g}")
            if not done and ticks.cur_tick != 0 and \
                    counters.cur_nimg < ticks.tick_start_nimg + cfg.kimg_per_tick * 1000:
                continue
            tick_end = time.time()
            stop = self._end_tick((start_time, tick_start_time, maintenance), done, interrupted)
            if stop is not None:
                raise self._diverged(stop)
            if interrupted:
                raise self._interrupted()
            ticks.cur_tick += 1
            ticks.tick_start_nimg = counters.cur_nimg
            tick_start_time = time.time()
            maintenance = tick_start_time - tick_end
        self.log("done.")
        last = Path(ticks.last_snapshot) if ticks.last_snapshot else None
        return TrainResult(self.run_dir, self.state, last, self.records)


__all__ = ["Trainer", "TrainResult", "TickCounters"]
