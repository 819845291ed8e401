"""Our checkpoint format: one safetensors file, configs and training state as JSON metadata.

Loading never runs code from the file: safetensors holds only raw tensors, and the metadata is
JSON parsed into typed dataclasses (`io.serialize.from_dict`, strict). Writes are atomic (temp file
in the same directory, fsync, rename), so a crash mid-write never replaces a good file with a
broken one.

Integrity: the metadata key `stylegan.sha256` holds a digest of every tensor (name, dtype, shape,
bytes) and every other metadata entry, written with the file and checked by `read_checkpoint`, so
a bit flip or a partial copy is an error naming the file rather than silently different weights
(files written before the digest existed load unchecked).

Layout: tensors are named `<module>.<state_dict key>` for networks (`G.`, `G_ema.`, `D.`, ...)
and `state/<path>` for non-network training state (optimizer moments, RNG states, ...), whose
structure (dicts, lists, numbers) lives in the metadata key `stylegan.state`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .serialize import ConfigError, from_dict, to_dict

FORMAT = "stylegan"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, foreign, or does not fit the network it should build."""


def _module_kinds() -> dict[str, tuple[type, Callable[[Any], nn.Module], type]]:
    from ..models import DiscriminatorConfig, Generator, GeneratorConfig, build_discriminator

    return {
        "generator": (GeneratorConfig, Generator, Generator),
        "discriminator": (DiscriminatorConfig, build_discriminator, nn.Module),
    }


def module_kind(module: nn.Module) -> str:
    from ..models import Generator

    return "generator" if isinstance(module, Generator) else "discriminator"


# ----------------------------------------------------------------------------------- state tree

def flatten_state(obj: Any, prefix: str = "state") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into tensors and a JSON skeleton that refers to them by name.

    Dicts must have string or int keys (optimizer state uses int parameter ids); tuples become lists.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any, path: str) -> Any:
        if isinstance(o, torch.Tensor):
            tensors[path] = o.detach().cpu().contiguous().clone()
            return {"__tensor__": path}
        if isinstance(o, dict):
            out = {}
            for k, v in o.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"state key {k!r} at {path} must be str or int")
                key = f"{'i:' if isinstance(k, int) else 's:'}{k}"
                out[key] = walk(v, f"{path}/{k}")
            return {"__dict__": out}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(o)]
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise TypeError(f"cannot store {type(o).__name__} at {path} in a checkpoint")

    return tensors, walk(obj, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            name = skeleton["__tensor__"]
            if name not in tensors:
                raise CheckpointError(f"checkpoint state refers to a missing tensor {name!r}")
            return tensors[name]
        if "__dict__" in skeleton:
            out: dict = {}
            for k, v in skeleton["__dict__"].items():
                out[int(k[2:]) if k.startswith("i:") else k[2:]] = unflatten_state(v, tensors)
            return out
        raise CheckpointError("malformed checkpoint state")
    return skeleton


# ----------------------------------------------------------------------------------- files

def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) for a temp file beside `path`, then atomically rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


DIGEST_KEY = "stylegan.sha256"


def content_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over the metadata (all but the digest itself) and the tensors, each in name order."""
    h = hashlib.sha256()
    for key in sorted(k for k in metadata if k != DIGEST_KEY):
        h.update(f"{len(key)}:{key}{len(metadata[key])}:".encode())
        h.update(metadata[key].encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, modules: dict[str, nn.Module], state: Any = None,
                    info: dict | None = None) -> None:
    """Write networks (with their configs), optional training state and info, atomically."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    header: dict[str, dict] = {}
    for name, module in modules.items():
        if "." in name or "/" in name:
            raise ValueError(f"module name {name!r} may not contain '.' or '/'")
        module = getattr(module, "module", module)  # unwrap DDP
        header[name] = {"kind": module_kind(module), "config": to_dict(module.cfg)}
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous().clone()
    metadata = {
        "stylegan.format": FORMAT,
        "stylegan.format_version": str(FORMAT_VERSION),
        "stylegan.modules": json.dumps(header),
        "stylegan.info": json.dumps(info or {}),
    }
    if state is not None:
        state_tensors, skeleton = flatten_state(state)
        tensors.update(state_tensors)
        metadata["stylegan.state"] = json.dumps(skeleton)
    metadata[DIGEST_KEY] = content_digest(tensors, metadata)
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


@dataclass
class Checkpoint:
    path: Path
    modules: dict[str, dict]  # name -> {"kind": ..., "config": {...}}
    tensors: dict[str, torch.Tensor]
    info: dict = field(default_factory=dict)
    state_skeleton: Any = None

    @property
    def state(self) -> Any:
        return None if self.state_skeleton is None else unflatten_state(self.state_skeleton, self.tensors)

    def config(self, name: str):
        if name not in self.modules:
            raise CheckpointError(f"{self.path}: has no network {name!r} (it has {sorted(self.modules)})")
        entry = self.modules[name]
        kinds = _module_kinds()
        if entry.get("kind") not in kinds:
            raise CheckpointError(f"{self.path}: unknown network kind {entry.get('kind')!r} for {name!r}")
        try:
            return from_dict(kinds[entry["kind"]][0], entry["config"])
        except ConfigError as e:
            raise CheckpointError(f"{self.path}: incompatible config for {name!r}: {e}") from None

    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        prefix = f"{name}."
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def build(self, name: str, device: torch.device | str = "cpu") -> nn.Module:
        cfg = self.config(name)
        module = _module_kinds()[self.modules[name]["kind"]][1](cfg)
        load_state_strict(module, self.state_dict(name), f"{self.path} [{name}]")
        return module.to(device).eval().requires_grad_(False)


@dataclass(frozen=True)
class StateMismatch:
    """How a state dict fails to fit a module's (every reader reports it in its own terms)."""

    missing: list[str]  # the module's keys the state lacks, in the module's order
    unexpected: list[str]  # the state's keys the module lacks, in the state's order
    shapes: list[str]  # keys in both with different shapes, in the state's order

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def state_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> StateMismatch:
    return StateMismatch(missing=[k for k in own if k not in state],
                         unexpected=[k for k in state if k not in own],
                         shapes=[k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)])


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names the missing, unexpected and mis-shaped keys in one clear error."""
    own = module.state_dict()
    bad = state_mismatch(own, state)
    missing, unexpected = sorted(bad.missing), sorted(bad.unexpected)
    shapes = [f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k].shape)}" for k in bad.shapes]
    if bad:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"shape mismatch {len(shapes)} (e.g. {shapes[:3]})")
        raise CheckpointError(f"{what}: weights do not fit the network: " + "; ".join(parts))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{what}: non-finite values (NaN/Inf) in {bad[:3]}")
    module.load_state_dict(state, strict=True)


def is_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then the JSON header.

    Test it before any pickle marker: the length's low byte may be 0x80, the pickle protocol byte.
    """
    return len(head) >= 9 and head[8:9] == b"{"


def source_info(src: Path, source_format: str) -> dict[str, str]:
    """Provenance recorded in a checkpoint converted from a foreign file: its name, hash, format."""
    from ..version import __version__

    h = hashlib.sha256()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"source": src.name, "source_sha256": h.hexdigest(), "source_format": source_format,
            "converted_by": f"stylegan {__version__}"}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint of ours; damaged or foreign files raise CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if not is_safetensors(head):
        raise CheckpointError(f"{path} is not a stylegan checkpoint (not a safetensors file); official "
                              f"NVIDIA pickles and rosinality .pt files are read by stylegan.load() or "
                              f"converted with `stylegan convert`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path} is damaged or truncated: {e}") from None
    if meta.get("stylegan.format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a stylegan checkpoint "
                              f"(no 'stylegan.format' metadata)")
    if DIGEST_KEY in meta and content_digest(tensors, meta) != meta[DIGEST_KEY]:
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum written with it "
                              f"(a flipped bit or an incomplete copy); use another snapshot or copy it again")
    version = int(meta.get("stylegan.format_version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {version}; this stylegan reads "
                              f"up to {FORMAT_VERSION}: upgrade the package")
    try:
        modules = json.loads(meta["stylegan.modules"])
        info = json.loads(meta.get("stylegan.info", "{}"))
        skeleton = json.loads(meta["stylegan.state"]) if "stylegan.state" in meta else None
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({e})") from None
    return Checkpoint(path, modules, tensors, info, skeleton)
