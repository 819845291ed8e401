"""Inception Score (Salimans et al. 2016), official settings: exp(E_x KL(p(y|x) || p(y))) over
10 splits of the generated set; mean and standard deviation across splits. Probabilities come from
the official Inception TorchScript called with `no_output_bias=True` (as stylegan2-ada-pytorch)."""
from __future__ import annotations

import numpy as np

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import MetricOptions, compute_generator_features


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple:
    """probs [N, K] (rows sum to 1) -> (mean, std) of exp(mean_i KL(p_i || mean_split p)) over splits."""
    probs = np.asarray(probs, np.float64)
    n = probs.shape[0]
    if probs.ndim != 2 or n < num_splits or num_splits < 1:
        raise MetricError(f"IS needs [N, K] probabilities with N >= num_splits={num_splits}, got {probs.shape}.")
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts: MetricOptions, num_gen: int = 50000, num_splits: int = 10) -> tuple:
    """(mean, std) Inception Score of opts.G (NaNs on ranks other than 0)."""
    extractor = opts.detectors.extractor("inception_probs")
    gen = compute_generator_features(opts, extractor, num_gen, capture_all=True)
    if not opts.is_leader:
        return float("nan"), float("nan")
    return inception_score(gen.get_all(), num_splits)


__all__ = ["compute_is", "inception_score"]
