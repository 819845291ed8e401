"""Metric ids -> functions, `compute_metric` (used by training and the CLI) and the jsonl writer.

Official ids and settings follow stylegan2-ada-pytorch (`fid50k_full`, `kid50k_full`,
`pr50k3_full`, `is50k`, `ppl2_wend`, legacy `fid50k`, `kid50k`, `pr50k3`, `ppl_zfull`, `ppl_wfull`,
`ppl_zend`, `ppl_wend`), StyleGAN v1 (`ls`, StyleGAN Sec. 4.2;
v1 PPL with 100k samples and the face crop, StyleGAN Sec. 4.1) and StyleGAN3's equivariance
(`eqt50k_int`, `eqt50k_frac`, `eqr50k`, Alias-Free GAN Sec. 3 and App. E).
Smaller variants change only the sample counts (e.g. `fid5k_full`, `ppl_wend1k`, `eqt1k_int`). Ids containing
`effnet` use the offline EfficientNet-Lite0 proxy detector / distance: they are *not* FID, KID,
precision/recall or PPL and are not comparable with published numbers.
"""
from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Union

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import MetricOptions, broadcast_float
from stylegan.util import format_time

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric."""

    id: str
    fn: Callable[[MetricOptions], dict]  # opts -> {result key: float}
    description: str
    detector: Optional[str]  # "inception", "vgg16", "effnet", "classifier" or None
    needs_dataset: bool
    proxy_of: Optional[str] = None  # the official id this proxy stands in for

    @property
    def is_proxy(self) -> bool:
        return self.proxy_of is not None


# ----------------------------------------------------------------------------------------------
# Metric bodies (module-level functions bound with functools.partial)


def _fid(opts: MetricOptions, *, mid: str, kind: str, max_real: Optional[int], num_gen: int, legacy: bool) -> dict:
    from stylegan.metrics.fid import compute_fid

    return {mid: compute_fid(opts, kind, max_real, num_gen, xflip=opts.mirror and legacy)}


def _kid(opts: MetricOptions, *, mid: str, kind: str, max_real: Optional[int], num_gen: int, legacy: bool) -> dict:
    from stylegan.metrics.kid import compute_kid

    return {mid: compute_kid(opts, kind, max_real, num_gen, 100, 1000, xflip=opts.mirror and legacy)}


def _pr(opts: MetricOptions, *, mid: str, kind: str, max_real: Optional[int], num_gen: int, legacy: bool) -> dict:
    from stylegan.metrics.precision_recall import compute_pr

    p, r = compute_pr(opts, kind, max_real, num_gen, 3, xflip=opts.mirror and legacy)
    return {f"{mid}_precision": p, f"{mid}_recall": r}


def _is(opts: MetricOptions, *, mid: str, num_gen: int) -> dict:
    from stylegan.metrics.inception_score import compute_is

    mean, std = compute_is(opts, num_gen, 10)
    return {f"{mid}_mean": mean, f"{mid}_std": std}


def _ppl(opts: MetricOptions, *, mid: str, num: int, space: str, sampling: str, crop: bool, proxy: bool) -> dict:
    from stylegan.metrics.ppl import PPLConfig, compute_ppl

    cfg = PPLConfig(num_samples=num, epsilon=1e-4, space=space, sampling=sampling, crop=crop)
    return {mid: compute_ppl(opts, cfg, proxy=proxy)}


def _ls(opts: MetricOptions, *, mid: str, num: int) -> dict:
    from stylegan.metrics.separability import compute_ls

    scores = compute_ls(opts, num_samples=num, num_keep=num // 2)
    return {f"{mid}_z": scores["z"], f"{mid}_w": scores["w"]}


def _eq(opts: MetricOptions, *, mid: str, num: int, kind: str) -> dict:
    from stylegan.metrics.equivariance import EqConfig, compute_equivariance

    return {mid: compute_equivariance(opts, EqConfig(num_samples=num, kind=kind))}


def _count(n: int) -> str:
    return f"{n // 1000}k"


def _build_registry() -> Mapping[str, MetricSpec]:
    specs: list = []

    def add(mid, fn, desc, detector, needs_dataset, proxy_of=None):
        specs.append(MetricSpec(mid, fn, desc, detector, needs_dataset, proxy_of))

    counts = (50000, 10000, 5000, 1000)
    for n in counts:
        k = _count(n)
        add(f"fid{k}_full", functools.partial(_fid, mid=f"fid{k}_full", kind="inception", max_real=None, num_gen=n, legacy=False),
            f"FID, {k} generated vs all reals (Inception)", "inception", True)
        add(f"kid{k}_full", functools.partial(_kid, mid=f"kid{k}_full", kind="inception", max_real=1000000, num_gen=n, legacy=False),
            f"KID, {k} generated vs up to 1M reals, 100 subsets of <= 1000 (Inception)", "inception", True)
        add(f"pr{k}3_full", functools.partial(_pr, mid=f"pr{k}3_full", kind="vgg16", max_real=200000, num_gen=n, legacy=False),
            f"Precision/recall, k=3, {k} generated vs up to 200k reals (VGG16)", "vgg16", True)
        add(f"is{k}", functools.partial(_is, mid=f"is{k}", num_gen=n), f"Inception Score, {k} generated, 10 splits", "inception", False)
        for fam, fn, max_real, off in (("fid", _fid, None, f"fid{k}_full"), ("kid", _kid, 1000000, f"kid{k}_full"),
                                       ("pr", _pr, 200000, f"pr{k}3_full")):
            mid = f"{fam}_effnet{k}3_full" if fam == "pr" else f"{fam}_effnet{k}_full"
            add(mid, functools.partial(fn, mid=mid, kind="effnet", max_real=max_real, num_gen=n, legacy=False),
                f"PROXY (EfficientNet-Lite0 features, not {fam.upper()}): {k} generated vs reals", "effnet", True, off)
    # Legacy ids (reals capped at 50k, x-flip follows --mirror).
    add("fid50k", functools.partial(_fid, mid="fid50k", kind="inception", max_real=50000, num_gen=50000, legacy=True),
        "FID, 50k generated vs 50k reals (legacy)", "inception", True)
    add("kid50k", functools.partial(_kid, mid="kid50k", kind="inception", max_real=50000, num_gen=50000, legacy=True),
        "KID, 50k generated vs 50k reals (legacy)", "inception", True)
    add("pr50k3", functools.partial(_pr, mid="pr50k3", kind="vgg16", max_real=50000, num_gen=50000, legacy=True),
        "Precision/recall, 50k vs 50k reals (legacy)", "vgg16", True)
    # PPL: v2 (50k, no crop) and v1 (100k, face crop), quick 1k variants, effnet proxies.
    ppl = [("ppl2_wend", 50000, "w", "end", False)]
    for space in ("z", "w"):
        for sampling in ("full", "end"):
            ppl.append((f"ppl_{space}{sampling}", 100000, space, sampling, True))
    ppl += [(f"{mid}1k", 1000, s, smp, crop) for mid, _n, s, smp, crop in list(ppl)]
    for mid, n, space, sampling, crop in ppl:
        desc = f"PPL in {space.upper()}, {sampling}, {_count(n)} samples{', face crop' if crop else ''}"
        add(mid, functools.partial(_ppl, mid=mid, num=n, space=space, sampling=sampling, crop=crop, proxy=False),
            desc + " (LPIPS-VGG16)", "vgg16", False)
        pid = f"{mid}_effnet"
        add(pid, functools.partial(_ppl, mid=pid, num=n, space=space, sampling=sampling, crop=crop, proxy=True),
            "PROXY " + desc + " (EfficientNet-Lite0 distance, not LPIPS)", "effnet", False, mid)
    for mid, n in (("ls", 200000), ("ls20k", 20000), ("ls2k", 2000)):
        add(mid, functools.partial(_ls, mid=mid, num=n),
            f"Linear separability, {_count(n)} samples, most confident half (needs --classifier)", "classifier", False)
    # StyleGAN3 equivariance (PSNR in dB; generator only, no detector): official ids and quick variants.
    for n in counts:
        k = _count(n)
        for mid, kind, what in ((f"eqt{k}_int", "int", "integer translation (EQ-T)"),
                                (f"eqt{k}_frac", "frac", "fractional translation (EQ-T_frac)"),
                                (f"eqr{k}", "rot", "rotation (EQ-R)")):
            add(mid, functools.partial(_eq, mid=mid, num=n, kind=kind),
                f"Equivariance to {what}, PSNR dB, {k} samples (StyleGAN3 networks)", None, False)
    out = {}
    for s in specs:
        if s.id in out:
            raise AssertionError(f"duplicate metric id {s.id}")
        out[s.id] = s
    return MappingProxyType(out)


METRICS: Mapping[str, MetricSpec] = _build_registry()


def list_metrics(include_proxies: bool = True) -> list:
    """All metric ids (official first, then proxies)."""
    ids = [m for m, s in METRICS.items() if not s.is_proxy]
    return ids + ([m for m, s in METRICS.items() if s.is_proxy] if include_proxies else [])


def get_metric(name: str) -> MetricSpec:
    """The spec for `name`; unknown ids raise MetricError listing the valid ones."""
    if name not in METRICS:
        raise MetricError(f"Unknown metric {name!r}. Valid metrics: {', '.join(list_metrics())}.")
    return METRICS[name]


def proxy_for(name: str) -> str:
    """The EfficientNet proxy id standing in for an official id (identity for proxies)."""
    spec = get_metric(name)
    if spec.is_proxy:
        return name
    for mid, s in METRICS.items():
        if s.proxy_of == name:
            return mid
    raise MetricError(
        f"{name} has no offline proxy ({spec.detector} is required: "
        + ("see docs/metrics.md for where to put the detector files)." if spec.detector in ("inception", "vgg16")
           else "pass --classifier).")
    )


def compute_metric(
    name: str,
    G: Any,
    dataset: Any = None,
    *,
    device: Any = "cpu",
    batch: int = 32,
    num_gpus: int = 1,
    rank: int = 0,
    cache_dir: Optional[PathLike] = None,
    **options: Any,
) -> dict:
    """Compute metric `name` for generator G (and dataset, a Dataset object or a spec).

    Extra keyword options are MetricOptions fields: psi, noise_mode, seed, mirror, progress,
    detector_dir, download, use_cache, num_workers, classifier, detectors.
    Returns {"results": {key: float}, "metric", "total_time", "total_time_str", "num_gpus",
    "detector", "proxy_of"}; every rank gets rank 0's values.
    """
    spec = get_metric(name)
    valid = {f.name for f in fields(MetricOptions)} - {"G", "dataset", "device", "batch", "num_gpus", "rank", "cache_dir"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise MetricError(f"Unknown metric option(s) {unknown}; valid: {sorted(valid)}.")
    if spec.needs_dataset and dataset is None:
        raise MetricError(f"{name} compares against real images: a dataset is required (--data).")
    opts = MetricOptions(G=G, dataset=dataset, device=device, batch=batch, num_gpus=num_gpus, rank=rank,
                         cache_dir=cache_dir, **options)
    start = time.time()
    results = spec.fn(opts)
    results = {k: broadcast_float(float(v), opts) for k, v in results.items()}
    total = time.time() - start
    return dict(
        results=results,
        metric=name,
        total_time=total,
        total_time_str=format_time(total),
        num_gpus=num_gpus,
        detector=spec.detector,
        proxy_of=spec.proxy_of,
    )


def append_metric_jsonl(run_dir: PathLike, result: dict, snapshot: Optional[PathLike] = None) -> Path:
    """Append `result` (from compute_metric) as one JSON line to `<run_dir>/metric-<id>.jsonl`
    with `snapshot_pkl` (the snapshot path relative to run_dir, name kept from the official
    format) and a `timestamp`. Returns the file path."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    snap = None
    if snapshot is not None:
        snap = os.path.relpath(snapshot, run) if Path(snapshot).is_absolute() == run.is_absolute() else str(snapshot)
    line = json.dumps(dict(result, snapshot_pkl=snap, timestamp=time.time()))
    path = run / f"metric-{result['metric']}.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return path


__all__ = [
    "METRICS",
    "MetricSpec",
    "append_metric_jsonl",
    "compute_metric",
    "get_metric",
    "list_metrics",
    "proxy_for",
]
