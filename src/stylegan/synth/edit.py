"""Edits rendered: grids (rows = latents, columns = strengths), the preview of a direction file
(rows = components), and a looping sweep for video.

The math is `directions.edit_ws` (ws + alpha * scale * vector on the chosen style inputs); this
module only renders it with the library's `figures.render` (and frames for `video.write_video`).
At alpha 0 the latent is exactly the unedited one, so the image is what `stylegan generate` draws,
up to the float round-off of rendering it in another batch (at most 1 of 255, on a few pixels).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

from ..io.images import make_grid, to_uint8
from ..nn import NoiseMode, WeightCache, weight_cache
from .directions import Directions, edit_ws
from .figures import render


def edit_images(G, ws: torch.Tensor, d: Directions, components: Sequence[int], alphas: Sequence[float], *,
                layers: Sequence[int] | None = None, noise_mode: NoiseMode = "const", batch: int = 16) -> np.ndarray:
    """ws [N, num_ws, w_dim] edited along the sum of `components` at each strength -> uint8
    [N, len(alphas), H, W, C]."""
    edited = edit_ws(ws, d, components, alphas, layers)  # [N, A, L, D]
    imgs = render(G, edited.flatten(0, 1), noise_mode, batch)  # [N A, H, W, C]
    return imgs.reshape(ws.shape[0], len(alphas), *imgs.shape[1:])


def edit_grid(G, ws: torch.Tensor, d: Directions, components: Sequence[int], alphas: Sequence[float], *,
              layers: Sequence[int] | None = None, noise_mode: NoiseMode = "const", batch: int = 16) -> np.ndarray:
    """uint8 [N H, A W, C]: row n = latent n, column a = strength alphas[a]."""
    imgs = edit_images(G, ws, d, components, alphas, layers=layers, noise_mode=noise_mode, batch=batch)
    return make_grid(imgs.reshape(-1, *imgs.shape[2:]), rows=imgs.shape[0], cols=imgs.shape[1])


def preview_grid(G, ws: torch.Tensor, d: Directions, num: int, alphas: Sequence[float], *,
                 noise_mode: NoiseMode = "const", batch: int = 16) -> np.ndarray:
    """The first `num` components on one latent ws [1, num_ws, w_dim], each on the directions'
    own style inputs: uint8 [num H, A W, C], row k = component k, column a = strength alphas[a]."""
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ValueError(f"preview_grid takes one latent [1, num_ws, w_dim], got {tuple(ws.shape)}")
    k = min(int(num), d.count)
    rows = [edit_images(G, ws, d, [c], alphas, noise_mode=noise_mode, batch=batch)[0] for c in range(k)]
    tiles = np.concatenate(rows)  # [k A, H, W, C]
    return make_grid(tiles, rows=k, cols=len(alphas))


def sweep_alphas(lo: float, hi: float, num_frames: int) -> np.ndarray:
    """A seamless loop lo -> hi -> lo in `num_frames` frames (cosine ease): [num_frames]; frame
    num_frames (one past the end) would equal frame 0."""
    t = np.arange(num_frames) / num_frames
    return lo + (hi - lo) * (1 - np.cos(2 * math.pi * t)) / 2


@torch.no_grad()
def sweep_frames(G, ws: torch.Tensor, d: Directions, components: Sequence[int], alphas: Sequence[float], *,
                 layers: Sequence[int] | None = None, noise_mode: NoiseMode = "const", batch: int = 8,
                 cols: int | None = None) -> Iterator[np.ndarray]:
    """One uint8 frame per strength in `alphas` (e.g. `sweep_alphas`): the N latents of ws
    [N, num_ws, w_dim] edited side by side, `cols` per row (default all in one row)."""
    n = ws.shape[0]
    cols = n if cols is None else max(1, min(int(cols), n))
    rows = math.ceil(n / cols)
    cache = WeightCache()  # kept across frames (a generator cannot hold a `with` across yields)
    per = max(1, batch // n)  # frames rendered per batch
    for start in range(0, len(alphas), per):
        chunk = list(alphas[start:start + per])
        edited = edit_ws(ws, d, components, chunk, layers)  # [N, A, L, D]
        with weight_cache(cache):
            imgs = to_uint8(G.synthesis(edited.transpose(0, 1).flatten(0, 1), noise_mode=noise_mode)).numpy()
        imgs = imgs.reshape(len(chunk), n, *imgs.shape[1:])  # [A, N, H, W, C]
        for frame in imgs:
            yield frame[0] if n == 1 else make_grid(frame, rows=rows, cols=cols)


__all__ = ["edit_images", "edit_grid", "preview_grid", "sweep_alphas", "sweep_frames"]
