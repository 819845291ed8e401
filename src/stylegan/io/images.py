"""Image conversion and files: float [-1, 1] tensors <-> uint8, grids, atomic PNG writes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image


def to_uint8(img: torch.Tensor, drange: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """[N, C, H, W] float in `drange` -> [N, H, W, C] uint8 (rounded, clipped)."""
    lo, hi = drange
    x = (img.detach().float() - lo) * (255 / (hi - lo))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def make_grid(images: torch.Tensor | np.ndarray, rows: int | None = None, cols: int | None = None,
              pad: int = 0, pad_value: int = 0) -> np.ndarray:
    """[N, H, W, C] uint8 -> [rows*H, cols*W, C] grid, row-major; missing cells are `pad_value`."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    if cols is None and rows is None:
        cols = int(np.ceil(np.sqrt(n)))
    if cols is None:
        cols = int(np.ceil(n / rows))
    if rows is None:
        rows = int(np.ceil(n / cols))
    if rows * cols < n:
        raise ValueError(f"{n} images do not fit a {rows}x{cols} grid")
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = images[i]
    return grid


def to_pil(array: np.ndarray | torch.Tensor) -> Image.Image:
    """[H, W, C] uint8 (C = 1 or 3) -> PIL image."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return Image.fromarray(a)


def save_image(array: np.ndarray | torch.Tensor, path: str | os.PathLike) -> Path:
    """Write [H, W, C] uint8 as PNG atomically (a reader never sees half a file)."""
    from .checkpoint import write_atomic

    path = Path(path)
    write_atomic(path, lambda tmp: to_pil(array).save(tmp, format="PNG"))
    return path


def save_grid(images: torch.Tensor, path: str | os.PathLike, rows: int | None = None,
              cols: int | None = None, drange: Sequence[float] = (-1.0, 1.0)) -> Path:
    """Float images [N, C, H, W] -> one PNG grid."""
    return save_image(make_grid(to_uint8(images, tuple(drange)).numpy(), rows, cols), path)


def load_image(path: str | os.PathLike, resolution: int | None = None, channels: int = 3) -> torch.Tensor:
    """Read an image file -> [1, C, R, R] float in [-1, 1] (center-cropped to square, resized)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image: {path}")
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    return pil_to_tensor(img, resolution, channels)


def pil_to_tensor(img: Image.Image, resolution: int | None = None, channels: int = 3) -> torch.Tensor:
    """A decoded PIL image -> [1, C, R, R] float in [-1, 1] (center-cropped to square, resized)."""
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if resolution is not None and s != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1
