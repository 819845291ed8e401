"""Open any network file we read: sniff its first bytes, hand it to the one reader that fits.

    stylegan safetensors  -> io.checkpoint (our format)
    pickle (official)     -> io.official   (NVIDIA PyTorch / TensorFlow pickles, restricted unpickler)

This is the top of `io`: every reader sits below it and none imports it back. `stylegan.load`,
`stylegan convert`, `stylegan info` and every `--network` option come through here.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, is_safetensors, read_checkpoint
from .official import OfficialPickle, convert_official, read_official

__all__ = ["sniff", "read_foreign", "load", "convert"]


def sniff(path: str | os.PathLike) -> str:
    """'safetensors', 'pickle' (a bare pickle stream) or 'unknown', from the first bytes of `path`."""
    with open(path, "rb") as f:
        head = f.read(16)
    if is_safetensors(head):
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_foreign(path: str | os.PathLike) -> OfficialPickle:
    """Describe the networks of a file that is not ours (nothing is built or executed yet)."""
    return read_official(path)


def load(path: str | os.PathLike, which: str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """Load a network from our checkpoint or an official NVIDIA pickle (never executing its code).

    `which` picks the network ('G_ema', 'G', 'D'); default: G_ema if present, else G.
    The returned module is in eval mode with requires_grad disabled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such network file: {path}")
    if sniff(path) == "pickle":
        return read_foreign(path).network(which).build(device)
    ckpt = read_checkpoint(path)
    if which is None:
        which = next((n for n in ("G_ema", "G") if n in ckpt.modules), None)
        if which is None:
            raise CheckpointError(f"{path} holds no generator (networks: {sorted(ckpt.modules)})")
    return ckpt.build(which, device)


def convert(src: str | os.PathLike, dest: str | os.PathLike) -> dict:
    """Convert a foreign network file into our checkpoint with all its networks (see write_converted)."""
    return convert_official(src, dest)
