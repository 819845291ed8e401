"""The official metric detectors (TorchScript files published by NVIDIA) and how we find them.

Files (same names and call conventions as stylegan2-ada-pytorch):

- `inception-2015-12-05.pt`: Inception-v3 (TF 2015-12-05 graph) for FID / KID / IS.
  `net(img_uint8 [N,3,H,W], return_features=True) -> [N, 2048]` pool features;
  `net(img_uint8, no_output_bias=True) -> [N, 1008]` softmax probabilities (IS).
- `vgg16.pt`: VGG16 (LPIPS linear heads included) for precision/recall and PPL.
  `net(img_uint8, return_features=True) -> [N, 4096]` fc features (precision/recall);
  `net(img_float_0_255, resize_images=False, return_lpips=True) -> [N, F]` whose squared
  Euclidean distances are LPIPS distances (PPL, projector).

Lookup order for a detector file (first hit wins):
 1. an explicit `path` (the file itself, or a directory that holds it; CLI `--detector-dir`);
 2. `$STYLEGAN_DETECTOR_DIR/<file>`;
 3. the cache: `<cache>/detectors/<file>`, cache = `$STYLEGAN_CACHE` or `~/.cache/stylegan`;
 4. download from the official URL into the cache (urllib, atomic rename, sha256 check when the
    digest is known). Never when `download=False` or `$STYLEGAN_OFFLINE=1`.

Checksums: NVIDIA does not publish digests for these files and we could not fetch them to record
one, so `sha256` is None for both; a downloaded file's digest is then printed so users can pin it.
A digest given in a `DetectorSpec` is always enforced (cache hits included): a mismatching file is
never used.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from stylegan.metrics.errors import DetectorError

PathLike = Union[str, "os.PathLike[str]"]
ENV_CACHE = "STYLEGAN_CACHE"
ENV_DETECTOR_DIR = "STYLEGAN_DETECTOR_DIR"
ENV_OFFLINE = "STYLEGAN_OFFLINE"


@dataclass(frozen=True)
class DetectorSpec:
    """One downloadable TorchScript detector."""

    name: str  # short id: "inception", "vgg16"
    filename: str  # file name in the detector directory
    url: str  # official download address
    sha256: Optional[str]  # expected digest (lower-case hex) or None when unknown
    used_by: str  # for error messages


OFFICIAL_DETECTORS: Mapping[str, DetectorSpec] = MappingProxyType(
    {
        "inception": DetectorSpec(
            name="inception",
            filename="inception-2015-12-05.pt",
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            sha256=None,
            used_by="FID, KID and IS",
        ),
        "vgg16": DetectorSpec(
            name="vgg16",
            filename="vgg16.pt",
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",
            sha256=None,
            used_by="precision/recall, perceptual path length and projection (LPIPS)",
        ),
    }
)


def cache_root(cache_dir: Optional[PathLike] = None) -> Path:
    """`cache_dir`, else `$STYLEGAN_CACHE`, else `~/.cache/stylegan`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stylegan"


def detector_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """Where detectors are cached: `<cache>/detectors`."""
    return cache_root(cache_dir) / "detectors"


def offline() -> bool:
    """True when `$STYLEGAN_OFFLINE` is set to a non-empty value other than 0/false/no."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def get_spec(name: Union[str, DetectorSpec]) -> DetectorSpec:
    """Detector spec by short name ("inception", "vgg16") or pass-through."""
    if isinstance(name, DetectorSpec):
        return name
    if name not in OFFICIAL_DETECTORS:
        raise DetectorError(f"Unknown detector {name!r}; known: {', '.join(OFFICIAL_DETECTORS)}.")
    return OFFICIAL_DETECTORS[name]


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, spec: DetectorSpec) -> None:
    """Raise DetectorError when `spec.sha256` is known and `path` does not match it."""
    if spec.sha256 is None:
        return
    actual = sha256_file(path)
    if actual.lower() != spec.sha256.lower():
        raise DetectorError(
            f"Checksum mismatch for detector file {path}: sha256 {actual}, expected {spec.sha256}. "
            f"The file is corrupt or not the official {spec.filename}; delete it and download it again "
            f"from {spec.url}."
        )


def missing_message(spec: DetectorSpec, searched: list, reason: str = "", cache_dir: Optional[PathLike] = None) -> str:
    """The error text for a detector file that cannot be found or fetched."""
    where = detector_cache_dir(cache_dir)
    lines = [
        f"Detector file {spec.filename} (needed for {spec.used_by}) was not found{reason}.",
        f"  Looked in: {', '.join(str(p) for p in searched) or '(nowhere)'}",
        f"  Download it from {spec.url}",
        f"  and put it at {where / spec.filename}",
        f"  (or in any directory DIR given by `--detector-dir DIR` / ${ENV_DETECTOR_DIR}=DIR; "
        f"${ENV_CACHE} moves the cache).",
    ]
    if spec.name in ("inception", "vgg16"):
        lines.append(
            "  Offline alternative: the *_effnet proxy metrics (e.g. fid_effnet5k_full, `--proxy`), "
            "which are not FID/KID/PR/PPL and not comparable with published numbers."
        )
    return "\n".join(lines)


def candidate_paths(spec: DetectorSpec, path: Optional[PathLike], cache_dir: Optional[PathLike]) -> list:
    """Ordered list of places the detector file may be (see module docstring)."""
    out = []
    if path is not None:
        p = Path(path).expanduser()
        out.append(p / spec.filename if p.is_dir() else p)
        return out  # an explicit location is authoritative
    env_dir = os.environ.get(ENV_DETECTOR_DIR)
    if env_dir:
        out.append(Path(env_dir).expanduser() / spec.filename)
    out.append(detector_cache_dir(cache_dir) / spec.filename)
    default = detector_cache_dir() / spec.filename
    if cache_dir is not None and default not in out:
        out.append(default)  # a run-specific cache still finds files in the user's cache
    return out


def download_file(url: str, dest: Path, spec: DetectorSpec, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` atomically (temporary file in the same directory, then rename),
    verifying `spec.sha256` when known. Returns `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            while True:
                block = r.read(1 << 20)
                if not block:
                    break
                h.update(block)
                f.write(block)
        digest = h.hexdigest()
        if spec.sha256 is not None and digest.lower() != spec.sha256.lower():
            raise DetectorError(
                f"Downloaded {url} has sha256 {digest}, expected {spec.sha256}; the file was discarded."
            )
        os.replace(tmp, dest)
        if spec.sha256 is None:
            print(f"Downloaded {spec.filename} to {dest} (sha256 {digest}).", file=sys.stderr)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve_detector_file(
    name: Union[str, DetectorSpec],
    path: Optional[PathLike] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    download: Optional[bool] = None,
) -> Path:
    """Find (or fetch) a detector file; see the module docstring for the order.

    download: None = download unless `$STYLEGAN_OFFLINE`; False = never; True = allowed
    (still refused under `$STYLEGAN_OFFLINE`). An explicit `path` is never downloaded to.
    """
    spec = get_spec(name)
    searched = candidate_paths(spec, path, cache_dir)
    for p in searched:
        if p.is_file():
            verify_sha256(p, spec)
            return p
    if path is not None:
        raise DetectorError(missing_message(spec, searched, f" at the given location {path}", cache_dir))
    allowed = (download is None or download) and not offline()
    if not allowed:
        reason = " (downloads are disabled)" if download is False else f" (${ENV_OFFLINE} is set)"
        raise DetectorError(missing_message(spec, searched, reason, cache_dir))
    dest = detector_cache_dir(cache_dir) / spec.filename
    try:
        return download_file(spec.url, dest, spec)
    except DetectorError:
        raise
    except Exception as e:  # network errors: URLError, timeouts, HTTP errors
        raise DetectorError(missing_message(spec, searched, f" and downloading it failed ({e})", cache_dir)) from e


def load_torchscript(path: PathLike, device: Union[str, torch.device] = "cpu") -> torch.jit.ScriptModule:
    """torch.jit.load a detector (TorchScript only: nothing from the file is unpickled as Python)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the official format
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise DetectorError(
            f"{path} is not a loadable TorchScript file ({type(e).__name__}: {e}). The official detectors are "
            "the .pt TorchScript files, not the stylegan3 .pkl pickles."
        ) from e
    return module.eval().to(device)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """[N, 1 or 3, H, W] -> [N, 3, H, W] (grayscale repeated)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DetectorError(f"Detectors take [N, 1 or 3, H, W] images, got shape {tuple(images.shape)}.")
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


@dataclass
class TorchScriptDetector:
    """An official detector with the stylegan2-ada-pytorch call conventions."""

    spec: DetectorSpec
    module: Any  # torch.jit.ScriptModule
    path: Path
    device: torch.device

    @property
    def detector_id(self) -> str:
        """Identity used in cache keys: file name + size (+ digest when pinned)."""
        size = self.path.stat().st_size
        return f"{Path(self.spec.filename).stem}:{size}:{self.spec.sha256 or 'nosha'}"

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] -> [N, D] float32 (`return_features=True`)."""
        x = to_rgb(images).to(self.device)
        return self.module(x, return_features=True).float()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] -> softmax [N, K] without the output bias (Inception, IS)."""
        x = to_rgb(images).to(self.device)
        return self.module(x, no_output_bias=True).float()

    def lpips_features(self, images: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [0, 255] -> [N, F]; squared distances are LPIPS (vgg16)."""
        x = to_rgb(images).to(self.device)
        return self.module(x, resize_images=False, return_lpips=True)


def load_detector(
    name: Union[str, DetectorSpec],
    path: Optional[PathLike] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    device: Union[str, torch.device] = "cpu",
    download: Optional[bool] = None,
) -> TorchScriptDetector:
    """Resolve and load an official detector: `load_detector("inception", path=None)`."""
    spec = get_spec(name)
    p = resolve_detector_file(spec, path, cache_dir=cache_dir, download=download)
    dev = torch.device(device)
    return TorchScriptDetector(spec=spec, module=load_torchscript(p, dev), path=p, device=dev)


class VGG16LPIPS(nn.Module):
    """LPIPS distance with the official VGG16 TorchScript (Zhang et al. 2018; as used for PPL in
    StyleGAN Sec. 4 and the projector). Images are float [N, C, H, W] in [-1, 1]; no resizing."""

    name = "lpips-vgg16"
    official = True

    def __init__(self, detector: TorchScriptDetector) -> None:
        super().__init__()
        self.detector = detector
        self.module = detector.module

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """img [N, C, H, W] in [-1, 1] -> [N, F] (differentiable)."""
        return self.detector.lpips_features((img.to(torch.float32) + 1) * 127.5)

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        """-> LPIPS distances [N]."""
        return (self.features(img_a) - self.features(img_b)).square().sum(dim=1)


def load_perceptual_distance(
    path: Optional[PathLike] = None,
    allow_proxy: bool = True,
    *,
    device: Union[str, torch.device] = "cpu",
    cache_dir: Optional[PathLike] = None,
    download: bool = False,
    warn: bool = True,
) -> nn.Module:
    """A perceptual distance `d(img_a, img_b) -> [N]` for images in [-1, 1] ([N, C, H, W]).

    Prefers LPIPS with the official `vgg16.pt` (`path` = file or directory; else the usual lookup,
    downloading only if `download=True`). If that file is unavailable and `allow_proxy`, falls back
    to the EfficientNet-Lite0 proxy distance (offline, LPIPS-like, *not* LPIPS). The returned
    module's `.name` says which one was used (`lpips-vgg16` / `effnet-lite0-proxy`), `.official`
    whether it is the official one, and `.features(img)` gives embeddings whose squared distances
    are the distances (handy for a fixed target in projection). An explicit `path` that does not
    exist is always an error.
    """
    try:
        det = load_detector("vgg16", path, cache_dir=cache_dir, device=device, download=download)
        return VGG16LPIPS(det)
    except DetectorError as e:
        if path is not None or not allow_proxy:
            raise
        from stylegan.metrics.effnet import EffNetPerceptualDistance, load_effnet_lite0

        if warn:
            print(
                f"vgg16.pt not available ({e.args[0].splitlines()[0]}); using the offline "
                "EfficientNet-Lite0 proxy distance (effnet-lite0-proxy), which is not LPIPS.",
                file=sys.stderr,
            )
        return EffNetPerceptualDistance(load_effnet_lite0(device=device)).to(device)


__all__ = [
    "DetectorSpec",
    "OFFICIAL_DETECTORS",
    "TorchScriptDetector",
    "VGG16LPIPS",
    "cache_root",
    "detector_cache_dir",
    "download_file",
    "get_spec",
    "load_detector",
    "load_perceptual_distance",
    "load_torchscript",
    "resolve_detector_file",
    "sha256_file",
    "to_rgb",
    "verify_sha256",
]
