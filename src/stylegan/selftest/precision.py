"""Numeric precision for the checks: strict float32, and the one way to run in fp16 / bf16.

`_low_precision` is the single place where the selftest asks for reduced precision (the fixture
check and generation speed use it). It autocasts for now; when the library grows a precision API
this function is the one to switch over.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no per-device query
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


@contextlib.contextmanager
def _low_precision(device: torch.device, dtype: str) -> Iterator[None]:
    """Run the block in `dtype` ('fp32': unchanged; 'fp16' / 'bf16': torch.autocast on `device`).

    torch silently disables autocast for a device / dtype pair it does not support; that would
    make a low-precision check pass in float32, so it is refused here with a clear error instead.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if dtype == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[dtype]):
        if not _autocast_enabled(device.type):
            raise ValueError(f"torch {torch.__version__} cannot autocast to {dtype} on {device.type}")
        yield


@contextlib.contextmanager
def strict_fp32(device: torch.device) -> Iterator[None]:
    """float32 as written: no TF32 matmuls / convolutions on CUDA (cuDNN allows TF32 by default,
    which alone gives errors of ~1e-3, far above the fixture's 1e-4). A no-op elsewhere."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def check_dtype_supported(device: torch.device, dtype: str) -> None:
    """Raise ValueError (naming device and dtype) when `_low_precision` cannot run there."""
    with _low_precision(device, dtype):
        pass


__all__ = ["DTYPES", "check_dtype_supported", "strict_fp32"]
