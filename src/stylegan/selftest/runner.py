"""Which checks run, in which order, and how their results are printed."""
from __future__ import annotations

import contextlib
import datetime
import platform
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch

from ..device import cpu_model, resolve_device
from ..nn.runtime import Runtime
from .ddp import check_ddp
from .fastpaths import CHECKS as FAST_PATH_CHECKS
from .parity import check_fixture, check_sg3_fixture
from .phases import check_fp16_clamp, check_training_phases
from .precision import DTYPES, check_dtype_supported
from .result import CheckResult, run_check
from .speed import SPEED_CONFIGS, SpeedBudget, check_speed

Check = Callable[[], str]


@dataclass(frozen=True)
class SelftestOptions:
    device: str | torch.device = "auto"  # cpu, cuda, cuda:N, mps or auto
    dtype: str = "fp32"  # precision of the fixture check and of generation speed: fp32, fp16, bf16
    ddp: Optional[int] = None  # N >= 2: also check N training processes stay identical
    quick: bool = False  # fewer steps, smaller batches, S32 only
    only: tuple[str, ...] = ()  # run only the checks with these names or name prefixes ("fast", "speed/S64")
    threads: Optional[int] = None  # CPU intra-op threads for the speed checks (default: torch's)


@contextlib.contextmanager
def _threads(n: Optional[int]) -> Iterator[None]:
    """torch intra-op threads for the block (None: unchanged), restored afterwards."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def plan(options: SelftestOptions, device: torch.device) -> list[tuple[str, Check]]:
    """(name, check) in running order: correctness first, then speed, then processes."""
    # The correctness checks use tiny tensors; on a CPU one intra-op thread runs them 10x faster
    # than two that spin-wait for each other whenever another process wants the cores.
    small = 1 if device.type == "cpu" else None

    def on(threads: Optional[int], fn: Callable[[], str]) -> Check:
        def run() -> str:
            with _threads(threads):
                return fn()
        return run

    checks: list[tuple[str, Check]] = [
        ("fixture", on(small, lambda: check_fixture(device, options.dtype))),
        ("stylegan3", on(small, lambda: check_sg3_fixture(device, options.dtype))),
        ("train/phases", on(small, lambda: check_training_phases(device, steps=1 if options.quick else 2))),
        ("train/fp16-clamp", on(small, lambda: check_fp16_clamp(device))),
    ]
    checks += [(name, on(small, lambda fn=fn: fn(device))) for name, fn in FAST_PATH_CHECKS.items()]
    budget = SpeedBudget.for_device(device, options.quick)
    for spec in SPEED_CONFIGS[:1] if options.quick else SPEED_CONFIGS:
        checks.append((f"speed/{spec.name}", on(options.threads, lambda spec=spec: check_speed(spec, device, options.dtype, budget))))
    if options.ddp:
        checks.append((f"ddp/{options.ddp}", lambda: check_ddp(device, options.ddp)))
    return checks


def select(checks: list[tuple[str, Check]], only: tuple[str, ...]) -> list[tuple[str, Check]]:
    """The checks named (or prefixed) by `only`; all of them when it is empty."""
    if not only:
        return checks
    names = [n for n, _ in checks]
    unknown = [o for o in only if not any(n == o or n.startswith(o.rstrip("/") + "/") for n in names)]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; the checks are: {', '.join(names)}")
    return [(n, c) for n, c in checks if any(n == o or n.startswith(o.rstrip("/") + "/") for o in only)]


def prepare(options: SelftestOptions) -> tuple[torch.device, list[tuple[str, Check]]]:
    """The device and the selected checks. Raises DeviceUnavailable (no such device here) or
    ValueError (dtype unsupported there, unknown check name) before anything runs."""
    if options.dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {options.dtype!r}")
    device = resolve_device(options.device)
    check_dtype_supported(device, options.dtype)
    return device, select(plan(options, device), options.only)


def run_checks(checks: list[tuple[str, Check]], report: Optional[Callable[[CheckResult], None]] = None) -> list[CheckResult]:
    """Run every check (a failure never stops the others); `report` sees each result as it arrives."""
    results = []
    for name, check in checks:
        results.append(run_check(name, check))
        if report is not None:
            report(results[-1])
    return results


def run_selftest(options: SelftestOptions, report: Optional[Callable[[CheckResult], None]] = None) -> list[CheckResult]:
    """`prepare` + `run_checks`: the results of the selected checks on the chosen device."""
    return run_checks(prepare(options)[1], report)


# ----------------------------------------------------------------------------- printing


def _processor(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return cpu_model()


def environment(device: torch.device, dtype: str) -> str:
    """One line naming what the numbers below were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    from ..perf import allocator_info

    try:
        ours = version("stylegan")
    except PackageNotFoundError:
        ours = "(not installed)"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"stylegan {ours}, torch {torch.__version__}, device {device} ({_processor(device)}), "
            f"{torch.get_num_threads()} threads, {allocator_info()['allocator']}, dtype {dtype}, {when}")


def header(device: torch.device, dtype: str, runtime: Optional[Runtime] = None) -> str:
    """The lines above the results: `environment`, then which code paths the networks take
    (`Runtime.describe()` of `runtime`, default the one in force), so a report says what it tested."""
    return f"{environment(device, dtype)}\n{Runtime.resolve(runtime).describe()}"


STATUS_WORDS = {"pass": "ok", "fail": "FAIL", "skip": "skip"}


def format_row(result: CheckResult) -> str:
    return f"{STATUS_WORDS[result.status]:<5} {result.name:<21} {result.seconds:6.1f}s  {result.detail}"


def summary(results: list[CheckResult]) -> str:
    failed = [r.name for r in results if not r.ok]
    skipped = sum(r.skipped for r in results)
    total = sum(r.seconds for r in results)
    counts = f"{len(results) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped in {total:.0f} s"
    return f"{counts}; FAILED: {', '.join(failed)}" if failed else counts


__all__ = ["SelftestOptions", "environment", "format_row", "header", "plan", "prepare", "run_checks", "run_selftest", "select",
           "summary"]
