"""Shared helpers for the training tests (a small synthetic dataset, tiny configs) and their self-test."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegan.training.ada import AdaConfig
from stylegan.training.presets import DataShape, resolve_preset


def make_dataset(root: Path, n: int = 48, res: int = 32, labels: bool = False) -> Path:
    """Folder of n grayscale res x res PNGs (a bright disc at a random place), optional class labels."""
    root.mkdir(parents=True, exist_ok=True)
    rnd = np.random.RandomState(0)
    yy, xx = np.mgrid[:res, :res]
    entries = []
    for i in range(n):
        cx, cy, r = rnd.uniform(8, res - 8, size=2).tolist() + [rnd.uniform(3, 7)]
        img = (255 * ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)).astype(np.uint8)
        name = f"img{i:04d}.png"
        Image.fromarray(img, mode="L").save(root / name)
        entries.append([name, i % 3])
    if labels:
        (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return root


def tiny_config(*, cond: bool = False, ada: bool = False, r1_interval: int = 2, pl_interval: int = 2,
                batch: int = 8, batch_gpu=None, gpus: int = 1, ticks_kimg: float = 0.016, total_kimg: float = 0.064):
    """The `tiny` preset, ticks every 2 minibatches, regularizers every 2 so they run often."""
    cfg = resolve_preset("tiny", DataShape(32, 1, c_dim=3 if cond else 0, gpus=gpus))
    cfg = cfg.replace(loss=dataclasses.replace(cfg.loss, r1_interval=r1_interval, pl_interval=pl_interval),
                      kimg_per_tick=ticks_kimg, total_kimg=total_kimg, snap=1, batch=batch, batch_gpu=batch_gpu,
                      cond=cond)
    if ada:
        cfg = cfg.replace(augment=AdaConfig(mode="ada", p=0.2, interval=1, speed_kimg=0.1))
    return cfg


def snapshot_tensors(path) -> dict[str, torch.Tensor]:
    from stylegan.io.checkpoint import read_checkpoint

    return read_checkpoint(path).tensors


def module_tensors(path, prefixes=("G.", "D.", "G_ema.")) -> dict[str, torch.Tensor]:
    return {k: v for k, v in snapshot_tensors(path).items() if k.startswith(prefixes)}


def test_make_dataset_opens(tmp_path):
    from stylegan.data.dataset import open_dataset

    ds = open_dataset(make_dataset(tmp_path / "d", n=6, labels=True), use_labels=True)
    assert (len(ds), ds.resolution, ds.num_channels, ds.label_dim) == (6, 32, 1, 3)
