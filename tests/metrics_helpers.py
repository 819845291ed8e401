"""Test helpers for the metrics: a generator that is linear in w, an in-memory dataset, a fake
TorchScript detector with the official call conventions, and a spawn target for the multi-process
feature test. (They lived in the package once; nothing in it uses them.)
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn


class ToyGenerator(nn.Module):
    """G with the project's generator interface whose image is linear in w:
    w = z M (same w for all num_ws layers, float64), img = reshape(A w_0) (no tanh, no noise).
    psi truncates towards w_avg = 0."""

    def __init__(self, z_dim: int = 8, w_dim: int = 8, num_ws: int = 4, img_resolution: int = 16,
                 img_channels: int = 3, c_dim: int = 0, seed: int = 0, scale: float = 0.3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.z_dim, self.w_dim, self.num_ws, self.c_dim = z_dim, w_dim, num_ws, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        n_pix = img_channels * img_resolution * img_resolution
        self.register_buffer("M", torch.randn(z_dim + c_dim, w_dim, generator=g, dtype=torch.float64) / np.sqrt(z_dim))
        self.register_buffer("A", torch.randn(n_pix, w_dim, generator=g, dtype=torch.float64) * scale / np.sqrt(w_dim))

    def mapping(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, psi: float = 1.0, cutoff=None) -> torch.Tensor:
        x = z.to(torch.float64)
        if self.c_dim:
            if c is None:
                raise ValueError("conditional ToyGenerator needs c")
            x = torch.cat([x, c.to(torch.float64)], dim=1)
        w = (x @ self.M) * psi  # [N, w_dim]
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        img = ws[:, 0].to(torch.float64) @ self.A.T  # [N, C*H*W]
        r = self.img_resolution
        return img.reshape(-1, self.img_channels, r, r)

    def forward(self, z, c=None, psi: float = 1.0, cutoff=None, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, psi, cutoff), noise_mode=noise_mode).float()


class ToyDataset(torch.utils.data.Dataset):
    """In-memory dataset with the project's dataset interface: items (uint8 [C, H, W], float32 [L])."""

    def __init__(self, images: np.ndarray, labels: Optional[np.ndarray] = None, name: str = "toy") -> None:
        self.images = np.asarray(images, dtype=np.uint8)
        n = self.images.shape[0]
        self.labels = np.zeros([n, 0], np.float32) if labels is None else np.asarray(labels, np.float32)
        self.name = name
        self.resolution = self.images.shape[-1]
        self.num_channels = self.images.shape[1]
        self.label_dim = self.labels.shape[1]

    @staticmethod
    def random(n: int = 32, resolution: int = 16, channels: int = 3, seed: int = 0, name: str = "toy") -> "ToyDataset":
        rng = np.random.default_rng(seed)
        return ToyDataset(rng.integers(0, 256, size=(n, channels, resolution, resolution), dtype=np.uint8), name=name)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def get_label(self, i) -> np.ndarray:
        return self.labels[i]


class FakeDetector(nn.Module):
    """Scriptable module with the official detectors' keyword interface. Features: per-channel
    mean and std plus a 2x2 pooled thumbnail of the (3-channel) image, scaled to about [0, 1]."""

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False,
                resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        x = x.to(torch.float32) / 255.0
        thumb = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # [N, 12]
        feats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), thumb], dim=1)  # [N, 18]
        if return_lpips:
            return x.flatten(1)
        if return_features:
            return feats
        return torch.softmax(feats * 10.0, dim=1)


def save_fake_detector(path: Path) -> Path:
    """Script and save a FakeDetector (TorchScript) at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FakeDetector()).save(str(path))
    return path


def distributed_features_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """torch.multiprocessing.spawn target used by the tests: gloo on CPU, generator + dataset
    features and PPL lengths of the toy objects, saved by rank 0."""
    import torch.distributed as dist

    from stylegan.metrics.features import (Extractor, MetricOptions, compute_dataset_features,
                                           compute_generator_features)
    from stylegan.metrics.ppl import PPLConfig, compute_ppl

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        opts = MetricOptions(G=ToyGenerator(), dataset=ToyDataset.random(11), batch=3, num_gpus=world, rank=rank,
                             use_cache=False, progress=False, num_workers=0)
        ext = Extractor(id="fake", fn=lambda img: img.float().flatten(1)[:, :5])
        gen = compute_generator_features(opts, ext, 10, capture_all=True).get_all()
        real = compute_dataset_features(opts, ext, capture_all=True).get_all()
        ppl = compute_ppl(opts, PPLConfig(num_samples=7, space="w", sampling="full"),
                          distance=lambda a, b: (a - b).square().flatten(1).sum(1), return_all=True)
        if rank == 0:
            np.savez(Path(out_dir) / "dist.npz", gen=gen, real=real, ppl=ppl)
    finally:
        dist.destroy_process_group()


__all__ = ["FakeDetector", "ToyDataset", "ToyGenerator", "distributed_features_worker", "save_fake_detector"]
