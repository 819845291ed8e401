"""Which torch device to run on, one rule for training, the CLI and the metrics.

'auto' picks CUDA, then Apple's MPS, then the CPU; explicit names ('cpu', 'cuda', 'cuda:1', 'mps')
are checked for availability so a missing accelerator is a one-line error, not a failure deep
inside the first kernel.
"""
from __future__ import annotations

import platform

import torch


class DeviceUnavailable(RuntimeError):
    """The requested device does not exist on this machine."""


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """'auto' / None -> cuda:local_rank, mps or cpu; a plain 'cuda' becomes cuda:local_rank."""
    name = str(name or "auto")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps") if mps_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable("--device cuda requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    if dev.type == "mps" and not mps_available():
        raise DeviceUnavailable("--device mps requested but MPS is not available")
    return dev


def cpu_model() -> str:
    """The CPU's model name as `lscpu` reports it (from /proc/cpuinfo), else what `platform` knows.
    Every benchmark table and the selftest header name the machine with it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


__all__ = ["DeviceUnavailable", "cpu_model", "mps_available", "resolve_device"]
