"""GAN metrics: FID, KID, precision/recall, IS, perceptual path length, linear separability
(the StyleGAN / StyleGAN2 papers' metrics, with stylegan2-ada-pytorch's settings), with the
official NVIDIA detectors and an offline EfficientNet-Lite0 proxy; and StyleGAN3's equivariance
(EQ-T, EQ-T_frac, EQ-R, in `equivariance`).

    from stylegan.metrics import compute_metric, append_metric_jsonl
    result = compute_metric("fid50k_full", G, dataset, device="cuda")
    append_metric_jsonl(run_dir, result)

See docs/metrics.md for ids, detector files and what the *_effnet proxies mean.
"""
from stylegan.metrics.detectors import (
    OFFICIAL_DETECTORS,
    DetectorSpec,
    load_detector,
    load_perceptual_distance,
    resolve_detector_file,
)
from stylegan.metrics.errors import DetectorError, MetricError
from stylegan.metrics.features import DetectorProvider, MetricOptions
from stylegan.metrics.registry import (
    METRICS,
    append_metric_jsonl,
    compute_metric,
    get_metric,
    list_metrics,
    proxy_for,
)

__all__ = [
    "DetectorError",
    "DetectorProvider",
    "DetectorSpec",
    "METRICS",
    "MetricError",
    "MetricOptions",
    "OFFICIAL_DETECTORS",
    "append_metric_jsonl",
    "compute_metric",
    "get_metric",
    "list_metrics",
    "load_detector",
    "load_perceptual_distance",
    "proxy_for",
    "resolve_detector_file",
]
