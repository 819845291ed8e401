"""Shared by the TensorFlow readers (StyleGAN2 `tf`, StyleGAN `tf1`): variables, layouts, filling.

A TF pickle holds `dnnlib.tflib.network.Network` objects (read as `records.TFNetwork`):
`static_kwargs` (the build function's keyword arguments), `components` ({'mapping', 'synthesis'}
for G) and `variables` [(name, ndarray)]. Variables are named here as `<component>/<scope>/<var>`
relative to the top network ('mapping/Dense0/weight', 'synthesis/8x8/Conv0_up/weight',
'dlatent_avg'). Each reader maps our state-dict keys to a `Source` (TF variable + layout
transform) or `DERIVED`; `tf_to_ours_state` then fills a module, using every variable once.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from .common import OfficialFormatError, fit_state
from .records import TFNetwork

__all__ = ["DERIVED", "Source", "tf_params", "merged_kwargs", "tf_dense", "tf_conv", "tf_conv_flip", "tf_same",
           "tf_first", "tf_noise", "check_ndim", "tf_to_ours_state"]

DERIVED = "derived"  # our buffers computed from the config (resample filters), not stored by TF
Source = tuple[str, Callable[[np.ndarray], np.ndarray]]


def tf_params(net: TFNetwork, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of a TF network and its components, named '<component>/.../<var>'."""
    out: dict[str, np.ndarray] = {}
    variables = net.state.get("variables") or []
    if not isinstance(variables, (list, tuple)):
        raise OfficialFormatError(f"TF network {net.name!r}: variables is not a list")
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise OfficialFormatError(f"TF network {net.name!r}: malformed variable entry")
        name, value = item
        if not isinstance(value, (np.ndarray, np.generic, float, int)):
            raise OfficialFormatError(f"TF variable {prefix}{name} is a {type(value).__name__}, not an array")
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise OfficialFormatError(f"TF variable {prefix}{name} has dtype {arr.dtype}")
        out[prefix + name] = arr
    for comp_name, comp in net.components.items():
        if not isinstance(comp, TFNetwork):
            raise OfficialFormatError(f"TF network {net.name!r}: component {comp_name!r} is not a network")
        out.update(tf_params(comp, f"{prefix}{comp_name}/"))
    return out


def merged_kwargs(net: TFNetwork) -> dict:
    """Static kwargs of a network and its components (components get the parent's kwargs too)."""
    merged = dict(net.static_kwargs)
    for comp in net.components.values():
        if isinstance(comp, TFNetwork):
            for k, v in comp.static_kwargs.items():
                if k in merged and not _same(merged[k], v):
                    raise OfficialFormatError(f"TF kwargs disagree between {net.name!r} and {comp.name!r} "
                                              f"on {k}: {merged[k]!r} vs {v!r}")
                merged.setdefault(k, v)
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


# Layout transforms: TF array -> ours.

def tf_dense(a: np.ndarray) -> np.ndarray:
    check_ndim(a, 2, "dense weight [in, out]")
    return a.T


def tf_conv(a: np.ndarray) -> np.ndarray:
    check_ndim(a, 4, "conv weight [kh, kw, in, out]")
    return a.transpose(3, 2, 0, 1)


def tf_conv_flip(a: np.ndarray) -> np.ndarray:
    check_ndim(a, 4, "conv weight [kh, kw, in, out]")
    return a[::-1, ::-1].transpose(3, 2, 0, 1)


def tf_same(a: np.ndarray) -> np.ndarray:
    return a


def tf_first(a: np.ndarray) -> np.ndarray:
    check_ndim(a, 4, "const [1, C, 4, 4]")
    return a[0]


def tf_noise(a: np.ndarray) -> np.ndarray:
    check_ndim(a, 4, "noise [1, 1, R, R]")
    return a[0, 0]


def check_ndim(a: np.ndarray, n: int, what: str) -> None:
    if a.ndim != n:
        raise OfficialFormatError(f"expected a {what}, got shape {a.shape}")


def tf_to_ours_state(params: dict[str, np.ndarray], module: nn.Module,
                     sources: Callable[[str], Source | str], what: str,
                     ignored: Iterable[str]) -> dict[str, torch.Tensor]:
    """Fill every tensor of `module` from TF variables; every TF variable but `ignored` used once."""
    own = module.state_dict()
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    used: set[str] = set()
    missing: list[str] = []
    for key, ref in own.items():
        src = sources(key)
        if src == DERIVED:
            state[key] = ref.clone()
            continue
        name, fn = src
        if name not in params:
            missing.append(f"{key} <- {name}")
            continue
        if name in used:
            raise OfficialFormatError(f"{what}: TF variable {name} would be used twice")
        used.add(name)
        try:
            arr = fn(np.asarray(params[name]))
        except OfficialFormatError as e:
            raise OfficialFormatError(f"{what}: {name}: {e}") from None
        state[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # keeps 0-d shapes
        origin[key] = name
    unused = sorted(set(params) - used - set(ignored))
    if missing or unused:
        parts = []
        if unused:
            parts.append(f"{len(unused)} TF variable(s) not used: {unused[:6]}")
        if missing:
            parts.append(f"{len(missing)} tensor(s) of ours not filled: {missing[:6]}")
        raise OfficialFormatError(f"{what}: the TF variables do not fit the network built from its kwargs: "
                                  + "; ".join(parts))
    return fit_state(module, state, origin, what)

