"""`Runtime`: every switch that selects a code path in the networks, as one typed, visible value.

Four things decide which evaluation of the same function runs (each evaluation computes the same
function; tests/test_perf.py, test_precision.py and test_weight_cache.py check that they agree):

- `ops: OpSettings`: the fast forms of upfirdn2d, the demodulation coefficients (StyleGAN2 Eq. 3
  as a matmul), bias_act and the metrics' EfficientNet, and the modulated-conv policy
  (`stylegan.ops.settings`);
- `precision: Precision | None`: which blocks run in 16 bits and their clamp (`nn.precision`;
  None: as the network was constructed);
- `weight_cache: WeightCache | None`: where inference keeps what layers derive from fixed weights
  (`nn.weight_cache`; None: derive every call);
- `eager: bool`: `stylegan.perf.CompiledModule` calls its plain module instead of the compiled one
  (phases that differentiate twice; aot_autograd has no double backward).

The user-facing context managers (`use_op_settings`, `perf.fast_paths`, `perf.modconv_policy`,
`perf.reference_mode`, `precision_scope`, `weight_cache`, `perf.eager`) only set context variables
(per thread / asyncio task; a new thread starts without them). `Runtime.current()` reads them, and
a network does so exactly once, at the boundary a user calls (`Generator.forward`, the mapping or
synthesis network called directly, a discriminator's `forward` / `scores`), then passes the
`Runtime` down: blocks and layers take `runtime=`, ops take `settings=runtime.ops`. No op or layer
inside a network forward reads a context variable, so a call with an explicit
`runtime=Runtime(ops=OpSettings(modconv="unfused"))` says which path runs, and the value can be
handed to another thread. A frozen dataclass is a constant to torch.compile (it guards on it);
the weight cache stays unused while compiling or while autograd records a weight's gradient
(`usable_cache`).
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Iterator, Optional

import torch

from ..ops.settings import OpSettings, op_settings
from .precision import Precision, PrecisionLike, as_precision, block_dtype_for, current_precision, layer_clamp_for
from .weight_cache import WeightCache, current_weight_cache, usable_cache

_EAGER: ContextVar[bool] = ContextVar("stylegan_force_eager", default=False)


def eager_forced() -> bool:
    """Whether a `perf.eager()` block is in force in this thread / task."""
    return _EAGER.get()


@contextlib.contextmanager
def eager_scope() -> Iterator[None]:
    """Inside the block, `Runtime.current().eager` is True (`stylegan.perf.eager` is this)."""
    token = _EAGER.set(True)
    try:
        yield
    finally:
        _EAGER.reset(token)


@dataclass(frozen=True)
class Runtime:
    """Which code path every op, layer and block of a network forward takes (see the module doc)."""

    ops: OpSettings = field(default_factory=OpSettings)
    precision: Optional[Precision] = None
    weight_cache: Optional[WeightCache] = None
    eager: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.ops, OpSettings):
            raise TypeError(f"Runtime.ops must be an OpSettings, got {type(self.ops).__name__}")
        object.__setattr__(self, "precision", as_precision(self.precision))  # 'bf16' -> Precision('bf16')
        if self.weight_cache is not None and not isinstance(self.weight_cache, WeightCache):
            raise TypeError(f"Runtime.weight_cache must be a WeightCache or None, "
                            f"got {type(self.weight_cache).__name__}")
        if not isinstance(self.eager, bool):
            raise TypeError(f"Runtime.eager must be a bool, got {type(self.eager).__name__}")

    @classmethod
    def current(cls) -> Runtime:
        """The switches the context managers have set in this thread / task, read once."""
        return cls(ops=op_settings(), precision=current_precision(), weight_cache=current_weight_cache(),
                   eager=eager_forced())

    @classmethod
    def resolve(cls, runtime: Optional[Runtime]) -> Runtime:
        """`runtime`, or `Runtime.current()` when None: what a network boundary does first."""
        return cls.current() if runtime is None else runtime

    def replace(self, **changes) -> Runtime:
        """A copy with some fields changed, e.g. `rt.replace(precision="bf16")`."""
        return replace(self, **changes)

    # What blocks and layers ask, answered from the fields alone (pure functions underneath).

    def block_dtype(self, resolution: int, img_resolution: int, constructed_fp16: bool, device: torch.device,
                    force_fp32: bool = False) -> torch.dtype:
        """dtype of the block at `resolution`: `nn.precision.block_dtype_for` under `self.precision`."""
        return block_dtype_for(self.precision, resolution, img_resolution, constructed_fp16, device, force_fp32)

    def layer_clamp(self, conv_clamp: Optional[float], dtype: torch.dtype) -> Optional[float]:
        """A layer's activation clamp: `nn.precision.layer_clamp_for` under `self.precision`."""
        return layer_clamp_for(self.precision, conv_clamp, dtype)

    def cache_for(self, weight: torch.Tensor) -> Optional[WeightCache]:
        """The weight cache a layer may use for `weight` now (`nn.weight_cache.usable_cache`)."""
        return usable_cache(self.weight_cache, weight)

    def describe(self) -> str:
        """One line naming every switch, e.g. `runtime: fast paths upfirdn2d,demod,bias_act,effnet;
        modconv auto; precision as constructed; weight cache off; eager off`."""
        on = [name for name in OpSettings.fast_path_names() if getattr(self.ops, name)]
        paths = ",".join(on) if on else "none (reference forms)"
        cache = "off" if self.weight_cache is None else f"on ({len(self.weight_cache)} entries)"
        return (f"runtime: fast paths {paths}; modconv {self.ops.modconv}; "
                f"precision {describe_precision(self.precision)}; weight cache {cache}; "
                f"eager {'forced' if self.eager else 'off'}")


def describe_precision(p: PrecisionLike) -> str:
    """'as constructed' (None), 'fp32', or e.g. 'bf16 in the 4 highest resolutions, clamp 256'."""
    p = as_precision(p)
    if p is None:
        return "as constructed"
    if p.dtype == "fp32":
        return "fp32"
    clamp = "no clamp" if p.conv_clamp is None else f"clamp {p.conv_clamp:g}"
    return f"{p.dtype} in the {p.num_low_res} highest resolutions, {clamp}"


__all__ = ["Runtime", "describe_precision", "eager_forced", "eager_scope"]
