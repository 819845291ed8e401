"""How many of the ten MNIST digits a generator draws: the CPU demo's measure of mode coverage.

FID needs a detector and tens of thousands of samples; on 32x32 digits a cheaper question says
more: which digits does the generator draw, and how evenly? Each of `num` G_ema samples (z from a
fixed seed, constant noise) is labelled with the class of its nearest real digit (L2 on [-1, 1]
pixels), and the label histogram is summarised by

- `entropy`: -sum p log p of the histogram; ln 10 = 2.30 when all ten digits are equally frequent,
  0 when every sample is the same digit (the early mode collapse of small GANs);
- `digits`: how many classes hold at least `min_share` (3%) of the samples;
- `pairwise_ratio`: the mean pairwise L2 distance of the samples over that of the real digits (a
  collapsed generator draws near-copies: the ratio falls towards 0; real digits give 1);
- `agreement` (conditional generators): the share of samples whose nearest real digit has the
  class the sample was asked for (0.1 = labels ignored). Samples then cycle through the classes.

The nearest-neighbour labeller is deliberately dumb (no trained classifier to download or
trust): it can call a bad "7" a "1", so it measures coverage of the real data's modes, not
legibility. `bench/digit_diversity.py` and `stylegan report` print it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Optional

import numpy as np
import torch

__all__ = ["DigitDiversity", "RealDigits", "digit_diversity", "mean_pairwise_distance"]


@dataclass(frozen=True)
class RealDigits:
    """The reference digits: images [N, H*W] in [-1, 1] and their classes [N] (0-9)."""

    images: torch.Tensor
    classes: np.ndarray

    @cached_property
    def pairwise_distance(self) -> float:
        """`mean_pairwise_distance` of the images, computed once for all the generators measured."""
        return mean_pairwise_distance(self.images)

    @classmethod
    def from_dataset(cls, dataset) -> "RealDigits":
        """From a labelled 1-channel dataset (`stylegan.data.open_dataset(..., use_labels=True)`)."""
        if dataset.label_dim == 0:
            raise ValueError("digit diversity needs a labelled dataset (builtin:mnist has labels)")
        images = np.stack([dataset[i][0] for i in range(len(dataset))]).astype(np.float32) / 127.5 - 1
        labels = np.stack([dataset.get_label(i) for i in range(len(dataset))]).argmax(1)
        return cls(torch.from_numpy(images.reshape(len(dataset), -1)), labels)


@dataclass(frozen=True)
class DigitDiversity:
    entropy: float  # of the nearest-real-digit label histogram, nats (max ln 10 = 2.303)
    shares: tuple[float, ...]  # share of samples per class 0..9
    digits: int  # classes with at least `min_share` of the samples
    pairwise_ratio: float  # mean pairwise distance of samples / of real digits
    agreement: Optional[float] = None  # conditional generators: share drawn as the class asked for

    def line(self) -> str:
        """One human line: 'draws 10 of 10 digits (>= 3% each), entropy 2.21 of 2.30, ...'."""
        shares = " ".join(f"{d}:{100 * s:.0f}%" for d, s in enumerate(self.shares))
        out = (f"draws {self.digits} of 10 digits (>= 3% of samples each); entropy {self.entropy:.2f} of "
               f"{math.log(10):.2f}; sample spread {self.pairwise_ratio:.2f} of the real digits'; [{shares}]")
        if self.agreement is not None:
            out += f"; drawn as the class asked for: {100 * self.agreement:.0f}%"
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def mean_pairwise_distance(x: torch.Tensor, n: int = 500, seed: int = 0) -> float:
    """Mean L2 distance between distinct rows of (a seeded subset of at most n rows of) x [N, D]."""
    g = torch.Generator().manual_seed(seed)
    x = x[torch.randperm(x.shape[0], generator=g)[:n]]
    d = torch.cdist(x, x)
    return float(d.sum() / (d.shape[0] * (d.shape[0] - 1)))


@torch.no_grad()
def digit_diversity(G: torch.nn.Module, reals: RealDigits, *, num: int = 500, seed: int = 123,
                    min_share: float = 0.03, batch: int = 100) -> DigitDiversity:
    """The measure above for generator G (z [N, z_dim], c [N, c_dim] -> [N, 1, H, W] in [-1, 1])."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(num, G.z_dim).astype(np.float32))
    c_dim = getattr(G, "c_dim", 0)
    asked = np.arange(num) % max(c_dim, 1)  # the class each sample is conditioned on
    c = torch.eye(c_dim)[torch.from_numpy(asked)] if c_dim > 0 else None  # [num, c_dim] one-hot
    fakes = []
    for i in range(0, num, batch):
        ci = None if c is None else c[i:i + batch].to(device)
        fakes.append(G(z[i:i + batch].to(device), ci, noise_mode="const").float().cpu().flatten(1))
    fakes = torch.cat(fakes)  # [num, H*W]
    if fakes.shape[1] != reals.images.shape[1]:
        raise ValueError(f"generator images have {fakes.shape[1]} pixels, the real digits {reals.images.shape[1]}")
    labels = reals.classes[torch.cdist(fakes, reals.images).argmin(1).numpy()]
    p = np.bincount(labels, minlength=10)[:10] / num
    entropy = max(0.0, -sum(float(q) * math.log(q) for q in p if q > 0))  # no "-0.0"
    ratio = mean_pairwise_distance(fakes) / reals.pairwise_distance
    agreement = float((labels == asked).mean()) if c_dim > 0 else None
    return DigitDiversity(entropy=round(entropy, 3), shares=tuple(round(float(q), 3) for q in p),
                          digits=int((p >= min_share).sum()), pairwise_ratio=round(ratio, 3),
                          agreement=None if agreement is None else round(agreement, 3))
