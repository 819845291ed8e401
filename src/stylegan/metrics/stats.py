"""Running feature statistics of a detector over a set of images: the mean and covariance FID uses
(float64 sums, Heusel et al. 2017), and/or every feature vector (KID, precision/recall), with an
item cap and an npz round trip for the dataset-statistics cache."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from stylegan.metrics.errors import MetricError



@dataclass
class FeatureStats:
    """Running float64 sums for mean/covariance and/or all features (float32)."""

    capture_all: bool = False
    capture_mean_cov: bool = False
    max_items: Optional[int] = None
    num_items: int = 0
    num_features: Optional[int] = None
    raw_mean: Optional[np.ndarray] = None  # [D] float64 sum
    raw_cov: Optional[np.ndarray] = None  # [D, D] float64 sum of outer products
    chunks: list = field(default_factory=list)  # list of [n, D] float32

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: np.ndarray) -> None:
        """x [n, D]; rows beyond max_items are dropped."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise MetricError(f"Detector features must be [N, D], got shape {x.shape}.")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if x.shape[0] == 0:
            return
        if self.num_features is None:
            self.num_features = x.shape[1]
            if self.capture_mean_cov:
                self.raw_mean = np.zeros([x.shape[1]], dtype=np.float64)
                self.raw_cov = np.zeros([x.shape[1], x.shape[1]], dtype=np.float64)
        elif x.shape[1] != self.num_features:
            raise MetricError(f"Feature size changed from {self.num_features} to {x.shape[1]}.")
        self.num_items += x.shape[0]
        if self.capture_all:
            self.chunks.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def get_all(self) -> np.ndarray:
        """[N, D] float32."""
        if not self.capture_all:
            raise MetricError("These feature statistics did not capture all features.")
        if not self.chunks:
            return np.zeros([0, self.num_features or 0], dtype=np.float32)
        return np.concatenate(self.chunks, axis=0)

    def get_mean_cov(self) -> tuple:
        """-> mean [D], covariance [D, D] (biased, divide by N), float64."""
        if not self.capture_mean_cov or self.num_items == 0:
            raise MetricError("No mean/covariance statistics were captured.")
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - np.outer(mean, mean)
        return mean, cov

    def save(self, path: Path) -> None:
        """Atomic .npz write (no pickles)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            meta=np.frombuffer(
                json.dumps(
                    dict(
                        capture_all=self.capture_all,
                        capture_mean_cov=self.capture_mean_cov,
                        max_items=self.max_items,
                        num_items=self.num_items,
                        num_features=self.num_features,
                    )
                ).encode(),
                dtype=np.uint8,
            )
        )
        if self.capture_mean_cov and self.raw_mean is not None:
            arrays.update(raw_mean=self.raw_mean, raw_cov=self.raw_cov)
        if self.capture_all:
            arrays.update(all=self.get_all())
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @staticmethod
    def load(path: Path) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode())
            stats = FeatureStats(
                capture_all=meta["capture_all"], capture_mean_cov=meta["capture_mean_cov"], max_items=meta["max_items"]
            )
            stats.num_items = meta["num_items"]
            stats.num_features = meta["num_features"]
            if stats.capture_mean_cov and "raw_mean" in f:
                stats.raw_mean = f["raw_mean"]
                stats.raw_cov = f["raw_cov"]
            if stats.capture_all:
                stats.chunks = [f["all"]]
        return stats


__all__ = ["FeatureStats"]
