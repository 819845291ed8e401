"""Improved precision and recall (Kynkaanniemi et al. 2019), official settings
(stylegan2-ada-pytorch pr50k3_full): VGG16 fc features; each point of a set spans a ball reaching
its k-th nearest neighbour (k = 3, the point itself excluded); precision = share of generated
samples inside some real ball, recall = share of reals inside some generated ball.

Distances are computed in row x column blocks with a running k-smallest / running "any", so memory
is O(row_batch x col_batch) whatever the set sizes."""
from __future__ import annotations

from typing import Optional

import torch

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import MetricOptions, compute_dataset_features, compute_generator_features


def knn_radii(manifold: torch.Tensor, k: int = 3, row_batch: int = 10000, col_batch: int = 10000) -> torch.Tensor:
    """manifold [M, D] -> distance of each point to its k-th nearest other point, [M].
    (The (k+1)-th smallest distance including the point itself at distance 0.)"""
    m = manifold.shape[0]
    if m < k + 1:
        raise MetricError(f"k-NN radii with k={k} need at least {k + 1} points, got {m}.")
    out = []
    for rows in manifold.split(row_batch):
        best = None  # [R, <=k+1] smallest distances so far
        for cols in manifold.split(col_batch):
            d = torch.cdist(rows.unsqueeze(0), cols.unsqueeze(0))[0]  # [R, C]
            cand = d if best is None else torch.cat([best, d], dim=1)
            best = cand.topk(min(k + 1, cand.shape[1]), dim=1, largest=False).values
        out.append(best[:, k])
    return torch.cat(out)


def inside_manifold(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
                    row_batch: int = 10000, col_batch: int = 10000) -> torch.Tensor:
    """probes [P, D], manifold [M, D], radii [M] -> bool [P]: probe within some manifold ball."""
    out = []
    for rows in probes.split(row_batch):
        hit = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
        for cols, r in zip(manifold.split(col_batch), radii.split(col_batch)):
            d = torch.cdist(rows.unsqueeze(0), cols.unsqueeze(0))[0]  # [R, C]
            hit |= (d <= r.unsqueeze(0)).any(dim=1)
        out.append(hit)
    return torch.cat(out)


def precision_recall(real: torch.Tensor, gen: torch.Tensor, k: int = 3, row_batch: int = 10000,
                     col_batch: int = 10000) -> tuple:
    """real [Nr, D], gen [Ng, D] -> (precision, recall) floats."""
    real = torch.as_tensor(real, dtype=torch.float32)
    gen = torch.as_tensor(gen, dtype=torch.float32).to(real.device)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise MetricError(f"Precision/recall: features must be [N, D] with equal D, got {tuple(real.shape)} and {tuple(gen.shape)}.")
    results = []
    for manifold, probes in ((real, gen), (gen, real)):
        radii = knn_radii(manifold, k, row_batch, col_batch)
        results.append(float(inside_manifold(probes, manifold, radii, row_batch, col_batch).float().mean()))
    return results[0], results[1]


def compute_pr(opts: MetricOptions, kind: str = "vgg16", max_real: Optional[int] = 200000, num_gen: int = 50000,
               nhood_size: int = 3, row_batch: int = 10000, col_batch: int = 10000, xflip: bool = False) -> tuple:
    """(precision, recall) of opts.G against opts.dataset (NaNs on ranks other than 0)."""
    extractor = opts.detectors.extractor(kind)
    real = compute_dataset_features(opts, extractor, max_items=max_real, capture_all=True, xflip=xflip)
    gen = compute_generator_features(opts, extractor, num_gen, capture_all=True)
    if not opts.is_leader:
        return float("nan"), float("nan")
    real_t = torch.from_numpy(real.get_all()).to(opts.device)
    gen_t = torch.from_numpy(gen.get_all()).to(opts.device)
    return precision_recall(real_t, gen_t, nhood_size, row_batch, col_batch)


__all__ = ["compute_pr", "inside_manifold", "knn_radii", "precision_recall"]
