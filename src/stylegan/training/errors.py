"""How a training run ends early, each with a message a user can act on and its own exit status.

`TrainingSetupError`: nothing started (config, data, resume file). `TrainingStopped` and its kinds:
the run started and stopped at a minibatch boundary, keeping every snapshot written before; the
message names the newest good one and how to resume. The exit statuses follow sysexits.h, so a
job script can tell a preemption (requeue) from a full disk or a diverged run (docs/training.md,
"Faults").
"""
from __future__ import annotations

from typing import Optional


class TrainingSetupError(ValueError):
    """The configuration, data or resume file cannot be trained as asked (clear message)."""


class TrainingStopped(RuntimeError):
    """A started run stopped early; `last_snapshot`: the newest good snapshot (None: none written)."""

    exit_code = 1

    def __init__(self, message: str, last_snapshot: Optional[str] = None):
        super().__init__(message)
        self.last_snapshot = last_snapshot

    def __reduce__(self):  # picklable with its fields (spawned processes report it to the parent)
        return (type(self), (str(self), self.last_snapshot))


class TrainingDiverged(TrainingStopped):
    """Losses or weights became NaN / Inf (the NaN policy, docs/training.md)."""

    exit_code = 1


class TrainingInterrupted(TrainingStopped):
    """SIGTERM / SIGINT: the minibatch finished and a snapshot was written (preemption)."""

    exit_code = 75  # EX_TEMPFAIL: try again later (resume)


class TrainingIOError(TrainingStopped):
    """A file of the run directory (snapshot, stats, log, grid) could not be written."""

    exit_code = 74  # EX_IOERR


class TrainingDataError(TrainingStopped):
    """The training data failed to read after training started (a damaged or truncated file)."""

    exit_code = 65  # EX_DATAERR


__all__ = ["TrainingSetupError", "TrainingStopped", "TrainingDiverged", "TrainingInterrupted", "TrainingIOError",
           "TrainingDataError"]
