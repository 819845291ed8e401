"""Perceptual path length (StyleGAN Sec. 4.1; StyleGAN2 Sec. 3).

For latents z0, z1 ~ N(0, I) and t:
- in Z:  l = d(g(slerp(z0, z1; t)), g(slerp(z0, z1; t + eps))) / eps^2   (g = synthesis o mapping)
- in W:  l = d(g(lerp(w0, w1; t)),  g(lerp(w0, w1; t + eps)))  / eps^2   (w = mapping(z))
with eps = 1e-4 and d = LPIPS(VGG16). "full": t ~ U(0, 1); "end": the path end points t in {0, 1}
(sampled as t = 0, like the official code: z0 and z1 are exchangeable, so t = 1 has the same
distribution). The v1 ids crop the face region (rows H/8*3 : H/8*7, columns W/8*2 : W/8*6) first;
images larger than 256 are then box-downsampled to 256 (integer factor). Values outside the
[1st, 99th] percentile are dropped; the metric is the mean of the rest.

Noise inputs use noise_mode="const" like the official code; the constant noise buffers (our
`G.noise_inputs()[...].const`, or official-style `*noise_const` buffers) are re-randomised for every
batch on a private copy of the generator, so each pair shares its noise but batches differ.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from stylegan.metrics.errors import MetricError
from stylegan.metrics.features import (
    MetricOptions,
    progress_bar,
    batches,
    eval_mode,
    gather_rows,
    make_label_sampler,
    module_device,
    rank_indices,
)
from stylegan.nn import weight_cache


def normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit-length rows along the last dim."""
    return v / v.norm(dim=-1, keepdim=True)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the directions of a, b [N, D] at t [N, 1] -> unit vectors [N, D]
    (the official PPL slerp: the inputs are normalised, the result is on the unit sphere; t may
    exceed 1 slightly for the eps step)."""
    a, b = normalize(a), normalize(b)
    d = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)  # cos(angle)
    p = t * torch.acos(d)
    c = normalize(b - d * a)  # unit vector orthogonal to a in the a-b plane
    return normalize(a * torch.cos(p) + c * torch.sin(p))


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a + (b - a) t (t broadcastable)."""
    return a + (b - a) * t


def crop_face(img: torch.Tensor) -> torch.Tensor:
    """v1 face crop: [N, C, H, W] -> [N, C, H/2, W/2] rows c*3:c*7, columns c*2:c*6, c = H // 8."""
    if img.shape[2] != img.shape[3]:
        raise MetricError(f"The PPL face crop needs square images, got {tuple(img.shape)}.")
    c = img.shape[2] // 8
    return img[:, :, c * 3 : c * 7, c * 2 : c * 6]


def downsample_to(img: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Box-filter [N, C, H, W] by the integer factor H // size when H > size."""
    factor = img.shape[2] // size
    if factor <= 1:
        return img
    n, ch, h, w = img.shape
    return img.reshape(n, ch, h // factor, factor, w // factor, factor).mean(dim=(3, 5))


def filtered_mean(dist: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> float:
    """Mean of the values within [lo, hi] percentiles (lo rounded down, hi up to data values)."""
    dist = np.asarray(dist, np.float64)
    if dist.size == 0:
        raise MetricError("No path lengths to average.")
    lo = np.percentile(dist, lo_pct, method="lower")
    hi = np.percentile(dist, hi_pct, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


@dataclass(frozen=True)
class PPLConfig:
    """One PPL variant."""

    num_samples: int
    epsilon: float = 1e-4
    space: str = "w"  # "z" (slerp) or "w" (lerp)
    sampling: str = "end"  # "full" or "end"
    crop: bool = False
    max_size: int = 256

    def __post_init__(self) -> None:
        if self.space not in ("z", "w") or self.sampling not in ("full", "end"):
            raise MetricError(f"PPL space must be z|w and sampling full|end, got {self.space!r}, {self.sampling!r}.")


def path_lengths(
    G: Any,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    z1: torch.Tensor,
    t: torch.Tensor,
    c: Optional[torch.Tensor],
    cfg: PPLConfig,
    psi: float = 1.0,
) -> torch.Tensor:
    """One batch of path lengths. z0, z1 [B, z_dim], t [B], c [B, c_dim] or None -> [B]."""
    eps = cfg.epsilon
    cc = None if c is None else torch.cat([c, c])
    if cfg.space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), cc, psi=psi).chunk(2)  # [B, L, D] each
        tt = t.to(w0.dtype).reshape(-1, *([1] * (w0.ndim - 1)))
        wt0, wt1 = lerp(w0, w1, tt), lerp(w0, w1, tt + eps)
    else:
        tt = t.to(z0.dtype).unsqueeze(1)
        zt0, zt1 = slerp(z0, z1, tt), slerp(z0, z1, tt + eps)
        wt0, wt1 = G.mapping(torch.cat([zt0, zt1]), cc, psi=psi).chunk(2)
    img = G.synthesis(torch.cat([wt0, wt1]), noise_mode="const")  # [2B, C, H, W]
    if cfg.crop:
        img = crop_face(img)
    img = downsample_to(img, cfg.max_size)
    img0, img1 = img.chunk(2)
    return distance(img0, img1) / eps**2


def _noise_buffers(G: Any) -> list:
    """Constant-noise buffers: `G.noise_inputs()` modules' `const` (our models) and buffers named
    `*noise_const` (official naming)."""
    if not isinstance(G, torch.nn.Module):
        return []
    found = {name: buf for name, buf in G.named_buffers() if name.endswith("noise_const")}
    if callable(getattr(G, "noise_inputs", None)):
        for name, m in G.noise_inputs().items():
            if isinstance(getattr(m, "const", None), torch.Tensor):
                found[name + ".const"] = m.const
    return list(found.values())


def sample_pair_latents(G: Any, indices, seed: int, cfg: PPLConfig, labels, device: torch.device) -> tuple:
    """Per-sample deterministic (z0, z1, t, c) for global sample indices."""
    z0s, z1s, ts, cs = [], [], [], []
    zd = int(G.z_dim)
    for i in indices:
        rng = np.random.default_rng([seed, int(i), 1])
        z = rng.standard_normal([2, zd])
        z0s.append(z[0])
        z1s.append(z[1])
        ts.append(rng.uniform() if cfg.sampling == "full" else 0.0)
        if labels is not None:
            cs.append(labels.get(int(rng.integers(labels.count))))
    f = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).to(device)  # noqa: E731
    return f(z0s), f(z1s), f(ts), (f(np.stack(cs)) if labels is not None else None)


def compute_ppl(
    opts: MetricOptions,
    cfg: PPLConfig,
    proxy: bool = False,
    distance: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    return_all: bool = False,
):
    """PPL of opts.G. `distance` overrides the perceptual distance (default LPIPS-VGG16, or the
    EfficientNet proxy when `proxy`). Returns the filtered mean (NaN on ranks other than 0), or the
    raw per-sample lengths [num_samples] when `return_all`."""
    G = opts.G
    if G is None:
        raise MetricError("No generator given.")
    if distance is None:
        distance = opts.detectors.perceptual(proxy)
    labels = make_label_sampler(G, opts)
    g_dev = module_device(G, opts.device)
    if _noise_buffers(G):
        G = copy.deepcopy(G)
    noise = _noise_buffers(G)
    mine = rank_indices(cfg.num_samples, opts)
    out = []
    with torch.no_grad(), eval_mode(G), weight_cache():
        for b, idx in enumerate(progress_bar(list(batches(mine, opts.batch)), opts.progress and opts.is_leader, "ppl")):
            if noise:
                gen = torch.Generator().manual_seed(opts.seed * 1000003 + b * opts.num_gpus + opts.rank)
                for buf in noise:
                    buf.copy_(torch.randn(buf.shape, generator=gen, dtype=buf.dtype))
            z0, z1, t, c = sample_pair_latents(G, idx, opts.seed, cfg, labels, g_dev)
            d = path_lengths(G, distance, z0, z1, t, c, cfg, psi=opts.psi)  # [B]
            d = d.to(opts.device, torch.float64).reshape(-1, 1)
            out.append(gather_rows(d, opts)[:, 0].cpu())
    dist = torch.cat(out).numpy()[: cfg.num_samples]
    if return_all:
        return dist
    if not opts.is_leader:
        return float("nan")
    return filtered_mean(dist)


__all__ = ["PPLConfig", "compute_ppl", "crop_face", "downsample_to", "filtered_mean", "lerp", "path_lengths", "slerp"]
