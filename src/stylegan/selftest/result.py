"""What one check reports, and how a check function becomes that report.

A check is a plain function that returns a one-line detail when it passes and raises
`CheckFailed(detail)` when a criterion fails (or `CheckSkipped(why)` when it cannot apply here).
Any other exception is a failure too, reported by type and message, so a broken installation
shows as a named FAIL row instead of a traceback that hides the remaining checks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Literal

Status = Literal["pass", "fail", "skip"]


class CheckFailed(AssertionError):
    """A check's criterion does not hold; the message says which numbers broke it."""


class CheckSkipped(Exception):
    """The check does not apply on this device / configuration; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "fixture", "fast/upfirdn2d", "speed/S32"
    ok: bool  # False only for a failure (a skipped check is ok)
    detail: str  # the measured numbers, or what went wrong
    seconds: float  # wall time of the check
    skipped: bool = False

    @property
    def status(self) -> Status:
        return "skip" if self.skipped else ("pass" if self.ok else "fail")


def run_check(name: str, fn: Callable[[], str]) -> CheckResult:
    """Run `fn` and time it; exceptions become a failed (or skipped) result, never propagate."""
    start = time.perf_counter()
    try:
        detail, ok, skipped = fn(), True, False
    except CheckSkipped as e:
        detail, ok, skipped = str(e), True, True
    except CheckFailed as e:
        detail, ok, skipped = str(e), False, False
    except Exception as e:  # noqa: BLE001 - any error of the installation is a finding of this check
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        detail, ok, skipped = f"raised {type(e).__name__}: {first[:300]}", False, False
    return CheckResult(name, ok, detail, time.perf_counter() - start, skipped)


def require(condition: bool, detail: str) -> None:
    """Raise CheckFailed(detail) unless `condition`."""
    if not condition:
        raise CheckFailed(detail)


__all__ = ["CheckFailed", "CheckSkipped", "CheckResult", "Status", "run_check", "require"]
