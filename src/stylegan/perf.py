"""Performance switches without custom kernels: fast-path toggles, modconv policy, channels_last,
torch.compile with an eager fallback, precision (re-exported from stylegan.nn.precision), allocator report.

Every switch selects between two evaluations of the same function, and the plain one stays
available beside the fast one (tests/test_perf.py checks that they agree, including second-order
gradients, which R1 and path-length regularization need). Where each switch lives:

- per call: `fast_paths`, `modconv_policy`, `reference_mode`, `precision_scope`, `weight_cache` and
  `eager` are context managers that set context variables (`contextvars`: the calling thread /
  asyncio task only; a thread started inside the block does not see them). A network reads them
  once, at its boundary, into a `stylegan.nn.Runtime` (`Runtime.current()`, printed by
  `Runtime.describe()`) and passes that value down to every block, layer and op; a forward can
  also be given one explicitly: `G(z, runtime=Runtime(ops=OpSettings(modconv="unfused")))`.
- per module: `set_channels_last` and `maybe_compile` change or wrap the module you pass.
- per process: `retain_malloc` changes glibc's malloc for the whole process (every thread, every
  network, until changed back); it is the one switch here that is process-wide.

The switches:

- `fast_paths(False)` / `set_fast_paths(...)`: the reference forms of upfirdn2d, the demodulation
  coefficients and bias_act (`stylegan.ops`), i.e. the code as first written.
- `set_modconv_policy("auto" | "fused" | "unfused")`: how `modulated_conv2d(fused="auto")` chooses.
  Networks use it when built with `fused_modconv="auto"` or called with `fused_modconv="auto"`.
- `set_channels_last(module, True)`: StyleGAN2 blocks keep their activations in NHWC, which oneDNN
  convolutions (CPU) and tensor cores (CUDA) prefer. Opt-in: +5-15% on CPU at batch >= 4, nothing
  at batch 1.
- `maybe_compile(module, enabled, mode)`: torch.compile, falling back to eager with a warning
  when compilation fails. aot_autograd cannot differentiate twice, so run R1 / path-length
  phases inside `with eager():` (the wrapper then calls the original module).
- `weight_cache()` (re-exported from stylegan.nn.weight_cache): inside the block, inference reuses
  what synthesis layers derive from fixed weights (demodulation sums, transposed upsampling
  weights) across calls; generation, the explorer, metrics and the projector use it.
- `precision_scope(Precision("bf16"))`: 16 bits in the highest resolutions of G and D, as the official
  scheme (`stylegan.nn.precision`); `precision_problem(p, device)` says when the hardware would emulate it.
- `retain_malloc()`: PROCESS-WIDE (glibc mallopt): glibc keeps freed memory for reuse instead of
  unmapping it (large speedups for big batches on CPU); `allocator_info()`: the malloc
  configuration of this process.

Figures and recommendations: docs/performance.md.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import replace
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .nn.precision import Precision, precision_problem, precision_scope
from .nn.runtime import Runtime, eager_forced, eager_scope
from .nn.weight_cache import WeightCache, weight_cache
from .ops.settings import MODCONV_POLICIES, OpSettings, op_settings, set_op_settings, use_op_settings

# ---------------------------------------------------------------------------------------------
# Fast-path switches (context-local: `stylegan.ops.settings`)


def get_fast_paths() -> dict[str, bool]:
    """Current state of the op-level fast paths (upfirdn2d, demod, bias_act, effnet) in this context."""
    s = op_settings()
    return {k: getattr(s, k) for k in OpSettings.fast_path_names()}


def _fast_path_changes(enabled: bool | None, which: dict[str, bool]) -> dict[str, bool]:
    names = OpSettings.fast_path_names()
    unknown = set(which) - set(names)
    if unknown:
        raise ValueError(f"unknown fast path(s) {sorted(unknown)}; known: {sorted(names)}")
    changes = {k: bool(enabled) for k in names} if enabled is not None else {}
    changes.update({k: bool(v) for k, v in which.items()})
    return changes


def set_fast_paths(enabled: bool | None = None, **which: bool) -> dict[str, bool]:
    """Turn all fast paths on/off (`enabled`) and/or individual ones by name in this context (thread
    / task) until changed again; returns the old state. Prefer the `fast_paths` context manager."""
    old = get_fast_paths()
    set_op_settings(replace(op_settings(), **_fast_path_changes(enabled, which)))
    return old


@contextlib.contextmanager
def fast_paths(enabled: bool | None = True, **which: bool) -> Iterator[None]:
    """Fast paths on/off for the block; `fast_paths(False)` runs the reference forms."""
    with use_op_settings(**_fast_path_changes(enabled, which)):
        yield


def get_modconv_policy() -> str:
    return op_settings().modconv


def set_modconv_policy(policy: str) -> str:
    """'auto' (default: the faster form per layer, see `ops.conv.choose_fused`), 'fused' or 'unfused'.

    Applies to calls with `fused="auto"` in this context until changed again; returns the previous
    policy. Prefer the `modconv_policy` context manager.
    """
    old = op_settings()
    set_op_settings(replace(old, modconv=policy))  # OpSettings validates the name
    return old.modconv


@contextlib.contextmanager
def modconv_policy(policy: str) -> Iterator[None]:
    with use_op_settings(modconv=policy):
        yield


@contextlib.contextmanager
def reference_mode() -> Iterator[None]:
    """Everything as first written: reference ops and always-fused modulated convolutions."""
    with fast_paths(False), modconv_policy("fused"):
        yield


# ---------------------------------------------------------------------------------------------
# channels_last


def set_channels_last(module: nn.Module, enabled: bool = True) -> int:
    """Keep the activations of every block of `module` (G, G.synthesis or D) in channels_last.

    Sets `memory_format` on each submodule that has one (StyleGAN2 synthesis and discriminator
    blocks); parameters keep their layout. Returns how many blocks were switched.
    """
    fmt = torch.channels_last if enabled else torch.preserve_format
    count = 0
    for m in module.modules():
        if isinstance(getattr(m, "memory_format", None), torch.memory_format):
            m.memory_format = fmt
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# torch.compile with an eager fallback

@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Inside this block every `CompiledModule` runs its original (eager) module
    (`Runtime.current().eager`; context-local like the other switches, see `nn.runtime.eager_scope`).

    Use it for phases that differentiate twice (R1 via autograd.grad(create_graph=True), path
    length): torch.compile's aot_autograd raises "does not currently support double backward".
    """
    with eager_scope():
        yield


class CompiledModule(nn.Module):
    """A module and its torch.compile'd forward; falls back to the module itself on failure.

    Attribute access falls through to the wrapped module (`G.mapping`, `G.z_dim`, ...);
    parameters are the wrapped module's (so optimizers may take either), but state_dict keys carry
    the `module.` prefix: save `unwrap(m)` instead. `forward` is a boundary: it reads `perf.eager`
    once (`eager_forced()`); the module it calls resolves its own `Runtime`.
    """

    def __init__(self, module: nn.Module, compiled: Callable[..., Any]):
        super().__init__()
        self.module = module
        object.__setattr__(self, "_compiled", compiled)  # not a submodule: no duplicate state_dict keys
        self.compile_failed: str | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)

    def forward(self, *args, **kwargs):
        if self.compile_failed is not None or eager_forced():
            return self.module(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler error: run eager instead
            out = self.module(*args, **kwargs)  # a genuine error of the module raises here
            self.compile_failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"torch.compile failed for {type(self.module).__name__}; running eager "
                          f"({self.compile_failed.splitlines()[0][:300]})", RuntimeWarning, stacklevel=2)
            return out


def unwrap(module: nn.Module) -> nn.Module:
    """The original module behind `maybe_compile` / torch.compile wrappers."""
    while True:
        if isinstance(module, CompiledModule):
            module = module.module
        elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, nn.Module):
            module = module._orig_mod
        else:
            return module


def maybe_compile(module: nn.Module, enabled: bool = True, mode: str | None = None, *,
                  backend: str = "inductor", dynamic: bool | None = None, fullgraph: bool = False,
                  compiler: Callable[..., Any] | None = None) -> nn.Module:
    """torch.compile `module` if `enabled`, else return it unchanged.

    Returns a `CompiledModule`: compilation happens lazily at the first call; if it (or
    torch.compile itself) raises, a RuntimeWarning is issued and the module runs eagerly from then
    on. `mode` is torch.compile's ("default", "reduce-overhead", "max-autotune"). `compiler`
    replaces torch.compile (tests use it to simulate failures). Double backward is not supported
    by compiled graphs: wrap R1 / path-length phases in `with stylegan.perf.eager():`.
    """
    if not enabled:
        return module
    compile_fn = compiler or torch.compile
    try:
        compiled = compile_fn(module, mode=mode, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"torch.compile unavailable for {type(module).__name__}; running eager "
                      f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
        wrapper = CompiledModule(module, module)
        wrapper.compile_failed = f"{type(exc).__name__}: {exc}"
        return wrapper
    return CompiledModule(module, compiled)


# ---------------------------------------------------------------------------------------------
# Allocator

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
_MALLOPT_APPLIED: dict[str, int] = {}


def retain_malloc(enabled: bool = True) -> bool:
    """glibc only: keep freed memory in the process instead of returning it to the OS.

    Process-wide, unlike every other switch in this module: mallopt changes the C library's
    allocator for all threads of the process (other networks, a server's request threads, data
    loader threads) until it is called again with `enabled=False`; no `with` block undoes it.

    The in-process equivalent of
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=<huge>. By default glibc
    serves every block above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps it
    on free, so each large activation costs page faults and zeroing again; with this, blocks come
    from the heap and are reused. Measured on CPU: S256 generation at batch 16 1.7x faster, see
    docs/performance.md. Cost: the resident size stays at its peak. Returns False (and does
    nothing) when the C library is not glibc or mallopt fails; `enabled=False` restores glibc's
    defaults (mmap_max 65536, trim threshold 128 KiB).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim, mmap_max = ((2 ** 31 - 1), 0) if enabled else (128 * 1024, 65536)
    ok = mallopt(_M_MMAP_MAX, mmap_max) == 1 and mallopt(_M_TRIM_THRESHOLD, trim) == 1
    if ok:
        _MALLOPT_APPLIED.clear()
        if enabled:
            _MALLOPT_APPLIED.update({"M_MMAP_MAX": mmap_max, "M_TRIM_THRESHOLD": trim})
    return ok



def allocator_info() -> dict[str, str]:
    """The memory allocator configuration of this process: glibc tunables, MALLOC_* variables,
    and any jemalloc / tcmalloc loaded through LD_PRELOAD (or otherwise mapped)."""
    info: dict[str, str] = {}
    for key in sorted(os.environ):
        if key == "GLIBC_TUNABLES" or key.startswith("MALLOC_") or key in ("LD_PRELOAD", "MALLOC_CONF",
                                                                           "TCMALLOC_RELEASE_RATE"):
            info[key] = os.environ[key]
    loaded = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                for lib in ("jemalloc", "tcmalloc"):
                    if lib in line and lib not in loaded:
                        loaded.append(lib)
    except OSError:
        pass
    info["allocator"] = "+".join(loaded) if loaded else "glibc malloc"
    if _MALLOPT_APPLIED:
        info["mallopt"] = ",".join(f"{k}={v}" for k, v in _MALLOPT_APPLIED.items())
    return info


__all__ = [
    "CompiledModule", "MODCONV_POLICIES", "Precision", "Runtime", "allocator_info", "precision_problem",
    "precision_scope", "retain_malloc",
    "eager", "eager_forced", "fast_paths", "get_fast_paths", "get_modconv_policy", "maybe_compile",
    "modconv_policy", "reference_mode", "set_channels_last", "set_fast_paths", "set_modconv_policy",
    "unwrap", "WeightCache", "weight_cache",
]
