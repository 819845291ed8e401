"""Shared by every official reader: the error type, result records, kwargs and weight checks.

`ForeignNetwork` / `ForeignFile` describe what a file holds before anything is built;
`Kwargs` and the `as_*` checkers turn constructor kwargs into config fields with errors that name
the offending key; `fit_state` checks a translated state dict against the module it must fill.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..checkpoint import CheckpointError, save_checkpoint, source_info, state_mismatch

__all__ = ["OfficialFormatError", "ForeignNetwork", "ForeignFile", "Kwargs", "MALFORMED", "fit_state",
           "as_int", "opt_int", "as_float", "opt_float", "as_filter", "as_arch", "merge_args", "jsonable",
           "write_converted"]


class OfficialFormatError(CheckpointError):
    """An official pickle is refused (unsafe, unsupported, damaged) or does not fit our networks."""


def fit_state(module: nn.Module, state: dict[str, torch.Tensor], origin: dict[str, str], what: str,
              source: str = "official") -> dict[str, torch.Tensor]:
    """Check `state` (our key names) against `module`: completeness, shapes, dtypes, finiteness.

    origin maps our key -> the source name, for errors in the file's own terms; `source` names the
    file's origin in them ('official', 'rosinality').
    """
    own = module.state_dict()
    bad = state_mismatch(own, state)
    missing = bad.missing
    unused = [origin.get(k, k) for k in bad.unexpected]
    shapes = [f"{origin.get(k, k)} {tuple(state[k].shape)} vs ours {k} {tuple(own[k].shape)}" for k in bad.shapes]
    if bad:
        parts = []
        if unused:
            parts.append(f"{len(unused)} {source} tensor(s) not used: {unused[:6]}")
        if missing:
            parts.append(f"{len(missing)} tensor(s) of ours not filled: {missing[:6]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): {shapes[:4]}")
        raise OfficialFormatError(f"{what}: the {source} weights do not fit the network built from "
                                  f"its description: " + "; ".join(parts))
    out = {}
    for k, v in state.items():
        ref = own[k]
        if v.dtype != ref.dtype:
            if not (v.is_floating_point() and ref.is_floating_point()):
                raise OfficialFormatError(f"{what}: {origin.get(k, k)} has dtype {v.dtype}, expected {ref.dtype}")
            v = v.to(ref.dtype)
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise OfficialFormatError(f"{what}: {origin.get(k, k)} contains NaN/Inf")
        out[k] = v
    return out


class Kwargs:
    """Consume a kwargs dict key by key; leftovers are errors, except known harmless ones."""

    def __init__(self, kwargs: Any, where: str, notes: list[str]):
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise OfficialFormatError(f"{where} must be a dict, got {type(kwargs).__name__}")
        self.kw, self.where, self.notes = dict(kwargs), where, notes

    def take(self, key: str, default: Any = None) -> Any:
        return self.kw.pop(key, default)

    def require(self, key: str, expected: Any, why: str) -> None:
        if key in self.kw:
            value = self.kw.pop(key)
            if value != expected:
                raise OfficialFormatError(f"{self.where}.{key}={value!r} is not supported ({why}; "
                                          f"only {expected!r} is implemented)")

    def harmless(self, key: str, why: str) -> None:
        if key in self.kw:
            self.notes.append(f"ignored {self.where}.{key}={self.kw.pop(key)!r} ({why})")

    def finish(self) -> None:
        if self.kw:
            raise OfficialFormatError(f"unknown {self.where} {sorted(self.kw)}: they may change the "
                                      f"architecture, so the network is refused rather than guessed")


def as_int(v: Any, what: str, minimum: int = 0) -> int:
    if isinstance(v, (np.integer,)):
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise OfficialFormatError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return v


def opt_int(v: Any, what: str, minimum: int = 0) -> int | None:
    return None if v is None else as_int(v, what, minimum)


def as_float(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise OfficialFormatError(f"{what} must be a number, got {v!r}")
    return float(v)


def opt_float(v: Any, what: str) -> float | None:
    return None if v is None else as_float(v, what)


def as_filter(v: Any, what: str) -> tuple[int, ...]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)) or not v:
        raise OfficialFormatError(f"{what} must be a list of taps, got {v!r}")
    return tuple(as_int(t, what) for t in v)


def as_arch(v: Any, what: str) -> str:
    if v not in ("orig", "skip", "resnet"):
        raise OfficialFormatError(f"{what}={v!r} is not one of 'orig', 'skip', 'resnet'")
    return v


def merge_args(args: Any, kwargs: Any, order: list[str], where: str) -> dict:
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    if len(args) > len(order):
        raise OfficialFormatError(f"{where}: {len(args)} positional arguments, at most {len(order)} known")
    for name, value in zip(order, args):
        if name in kwargs:
            raise OfficialFormatError(f"{where}: {name} given twice")
        kwargs[name] = value
    return kwargs


# Exceptions that malformed (not merely refused) records raise deep in the validation code.
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


@dataclass
class ForeignNetwork:
    """One network found in a foreign file (official pickle or rosinality checkpoint), ready to build as our module."""

    name: str  # 'G', 'D', 'G_ema'
    kind: str  # 'generator' | 'discriminator'
    source_class: str  # official class (PyTorch) or build function (TensorFlow)
    cfg: Any = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why it cannot be imported (raised when it is asked for)
    state_fn: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        from ...models import Generator, build_discriminator

        if self.error is not None:
            raise OfficialFormatError(self.error)
        try:
            module = Generator(self.cfg) if self.kind == "generator" else build_discriminator(self.cfg)
        except (ValueError, TypeError) as e:
            raise OfficialFormatError(f"{self.name}: cannot build the network its kwargs describe: {e}") from None
        state = self.state_fn(module)
        module.load_state_dict(state, strict=True)
        return module.to(device).eval().requires_grad_(False)


@dataclass
class ForeignFile:
    """The networks of a file written by other code, read without running any of it: NVIDIA's
    pickles (stylegan2-ada-pytorch / stylegan3 code, TF StyleGAN and StyleGAN2) and rosinality's
    checkpoints. Each network can be built as ours (`ForeignNetwork.build`) or converted."""

    path: Path
    source_format: str  # 'pytorch' | 'tensorflow' | 'rosinality'
    networks: dict[str, ForeignNetwork]
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def network(self, which: str | None) -> ForeignNetwork:
        if which is None:
            which = next((n for n in ("G_ema", "G") if n in self.networks), None)
            if which is None:
                raise OfficialFormatError(f"{self.path}: holds no generator (networks: {sorted(self.networks)})")
        which = {"Gs": "G_ema"}.get(which, which)
        if which not in self.networks:
            raise OfficialFormatError(f"{self.path}: has no network {which!r} (it has {sorted(self.networks)})")
        return self.networks[which]


def jsonable(v: Any, depth: int = 0) -> Any:
    if depth > 8:
        return None
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, dict):
        return {str(k): jsonable(x, depth + 1) for k, x in v.items() if isinstance(k, str)}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, depth + 1) for x in v]
    return repr(v)[:200]


def write_converted(file: ForeignFile, dest: str | Path) -> dict:
    """Build every network `file` describes and write them, with provenance, as our checkpoint.

    Shared by every foreign reader (official pickles, rosinality checkpoints): `file` says what it
    holds, this builds and saves it. Returns a summary: {"source_format", "networks": {name: {...}},
    "info", "notes"}.
    """
    names = [n for n in ("G", "D", "G_ema") if n in file.networks]
    if not names:
        raise OfficialFormatError(f"{file.path}: holds no networks")
    modules: dict[str, nn.Module] = {}
    summary: dict[str, Any] = {"source_format": file.source_format, "networks": {}, "notes": list(file.notes)}
    for name in names:
        net = file.networks[name]
        module = modules[name] = net.build("cpu")
        cfg = net.cfg
        summary["networks"][name] = {
            "kind": net.kind, "source_class": net.source_class, "resolution": cfg.img_resolution,
            "channels": cfg.img_channels, "c_dim": cfg.c_dim,
            "architecture": f"stylegan3-{cfg.sg3.config_name}" if getattr(cfg, "version", 2) == 3 else cfg.architecture,
            "params": sum(p.numel() for p in module.parameters()),
        }
        summary["notes"] += [f"{name}: {n}" for n in net.notes]
    info = {**source_info(Path(file.path), file.source_format),
            **{k: v for k, v in file.info.items() if k != "networks"}}
    save_checkpoint(dest, modules, info=info)
    summary["info"] = info
    return summary
