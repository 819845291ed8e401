"""Stopping on request: SIGTERM (SLURM, Kubernetes, spot instances before a kill) and SIGINT (Ctrl-C).

A signal does not interrupt the minibatch or a snapshot being written: the handler only records
it, and the run driver stops at the next minibatch boundary that every process agrees on, writes a
snapshot and exits with `TrainingInterrupted`'s status. A second signal while that happens is
recorded too and changes nothing (the snapshot write is atomic, so even a kill -9 then loses
nothing written before). A parent that spawned the training processes forwards the signals to
them (`forwarding_to`), since a container runtime signals only the main process.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator, Optional, Sequence

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopRequests:
    """The stop signals received while `installed()` (names, in order; empty: none)."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @property
    def first(self) -> Optional[str]:
        return self.received[0] if self.received else None

    def _handle(self, signum: int, frame) -> None:  # noqa: ARG002 - the signal module's signature
        self.received.append(signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequests"]:
        """Record SIGTERM / SIGINT instead of dying, until the block ends (then the old handlers are
        back). Off the main thread (where Python cannot install handlers) this records nothing."""
        if not _in_main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def forwarding_to(pids: Sequence[int]) -> Iterator[None]:
    """Pass SIGTERM / SIGINT received by this process on to `pids` (spawned training processes)."""
    if not _in_main_thread():
        yield
        return

    def forward(signum: int, frame) -> None:  # noqa: ARG001
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, forward)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


__all__ = ["STOP_SIGNALS", "StopRequests", "forwarding_to"]
