"""Latent interpolation videos: a loop through the seeds' latents, slerp in Z, lerp or a cubic
spline in W.

`interpolation_frames` yields uint8 frames; `write_video` writes them as mp4 (imageio-ffmpeg,
H.264) or GIF (Pillow). A loop of K seeds with F frames per seed has K*F frames; frame K*F (one
past the end) equals frame 0, so the video repeats seamlessly. `keyframe_seeds` lays seeds out
over a grid of loops as stylegan3's `gen_video.py` does (`--num-keyframes`, `--shuffle-seed`), and
the 'cubic' curve is that script's (a cubic spline through the keyframes tiled on both sides).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from ..io.images import make_grid, to_uint8
from ..nn import NoiseMode, WeightCache, weight_cache
from .sample import class_labels, z_from_seeds

VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "mp4", ".mov": "mp4", ".webm": "mp4", ".gif": "gif"}


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """a + t (b - a); t broadcast over the last dimension ([N] or scalar)."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim == 1:
        t = t.reshape(-1, *([1] * (a.ndim - 1)))
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of directions, linear interpolation of lengths (a, b: [N, D]).

    slerp(a, b, 0) = a, slerp(a, b, 1) = b (up to round-off); nearly parallel pairs fall back to lerp.
    """
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    t = t.reshape(-1, 1) if t.ndim == 1 else t
    na = a.norm(dim=-1, keepdim=True)
    nb = b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(eps), b / nb.clamp_min(eps)
    cos = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1, 1)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    parallel = so.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(so), so)
    wa = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return (wa * ua + wb * ub) * (na + t * (nb - na))


def loop_positions(frame_indices: Sequence[int], num_keys: int, frames_per_seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame index (wrapping) -> (key a, key b = a + 1 mod K, t in [0, 1))."""
    f = np.asarray(frame_indices, dtype=np.int64) % (num_keys * frames_per_seed)
    a = f // frames_per_seed
    return a, (a + 1) % num_keys, (f % frames_per_seed) / frames_per_seed


INTERPOLATIONS = ("linear", "cubic")
CUBIC_WRAPS = 2  # keyframe copies on each side of the loop, as gen_video.py's `wraps`


def cubic_loop(keys: np.ndarray, t: np.ndarray, wraps: int = CUBIC_WRAPS) -> np.ndarray:
    """The looping cubic curve of stylegan3's gen_video.py: keys [K, ...] at t = 0 .. K-1, t in
    keyframe units (wrapping at K) -> [len(t), ...] float64.

    The official script fits scipy's `interp1d(kind='cubic')` (a not-a-knot cubic spline, i.e.
    `make_interp_spline(k=3)`) through the keyframes repeated 2 wraps + 1 times, so the curve is
    smooth through the seam; we evaluate the same spline, so the same ws give the same frames."""
    from scipy.interpolate import make_interp_spline

    keys = np.asarray(keys, dtype=np.float64)
    k = keys.shape[0]
    x = np.arange(-k * wraps, k * (wraps + 1))
    y = np.tile(keys, (2 * wraps + 1,) + (1,) * (keys.ndim - 1))
    return make_interp_spline(x, y, k=3, axis=0)(np.mod(np.asarray(t, dtype=np.float64), k))


def interpolation_latents(keys: torch.Tensor, frame_indices: Sequence[int], frames_per_seed: int,
                          space: str, *, interp: str = "linear") -> torch.Tensor:
    """keys [K, ...] (z [K, z_dim] for 'z', ws [K, num_ws, w_dim] for 'w') -> [len(frames), ...].

    interp 'linear': slerp in Z, lerp in W; 'cubic' (W only): gen_video.py's spline (`cubic_loop`)."""
    if interp not in INTERPOLATIONS:
        raise ValueError(f"interp must be one of {INTERPOLATIONS}, got {interp!r}")
    if space not in ("z", "w"):
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    if interp == "cubic":
        if space != "w":
            raise ValueError("cubic interpolation runs in W (as stylegan3's gen_video.py): use space 'w'")
        t = np.asarray(frame_indices, dtype=np.float64) / frames_per_seed
        out = cubic_loop(keys.detach().cpu().numpy(), t)
        return torch.from_numpy(out).to(keys.device, keys.dtype)
    a, b, t = loop_positions(frame_indices, keys.shape[0], frames_per_seed)
    ka, kb = keys[torch.from_numpy(a).to(keys.device)], keys[torch.from_numpy(b).to(keys.device)]
    tt = torch.from_numpy(t).to(keys.device, keys.dtype)
    return slerp(ka, kb, tt) if space == "z" else lerp(ka, kb, tt)


def _split_cells(seeds: Sequence[int], grid: tuple[int, int]) -> list[list[int]]:
    rows, cols = grid
    cells = rows * cols
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must be at least 1x1, got {rows}x{cols}")
    if len(seeds) % cells != 0:
        raise ValueError(f"{len(seeds)} seeds do not split evenly over {cells} grid cells ({rows} row(s) x "
                         f"{cols} column(s)): give a multiple of {cells}, or a number of keyframes per cell")
    k = len(seeds) // cells
    return [list(seeds[i * k:(i + 1) * k]) for i in range(cells)]


def num_loop_frames(seeds: Sequence[int], frames_per_seed: int, grid: tuple[int, int] = (1, 1)) -> int:
    """Frames in one loop: keyframes per cell x frames_per_seed."""
    return len(_split_cells(seeds, grid)[0]) * frames_per_seed


def keyframe_seeds(seeds: Sequence[int], grid: tuple[int, int] = (1, 1), num_keyframes: int | None = None,
                   shuffle_seed: int | None = None) -> list[int]:
    """The seeds of every cell's keyframes, cell after cell (row-major), as stylegan3's gen_video.py
    lays them out, so its `--seeds`, `--grid`, `--num-keyframes` and `--shuffle-seed` pick the same
    latents here.

    Without `num_keyframes` the seeds must split evenly over the rows x cols cells. With it, every
    cell gets that many keyframes, taken from `seeds` in order and cycling when they run out.
    `shuffle_seed` then permutes them with NumPy's RandomState(shuffle_seed).shuffle."""
    rows, cols = grid
    cells = rows * cols
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must be at least 1x1, got {rows}x{cols}")
    if not seeds:
        raise ValueError("no seeds")
    if num_keyframes is None:
        _split_cells(seeds, grid)  # the even-split check and its message
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1:
        raise ValueError(f"num_keyframes must be >= 1, got {num_keyframes}")
    layout = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * cells)], dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(seed=shuffle_seed).shuffle(layout)
    return [int(s) for s in layout]


@torch.no_grad()
def interpolation_frames(G, seeds: Sequence[int], space: str = "z", frames_per_seed: int = 30, *,
                         psi: float = 1.0, cutoff: int | None = None, noise_mode: NoiseMode = "const",
                         class_idx: int | None = None, grid: tuple[int, int] = (1, 1),
                         num_frames: int | None = None, batch: int = 8, device=None,
                         interp: str = "linear") -> Iterator[np.ndarray]:
    """Yield uint8 frames [H, W, C] (or [rows H, cols W, C] for a grid of loops).

    Each grid cell loops through its own consecutive share of `seeds` (seeds[i K:(i+1) K]). Z: slerp
    between the seeds' z, then mapping (with psi/cutoff); W: the seeds' ws are mapped (and
    truncated) first, then lerped, or with interp='cubic' followed along gen_video.py's spline.
    `num_frames` defaults to one loop; more frames keep looping.
    """
    if space not in ("z", "w"):
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    if interp == "cubic" and space != "w":
        raise ValueError("cubic interpolation runs in W (as stylegan3's gen_video.py): use space 'w'")
    if interp not in INTERPOLATIONS:
        raise ValueError(f"interp must be one of {INTERPOLATIONS}, got {interp!r}")
    if frames_per_seed < 1:
        raise ValueError("frames_per_seed must be >= 1")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    cells = _split_cells(list(seeds), grid)
    k = len(cells[0])
    total = k * frames_per_seed if num_frames is None else int(num_frames)
    z_keys = torch.stack([z_from_seeds(c, G.z_dim, dev) for c in cells])  # [cells, K, z_dim]
    c1 = class_labels(G, 1, class_idx, dev)

    def mapping(z: torch.Tensor) -> torch.Tensor:
        c = None if c1 is None else c1.expand(z.shape[0], -1)
        return G.mapping(z, c, psi=psi, cutoff=cutoff)

    keys = z_keys if space == "z" else torch.stack([mapping(z) for z in z_keys])  # [cells, K, ...]
    cache = WeightCache()  # kept across frames (a generator cannot hold a `with` across yields)
    for start in range(0, total, batch):
        idx = list(range(start, min(start + batch, total)))
        lat = torch.stack([interpolation_latents(keys[c], idx, frames_per_seed, space, interp=interp)
                           for c in range(len(cells))], dim=1)  # [B, cells, ...]
        flat = lat.flatten(0, 1)
        ws = mapping(flat) if space == "z" else flat
        with weight_cache(cache):
            imgs = to_uint8(G.synthesis(ws, noise_mode=noise_mode)).numpy()  # [B * cells, H, W, C]
        imgs = imgs.reshape(len(idx), len(cells), *imgs.shape[1:])
        for frame in imgs:
            yield frame[0] if len(cells) == 1 else make_grid(frame, rows=grid[0], cols=grid[1])


def video_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """'mp4' or 'gif' from `fmt` or the file suffix (.mp4/.mkv/.mov/.webm -> mp4, .gif -> gif)."""
    suffix = Path(path).suffix.lower()
    inferred = VIDEO_SUFFIXES.get(suffix)
    if fmt is None:
        if inferred is None:
            raise ValueError(f"cannot tell the video format of {path}: use .mp4 or .gif")
        return inferred
    if fmt not in ("mp4", "gif"):
        raise ValueError(f"format must be 'mp4' or 'gif', got {fmt!r}")
    if inferred is not None and inferred != fmt:
        raise ValueError(f"{path} does not look like a {fmt} file")
    return fmt


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    if frame.shape[2] != 3:
        raise ValueError(f"frames must have 1 or 3 channels, got {frame.shape[2]}")
    return np.ascontiguousarray(frame)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 30, *,
                fmt: str | None = None, total: int | None = None, progress: bool = True,
                bitrate: str | None = None, quality: float = 8) -> Path:
    """Write uint8 frames [H, W, C] (C = 1 or 3) to `path`: mp4 (H.264, yuv420p, via imageio-ffmpeg)
    or GIF (Pillow, looping). Streams mp4 frames; written to a temp file and renamed when complete.
    `total` sizes the tqdm bar; mp4 uses constant `quality` (0-10) unless a `bitrate` ('16M') is
    given. Returns the path."""
    from tqdm.auto import tqdm

    path = Path(path)
    kind = video_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix or '.' + kind}")
    bar = tqdm(frames, total=total, desc=f"writing {path.name}", unit="frame", disable=not progress)
    count = 0
    try:
        if kind == "gif":
            from PIL import Image

            images = [Image.fromarray(_as_rgb(f)) for f in bar]
            count = len(images)
            if not images:
                raise ValueError("no frames to write")
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(10, int(round(1000 / fps))), loop=0, optimize=False)
        else:
            try:
                import imageio_ffmpeg
            except ImportError:
                raise RuntimeError("mp4 output needs imageio-ffmpeg (pip install 'stylegan[video]'), "
                                   "or write a .gif") from None
            writer = None
            for f in bar:
                f = _as_rgb(f)
                if writer is None:
                    h, w = f.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"mp4 (yuv420p) needs even frame sizes, got {w}x{h}")
                    writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264",
                                                         pix_fmt_out="yuv420p", macro_block_size=1,
                                                         bitrate=bitrate, quality=None if bitrate else quality,
                                                         ffmpeg_log_level="error")
                    writer.send(None)
                writer.send(f)
                count += 1
            if writer is None:
                raise ValueError("no frames to write")
            writer.close()
        os.replace(tmp, path)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    return path


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of an mp4 or GIF as uint8 [T, H, W, 3] (for checks and tests)."""
    path = Path(path)
    if video_format(path) == "gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return np.stack(frames)


__all__ = ["lerp", "slerp", "loop_positions", "cubic_loop", "interpolation_latents", "num_loop_frames",
           "keyframe_seeds", "interpolation_frames", "video_format", "write_video", "read_video"]
