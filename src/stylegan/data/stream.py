"""Real images for training in a seeded, resumable order, and the image grid of `reals.png`.

The stream is addressed by a global position: minibatch k of the run is positions
[k * batch, (k + 1) * batch) of the concatenation of seeded per-epoch permutations. A resumed run
only needs the stored position to continue with exactly the images an uninterrupted run would see,
and N processes split each minibatch into contiguous shares, so together they see what one process
sees (StyleGAN2-ADA's `InfiniteSampler` has the same goal; this form needs no sampler state).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .dataset import DatasetError


CACHE_BYTES = 512 << 20  # datasets up to this size are decoded once into memory at the start
WORKER_TIMEOUT_S = 600  # a loader worker silent this long is stuck (a hung mount): an error, not a hang


def worker_error_message(e: Exception) -> str:
    """The one line that says what went wrong in a data-loader worker.

    DataLoader re-raises a worker's exception with the worker's whole traceback in the message;
    the reason is its last line ('...DatasetError: data.zip:img01.png: cannot decode image (...)')."""
    text = str(e).strip()
    if text.startswith("Caught "):
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    if "timed out" in text:
        return f"reading the training data timed out ({text})"
    return text


class DataStream:
    """Real images in a seeded per-epoch order, addressed by a global position (exact resume).

    Global minibatch = positions [pos, pos + batch); process r of g takes the r-th contiguous
    share. Small datasets (<= `cache_bytes`) are decoded once into memory; larger ones are read
    by a DataLoader with `workers` processes.
    """

    def __init__(self, dataset, seed: int, rank: int = 0, world: int = 1, workers: int = 2,
                 cache_bytes: Optional[int] = None):
        self.dataset, self.seed, self.rank, self.world, self.workers = dataset, seed, rank, world, workers
        self.n = len(dataset)
        if self.n == 0:
            raise DatasetError("the dataset is empty")
        c, h, w = dataset.image_shape
        self.images: Optional[torch.Tensor] = None
        self.labels = torch.from_numpy(np.stack([dataset.get_label(i) for i in range(self.n)])).to(torch.float32)
        if self.n * c * h * w <= (CACHE_BYTES if cache_bytes is None else cache_bytes):
            self.images = self._load_all()
        self._perm_cache: dict[int, np.ndarray] = {}
        self._loader = None
        self._loader_next: Optional[tuple[int, int]] = None  # (pos, batch) the loader yields next

    def _load_all(self) -> torch.Tensor:
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=256, shuffle=False,
                                             num_workers=self.workers if self.n > 20000 else 0)
        return torch.cat([img for img, _ in loader])  # [N, C, H, W] uint8

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            self._perm_cache[epoch] = np.random.RandomState([self.seed & 0xFFFFFFFF, epoch]).permutation(self.n)
        return self._perm_cache[epoch]

    def indices(self, start: int, count: int) -> np.ndarray:
        """Dataset indices at global stream positions [start, start + count)."""
        pos = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(pos // self.n):
            sel = (pos // self.n) == epoch
            out[sel] = self.permutation(int(epoch))[pos[sel] % self.n]
        return out

    def rank_indices(self, pos: int, batch: int) -> np.ndarray:
        per = batch // self.world
        return self.indices(pos + self.rank * per, per)

    def get(self, pos: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the global minibatch at `pos`: (uint8 [b, C, H, W], labels [b, L])."""
        idx = self.rank_indices(pos, batch)
        if self.images is not None:
            t = torch.from_numpy(idx)
            return self.images[t], self.labels[t]
        if self._loader is None or self._loader_next != (pos, batch):
            self._start_loader(pos, batch)
        try:
            img, lab = next(self._loader)
        except (DatasetError, RuntimeError) as e:  # a damaged member, a dead or stalled worker
            self._loader = None
            raise DatasetError(worker_error_message(e)) from None
        self._loader_next = (pos + batch, batch)
        return img, lab.to(torch.float32)

    def _start_loader(self, pos: int, batch: int) -> None:
        stream = self

        class _Batches(torch.utils.data.Sampler):
            def __iter__(self):
                p = pos
                while True:
                    yield stream.rank_indices(p, batch).tolist()
                    p += batch

        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=_Batches(), num_workers=self.workers,
                                             prefetch_factor=2 if self.workers > 0 else None,
                                             persistent_workers=False,
                                             timeout=WORKER_TIMEOUT_S if self.workers > 0 else 0)
        self._loader = iter(loader)


def grid_indices(dataset, cols: int, rows: int, seed: int) -> np.ndarray:
    """Images for reals.png: random, or one class per row for labelled data."""
    rnd = np.random.RandomState(seed)
    n = len(dataset)
    if getattr(dataset, "label_dim", 0) == 0:
        return rnd.permutation(max(n, cols * rows))[: cols * rows] % n
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        groups.setdefault(tuple(np.asarray(dataset.get_label(i)).round(6).tolist()), []).append(i)
    order = sorted(groups, reverse=True)
    for k in order:
        rnd.shuffle(groups[k])
    out, taken = [], {k: 0 for k in order}
    for y in range(rows):
        k = order[y % len(order)]
        g = groups[k]
        out += [g[(taken[k] + x) % len(g)] for x in range(cols)]
        taken[k] += cols
    return np.asarray(out)


__all__ = ["DataStream", "grid_indices"]
