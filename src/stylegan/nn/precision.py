"""Runtime numeric precision of the StyleGAN2 synthesis and discriminator blocks.

The official StyleGAN2-ADA scheme (Karras et al. 2020, App. D of the ADA paper): the few highest
resolutions, where almost all FLOPs are, run in 16-bit; every layer's output is clamped to
+-`conv_clamp` (256) so fp16 cannot overflow; the mapping network, the styles, the
modulation/demodulation coefficients, the accumulated RGB image, the discriminator's 4x4 epilogue
and hence every loss reduction stay fp32. Low resolutions cost little and are where rounding would
matter most (the constant input, the coarse styles), so they stay fp32 too.

Here the choice is not baked into the network at construction (as the official `num_fp16_res`
is): a `Precision` is made current with `precision_scope` (a `contextvars.ContextVar`, like
`stylegan.ops.settings`: per thread / task, no global state); a network reads it once at its
boundary into its `Runtime` (`stylegan.nn.runtime`) and hands it to every block and layer, which
decide with the pure `block_dtype_for` / `layer_clamp_for`. So the same weights run in fp32 or
bf16 around any forward + backward:

    with precision_scope(Precision("bf16")):
        loss = softplus(-D(G(z, c))).mean()
        loss.backward()

Outside any scope (or with `precision_scope(None)`) the networks behave as constructed:
`num_fp16_res` blocks in fp16 on CUDA, fp32 elsewhere; `Precision("fp32")` is bit-identical to that
on CPU. On a CPU without bf16 instructions (AVX512-BF16 / AMX) PyTorch emulates bf16 and
convolutions run tens of times slower than fp32; `precision_problem` says so, and the command line
tools print it.
"""
from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Literal, Optional, Union

import torch

PrecisionName = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """Which blocks run in which dtype.

    dtype: 'fp32' (everything fp32), 'bf16' or 'fp16' in the `num_low_res` highest resolutions of
    G's synthesis network and of D (never below 8x8, as in the official code).
    conv_clamp: |activation| bound applied to every layer that runs in low precision (layers keep
    their own, smaller, configured clamp); None: no extra clamp. 256 is the official value: it only
    matters for fp16, whose range ends at 65504, and costs nothing in bf16.
    """

    dtype: PrecisionName = "fp32"
    num_low_res: int = 4
    conv_clamp: Optional[float] = 256.0

    def __post_init__(self) -> None:
        if self.dtype not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.dtype!r}")
        if self.num_low_res < 0:
            raise ValueError(f"num_low_res must be >= 0, got {self.num_low_res}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"conv_clamp must be positive or None, got {self.conv_clamp}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.dtype]

    def block_dtype(self, resolution: int, img_resolution: int) -> torch.dtype:
        """The dtype of the block at `resolution` in a network for `img_resolution` images."""
        if self.dtype == "fp32" or resolution < lowest_low_precision_resolution(img_resolution, self.num_low_res):
            return torch.float32
        return self.torch_dtype


PrecisionLike = Union[Precision, str, None]


def as_precision(p: PrecisionLike) -> Optional[Precision]:
    """'bf16' -> Precision('bf16'); a Precision or None passes through."""
    if p is None or isinstance(p, Precision):
        return p
    if isinstance(p, str):
        return Precision(p)  # validates the name
    raise TypeError(f"precision must be a Precision, one of {PRECISIONS} or None, got {type(p).__name__}")


def lowest_low_precision_resolution(img_resolution: int, num_low_res: int) -> int:
    """Lowest block resolution that runs in 16 bits when the `num_low_res` highest do (never below 8;
    2 * img_resolution, i.e. no block, when num_low_res == 0)."""
    return max(2 ** (int(math.log2(img_resolution)) + 1 - num_low_res), 8)


_PRECISION: ContextVar[Optional[Precision]] = ContextVar("stylegan_precision", default=None)


def current_precision() -> Optional[Precision]:
    """The precision in force in this thread / task; None: the networks' constructed behaviour."""
    return _PRECISION.get()


@contextlib.contextmanager
def precision_scope(p: PrecisionLike) -> Iterator[Optional[Precision]]:
    """Run the StyleGAN2 blocks called inside the block at precision `p` ('fp32', 'bf16', 'fp16',
    a `Precision`, or None for the constructed behaviour); the previous setting returns after."""
    token = _PRECISION.set(as_precision(p))
    try:
        yield _PRECISION.get()
    finally:
        _PRECISION.reset(token)


def block_dtype_for(p: Optional[Precision], resolution: int, img_resolution: int, constructed_fp16: bool,
                    device: torch.device, force_fp32: bool = False) -> torch.dtype:
    """The dtype a synthesis / discriminator block runs in under precision `p`: `force_fp32` wins,
    then `p`, then (p None) the constructed rule (fp16 on CUDA for the `num_fp16_res` blocks)."""
    if force_fp32:
        return torch.float32
    if p is not None:
        return p.block_dtype(resolution, img_resolution)
    return torch.float16 if constructed_fp16 and device.type == "cuda" else torch.float32


def layer_clamp_for(p: Optional[Precision], conv_clamp: Optional[float], dtype: torch.dtype) -> Optional[float]:
    """A layer's activation clamp for inputs of `dtype` under precision `p`: its configured one,
    tightened to `p.conv_clamp` when the layer runs in 16 bits (the official fp16 overflow guard)."""
    if dtype == torch.float32 or p is None or p.conv_clamp is None:
        return conv_clamp
    return p.conv_clamp if conv_clamp is None else min(conv_clamp, p.conv_clamp)


def block_dtype(resolution: int, img_resolution: int, constructed_fp16: bool, device: torch.device,
                force_fp32: bool = False) -> torch.dtype:
    """`block_dtype_for` under the current `precision_scope`, for callers outside a network forward
    (the networks pass their `Runtime.precision` instead)."""
    return block_dtype_for(current_precision(), resolution, img_resolution, constructed_fp16, device, force_fp32)


def layer_clamp(conv_clamp: Optional[float], dtype: torch.dtype) -> Optional[float]:
    """`layer_clamp_for` under the current `precision_scope`, for callers outside a network forward."""
    return layer_clamp_for(current_precision(), conv_clamp, dtype)


# ---------------------------------------------------------------------------------------------
# Hardware support

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_FP16_CPU_FLAGS = ("avx512_fp16", "amx_fp16")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def precision_problem(p: PrecisionLike, device: torch.device | str,
                      flags: frozenset[str] | None = None) -> Optional[str]:
    """Why `p` on `device` is a bad idea, or None when it is fine.

    CPU: bf16 needs AVX512-BF16 or AMX (fp16: AVX512-FP16 or AMX-FP16) to beat fp32; without them
    oneDNN converts every element and a 3x3 convolution runs ~40x slower than in fp32 (AMD EPYC
    with AVX2, torch 2.13; docs/performance.md). CUDA: bf16 needs compute capability >= 8.0.
    Apple MPS: neither is measured here. `flags` overrides /proc/cpuinfo (tests).
    """
    p = as_precision(p)
    if p is None or p.dtype == "fp32":
        return None
    device = torch.device(device)
    if device.type == "cpu":
        need = _BF16_CPU_FLAGS if p.dtype == "bf16" else _FP16_CPU_FLAGS
        have = cpu_flags() if flags is None else flags
        if not have.intersection(need):
            return (f"this CPU has no {p.dtype} instructions ({' or '.join(need)} not in /proc/cpuinfo): "
                    f"PyTorch emulates {p.dtype} and the networks run many times slower than in fp32; "
                    f"use --precision fp32")
        return None
    if device.type == "cuda" and p.dtype == "bf16" and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(device)} does not support bf16; use fp16 or fp32"
    return None


__all__ = [
    "PRECISIONS", "Precision", "PrecisionLike", "PrecisionName", "as_precision", "block_dtype", "block_dtype_for",
    "cpu_flags", "current_precision", "layer_clamp", "layer_clamp_for", "lowest_low_precision_resolution",
    "precision_problem",
    "precision_scope",
]
