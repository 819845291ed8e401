"""GANSpace: principal components of W (Härkönen, Hertzmann, Lehtinen and Paris, NeurIPS 2020).

The paper's method for StyleGAN: sample N latents z, map them, w = M(z), and take the principal
components of the w's; the components (largest variance first) are directions of edits, applied to
a chosen range of style inputs (its "layer-wise edits"); the paper samples N = 10^6 (10^5 here by
default, `samples` sets it).

The covariance is accumulated batch by batch (`directions.merge_moments`: exact mean and scatter
in float64), so any N fits in [w_dim, w_dim] of memory; its eigendecomposition gives the
components, their variances (the explained variance), and W's standard deviation along each
(the square root of the variance: the unit of an edit's strength).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .directions import (Directions, Moments, Progress, Provenance, canonical_signs, network_sha256,
                         one_blas_thread, utc_now, w_moments)

DEFAULT_SAMPLES = 100_000


def pca(moments: Moments) -> tuple[np.ndarray, np.ndarray]:
    """(components [D, D] as unit rows, variances [D]) of the samples, largest variance first;
    signs fixed by `directions.canonical_signs`."""
    with one_blas_thread():
        values, vectors = np.linalg.eigh(moments.cov)  # ascending, columns
    order = np.argsort(-values, kind="stable")
    return canonical_signs(vectors[:, order].T), np.maximum(values[order], 0.0)


def ganspace_directions(G, num_samples: int = DEFAULT_SAMPLES, *, num: int | None = None,
                        layers: Sequence[int] | None = None, seed: int = 0, batch: int = 4096,
                        class_idx: int | None = None, network: str = "",
                        progress: Progress | None = None) -> Directions:
    """The `num` (default all) principal components of `num_samples` W samples of G, to be applied
    to the style inputs `layers` (default all). values = the explained variance ratio of each.
    `progress(done, total)` after every batch; returning False stops early (the samples so far)."""
    moments = w_moments(G, num_samples, seed=seed, batch=batch, class_idx=class_idx, progress=progress)
    vectors, variances = pca(moments)
    k = vectors.shape[0] if num is None else max(1, min(int(num), vectors.shape[0]))
    total = float(variances.sum()) or 1.0
    scales = np.sqrt(variances[:k]).clip(min=1e-12)
    layers = tuple(range(G.num_ws)) if layers is None else tuple(sorted(set(int(i) for i in layers)))
    prov = Provenance("ganspace", network_sha256(G), int(moments.n), utc_now(), Path(network).name if network else "",
                      {"seed": seed, "class": class_idx})
    return Directions(vectors[:k].astype(np.float32), scales.astype(np.float32), variances[:k] / total,
                      "explained variance ratio", layers, G.num_ws, prov)


__all__ = ["DEFAULT_SAMPLES", "pca", "ganspace_directions"]
