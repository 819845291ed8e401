"""Open any network file we read: sniff its first bytes, hand it to the one reader that fits.

    stylegan safetensors  -> io.checkpoint (our format)
    pickle (official)     -> io.official   (NVIDIA PyTorch / TensorFlow pickles, restricted unpickler)
    torch.save (zip or legacy stream) -> io.rosinality (rosinality/stylegan2-pytorch .pt, weights only)

This is the top of `io`: every reader sits below it and none imports it back. `stylegan.load`,
`stylegan convert`, `stylegan info` and every `--network` option come through here, so each of
them also takes an http(s) URL: `io.remote` downloads it once into the cache (atomically, with a
progress bar, checksum-checked where known) and the cached file is read as any other.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .checkpoint import CheckpointError, is_safetensors, read_checkpoint
from .official import ForeignFile, read_official
from .official.common import write_converted
from .remote import resolve_path
from .rosinality import read_rosinality, save_rosinality

__all__ = ["sniff", "read_foreign", "load", "load_all", "convert", "FORMATS"]

FORMATS = ("stylegan", "rosinality")  # what `convert` writes


# A legacy (pre-zip) torch.save stream opens with the pickled magic number 0x1950a86a20f9469cfc6c.
_LEGACY_TORCH_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def sniff(path: str | os.PathLike) -> str:
    """From the first bytes of `path`: 'safetensors', 'torch' (a torch.save zip or legacy stream),
    'pickle' (a bare pickle stream: official NVIDIA networks) or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(16)
    if is_safetensors(head):
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:14] == _LEGACY_TORCH_HEAD:
        return "torch"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_foreign(path: str | os.PathLike) -> ForeignFile:
    """Describe the networks of a file that is not ours (nothing is built or executed yet)."""
    path = resolve_path(path)
    return read_rosinality(path) if sniff(path) == "torch" else read_official(path)


def load(path: str | os.PathLike, which: str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """Load a network from our checkpoint, an official NVIDIA pickle or a rosinality checkpoint.

    `path` may be an http(s) URL, as in NVIDIA's tools: downloaded once into the cache
    (io.remote). Nothing from the file is executed (see io.official.unpickler and io.rosinality).

    `which` picks the network ('G_ema', 'G', 'D'); default: G_ema if present, else G.
    The returned module is in eval mode with requires_grad disabled.
    """
    path = resolve_path(path)
    if not path.is_file():
        raise CheckpointError(f"no such network file: {path}")
    if sniff(path) in ("pickle", "torch"):
        return read_foreign(path).network(which).build(device)
    ckpt = read_checkpoint(path)
    if which is None:
        which = next((n for n in ("G_ema", "G") if n in ckpt.modules), None)
        if which is None:
            raise CheckpointError(f"{path} holds no generator (networks: {sorted(ckpt.modules)})")
    return ckpt.build(which, device)


def load_all(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, nn.Module]:
    """Every network in a file of any format we read (or its URL): {'G': ..., 'D': ..., 'G_ema': ...}."""
    path = resolve_path(path)
    if not path.is_file():
        raise CheckpointError(f"no such network file: {path}")
    if sniff(path) in ("pickle", "torch"):
        foreign = read_foreign(path)
        return {name: net.build(device) for name, net in foreign.networks.items()}
    ckpt = read_checkpoint(path)
    return {name: ckpt.build(name, device) for name in ckpt.modules}


def convert(src: str | os.PathLike, dest: str | os.PathLike, to: str = "stylegan",
            allow_custom_channels: bool = False) -> dict:
    """Convert a network file into our checkpoint (`to='stylegan'`) or a rosinality one.

    stylegan: from an official pickle or a rosinality checkpoint, every network with provenance
    (see write_converted). rosinality: from any file we read; see io.rosinality.save_rosinality.
    `src` may be an http(s) URL (downloaded once into the cache).
    """
    src = resolve_path(src)
    if to == "rosinality":
        return save_rosinality(dest, load_all(src), allow_custom_channels=allow_custom_channels)
    if to != "stylegan":
        raise ValueError(f"unknown target format {to!r} (one of {FORMATS})")
    return write_converted(read_foreign(src), dest)
