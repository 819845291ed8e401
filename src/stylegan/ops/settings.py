"""Which evaluation of each op to run: one immutable record held in a context variable.

Every op in `stylegan.ops` with a fast path keeps its plain reference form beside it, and both
compute the same function (tests/test_perf.py checks values and first/second-order gradients).
`OpSettings` selects between them. It lives in a `contextvars.ContextVar`, not in module state, so
a setting made with `use_op_settings(...)` applies to the current thread / asyncio task only and
ends with the `with` block; other threads (e.g. a server generating images concurrently) keep the
defaults. torch.compile guards on the value, so a compiled module recompiles if it changes.

`stylegan.perf` wraps this in the user-facing switches (`fast_paths`, `modconv_policy`,
`reference_mode`). The context variable is only where a `with` block leaves its choice: a network
reads it once, at its boundary, through `stylegan.nn.runtime.Runtime.current()`, and hands the
`OpSettings` down to every op as an explicit `settings=` argument. The ops fall back to
`op_settings()` only when a direct caller passes none.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Iterator, Literal

ModconvPolicy = Literal["auto", "fused", "unfused"]
MODCONV_POLICIES: tuple[str, ...] = ("auto", "fused", "unfused")


@dataclass(frozen=True)
class OpSettings:
    """Fast-path choices; the defaults are the fast forms, False / "fused" the code as first written."""

    upfirdn2d: bool = True  # polyphase / strided depthwise convs instead of zero insertion + decimation
    demod: bool = True  # demodulation coefficients by a [N, I] x [I, O] matmul, not a [N, O, I, k, k] tensor
    bias_act: bool = True  # one autograd node for bias + activation + gain + clamp
    effnet: bool = True  # metrics' EfficientNet features: BatchNorm folded, channels_last, CPU chunks of 4
    modconv: ModconvPolicy = "auto"  # how modulated_conv2d(fused="auto") decides (ops.conv.choose_fused)

    def __post_init__(self) -> None:
        if self.modconv not in MODCONV_POLICIES:
            raise ValueError(f"modconv policy must be one of {MODCONV_POLICIES}, got {self.modconv!r}")

    @classmethod
    def fast_path_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.type in (bool, "bool"))


_SETTINGS: ContextVar[OpSettings] = ContextVar("stylegan_op_settings", default=OpSettings())


def op_settings() -> OpSettings:
    """The settings in force in this thread / task."""
    return _SETTINGS.get()


def set_op_settings(settings: OpSettings) -> OpSettings:
    """Make `settings` current in this context (until changed again); returns the previous ones."""
    if not isinstance(settings, OpSettings):
        raise TypeError(f"expected OpSettings, got {type(settings).__name__}")
    old = _SETTINGS.get()
    _SETTINGS.set(settings)
    return old


@contextlib.contextmanager
def use_op_settings(**changes) -> Iterator[OpSettings]:
    """`with use_op_settings(modconv="unfused"): ...`: changed settings for the block, then restored."""
    unknown = set(changes) - {f.name for f in fields(OpSettings)}
    if unknown:
        raise ValueError(f"unknown op setting(s) {sorted(unknown)}; known: {[f.name for f in fields(OpSettings)]}")
    new = replace(_SETTINGS.get(), **changes)
    token = _SETTINGS.set(new)
    try:
        yield new
    finally:
        _SETTINGS.reset(token)


__all__ = ["OpSettings", "ModconvPolicy", "MODCONV_POLICIES", "op_settings", "set_op_settings", "use_op_settings"]
