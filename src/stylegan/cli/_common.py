"""Shared CLI plumbing: device choice, network loading with clear errors."""
from __future__ import annotations

import click
import torch


def resolve_device(name: str | None) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; explicit names are checked for availability.

    On CPU the (short-lived, single-purpose) CLI process also keeps freed memory for reuse
    (`perf.retain_malloc`): 256 px generation at batch 16 runs 3x faster (docs/performance.md).
    """
    dev = _pick_device(name or "auto")
    if dev.type == "cpu":
        from ..perf import retain_malloc

        retain_malloc()
    return dev


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.ClickException("--device cuda requested but CUDA is not available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise click.ClickException("--device mps requested but MPS is not available")
    return dev


def load_network(path: str, device: torch.device, which: str | None = None):
    """stylegan.load with every expected failure turned into a one-line CLI error."""
    from ..io.checkpoint import CheckpointError, load

    try:
        return load(path, which=which, device=device)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # official-format errors derive from ValueError too
        raise click.ClickException(f"{path}: {e}") from None


device_option = click.option("--device", default="auto", show_default=True,
                             help="cpu, cuda, cuda:N, mps, or auto.")
