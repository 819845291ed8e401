"""Project an image into W (or W+): find the latent whose synthesis reproduces it.

Follows the StyleGAN2 projector (Karras et al. 2020, Sec. 5 and the official `projector.py`):
- W statistics from 10k mapped samples (z from RandomState(123)): w_avg, w_std (scalar, the
  root of the summed per-dimension variances); w starts at w_avg.
- Adam (betas 0.9, 0.999), lr 0.1 with a 5% linear ramp-up and a cosine ramp-down over the last 25%.
- Gaussian noise added to w with strength 0.05 * w_std * max(0, 1 - t / 0.75)^2 (t = step / steps).
- The per-layer noise maps are optimised too, with the multi-scale autocorrelation penalty
  (sum over scales of the squared mean of noise * shifted noise, x and y, halving down to 8x8),
  weight 1e5; after each step every noise map is renormalised to zero mean, unit variance.
- Images larger than 256 are area-downsampled to 256 before the perceptual distance.

The distance is a parameter: `distance(img_a, img_b) -> [N]` for images in [-1, 1]. The default
comes from `stylegan.metrics.detectors.load_perceptual_distance` (LPIPS-VGG16 with the official
`vgg16.pt` when available, else the offline EfficientNet-Lite0 proxy), falling back to a pixel MSE
when neither loads. The network passed in is never modified (the optimisation runs on a copy).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import load_image, save_image, to_uint8
from ..nn import WeightCache, weight_cache
from .sample import class_labels

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, float], "bool | None"]  # (step, ws [1, L, C], dist)


class PixelMSE(torch.nn.Module):
    """Mean squared pixel difference per image: the last-resort distance (not perceptual)."""

    name = "pixel-mse"
    official = False

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        return (img_a - img_b).square().flatten(1).mean(dim=1)


def resolve_distance(lpips: str | os.PathLike | None = None, *, allow_proxy: bool = True, device=None,
                     log: Callable[[str], None] | None = None) -> Distance:
    """The projector's distance: LPIPS-VGG16 (official vgg16.pt at `lpips` or in the detector cache),
    else the EfficientNet-Lite0 proxy, else a pixel MSE. An explicit `lpips` path that does not load
    is an error. `log` (e.g. print) is told which one is used."""
    log = log or (lambda msg: None)
    device = torch.device(device) if device is not None else torch.device("cpu")
    try:
        from ..metrics.detectors import load_perceptual_distance
    except ImportError as e:
        if lpips is not None:
            raise
        log(f"distance: pixel-mse (perceptual distances unavailable: {e}); results will be blurrier")
        return PixelMSE()
    try:
        dist = load_perceptual_distance(lpips, allow_proxy=allow_proxy, device=device)
    except Exception as e:  # noqa: BLE001 - any failure of the optional detectors degrades cleanly
        if lpips is not None or not allow_proxy:
            raise
        log(f"distance: pixel-mse (no perceptual distance could be loaded: {str(e).splitlines()[0]})")
        return PixelMSE()
    name = getattr(dist, "name", type(dist).__name__)
    if getattr(dist, "official", False):
        log(f"distance: {name} (official LPIPS VGG16)")
    else:
        log(f"distance: {name} (offline proxy, NOT the official LPIPS; pass --lpips vgg16.pt for that)")
    return dist


def distance_name(distance: Distance) -> str:
    return getattr(distance, "name", getattr(distance, "__name__", type(distance).__name__))


@torch.no_grad()
def w_stats(G, num_samples: int = 10000, *, class_idx: int | None = None, device=None, seed: int = 123,
            batch: int = 1000) -> tuple[torch.Tensor, float]:
    """(w_avg [1, 1, w_dim], w_std) of W from `num_samples` mapped z ~ RandomState(seed) (official)."""
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim)).to(torch.float32)
    ws = []
    for i in range(0, num_samples, batch):
        zi = z[i:i + batch].to(dev)
        c = class_labels(G, zi.shape[0], class_idx, dev)
        ws.append(G.mapping(zi, c)[:, 0].to(torch.float64).cpu())  # [B, w_dim]
    w = torch.cat(ws)
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg.to(torch.float32).reshape(1, 1, -1).to(dev), w_std


def noise_regularization(noise_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 Sec. 5 noise penalty: for each map [H, W] and each scale down to 8x8, the squared
    mean autocorrelation with a one-pixel shift in x and in y."""
    reg = None
    for v in noise_maps:
        noise = v[None, None]  # [1, 1, H, W]
        while True:
            term = (noise * torch.roll(noise, shifts=1, dims=3)).mean().square() \
                + (noise * torch.roll(noise, shifts=1, dims=2)).mean().square()
            reg = term if reg is None else reg + term
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg if reg is not None else torch.zeros([])


def downsample_256(img: torch.Tensor) -> torch.Tensor:
    """Area-downsample [N, C, H, W] to 256x256 when larger (as the official projector does)."""
    if img.shape[2] > 256:
        return F.interpolate(img, size=(256, 256), mode="area")
    return img


@dataclass
class ProjectionHistory:
    """Per-step losses and the final state of a projection."""

    dist: list = field(default_factory=list)       # distance to the target per step
    noise_reg: list = field(default_factory=list)  # noise regularisation (unweighted) per step
    loss: list = field(default_factory=list)       # dist + weight * noise_reg
    noise: dict = field(default_factory=dict)      # name -> optimised noise map [H, W] (CPU)
    distance: str = ""
    w_std: float = 0.0


def _check_target(G, target: torch.Tensor) -> torch.Tensor:
    if target.ndim == 3:
        target = target[None]
    expect = (G.img_channels, G.img_resolution, G.img_resolution)
    if target.ndim != 4 or target.shape[0] != 1 or tuple(target.shape[1:]) != expect:
        raise ValueError(f"target must be [1, {expect[0]}, {expect[1]}, {expect[2]}] in [-1, 1], "
                         f"got {tuple(target.shape)}")
    return target.to(torch.float32)


def project(G, target: torch.Tensor, *, num_steps: int = 1000, w_plus: bool = False,
            distance: Distance | None = None, device=None, seed: int | None = 303, verbose: bool = False,
            class_idx: int | None = None, w_avg_samples: int = 10000, initial_learning_rate: float = 0.1,
            initial_noise_factor: float = 0.05, noise_ramp_length: float = 0.75,
            lr_rampdown_length: float = 0.25, lr_rampup_length: float = 0.05,
            regularize_noise_weight: float = 1e5, optimize_noise: bool = True,
            step_callback: StepCallback | None = None) -> tuple[torch.Tensor, ProjectionHistory]:
    """Optimise w (one per layer with `w_plus`) so that G.synthesis(ws) matches `target`.

    target: [1, C, R, R] float in [-1, 1] (R, C of the network). Returns (ws per step
    [num_steps, num_ws, w_dim] float32 on the CPU, the last row is the result; history).
    `step_callback(step, ws [1, num_ws, w_dim], dist)` is called after every step, so a caller (the
    explorer) can show progress live; when it returns False the optimisation stops there and the
    result holds only the steps done (cancellation without a thread kill).
    """
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    target = _check_target(G, target).to(dev)
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    if distance is None:
        distance = resolve_distance(device=dev, log=log)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed) if seed is not None else int(torch.seed() % (2 ** 63)))

    w_avg, w_std = w_stats(G, w_avg_samples, class_idx=class_idx, device=dev)  # [1, 1, C]
    num_ws = G.num_ws
    w_opt = (w_avg.repeat(1, num_ws, 1) if w_plus else w_avg.clone()).requires_grad_(True)

    noise_bufs: dict[str, torch.Tensor] = {}
    if optimize_noise:
        for name, m in G.noise_inputs().items():
            buf = torch.randn(m.const.shape, generator=gen, device=dev, dtype=torch.float32)
            m.const = buf.requires_grad_(True)  # replaces the buffer of the copy
            noise_bufs[name] = m.const
    optimizer = torch.optim.Adam([w_opt] + list(noise_bufs.values()), betas=(0.9, 0.999),
                                 lr=initial_learning_rate)

    target_p = downsample_256(target)
    features = getattr(distance, "features", None)
    target_features = features(target_p).detach() if callable(features) else None

    hist = ProjectionHistory(distance=distance_name(distance), w_std=w_std)
    w_out = torch.zeros(num_steps, num_ws, G.w_dim)
    cache = WeightCache()  # G is frozen: its derived weights are the same every step
    from tqdm.auto import tqdm

    bar = tqdm(range(num_steps), desc="projecting", unit="step", disable=not verbose)
    for step in bar:
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        lr_ramp = min(1.0, (1.0 - t) / lr_rampdown_length)
        lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
        lr_ramp = lr_ramp * (min(1.0, t / lr_rampup_length) if lr_rampup_length > 0 else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = initial_learning_rate * lr_ramp

        w_noise = torch.randn(w_opt.shape, generator=gen, device=dev) * w_noise_scale
        ws = w_opt + w_noise
        if not w_plus:
            ws = ws.repeat(1, num_ws, 1)
        with weight_cache(cache):
            synth = downsample_256(G.synthesis(ws, noise_mode="const"))  # [1, C, r, r]
        if target_features is not None:
            dist = (features(synth) - target_features).square().sum()
        else:
            dist = distance(synth, target_p).sum()
        reg = noise_regularization(list(noise_bufs.values())).to(dev)
        loss = dist + reg * regularize_noise_weight

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        w_out[step] = w_opt.detach().expand(1, num_ws, -1)[0].cpu()
        with torch.no_grad():
            for buf in noise_bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        hist.dist.append(float(dist.detach()))
        hist.noise_reg.append(float(reg.detach()))
        hist.loss.append(float(loss.detach()))
        if verbose:
            bar.set_postfix(dist=f"{hist.dist[-1]:.4g}", loss=f"{hist.loss[-1]:.4g}")
        if step_callback is not None and step_callback(step, w_out[step:step + 1], hist.dist[-1]) is False:
            w_out = w_out[:step + 1]
            break
    bar.close()
    hist.noise = {n: b.detach().cpu().clone() for n, b in noise_bufs.items()}
    return w_out, hist


@contextlib.contextmanager
def noise_maps(G, maps: dict[str, torch.Tensor] | None):
    """Temporarily use `maps` (e.g. history.noise) as G's const noise; restored on exit."""
    if not maps:
        yield G
        return
    inputs = G.noise_inputs()
    saved = {n: inputs[n].const.detach().clone() for n in maps}
    try:
        with torch.no_grad():
            for n, v in maps.items():
                inputs[n].const.copy_(v.to(inputs[n].const.device))
        yield G
    finally:
        with torch.no_grad():
            for n, v in saved.items():
                inputs[n].const.copy_(v)


@torch.no_grad()
def projection_frames(G, target: torch.Tensor, ws_steps: torch.Tensor, *, every: int = 1,
                      noise_mode: str = "const", device=None, batch: int = 8) -> Iterator[np.ndarray]:
    """Side-by-side frames (target | projection at step k) as uint8 [R, 2R, C], every `every` steps
    (the final step always included)."""
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    target_u8 = to_uint8(_check_target(G, target))[0].numpy()
    steps = list(range(0, ws_steps.shape[0], max(1, every)))
    if steps[-1] != ws_steps.shape[0] - 1:
        steps.append(ws_steps.shape[0] - 1)
    for i in range(0, len(steps), batch):
        ws = ws_steps[steps[i:i + batch]].to(dev)
        for img in to_uint8(G.synthesis(ws, noise_mode=noise_mode)).numpy():
            yield np.concatenate([target_u8, img], axis=1)


def load_target(G, path: str | os.PathLike) -> torch.Tensor:
    """Read an image for projection: center-cropped, resized to the network's resolution and
    channels -> [1, C, R, R] in [-1, 1]."""
    return load_image(path, resolution=G.img_resolution, channels=G.img_channels)


def save_projection(G, target: torch.Tensor, ws_steps: torch.Tensor, outdir: str | os.PathLike, *,
                    save_video: bool = False, fps: float = 10, video_every: int = 1,
                    noise_mode: str = "const", device=None, progress: bool = True) -> dict[str, Path]:
    """Write target.png, proj.png (the final w rendered by the unmodified network, exactly what
    `stylegan generate --projected-w` gives), projected_w.npz (key 'w': float32
    [1, num_ws, w_dim]) and with `save_video` proj.mp4 (target | projection over the steps)."""
    from .video import write_video

    dev = torch.device(device) if device is not None else next(G.parameters()).device
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    final = ws_steps[-1:].to(torch.float32)  # [1, num_ws, w_dim]
    paths = {"target": save_image(to_uint8(_check_target(G, target))[0], outdir / "target.png")}
    with torch.no_grad():
        proj = G.synthesis(final.to(dev), noise_mode=noise_mode)
    paths["proj"] = save_image(to_uint8(proj)[0], outdir / "proj.png")
    paths["w"] = outdir / "projected_w.npz"
    np.savez(paths["w"], w=final.cpu().numpy())
    if save_video:
        n = len(range(0, ws_steps.shape[0], max(1, video_every)))
        n += int((ws_steps.shape[0] - 1) % max(1, video_every) != 0)
        frames = projection_frames(G, target, ws_steps, every=video_every, noise_mode=noise_mode, device=dev)
        paths["video"] = write_video(frames, outdir / "proj.mp4", fps=fps, total=n, progress=progress,
                                     bitrate="16M")
    return paths


__all__ = ["PixelMSE", "resolve_distance", "w_stats", "noise_regularization", "downsample_256",
           "ProjectionHistory", "project", "noise_maps", "projection_frames", "load_target",
           "save_projection"]
