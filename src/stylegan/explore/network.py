"""Which network the explorer shows: a checkpoint file, or a run directory and its snapshots.

A run directory (`runs/00003-<desc>/`) holds `snapshot-<images>.safetensors` files, listed by
`training.snapshot.list_snapshots` (oldest first). The browser only ever names a snapshot from this
list, never a path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io.remote import resolve_path
from ..models.stylegan3 import has_input_transform
from ..training.snapshot import list_snapshots


@dataclass(frozen=True)
class NetworkSource:
    """Where networks come from: one file (`snapshots` empty) or a run directory."""

    path: Path                      # the file, or the run directory
    snapshots: tuple[Path, ...]     # run directory: its snapshots, oldest first

    @property
    def is_run(self) -> bool:
        return self.path.is_dir()

    def snapshot(self, name: str) -> Path:
        """The run's snapshot called `name` (a file name from `snapshots`); anything else is an error."""
        for p in self.snapshots:
            if p.name == name:
                return p
        raise ValueError(f"unknown snapshot {name!r}; this run has {[p.name for p in self.snapshots]}")


def network_source(path: str | os.PathLike) -> NetworkSource:
    """A checkpoint / official pickle, or a run directory (which must hold at least one snapshot);
    an http(s) URL is downloaded once into the cache first, as every command's --network is
    (`io.remote.resolve_path`; its errors are CheckpointErrors naming the URL)."""
    path = resolve_path(path)
    if path.is_dir():
        snaps = list_snapshots(path)
        if not snaps:
            raise ValueError(f"{path} is a directory without snapshot-*.safetensors files")
        return NetworkSource(path, snaps)
    if not path.is_file():
        raise ValueError(f"no such network file or run directory: {path}")
    return NetworkSource(path, ())


def network_info(G: torch.nn.Module, source_name: str) -> dict:
    """What the network panel shows: kind, resolution, dims, number of ws, parameters, source file."""
    cfg = getattr(G, "cfg", None)
    version = getattr(cfg, "version", None)
    growing = bool(getattr(cfg, "growing", False))
    kind = {1: "StyleGAN (v1)", 2: "StyleGAN2 (v2)", 3: "StyleGAN3"}.get(version, "unknown")
    if version == 3:
        kind += f" (config {cfg.sg3.config_name})"
    if growing:
        kind += ", progressive"
    return {
        "kind": kind,
        "version": version,
        "resolution": G.img_resolution,
        "channels": G.img_channels,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "c_dim": G.c_dim,
        "num_ws": G.num_ws,
        "params": sum(p.numel() for p in G.parameters()),
        "noise_inputs": len(G.noise_inputs()),
        "input_transform": has_input_transform(G),  # StyleGAN3: translate / rotate, the equivariance loop
        "source": source_name,
    }


__all__ = ["NetworkSource", "network_source", "network_info"]
