"""Frechet Inception Distance (Heusel et al. 2017), as used by StyleGAN / StyleGAN2
(50k generated images against the whole dataset: stylegan2-ada-pytorch fid50k_full).

FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) between Gaussians fitted to detector
features of reals (all of the dataset, or the first `max_real`) and of `num_gen` generated images.
The official detector is Inception-v3 pool3 (2048-d); with the EfficientNet-Lite0 proxy the value
is reported as `fid_effnet...`, never as FID.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import MetricOptions, compute_dataset_features, compute_generator_features


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2). mu: [D], sigma: [D, D].

    Matrix square root by scipy.linalg.sqrtm; its real part is used (tiny imaginary parts come
    from numerical error), as in the official code."""
    import scipy.linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise MetricError(
            f"Frechet distance: shape mismatch mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}."
        )
    mean_term = float(np.square(mu1 - mu2).sum())
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        raise MetricError("Frechet distance: the covariance product has no finite square root.")
    return float(np.real(mean_term + np.trace(sigma1 + sigma2 - 2.0 * covmean)))


def compute_fid(opts: MetricOptions, kind: str = "inception", max_real: Optional[int] = None, num_gen: int = 50000,
                xflip: bool = False) -> float:
    """FID of opts.G against opts.dataset with detector `kind` ("inception" or "effnet").
    Returns the value on rank 0 and NaN on other ranks (compute_metric broadcasts it)."""
    extractor = opts.detectors.extractor(kind)
    real = compute_dataset_features(opts, extractor, max_items=max_real, capture_mean_cov=True, xflip=xflip)
    gen = compute_generator_features(opts, extractor, num_gen, capture_mean_cov=True)
    if not opts.is_leader:
        return float("nan")
    mu_r, sigma_r = real.get_mean_cov()
    mu_g, sigma_g = gen.get_mean_cov()
    return frechet_distance(mu_g, sigma_g, mu_r, sigma_r)


__all__ = ["compute_fid", "frechet_distance"]
