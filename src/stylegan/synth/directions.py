"""Latent directions: the file every editing tool reads, W's statistics, and what an edit does.

A `Directions` is K unit vectors in W (`vectors` [K, w_dim]), found by one of three methods
(`synth.sefa`: Shen & Zhou 2021; `synth.ganspace`: Härkönen et al. 2020; `synth.interfacegan`:
Shen et al. 2020), each with W's standard deviation along it (`scales` [K]) and a value saying how
much it matters (`values` [K]: SeFa's eigenvalue, GANSpace's explained variance ratio, the label
boundary's accuracy), the style inputs an edit changes by default (`layers`) and where it came from
(`Provenance`: method, network sha256, samples, date, settings).

An edit moves the chosen style inputs along a sum of directions:

    ws'[:, l] = ws[:, l] + sum_k alpha_k * scales[k] * vectors[k]    for l in layers

so a strength alpha is alpha standard deviations of W along the direction, for every method (the
papers' raw units differ: SeFa's rosinality script uses a bare unit vector times a "degree",
GANSpace sigmas, InterFaceGAN the distance to the boundary); alpha 0 is the identity.

The file is an `.npz` without pickles (`np.load(allow_pickle=False)`); `load_directions` checks
every key and says what is wrong with a damaged or foreign file (`DirectionError`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .sample import class_labels, format_range

FORMAT = "stylegan-directions"
VERSION = 1
METHODS = ("sefa", "ganspace", "labels")
UNIT_TOLERANCE = 1e-3      # |norm - 1| allowed for a stored vector
Progress = Callable[[int, int], "bool | None"]  # (samples done, total) -> False stops


class DirectionError(ValueError):
    """A direction file is damaged, foreign, or does not fit the network; the message says which."""


@dataclass(frozen=True)
class Provenance:
    """Where a set of directions came from."""

    method: str                       # 'sefa' | 'ganspace' | 'labels'
    network_sha256: str               # `network_sha256(G)` of the network it was computed on
    samples: int                      # W samples used (SeFa: only for the scales)
    date: str                         # ISO 8601, UTC
    network: str = ""                 # the network's file name, if it had one
    params: Mapping = field(default_factory=dict)  # the method's settings (layers, classes, ...)


@dataclass(frozen=True, eq=False)
class Directions:
    """K directions in W. vectors [K, w_dim] float32 with unit rows; scales [K] float32 > 0 (W's
    standard deviation along each); values [K] float64 (`value_name` says what they are); layers:
    the style inputs an edit changes unless told otherwise; num_ws: of the network; names [K]."""

    vectors: np.ndarray
    scales: np.ndarray
    values: np.ndarray
    value_name: str
    layers: tuple[int, ...]
    num_ws: int
    provenance: Provenance
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_directions(self)

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def w_dim(self) -> int:
        return int(self.vectors.shape[1])

    def name(self, k: int) -> str:
        return self.names[k] if self.names else f"component {k}"

    def head(self, k: int) -> "Directions":
        """The first k directions (all when k >= count)."""
        k = min(int(k), self.count)
        return Directions(self.vectors[:k], self.scales[:k], self.values[:k], self.value_name, self.layers,
                          self.num_ws, self.provenance, self.names[:k])


# ----------------------------------------------------------------------------------- checks

def check_directions(d: Directions) -> None:
    """Every invariant of a Directions (shapes, unit rows, finite values, layers in range)."""
    v, s, vals = d.vectors, d.scales, d.values
    if not isinstance(v, np.ndarray) or v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise DirectionError(f"vectors must be a [K, w_dim] array with K >= 1, got "
                             f"{getattr(v, 'shape', type(v).__name__)}")
    k = v.shape[0]
    for name, a in (("scales", s), ("values", vals)):
        if not isinstance(a, np.ndarray) or a.shape != (k,):
            raise DirectionError(f"{name} must have one entry per vector ({k}), got shape "
                                 f"{getattr(a, 'shape', type(a).__name__)}")
    for name, a in (("vectors", v), ("scales", s), ("values", vals)):
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            raise DirectionError(f"{name} must hold finite floating-point numbers")
    norms = np.linalg.norm(v.astype(np.float64), axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > UNIT_TOLERANCE)
    if bad.size:
        raise DirectionError(f"vectors must have unit length; vector {int(bad[0])} has length {norms[bad[0]]:.4g}")
    if (s <= 0).any():
        raise DirectionError(f"scales must be positive; scale {int(np.flatnonzero(s <= 0)[0])} is not")
    if d.num_ws < 1:
        raise DirectionError(f"num_ws must be >= 1, got {d.num_ws}")
    if not d.layers or any(not 0 <= int(i) < d.num_ws for i in d.layers) or len(set(d.layers)) != len(d.layers):
        raise DirectionError(f"layers must be distinct style indices in 0..{d.num_ws - 1}, got {list(d.layers)}")
    if d.names and len(d.names) != k:
        raise DirectionError(f"names must have one entry per vector ({k}), got {len(d.names)}")
    if d.provenance.method not in METHODS:
        raise DirectionError(f"method must be one of {', '.join(METHODS)}, got {d.provenance.method!r}")


def check_network(d: Directions, G, sha256: str | None = None) -> str | None:
    """DirectionError when the directions cannot apply to G (w_dim, num_ws); a warning text when G
    is another network than the one they were computed on (they may still make sense: another
    snapshot of the same run), else None. `sha256`: G's `network_sha256`, if known."""
    if d.w_dim != G.w_dim or d.num_ws != G.num_ws:
        raise DirectionError(f"the directions are for w_dim {d.w_dim} with {d.num_ws} style inputs; this network "
                             f"has w_dim {G.w_dim} with {G.num_ws}")
    if d.provenance.network_sha256 and d.provenance.network_sha256 != (sha256 or network_sha256(G)):
        source = f" ({d.provenance.network})" if d.provenance.network else ""
        return (f"these {d.provenance.method} directions were computed on another network{source}, "
                f"sha256 {d.provenance.network_sha256[:12]}...")
    return None


def network_sha256(G: torch.nn.Module) -> str:
    """sha256 over the network's state (names, dtypes, shapes and bytes of every tensor, in name
    order): the same for a network however it was loaded (file, official pickle, in memory)."""
    h = hashlib.sha256()
    for name, t in sorted(G.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}:{a.dtype}:{tuple(a.shape)};".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


def canonical_signs(vectors: np.ndarray) -> np.ndarray:
    """Rows [K, D] flipped so that each one's largest-magnitude entry is positive (eigenvectors
    have no sign of their own; this makes SeFa's and GANSpace's reproducible)."""
    peak = vectors[np.arange(vectors.shape[0]), np.abs(vectors).argmax(axis=1)]
    return vectors * np.where(peak < 0, -1.0, 1.0)[:, None]


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# ----------------------------------------------------------------------------------- the file

def directions_bytes(d: Directions) -> bytes:
    """The .npz file of `d` as bytes (keys: format, version, vectors, scales, values, layers,
    num_ws, meta: JSON of value_name, names and the provenance)."""
    p = d.provenance
    meta = {"value_name": d.value_name, "names": list(d.names), "method": p.method,
            "network_sha256": p.network_sha256, "network": p.network, "samples": int(p.samples),
            "date": p.date, "params": dict(p.params)}
    buf = io.BytesIO()
    np.savez(buf, format=np.str_(FORMAT), version=np.int64(VERSION), vectors=d.vectors.astype(np.float32),
             scales=d.scales.astype(np.float32), values=d.values.astype(np.float64),
             layers=np.asarray(d.layers, np.int64), num_ws=np.int64(d.num_ws), meta=np.str_(json.dumps(meta)))
    return buf.getvalue()


def save_directions(d: Directions, path: str | os.PathLike) -> Path:
    """Write `d` to `path` (.npz), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(directions_bytes(d))
    os.replace(tmp, path)
    return path


_KEYS = ("format", "version", "vectors", "scales", "values", "layers", "num_ws", "meta")


def read_directions(data: bytes, source: str = "the direction file") -> Directions:
    """Directions from .npz bytes; every problem is a DirectionError naming `source` and the key."""
    if not data.startswith(b"PK"):  # an .npz is a zip archive
        raise DirectionError(f"{source} is not a direction file (not an .npz archive; make one with "
                             f"`stylegan directions`)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if "format" in missing or ("format" not in missing and str(f["format"]) != FORMAT):
                raise DirectionError(f"{source} is not a direction file (no format tag {FORMAT!r}; make one with "
                                     f"`stylegan directions`)")
            if missing:
                raise DirectionError(f"{source} is damaged: it lacks {', '.join(missing)}")
            arrays = {k: f[k] for k in _KEYS}
    except DirectionError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DirectionError(f"{source} holds Python objects (pickles), which are never loaded") from None
        raise DirectionError(f"{source} cannot be read as .npz ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DirectionError(f"{source} cannot be read as .npz ({type(e).__name__}: {e})") from None
    version = int(arrays["version"])
    if version != VERSION:
        raise DirectionError(f"{source} has version {version}; this stylegan reads version {VERSION}")
    try:
        meta = json.loads(str(arrays["meta"]))
        prov = Provenance(method=str(meta["method"]), network_sha256=str(meta["network_sha256"]),
                          samples=int(meta["samples"]), date=str(meta["date"]), network=str(meta.get("network", "")),
                          params=dict(meta.get("params", {})))
        value_name, names = str(meta["value_name"]), tuple(str(n) for n in meta.get("names", ()))
    except (ValueError, KeyError, TypeError) as e:
        raise DirectionError(f"{source} is damaged: its meta record is not valid ({type(e).__name__}: {e})") from None
    layers, num_ws = arrays["layers"], arrays["num_ws"]
    if layers.ndim != 1 or not np.issubdtype(layers.dtype, np.integer) or num_ws.ndim != 0:
        raise DirectionError(f"{source} is damaged: layers must be a list of integers and num_ws one integer")
    try:
        return Directions(np.asarray(arrays["vectors"]), np.asarray(arrays["scales"]), np.asarray(arrays["values"]),
                          value_name, tuple(int(i) for i in layers), int(num_ws), prov, names)
    except DirectionError as e:
        raise DirectionError(f"{source} is damaged: {e}") from None


def load_directions(path: str | os.PathLike) -> Directions:
    """Read and check a direction file (DirectionError on any problem, naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise DirectionError(f"no such direction file: {path} (make one with `stylegan directions`)")
    return read_directions(path.read_bytes(), str(path))


# ----------------------------------------------------------------------------------- W statistics

@dataclass(frozen=True, eq=False)
class Moments:
    """Mean and scatter of n samples of W, merged batch by batch (Chan et al. 1979), so 10^6
    samples need only [w_dim, w_dim] of memory. mean [D], scatter [D, D] = sum (w - mean)(w - mean)^T."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @property
    def cov(self) -> np.ndarray:
        """Sample covariance [D, D] (n - 1 in the denominator)."""
        return self.scatter / max(self.n - 1, 1)


def moments_of(w: np.ndarray) -> Moments:
    """Moments of one batch w [B, D]."""
    w = np.asarray(w, np.float64)
    mean = w.mean(axis=0)
    d = w - mean
    with one_blas_thread():
        return Moments(w.shape[0], mean, d.T @ d)


def merge_moments(a: Moments | None, b: Moments) -> Moments:
    """Moments of the union of two sample sets (exact, in float64)."""
    if a is None or a.n == 0:
        return b
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    scatter = a.scatter + b.scatter + np.outer(delta, delta) * (a.n * b.n / n)
    return Moments(n, mean, scatter)


def std_along(moments: Moments, vectors: np.ndarray) -> np.ndarray:
    """W's standard deviation along each unit vector: sqrt(v^T C v), vectors [K, D] -> [K]."""
    v = np.asarray(vectors, np.float64)
    with one_blas_thread():
        return np.sqrt(np.maximum(((v @ moments.cov) * v).sum(axis=1), 0.0))


def one_blas_thread():
    """Numpy's BLAS / LAPACK on one thread inside the block. These matrices are small (w_dim^2),
    and beside torch (whose OpenMP threads spin for a while after each op) a second pool of
    threads contends for the same cores: an eigh of 512 x 512 after a render took 0.44 s on two
    threads instead of 0.03 s (2 cores). threadpoolctl comes with scikit-learn."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def drawn_classes(G, num_samples: int, seed: int = 0) -> np.ndarray:
    """The class of each W sample of a conditional network in `w_batches` [num_samples] int."""
    return np.random.RandomState(seed + 1).randint(0, G.c_dim, num_samples)


def w_batches(G, num_samples: int, *, seed: int = 0, batch: int = 4096, class_idx: int | None = None,
              device=None) -> Iterator[np.ndarray]:
    """W samples w = mapping(z, c) without truncation, as float64 batches [B, w_dim] on the CPU.
    z ~ N(0, I) from np.random.RandomState(seed), in order, so the samples are the same for any
    batch size; a conditional network draws each sample's class uniformly (`drawn_classes`)
    unless `class_idx` fixes it."""
    if num_samples < 2:
        raise ValueError(f"need at least 2 samples of W, got {num_samples}")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    zs = np.random.RandomState(seed)
    drawn = drawn_classes(G, num_samples, seed) if G.c_dim and class_idx is None else None
    done = 0
    while done < num_samples:
        n = min(batch, num_samples - done)
        z = torch.from_numpy(zs.randn(n, G.z_dim)).to(torch.float32).to(dev)
        if drawn is not None:
            c = torch.eye(G.c_dim, device=dev)[torch.from_numpy(drawn[done:done + n]).to(dev)]
        else:
            c = class_labels(G, n, class_idx, dev)
        with torch.no_grad():
            yield G.mapping(z, c)[:, 0].to(torch.float64).cpu().numpy()
        done += n


def w_moments(G, num_samples: int, *, seed: int = 0, batch: int = 4096, class_idx: int | None = None,
              device=None, progress: Progress | None = None) -> Moments:
    """Moments of `num_samples` W samples (`w_batches`); `progress(done, total)` after each batch,
    returning False stops early (the moments of the samples so far)."""
    m = None
    for w in w_batches(G, num_samples, seed=seed, batch=batch, class_idx=class_idx, device=device):
        m = merge_moments(m, moments_of(w))
        if progress is not None and progress(m.n, num_samples) is False:
            break
    return m


# ----------------------------------------------------------------------------------- edits

def range_spec(values: Sequence[int]) -> str:
    """A set of style inputs as a person would type it: (3, 0, 1, 2, 7) -> '0-3,7'."""
    return format_range(sorted(set(int(v) for v in values)))


def parse_alphas(spec: str | Sequence[float]) -> list[float]:
    """Strengths: 'lo:hi:n' (n evenly spaced, ends included) | 'a,b,c' | one number."""
    if not isinstance(spec, str):
        out = [float(a) for a in spec]
    else:
        s = spec.strip()
        m = re.fullmatch(r"([-+0-9.eE]+):([-+0-9.eE]+):(\d+)", s)
        try:
            if m:
                lo, hi, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
                if n < 1:
                    raise ValueError
                out = [lo] if n == 1 else np.linspace(lo, hi, n).tolist()
            else:
                out = [float(a) for a in s.split(",") if a.strip()]
        except ValueError:
            raise ValueError(f"cannot read strengths {spec!r}: use lo:hi:n like -3:3:7, or a list like "
                             f"-2,0,2") from None
    if not out or not all(np.isfinite(out)):
        raise ValueError(f"strengths must be finite numbers, got {spec!r}")
    return [round(a, 12) + 0.0 for a in out]  # linspace's 1e-16 noise off; -0.0 -> 0.0


def edit_delta(d: Directions, coefficients: Mapping[int, float]) -> np.ndarray:
    """sum_k alpha_k * scales[k] * vectors[k] for {k: alpha_k} -> [w_dim] float64."""
    delta = np.zeros(d.w_dim)
    for k, alpha in coefficients.items():
        if not 0 <= int(k) < d.count:
            raise DirectionError(f"component {k} out of range: the file has {d.count} (0..{d.count - 1})")
        delta += float(alpha) * float(d.scales[k]) * d.vectors[k].astype(np.float64)
    return delta


def edit_offset(d: Directions, coefficients: Mapping[int, float], layers: Sequence[int] | None = None) -> torch.Tensor:
    """The edit as an offset of ws: [num_ws, w_dim] float32, `edit_delta` on `layers` (default the
    directions' own), zero elsewhere. Add it to ws [N, num_ws, w_dim]."""
    layers = d.layers if layers is None else tuple(layers)
    bad = [i for i in layers if not 0 <= i < d.num_ws]
    if bad or not layers:
        raise DirectionError(f"layers {list(layers)} are not style indices in 0..{d.num_ws - 1}")
    mask = np.zeros((d.num_ws, 1))
    mask[list(layers)] = 1.0
    return torch.from_numpy((mask * edit_delta(d, coefficients)[None]).astype(np.float32))


def edit_ws(ws: torch.Tensor, d: Directions, components: Sequence[int], alphas: Sequence[float],
            layers: Sequence[int] | None = None) -> torch.Tensor:
    """ws [N, num_ws, w_dim] edited along the sum of `components` at every strength:
    -> [N, len(alphas), num_ws, w_dim]; alpha 0 gives ws back exactly."""
    unit = edit_offset(d, {k: 1.0 for k in components}, layers).to(ws.device, ws.dtype)  # [L, D]
    a = torch.as_tensor(list(alphas), dtype=ws.dtype, device=ws.device).reshape(1, -1, 1, 1)  # [1, A, 1, 1]
    return ws[:, None] + a * unit[None, None]


__all__ = ["FORMAT", "VERSION", "METHODS", "DirectionError", "Provenance", "Directions", "check_directions",
           "check_network", "network_sha256", "canonical_signs", "utc_now", "directions_bytes", "save_directions",
           "read_directions", "load_directions", "Moments", "moments_of", "merge_moments", "std_along",
           "one_blas_thread", "drawn_classes", "w_batches", "w_moments", "range_spec", "parse_alphas", "edit_delta",
           "edit_offset", "edit_ws"]
