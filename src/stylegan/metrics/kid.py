"""Kernel Inception Distance (Binkowski et al. 2018), official settings: unbiased MMD^2 with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over 100 random subsets of at most
1000 samples from each set (stylegan2-ada-pytorch kid50k_full). Can be slightly
negative when the distributions are equal."""
from __future__ import annotations

from typing import Optional

import numpy as np

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import MetricOptions, compute_dataset_features, compute_generator_features


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x [m, d], y [n, d] -> (x y^T / d + 1)^3, [m, n], float64."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between samples x [m, d] and y [m, d] (equal sizes, m >= 2):
    (sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)) / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise MetricError(f"MMD needs two subsets of equal size >= 2, got {x.shape[0]} and {y.shape[0]}.")
    a = polynomial_kernel(x, x) + polynomial_kernel(y, y)
    b = polynomial_kernel(x, y)
    return float((a.sum() - np.trace(a)) / (m * (m - 1)) - 2.0 * b.sum() / (m * m))


def kernel_distance(gen: np.ndarray, real: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: int = 0) -> float:
    """KID of features gen [Ng, d] vs real [Nr, d]: mean over `num_subsets` draws (without
    replacement, subset size m = min(Ng, Nr, max_subset_size)) of the unbiased MMD^2."""
    gen = np.asarray(gen, np.float64)
    real = np.asarray(real, np.float64)
    if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
        raise MetricError(f"KID: features must be [N, d] with equal d, got {gen.shape} and {real.shape}.")
    m = min(gen.shape[0], real.shape[0], max_subset_size)
    if m < 2:
        raise MetricError(f"KID needs at least 2 samples in each set, got {gen.shape[0]} and {real.shape[0]}.")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        total += mmd2_unbiased(x, y)
    return total / num_subsets


def compute_kid(opts: MetricOptions, kind: str = "inception", max_real: Optional[int] = 1000000, num_gen: int = 50000,
                num_subsets: int = 100, max_subset_size: int = 1000, xflip: bool = False) -> float:
    """KID of opts.G against opts.dataset (NaN on ranks other than 0)."""
    extractor = opts.detectors.extractor(kind)
    real = compute_dataset_features(opts, extractor, max_items=max_real, capture_all=True, xflip=xflip)
    gen = compute_generator_features(opts, extractor, num_gen, capture_all=True)
    if not opts.is_leader:
        return float("nan")
    return kernel_distance(gen.get_all(), real.get_all(), num_subsets, max_subset_size, seed=opts.seed)


__all__ = ["compute_kid", "kernel_distance", "mmd2_unbiased", "polynomial_kernel"]
