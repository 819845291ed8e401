"""Make a local checkout of NVIDIA's code (NVlabs/stylegan3 or NVlabs/stylegan2-ada-pytorch) importable
on a current Python, for the fixture scripts and side-by-side benchmarks that run it: never for tests.

The checkout is the user's, outside this repository (NVIDIA's licence: nothing of it is copied
here). Two stand-ins: `pkg_resources`, gone from setuptools >= 81, of which the official code only
calls `parse_version` (its `torch.__version__ >= ...` checks); and `requests`, which `dnnlib.util`
imports for downloads that these scripts never make.
"""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path


def parse_version(text: str) -> tuple[int, ...]:
    """Stand-in for pkg_resources.parse_version: '2.13.0+cpu' -> (2, 13, 0)."""
    return tuple(int(x) for x in re.findall(r"\d+", str(text).split("+")[0])[:3])


def use_checkout(path: str | Path, needs: str = "training") -> Path:
    """Put the checkout at `path` first on sys.path, with the stand-ins -> its resolved root.
    `needs`: a file or folder inside it that must exist (SystemExit naming it otherwise)."""
    root = Path(path).expanduser().resolve()
    if not (root / needs).exists():
        raise SystemExit(f"{path}: no {needs} there; pass a checkout of NVlabs/stylegan3 "
                         "(or NVlabs/stylegan2-ada-pytorch for StyleGAN2)")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse_version)
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root
