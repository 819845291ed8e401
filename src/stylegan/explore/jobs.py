"""How many background jobs (projections, GANSpace runs) may have threads alive at once.

A new job cancels the previous one, but a cancelled job stops only at its next step (a
projection's first step comes after its W statistics, thousands of mapping samples), holding its
thread and its private copy of the network until then. Without a bound, a storm of starts would
pile up threads and copies of G; with it, the start that would exceed the bound is refused (429)
and the client may retry a moment later.
"""
from __future__ import annotations

from typing import Protocol, TypeVar

from .errors import Busy


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


__all__ = ["Job", "running_jobs"]
