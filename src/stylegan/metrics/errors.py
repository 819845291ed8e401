"""Errors raised by the metrics package.

Both derive from RuntimeError and carry an actionable message; the CLI turns them into
`click.ClickException` so users see one clear line instead of a traceback.
"""
from __future__ import annotations


class MetricError(RuntimeError):
    """A metric cannot be computed with the given inputs (bad id, missing dataset, bad shapes)."""


class DetectorError(MetricError):
    """A detector network (Inception, VGG16-LPIPS, EfficientNet-Lite0, a classifier) is unavailable."""


__all__ = ["MetricError", "DetectorError"]
