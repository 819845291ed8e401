"""TensorBoard events beside stats.jsonl, as the official training loop writes them.

With the `tensorboard` package installed (the `tensorboard` extra), a run directory gets an
`events.out.tfevents.*` file: every tick's statistics as scalars under the names stats.jsonl uses
(`Loss/G/loss`, `Loss/r1_penalty`, `Progress/augment`, `Timing/sec_per_kimg`, ...), every metric at
each snapshot as `Metrics/<name>`, and each fakes grid as the image `Fakes`, all at step = kimg
(integer, as officially) with the run's wall time. `tensorboard --logdir runs` then shows every run.
Without the package the run goes on and the log says so once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np


class TensorBoardWriter:
    """A thin writer over `torch.utils.tensorboard.SummaryWriter` (imported only when used)."""

    def __init__(self, writer: Any, start_time: float):
        self._writer, self._start = writer, start_time

    @classmethod
    def open(cls, run_dir: Path, start_time: float) -> tuple[Optional["TensorBoardWriter"], Optional[str]]:
        """(writer, None), or (None, the reason there is none) when tensorboard is not installed."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            return None, (f"no TensorBoard events: {e} (pip install tensorboard, or the stylegan extra "
                          f"'tensorboard'); stats.jsonl has the same numbers")
        return cls(SummaryWriter(str(run_dir)), start_time), None

    def _step(self, kimg: float) -> int:
        return int(kimg)  # the official global_step: whole kimg

    def tick(self, record: dict[str, Any], kimg: float, timestamp: float) -> None:
        """One stats.jsonl record: every `{name: {mean: ...}}` entry as a scalar."""
        for name, value in record.items():
            if isinstance(value, dict) and "mean" in value:
                self._writer.add_scalar(name, value["mean"], global_step=self._step(kimg),
                                        walltime=timestamp - self._start)
        self._writer.flush()

    def metric(self, results: dict[str, float], kimg: float, timestamp: float) -> None:
        for name, value in results.items():
            self._writer.add_scalar(f"Metrics/{name}", value, global_step=self._step(kimg),
                                    walltime=timestamp - self._start)
        self._writer.flush()

    def image(self, name: str, image_hwc_uint8: np.ndarray, kimg: float, timestamp: float) -> None:
        self._writer.add_image(name, image_hwc_uint8, global_step=self._step(kimg), walltime=timestamp - self._start,
                               dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


__all__ = ["TensorBoardWriter"]
