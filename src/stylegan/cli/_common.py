"""Shared CLI plumbing: device choice, network loading with clear errors."""
from __future__ import annotations

import click
import torch

from ..device import DeviceUnavailable
from ..device import resolve_device as _resolve_device


def resolve_device(name: str | None) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; explicit names are checked for availability.

    On CPU the (short-lived, single-purpose) CLI process also keeps freed memory for reuse
    (`perf.retain_malloc`): 256 px generation at batch 16 runs 3x faster (docs/performance.md).
    """
    try:
        dev = _resolve_device(name or "auto")
    except DeviceUnavailable as e:
        raise click.ClickException(str(e)) from None
    if dev.type == "cpu":
        from ..perf import retain_malloc

        retain_malloc()
    return dev


def load_network(path: str, device: torch.device, which: str | None = None):
    """stylegan.load with every expected failure turned into a one-line CLI error."""
    from ..io.checkpoint import CheckpointError
    from ..io.load import load

    try:
        return load(path, which=which, device=device)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # official-format errors derive from ValueError too
        raise click.ClickException(f"{path}: {e}") from None


device_option = click.option("--device", default="auto", show_default=True,
                             help="cpu, cuda, cuda:N, mps, or auto.")
