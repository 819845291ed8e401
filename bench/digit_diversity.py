"""How many of the ten MNIST digits a generator draws: the demo's quality measure (not a test).

    python bench/digit_diversity.py runs/00000-mnist-cpu-demo/snapshot-000120000.safetensors [more ...]

For each network: 500 G_ema samples (z ~ N(0, I) from seed 123, constant noise), each labelled with
the class of its nearest real digit in pixel space (the 5,000 built-in MNIST digits, L2 on [-1, 1]
pixels). Prints the entropy of that label histogram (ln 10 = 2.30 when all ten digits are equally
frequent; the README's demo target is >= 1.9), the share of each digit, and the mean pairwise
distance of the samples relative to that of the real digits (mode collapse drives it towards 0).
A run directory stands for its newest snapshot. For a conditional network (`--cond`) the samples'
classes cycle through 0-9 (50 each) and `agreement` is the share whose nearest real digit has the
class the sample was asked for.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

import stylegan
from stylegan.data import open_dataset
from stylegan.training.snapshot import latest_snapshot


def real_digits() -> tuple[torch.Tensor, np.ndarray]:
    """The built-in MNIST digits as [N, H*W] in [-1, 1] and their classes [N]."""
    ds = open_dataset("builtin:mnist", use_labels=True)
    images = np.stack([ds[i][0] for i in range(len(ds))]).astype(np.float32) / 127.5 - 1
    labels = np.stack([ds.get_label(i) for i in range(len(ds))]).argmax(1)
    return torch.from_numpy(images.reshape(len(ds), -1)), labels


def mean_pairwise_distance(x: torch.Tensor, n: int = 500, seed: int = 0) -> float:
    """Mean L2 distance between distinct rows of (a seeded subset of) x [N, D]."""
    g = torch.Generator().manual_seed(seed)
    x = x[torch.randperm(x.shape[0], generator=g)[:n]]
    d = torch.cdist(x, x)
    return float(d.sum() / (d.shape[0] * (d.shape[0] - 1)))


@torch.no_grad()
def diversity(network: str | Path, reals: torch.Tensor, classes: np.ndarray, num: int = 500) -> dict:
    G = stylegan.load(network).eval()
    z = torch.from_numpy(np.random.RandomState(123).randn(num, G.z_dim).astype(np.float32))
    asked = np.arange(num) % max(G.c_dim, 1)  # the class each sample is conditioned on
    c = torch.eye(G.c_dim)[torch.from_numpy(asked)] if G.c_dim > 0 else None  # [num, c_dim] one-hot
    fakes = torch.cat([G(z[i:i + 100], None if c is None else c[i:i + 100], noise_mode="const")
                       for i in range(0, num, 100)]).flatten(1)  # [num, H*W]
    labels = classes[torch.cdist(fakes, reals).argmin(1).numpy()]
    p = np.bincount(labels, minlength=10) / num
    out = {"network": str(network), "entropy": round(-sum(q * math.log(q) for q in p if q > 0), 3),
           "shares": [round(float(q), 3) for q in p],
           "pairwise_ratio": round(mean_pairwise_distance(fakes) / mean_pairwise_distance(reals), 3)}
    if G.c_dim > 0:
        out["agreement"] = round(float((labels == asked).mean()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("networks", nargs="+", help="snapshots or run directories")
    args = ap.parse_args()
    reals, classes = real_digits()
    for net in args.networks:
        path = Path(net)
        if path.is_dir():
            path = latest_snapshot(path)
        print(json.dumps(diversity(path, reals, classes)))


if __name__ == "__main__":
    main()
