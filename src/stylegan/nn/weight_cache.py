"""Reusing what layers derive from fixed weights, across forward passes (inference).

Before it convolves, a StyleGAN2 synthesis layer reads its whole [O, I, kh, kw] weight once for
the demodulation coefficients' sum_k w_oik^2 (StyleGAN2 Eq. 3) and, in upsampling layers, once
more to lay it out for the transposed convolution (`stylegan.ops.conv.prepare_weight`). At batch 1
and low resolution these passes over memory cost as much as the convolution itself, and with fixed
weights they give the same tensors every call: generation, the explorer, metrics and projection
compute them once per weight instead.

The reuse is explicit, like `torch.nn.utils.parametrize.cached()`: layers store and look up
derived tensors only inside `with weight_cache(cache):`, and only when autograd does not record a
gradient for the weight (so training never sees it). An entry is reused while its weight is the
same tensor with the same data pointer and version counter; optimizer steps, `load_state_dict`
and any in-place op autograd can see bump the counter. Writes through `.data` do not: after those,
use a new `WeightCache` (or leave the block). The current cache lives in a `ContextVar` (per
thread / asyncio task), never in module state; a network reads it once at its boundary into its
`Runtime` (`stylegan.nn.runtime`), and each layer asks `usable_cache(runtime.weight_cache, weight)`.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator, TypeVar

import torch
from torch.utils.weak import WeakIdKeyDictionary

T = TypeVar("T")


class WeightCache:
    """Derived tensors keyed by the weight they come from (held weakly: a freed network frees them)."""

    def __init__(self) -> None:
        self._entries = WeakIdKeyDictionary()  # weight (by identity) -> (stamp, derived)

    def get(self, weight: torch.Tensor, derive: Callable[[torch.Tensor], T]) -> T:
        """`derive(weight)`, computed once while `weight` is unchanged."""
        stamp = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
        hit = self._entries.get(weight)
        if hit is not None and hit[0] == stamp:
            return hit[1]  # type: ignore[return-value]
        with torch.no_grad():
            value = derive(weight.detach())
        self._entries[weight] = (stamp, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


_CURRENT: ContextVar[WeightCache | None] = ContextVar("stylegan_weight_cache", default=None)


@contextlib.contextmanager
def weight_cache(cache: WeightCache | None = None) -> Iterator[WeightCache]:
    """Layers reuse derived weights inside the block: in `cache`; without one, in the cache already
    in force (an enclosing block's, e.g. the explorer's per-network cache around a library call),
    else in a new one for the block."""
    if cache is None:
        current = _CURRENT.get()
        cache = WeightCache() if current is None else current
    token = _CURRENT.set(cache)
    try:
        yield cache
    finally:
        _CURRENT.reset(token)


def current_weight_cache() -> WeightCache | None:
    """The cache of the innermost `weight_cache` block in this thread / task; None outside any."""
    return _CURRENT.get()


def usable_cache(cache: WeightCache | None, weight: torch.Tensor) -> WeightCache | None:
    """`cache` if a layer may use it for `weight` now; None without one, while autograd records a
    gradient for `weight` (training must see every derivation), or while torch.compile traces
    (a Python dict lookup keyed by tensor identity is not something to bake into a graph; asked
    first, so a compiled graph never even tests whether there is a cache, and does not recompile
    when one appears)."""
    if torch.compiler.is_compiling():
        return None
    if cache is None or (torch.is_grad_enabled() and weight.requires_grad):
        return None
    return cache


def cached_for(weight: torch.Tensor) -> WeightCache | None:
    """`usable_cache` of the current `weight_cache` block, for callers outside a network forward."""
    return usable_cache(_CURRENT.get(), weight)


__all__ = ["WeightCache", "cached_for", "current_weight_cache", "usable_cache", "weight_cache"]
