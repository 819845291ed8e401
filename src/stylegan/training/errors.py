"""The two ways a training run ends early, each with a message a user can act on."""
from __future__ import annotations

from typing import Optional


class TrainingSetupError(ValueError):
    """The configuration, data or resume file cannot be trained as asked (clear message)."""


class TrainingDiverged(RuntimeError):
    """Training stopped because losses or weights became NaN / Inf (see docs/training.md)."""

    def __init__(self, message: str, last_snapshot: Optional[str] = None):
        super().__init__(message)
        self.last_snapshot = last_snapshot


__all__ = ["TrainingSetupError", "TrainingDiverged"]
