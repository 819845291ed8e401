"""Feature extraction shared by the metrics: options, detector provider, feature statistics,
dataset statistics cache, generated images, multi-process gathering.

Conventions (stylegan2-ada-pytorch metric_utils, re-written):
- Reals: the first `max_items` images of the dataset in index order; uint8 [N, C, H, W] fed
  straight to the detector (which resizes internally).
- Fakes: global sample i uses its own RNG `numpy.random.default_rng([seed, i])` for z (and for the
  label index of conditional models), so results do not depend on batch size or GPU count;
  images `G(z, c, psi=psi, noise_mode=noise_mode)` mapped to uint8 by `(x * 127.5 + 128).clamp(0, 255)`.
- Statistics: mean and the biased covariance (divide by N) in float64, as the official code.
- Multi-GPU: rank r handles items r, r + g, r + 2g, ...; each batch is `all_gather`ed and
  interleaved, so every rank ends with all features in global order.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from stylegan import distributed as dist
from stylegan.metrics.detectors import PathLike, TorchScriptDetector, cache_root, load_detector
from stylegan.metrics.errors import MetricError
from stylegan.metrics.stats import FeatureStats
from stylegan.nn import weight_cache

STATS_SUBDIR = "gan-metrics"


# ----------------------------------------------------------------------------------------------
# Detectors


@dataclass(frozen=True)
class Extractor:
    """A feature function with an identity for cache keys. fn: uint8 [N, C, H, W] -> [N, D]."""

    id: str
    fn: Callable[[torch.Tensor], torch.Tensor]


class DetectorProvider:
    """Loads detectors on first use and keeps them for the lifetime of this object (one metrics
    run, e.g. one CLI call computing several metrics). Not shared between runs."""

    def __init__(
        self,
        device: Union[str, torch.device] = "cpu",
        detector_dir: Optional[PathLike] = None,
        cache_dir: Optional[PathLike] = None,
        download: Optional[bool] = None,
    ) -> None:
        self.device = torch.device(device)
        self.detector_dir = detector_dir
        self.cache_dir = cache_dir
        self.download = download
        self._loaded: dict = {}

    def official(self, name: str) -> TorchScriptDetector:
        """"inception" or "vgg16" TorchScript detector (see detectors.py for the lookup)."""
        if name not in self._loaded:
            self._loaded[name] = load_detector(
                name, self.detector_dir, cache_dir=self.cache_dir, device=self.device, download=self.download
            )
        return self._loaded[name]

    def effnet(self):
        """The EfficientNet-Lite0 proxy feature detector."""
        if "effnet" not in self._loaded:
            from stylegan.metrics.effnet import EffNetFeatureDetector, load_effnet_lite0

            self._loaded["effnet"] = EffNetFeatureDetector(load_effnet_lite0(device=self.device))
        return self._loaded["effnet"]

    def extractor(self, kind: str) -> Extractor:
        """kind: "inception" (pool features [N, 2048]), "inception_probs" (softmax [N, 1008]),
        "vgg16" (fc features [N, 4096]) or "effnet" (proxy, [N, 1280])."""
        if kind == "effnet":
            det = self.effnet()
            return Extractor(id="effnet-lite0:pooled", fn=det)
        if kind == "inception":
            det = self.official("inception")
            return Extractor(id=det.detector_id + ":features", fn=det.features)
        if kind == "inception_probs":
            det = self.official("inception")
            return Extractor(id=det.detector_id + ":probs_no_output_bias", fn=det.probabilities)
        if kind == "vgg16":
            det = self.official("vgg16")
            return Extractor(id=det.detector_id + ":features", fn=det.features)
        raise MetricError(f"Unknown feature detector kind {kind!r}.")

    def perceptual(self, proxy: bool) -> torch.nn.Module:
        """LPIPS(vgg16) when `proxy` is False (errors if vgg16.pt is missing); the effnet proxy
        distance when True."""
        key = "perceptual-proxy" if proxy else "perceptual-vgg16"
        if key not in self._loaded:
            if proxy:
                from stylegan.metrics.effnet import EffNetPerceptualDistance

                self._loaded[key] = EffNetPerceptualDistance(self.effnet().net)
            else:
                det = self.official("vgg16")
                from stylegan.metrics.detectors import VGG16LPIPS

                self._loaded[key] = VGG16LPIPS(det)
        return self._loaded[key]


# ----------------------------------------------------------------------------------------------
# Options


@dataclass
class MetricOptions:
    """Everything a metric function needs. `dataset` is a Dataset object (items
    `(uint8 [C,H,W], float32 [label_dim])`) or a dataset spec (path) opened on demand with
    `stylegan.data.dataset.open_dataset`."""

    G: Any = None
    dataset: Any = None
    device: Union[str, torch.device] = "cpu"
    batch: int = 32
    num_gpus: int = 1
    rank: int = 0
    cache_dir: Optional[PathLike] = None  # cache root; statistics in <root>/gan-metrics
    use_cache: bool = True
    detector_dir: Optional[PathLike] = None
    download: Optional[bool] = None
    psi: float = 1.0
    noise_mode: str = "random"  # like the official FID/KID/PR/IS sampling (PPL always uses const)
    seed: int = 0
    mirror: bool = False  # x-flip reals, only for the legacy non-"_full" ids (as the official)
    progress: bool = True
    num_workers: int = 2
    classifier: Any = None  # linear separability: path or module (see separability.py)
    detectors: Optional[DetectorProvider] = None

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.num_gpus < 1 or not (0 <= self.rank < self.num_gpus):
            raise MetricError(f"Invalid num_gpus={self.num_gpus}, rank={self.rank}.")
        if self.batch < 1:
            raise MetricError(f"Batch size must be positive, got {self.batch}.")
        if self.seed < 0:
            raise MetricError(f"Seed must be non-negative, got {self.seed}.")
        if self.noise_mode not in ("const", "random", "none"):
            raise MetricError(f"noise_mode must be const, random or none, got {self.noise_mode!r}.")
        if self.detectors is None:
            self.detectors = DetectorProvider(self.device, self.detector_dir, self.cache_dir, self.download)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def stats_dir(self) -> Path:
        return cache_root(self.cache_dir) / STATS_SUBDIR


# ----------------------------------------------------------------------------------------------
# Distributed helpers


def distributed(opts: MetricOptions) -> bool:
    """True when running as one of several processes; requires torch.distributed to be up."""
    if opts.num_gpus <= 1:
        return False
    if not dist.is_initialized():
        raise MetricError(
            f"num_gpus={opts.num_gpus} but torch.distributed is not initialised; launch one process per GPU "
            "(the CLI's --gpus does this) or use num_gpus=1."
        )
    return True


def gather_rows(x: torch.Tensor, opts: MetricOptions) -> torch.Tensor:
    """[B, D] per rank -> [B * g, D] interleaved (row j of rank r lands at j * g + r)."""
    return dist.all_gather_rows(x) if distributed(opts) else x


def broadcast_float(value: float, opts: MetricOptions) -> float:
    """Rank 0's value on every rank."""
    if not distributed(opts):
        return value
    return float(dist.broadcast_(torch.tensor([value], dtype=torch.float64, device=opts.device)).item())


def rank_indices(total: int, opts: MetricOptions) -> list:
    """This rank's share of `range(total)`, padded so every rank has ceil(total / g) items."""
    g, r = opts.num_gpus, opts.rank
    per_rank = (total - 1) // g + 1 if total > 0 else 0
    return [i * g + r for i in range(per_rank)]


# ----------------------------------------------------------------------------------------------
# Datasets


def open_metric_dataset(opts: MetricOptions, xflip: bool = False):
    """The dataset to read reals/labels from, or None. A spec (str / path) is opened with
    `open_dataset(spec, use_labels=G.c_dim > 0, xflip=xflip)`; an object is used as given."""
    ds = opts.dataset
    if ds is None or not isinstance(ds, (str, os.PathLike)):
        return ds
    try:
        from stylegan.data.dataset import open_dataset
    except ImportError as e:
        raise MetricError(f"Cannot open dataset {ds}: stylegan.data.dataset is unavailable ({e}).") from e
    use_labels = bool(getattr(opts.G, "c_dim", 0))
    return open_dataset(str(ds), use_labels=use_labels, xflip=xflip)


def _path_identity(dataset) -> list:
    out = []
    for attr in ("path", "_path", "root", "spec", "source"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, os.PathLike)) and os.path.exists(value):
            st = os.stat(value)
            entry = dict(path=os.path.abspath(value), size=st.st_size, mtime=st.st_mtime_ns)
            if entry not in out:
                out.append(entry)
    return out


def _xflip_identity(dataset) -> int:
    """Number of mirrored items, from a bool `xflip` or a per-item flag array `_xflip`."""
    for attr in ("xflip", "_xflip"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            return int(np.asarray(value).astype(bool).sum()) if np.ndim(value) else int(bool(value))
    return 0


def dataset_fingerprint(dataset, num_probes: int = 3) -> dict:
    """Content identity for the statistics cache: name, length, image format, file size/mtime (when
    the dataset exposes its path) and a sha256 over a few evenly spaced images."""
    n = len(dataset)
    h = hashlib.sha256()
    probes = sorted({int(round(k * (n - 1) / max(num_probes - 1, 1))) for k in range(num_probes)}) if n else []
    for i in probes:
        img = np.ascontiguousarray(np.asarray(dataset[i][0]))
        h.update(str((i, img.shape, str(img.dtype))).encode())
        h.update(img.tobytes())
    return dict(
        name=str(getattr(dataset, "name", type(dataset).__name__)),
        len=n,
        resolution=getattr(dataset, "resolution", None),
        num_channels=getattr(dataset, "num_channels", None),
        xflip=_xflip_identity(dataset),
        files=_path_identity(dataset),
        probes=h.hexdigest(),
    )


def stats_cache_file(opts: MetricOptions, dataset, extractor: Extractor, **kwargs: Any) -> Path:
    """<stats_dir>/<dataset name>-<detector>-<hash>.npz; hash over detector id, dataset
    fingerprint and the extraction settings (max items, x-flip, what is captured)."""
    key = dict(detector=extractor.id, dataset=dataset_fingerprint(dataset), **kwargs)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(key["dataset"]["name"]))[:40]
    det = extractor.id.split(":")[0]
    return opts.stats_dir() / f"{safe}-{det}-{digest}.npz"


def progress_bar(iterable, enabled: bool, desc: str, total: Optional[int] = None):
    """tqdm bar on stderr when `enabled`, else the iterable itself."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


def loader_workers(opts: MetricOptions, n: int) -> int:
    """Data-loader processes for reading `n` reals: opts.num_workers, or 0 when they would only
    compete with the detector for cores. On a CPU device whose intra-op threads already cover the
    cores (2 threads on 2 cores), two more processes made feature extraction up to 2x slower under
    load and never faster (docs/performance.md, "Metrics"); tiny datasets never need them."""
    if n <= 4 * opts.batch:
        return 0
    if opts.device.type == "cpu" and (os.cpu_count() or 1) <= torch.get_num_threads() + opts.num_workers:
        return 0
    return opts.num_workers


def compute_dataset_features(
    opts: MetricOptions,
    extractor: Extractor,
    *,
    max_items: Optional[int] = None,
    capture_all: bool = False,
    capture_mean_cov: bool = False,
    xflip: bool = False,
) -> FeatureStats:
    """Detector features of the first `max_items` reals (all if None), cached on disk."""
    dataset = open_metric_dataset(opts, xflip=xflip)
    if dataset is None:
        raise MetricError("This metric compares against real images: give a dataset (--data).")
    n = len(dataset)
    if n == 0:
        raise MetricError("The dataset is empty.")
    if max_items is not None:
        n = min(n, max_items)

    cache_file = None
    if opts.use_cache:
        cache_file = stats_cache_file(
            opts, dataset, extractor, max_items=n, xflip=xflip, capture_all=capture_all, capture_mean_cov=capture_mean_cov
        )
        hit = 1.0 if (opts.is_leader and cache_file.is_file()) else 0.0
        if broadcast_float(hit, opts) > 0:
            try:
                return FeatureStats.load(cache_file)
            except Exception as e:  # unreadable cache: recompute
                print(f"Ignoring unreadable statistics cache {cache_file}: {e}", file=sys.stderr)

    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=n)
    indices = [i % n for i in rank_indices(n, opts)]
    workers = loader_workers(opts, n)
    loader = torch.utils.data.DataLoader(dataset, batch_size=opts.batch, sampler=indices, num_workers=workers)
    for images, _labels in progress_bar(loader, opts.progress and opts.is_leader, f"{extractor.id.split(':')[0]} reals", len(loader)):
        images = torch.as_tensor(images)
        if images.ndim != 4:
            raise MetricError(f"Dataset images must be [C, H, W] arrays, got a batch of shape {tuple(images.shape)}.")
        feats = extractor.fn(images.to(opts.device))  # [B, D]
        stats.append(gather_rows(feats, opts).cpu().numpy())

    if cache_file is not None and opts.is_leader:
        stats.save(cache_file)
    return stats


# ----------------------------------------------------------------------------------------------
# Generator


def module_device(module: Any, default: torch.device) -> torch.device:
    """Device of a module's first parameter or buffer, else `default`."""
    if isinstance(module, torch.nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return default


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Temporarily put an nn.Module in eval mode (restores the previous mode)."""
    if not isinstance(module, torch.nn.Module):
        yield
        return
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


@dataclass(frozen=True)
class LabelSampler:
    """Draws class labels for a conditional generator from the dataset's labels."""

    count: int
    get: Callable[[int], np.ndarray]


def make_label_sampler(G: Any, opts: MetricOptions, dataset=None) -> Optional[LabelSampler]:
    """None for unconditional G; otherwise dataset labels (required, label_dim == G.c_dim)."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim == 0:
        return None
    ds = dataset if dataset is not None else open_metric_dataset(opts)
    if ds is None:
        raise MetricError(f"The generator is conditional (c_dim={c_dim}); give the labelled dataset (--data) to draw labels.")
    label_dim = int(getattr(ds, "label_dim", -1))
    if label_dim != c_dim:
        raise MetricError(f"Generator c_dim={c_dim} but the dataset's label_dim={label_dim}; open it with use_labels=True.")
    getter = getattr(ds, "get_label", None)
    if getter is None:
        getter = lambda i: ds[i][1]  # noqa: E731
    return LabelSampler(count=len(ds), get=lambda i: np.asarray(getter(i), dtype=np.float32))


def sample_latents(
    G: Any, indices: Sequence[int], seed: int, labels: Optional[LabelSampler], device: torch.device
) -> tuple:
    """Per-sample deterministic latents. -> z [B, z_dim] float32, c [B, c_dim] or None."""
    zs, cs = [], []
    for i in indices:
        rng = np.random.default_rng([seed, int(i)])
        zs.append(rng.standard_normal(int(G.z_dim)))
        if labels is not None:
            cs.append(labels.get(int(rng.integers(labels.count))))
    z = torch.from_numpy(np.stack(zs).astype(np.float32)).to(device)
    c = torch.from_numpy(np.stack(cs).astype(np.float32)).to(device) if labels is not None else None
    return z, c


def quantize_official(img: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] in about [-1, 1] -> uint8 [N, C, H, W], as NVIDIA's metric code quantizes
    generated images before the detector: x * 127.5 + 128, clamp, truncate (not rounded: that is
    `io.images.to_uint8`, for image files). Keeping the official form keeps FIDs comparable."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def compute_generator_features(
    opts: MetricOptions,
    extractor: Extractor,
    num_gen: int,
    *,
    capture_all: bool = False,
    capture_mean_cov: bool = False,
) -> FeatureStats:
    """Detector features of `num_gen` generated images (see module docstring for seeding)."""
    G = opts.G
    if G is None:
        raise MetricError("No generator given.")
    if num_gen < 1:
        raise MetricError(f"num_gen must be positive, got {num_gen}.")
    labels = make_label_sampler(G, opts)
    g_dev = module_device(G, opts.device)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=num_gen)
    mine = rank_indices(num_gen, opts)
    chunks = list(batches(mine, opts.batch))
    # Random noise draws from torch's global RNG: fork it, so the metric is reproducible for a seed
    # and a metric run inside training leaves the training RNG (and thus exact resume) untouched.
    cuda_devices = [g_dev] if g_dev.type == "cuda" else []
    with torch.no_grad(), eval_mode(G), torch.random.fork_rng(devices=cuda_devices), weight_cache():
        torch.manual_seed(opts.seed * 1000 + opts.rank)
        for idx in progress_bar(chunks, opts.progress and opts.is_leader, f"{extractor.id.split(':')[0]} fakes"):
            z, c = sample_latents(G, idx, opts.seed, labels, g_dev)
            img = quantize_official(G(z, c, psi=opts.psi, noise_mode=opts.noise_mode))
            feats = extractor.fn(img.to(opts.device))
            stats.append(gather_rows(feats, opts).cpu().numpy())
    return stats


__all__ = [
    "DetectorProvider",
    "Extractor",
    "FeatureStats",
    "LabelSampler",
    "MetricOptions",
    "compute_dataset_features",
    "compute_generator_features",
    "dataset_fingerprint",
    "gather_rows",
    "make_label_sampler",
    "open_metric_dataset",
    "progress_bar",
    "sample_latents",
    "quantize_official",
]
