"""Background jobs of the explorer (projections, GANSpace runs): `BackgroundJob`, the thread,
cancel flag and end states they share, and `running_jobs`, how many may have threads alive at once.

A new job cancels the previous one, but a cancelled job stops only at its next step (a
projection's first step comes after its W statistics, thousands of mapping samples), holding its
thread and its private copy of the network until then. Without a bound, a storm of starts would
pile up threads and copies of G; with it, the start that would exceed the bound is refused (429)
and the client may retry a moment later.
"""
from __future__ import annotations

import threading
from typing import Any, Protocol, TypeVar

from .errors import Busy


class BackgroundJob:
    """One cancellable piece of work on its own daemon thread. States: running -> done | cancelled
    (whatever the work returned when it noticed) | error (the message, shown in the page: the
    server keeps running).

    A subclass sets its own fields before calling `__init__` (the thread reads them), implements
    `_work()`, which runs on the thread, checks `cancelled` at each of its steps and returns the
    result, and reads or writes shared fields under `_lock`."""

    kind = "job"  # the thread's name: stylegan-<kind>-<id>

    def __init__(self, job_id: str):
        self.id = job_id
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.state = "running"
        self.error: str | None = None
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, name=f"stylegan-{self.kind}-{job_id}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def alive(self) -> bool:
        """Its thread still runs (also for a while after cancel: it stops at its next step)."""
        return self._thread.is_alive()

    def _work(self) -> Any:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            result = self._work()
            with self._lock:
                self.result = result
                self.state = "cancelled" if self.cancelled else "done"
        except Exception as e:  # noqa: BLE001 - shown in the page; the server keeps running
            with self._lock:
                self.state, self.error = "error", f"{type(e).__name__}: {e}"


class Job(Protocol):
    def alive(self) -> bool: ...


J = TypeVar("J", bound=Job)


def running_jobs(jobs: list[J], limit: int, what: str) -> list[J]:
    """The jobs whose threads still run; Busy (429) when `limit` of them do."""
    alive = [j for j in jobs if j.alive()]
    if len(alive) >= limit:
        raise Busy(f"{len(alive)} {what} are still running or stopping (at most {limit} at once); "
                   f"try again in a moment")
    return alive


__all__ = ["BackgroundJob", "Job", "running_jobs"]
