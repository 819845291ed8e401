"""The papers' figures: style mixing, stochastic variation, noise layers, truncation, uncurated grids.

Every function takes a generator (`stylegan.load(...)`, ours or an imported official network), seeds
named with the official `generate.py` convention (`synth.sample.z_from_seeds`) and a device, and
returns a uint8 image `[H, W, C]` ready for `io.images.save_image`.

Figures (StyleGAN = Karras et al. 2019):
- `style_mixing_grid`   Fig. 3: top row = column sources, left column = row sources; cell (r, c)
                        uses the row source's ws with the listed style inputs taken from the column.
- `noise_variation_figure` Fig. 4: one w, several noise draws: image, 2x2 crops of other draws,
                        per-pixel standard deviation over `num_samples` draws.
- `noise_layers_figure` Fig. 5: noise on all / no / fine / coarse layers (same noise realisation).
- `truncation_figure`   Fig. 8: psi sweep per seed; psi = 0 is the average image.
- `uncurated_figure`    a plain grid with truncation.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..io.images import make_grid, to_uint8
from ..nn import NoiseMode, weight_cache
from .sample import class_labels, z_from_seeds

# Style groups of StyleGAN Fig. 3 as resolution ranges; style index 2 log2(r) - 4 (and + 1) feed
# resolution r, so coarse 4-8 -> 0..3, middle 16-32 -> 4..7, fine 64+ -> 8..num_ws-1.
STYLE_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, None)}
NOISE_LAYER_SETS = ("all", "none", "fine", "coarse")
DEFAULT_PSIS = (1.0, 0.7, 0.5, 0.0, -0.5, -1.0)  # StyleGAN Fig. 8
DEFAULT_CROP = (650 / 1024, 180 / 1024, 256 / 1024)  # official Fig. 4 crop (x, y, size) as fractions


# ----------------------------------------------------------------------------------- helpers

def _device(G, device) -> torch.device:
    return torch.device(device) if device is not None else next(G.parameters()).device


def seed_ws(G, seeds: Sequence[int], *, psi: float = 1.0, cutoff: int | None = None,
            class_idx: int | Sequence[int] | None = None, device=None) -> torch.Tensor:
    """ws [len(seeds), num_ws, w_dim] for seeds (official z convention), truncated with psi/cutoff.

    class_idx: one class for every seed, or one per seed (conditional networks)."""
    dev = _device(G, device)
    z = z_from_seeds(seeds, G.z_dim, dev)
    if class_idx is None or isinstance(class_idx, int):
        c = class_labels(G, len(seeds), class_idx, dev)
    else:
        if len(class_idx) != len(seeds):
            raise ValueError(f"{len(class_idx)} classes for {len(seeds)} seeds")
        c = torch.cat([class_labels(G, 1, int(k), dev) for k in class_idx])
    with torch.no_grad():
        return G.mapping(z, c, psi=psi, cutoff=cutoff)


@torch.no_grad()
def render(G, ws: torch.Tensor, noise_mode: NoiseMode = "const", batch: int = 16) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> uint8 images [N, H, W, C] (numpy), synthesised `batch` at a time."""
    out = []
    with weight_cache():
        for i in range(0, ws.shape[0], batch):
            out.append(to_uint8(G.synthesis(ws[i:i + batch], noise_mode=noise_mode)).numpy())
    return np.concatenate(out) if out else np.zeros((0, G.img_resolution, G.img_resolution, G.img_channels), np.uint8)


def style_indices(spec: str | Iterable[int], num_ws: int) -> list[int]:
    """Style inputs named by `spec`: 'coarse' | 'middle' | 'fine' (combinable with ','), or indices
    '0-3,6' / a list. Groups are clipped to the network's num_ws; an empty selection is an error."""
    from .sample import parse_range

    if isinstance(spec, str):
        names = [s.strip().lower() for s in spec.split(",") if s.strip()]
        if names and all(n in STYLE_GROUPS for n in names):
            out: list[int] = []
            for n in names:
                lo, hi = STYLE_GROUPS[n]
                first = 2 * int(np.log2(lo)) - 4
                last = num_ws - 1 if hi is None else 2 * int(np.log2(hi)) - 3
                out.extend(range(first, min(last, num_ws - 1) + 1))
            if not out:
                raise ValueError(f"this network (num_ws={num_ws}, resolution {2 ** ((num_ws + 2) // 2)}) "
                                 f"has no {spec!r} styles")
            return sorted(set(out))
        idx = parse_range(spec)
    else:
        idx = [int(i) for i in spec]
    if not idx:
        raise ValueError("no style indices given")
    bad = [i for i in idx if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"style indices {bad} out of range 0..{num_ws - 1} for this network")
    return sorted(set(idx))


# ----------------------------------------------------------------------------------- style mixing

def mix_ws(ws_row: torch.Tensor, ws_col: torch.Tensor, styles: Sequence[int]) -> torch.Tensor:
    """Official style_mixing.py: ws of the row source with ws[:, styles] replaced by the column's."""
    ws = ws_row.clone()
    ws[:, list(styles)] = ws_col[:, list(styles)]
    return ws


def style_mixing_images(G, row_seeds: Sequence[int], col_seeds: Sequence[int], styles, *,
                        psi: float = 1.0, noise_mode: NoiseMode = "const", class_idx: int | None = None,
                        row_classes: Sequence[int] | None = None, col_classes: Sequence[int] | None = None,
                        device=None, batch: int = 16) -> dict[tuple[int, int], np.ndarray]:
    """{(row_seed, col_seed): uint8 [H, W, C]} for every cell, plus (s, s) for every source seed.

    Conditional networks: `class_idx` for every source, or `row_classes` / `col_classes` one per
    row / column seed (e.g. a digit's shape from the column, its style from the row)."""
    styles = style_indices(styles, G.num_ws)
    all_seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    classes = None
    if row_classes is not None or col_classes is not None:
        class_of: dict[int, int] = {}
        for seeds, ks, what in ((row_seeds, row_classes, "row"), (col_seeds, col_classes, "column")):
            ks = [class_idx] * len(seeds) if ks is None else list(ks)
            if len(ks) != len(seeds) or any(k is None for k in ks):
                raise ValueError(f"give one class per {what} seed ({len(seeds)}), or --class for all")
            for seed, k in zip(seeds, ks):
                if class_of.setdefault(seed, int(k)) != int(k):
                    raise ValueError(f"seed {seed} is asked for with two classes; use distinct seeds")
        classes = [class_of[s] for s in all_seeds]
    ws_all = seed_ws(G, all_seeds, psi=psi, class_idx=classes if classes is not None else class_idx, device=device)
    w_of = {s: ws_all[i:i + 1] for i, s in enumerate(all_seeds)}
    keys = [(s, s) for s in all_seeds] + [(r, c) for r in row_seeds for c in col_seeds]
    ws = torch.cat([w_of[s] if r == s else mix_ws(w_of[r], w_of[s], styles) for r, s in keys])
    images = render(G, ws, noise_mode, batch)
    return {k: images[i] for i, k in enumerate(keys)}


def style_mixing_grid(G, row_seeds: Sequence[int], col_seeds: Sequence[int], styles, psi: float = 1.0,
                      noise_mode: NoiseMode = "const", device=None, *, class_idx: int | None = None,
                      row_classes: Sequence[int] | None = None, col_classes: Sequence[int] | None = None,
                      batch: int = 16, cells: dict | None = None) -> np.ndarray:
    """StyleGAN Fig. 3 as uint8 [(rows+1) H, (cols+1) W, C]: top-left blank, top row = column sources,
    left column = row sources, cell (r, c) = row source with `styles` from the column source.

    `styles`: 'coarse' (4-8 px, indices 0-3) | 'middle' (16-32, 4-7) | 'fine' (64+, 8..) or indices.
    Pass a dict as `cells` to receive the individual images (see `style_mixing_images`).
    """
    if not row_seeds or not col_seeds:
        raise ValueError("need at least one row seed and one column seed")
    imgs = style_mixing_images(G, row_seeds, col_seeds, styles, psi=psi, noise_mode=noise_mode,
                               class_idx=class_idx, row_classes=row_classes, col_classes=col_classes,
                               device=device, batch=batch)
    if cells is not None:
        cells.update(imgs)
    h, w, c = next(iter(imgs.values())).shape
    tiles = [np.zeros((h, w, c), np.uint8)] + [imgs[(s, s)] for s in col_seeds]
    for r in row_seeds:
        tiles += [imgs[(r, r)]] + [imgs[(r, s)] for s in col_seeds]
    return make_grid(np.stack(tiles), rows=len(row_seeds) + 1, cols=len(col_seeds) + 1)


# ----------------------------------------------------------------------------------- noise control

def noise_split_resolution(G) -> int:
    """Highest 'coarse' noise resolution: 32 as in StyleGAN Fig. 5 (coarse 4-32, fine 64-1024),
    lowered to half the output resolution for networks below 64 px so both groups are non-empty."""
    return min(32, G.img_resolution // 2)


def noise_layer_names(G, layers: str | Iterable[str] | Callable) -> list[str]:
    """Names of the noise inputs selected by 'all' | 'none' | 'fine' | 'coarse', an iterable of
    names, or a predicate `(name, module) -> bool`."""
    inputs = G.noise_inputs()
    if callable(layers):
        return [n for n, m in inputs.items() if layers(n, m)]
    if isinstance(layers, str):
        split = noise_split_resolution(G)
        select = {"all": lambda m: True, "none": lambda m: False,
                  "fine": lambda m: m.resolution > split, "coarse": lambda m: m.resolution <= split}
        if layers not in select:
            raise ValueError(f"noise layers must be one of {NOISE_LAYER_SETS}, got {layers!r}")
        return [n for n, m in inputs.items() if select[layers](m)]
    names = list(layers)
    unknown = sorted(set(names) - set(inputs))
    if unknown:
        raise ValueError(f"unknown noise inputs {unknown}; the network has {list(inputs)}")
    return names


@contextlib.contextmanager
def restrict_noise(G, layers: str | Iterable[str] | Callable) -> Iterator[list[str]]:
    """Temporarily zero the strength of every noise input not selected by `layers` (see
    `noise_layer_names`); the strengths are restored on exit, also after an exception.
    Yields the selected names."""
    keep = set(noise_layer_names(G, layers))
    saved = {n: m.strength.detach().clone() for n, m in G.noise_inputs().items()}
    try:
        with torch.no_grad():
            for n, m in G.noise_inputs().items():
                if n not in keep:
                    m.strength.zero_()
        yield sorted(keep)
    finally:
        with torch.no_grad():
            for n, m in G.noise_inputs().items():
                m.strength.copy_(saved[n])


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Seed the global RNG (used by noise_mode='random') inside the block, restoring it after."""
    if seed is None:
        yield
        return
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def noise_layers_figure(G, seeds: Sequence[int], *, layer_sets: Sequence[str] = NOISE_LAYER_SETS,
                        psi: float = 1.0, cutoff: int | None = None, class_idx: int | None = None,
                        noise_seed: int | None = 0, device=None, batch: int = 16) -> np.ndarray:
    """StyleGAN Fig. 5 as uint8 [len(seeds) H, len(layer_sets) W, C]: rows = seeds, columns = noise
    on all / no / fine / coarse layers. Noise is 'random' but re-seeded with `noise_seed` for every
    column, so each layer sees the same noise realisation wherever it is switched on."""
    dev = _device(G, device)
    ws = seed_ws(G, seeds, psi=psi, cutoff=cutoff, class_idx=class_idx, device=dev)
    columns = []
    for layers in layer_sets:
        with restrict_noise(G, layers), _seeded(noise_seed, dev):
            columns.append(render(G, ws, "random", batch))
    tiles = np.stack([columns[j][i] for i in range(len(seeds)) for j in range(len(layer_sets))])
    return make_grid(tiles, rows=len(seeds), cols=len(layer_sets))


@torch.no_grad()
def noise_std_map(G, ws: torch.Tensor, num_samples: int = 100, *, batch: int = 16,
                  noise_seed: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Per-pixel standard deviation of the image over `num_samples` noise draws for one w.

    ws: [1, num_ws, w_dim]. Returns (std [H, W] float, and the first `min(num_samples, 5)` draws as
    uint8 [n, H, W, C]). As in the official figure the std is taken over the 8-bit images (channel
    mean, 0-255 scale), so float round-off between batch elements never shows; shifted sums
    (relative to the first draw) make identical draws give exactly zero.
    """
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ValueError(f"ws must be [1, num_ws, w_dim], got {tuple(ws.shape)}")
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2")
    dev = ws.device
    ref = s1 = s2 = None
    first: list[np.ndarray] = []
    done = 0
    with _seeded(noise_seed, dev), weight_cache():
        while done < num_samples:
            n = min(batch, num_samples - done)
            img = to_uint8(G.synthesis(ws.expand(n, -1, -1), noise_mode="random"))  # [n, H, W, C]
            if len(first) < 5:
                first.extend(img[: 5 - len(first)].numpy())
            gray = img.to(torch.float64).mean(dim=3)  # [n, H, W] on the 0-255 scale
            if ref is None:
                ref = gray[0].to(torch.float64)
                s1 = torch.zeros_like(ref)
                s2 = torch.zeros_like(ref)
            d = gray.to(torch.float64) - ref
            s1 += d.sum(dim=0)
            s2 += d.square().sum(dim=0)
            done += n
    mean = s1 / num_samples
    std = (s2 / num_samples - mean.square()).clamp_min(0).sqrt()
    return std.to(torch.float32).cpu(), np.stack(first)


def std_map_to_uint8(std: torch.Tensor, scale: float | None = 4.0) -> np.ndarray:
    """Display version of a std map [H, W]: official `clip(std * 4 + 0.5)` (scale=4), or with
    scale=None normalised so the largest value is 255 (an all-zero map stays zero)."""
    std = std.to(torch.float64)
    if scale is None:
        peak = float(std.max())
        scale = 255.0 / peak if peak > 0 else 0.0
    return (std * scale + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def _crop_box(resolution: int, crop: Sequence[float]) -> tuple[int, int, int]:
    x, y, s = crop
    size = max(1, int(round(s * resolution)))
    x0 = min(max(0, int(round(x * resolution))), resolution - size)
    y0 = min(max(0, int(round(y * resolution))), resolution - size)
    return x0, y0, size


def _upscale_nearest(img: np.ndarray, size: int) -> np.ndarray:
    h = img.shape[0]
    idx = (np.arange(size) * h) // size
    return img[idx][:, idx]


def noise_variation_figure(G, seeds: Sequence[int], *, num_samples: int = 100, psi: float = 1.0,
                           cutoff: int | None = None, class_idx: int | None = None,
                           crop: Sequence[float] = DEFAULT_CROP, std_scale: float | None = 4.0,
                           noise_seed: int | None = 0, device=None, batch: int = 16,
                           std_maps: list | None = None) -> np.ndarray:
    """StyleGAN Fig. 4 as uint8 [len(seeds) R, 3 R, C]; per seed one row: the image (draw 0) | 2x2
    crops (box `crop` = (x, y, size) as fractions of R) of draws 1-4, upscaled to R/2 each | the
    per-pixel std over `num_samples` draws (see `std_map_to_uint8`). Append the raw float std maps
    to `std_maps` if given."""
    dev = _device(G, device)
    ws = seed_ws(G, seeds, psi=psi, cutoff=cutoff, class_idx=class_idx, device=dev)
    res, ch = G.img_resolution, G.img_channels
    x0, y0, size = _crop_box(res, crop)
    half = res // 2
    rows = []
    for i in range(len(seeds)):
        std, draws = noise_std_map(G, ws[i:i + 1], num_samples, batch=batch,
                                   noise_seed=None if noise_seed is None else noise_seed + i)
        if std_maps is not None:
            std_maps.append(std)
        crops = np.zeros((res, res, ch), np.uint8)
        for k in range(4):
            src = draws[1 + k] if 1 + k < len(draws) else draws[-1]
            tile = _upscale_nearest(src[y0:y0 + size, x0:x0 + size], half)
            crops[(k // 2) * half:(k // 2 + 1) * half, (k % 2) * half:(k % 2 + 1) * half] = tile
        std_img = np.repeat(std_map_to_uint8(std, std_scale)[:, :, None], ch, axis=2)
        rows.append(np.concatenate([draws[0], crops, std_img], axis=1))
    return np.concatenate(rows, axis=0)


# ----------------------------------------------------------------------------------- truncation

@torch.no_grad()
def truncation_figure(G, seeds: Sequence[int], psis: Sequence[float] = DEFAULT_PSIS, *,
                      cutoff: int | None = None, noise_mode: NoiseMode = "const",
                      class_idx: int | None = None, device=None, batch: int = 16) -> np.ndarray:
    """StyleGAN Fig. 8 as uint8 [len(seeds) H, len(psis) W, C]: rows = seeds, columns = psi values
    (w' = w_avg + psi (w - w_avg) on the first `cutoff` styles, all when None). With cutoff None
    the psi = 0 column is the average image, identical for every seed."""
    ws = seed_ws(G, seeds, class_idx=class_idx, device=device)  # [S, L, C]
    trunc = torch.stack([G.truncate(ws, float(p), cutoff) for p in psis], dim=1)  # [S, P, L, C]
    tiles = render(G, trunc.flatten(0, 1), noise_mode, batch)
    return make_grid(tiles, rows=len(seeds), cols=len(psis))


@torch.no_grad()
def average_image(G, noise_mode: NoiseMode = "const", device=None) -> np.ndarray:
    """The image of w_avg (psi = 0) as uint8 [H, W, C]."""
    dev = _device(G, device)
    ws = G.w_avg.to(dev).reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    return render(G, ws, noise_mode)[0]


def uncurated_figure(G, seeds: Sequence[int], *, psi: float = 1.0, cutoff: int | None = None,
                     noise_mode: NoiseMode = "const", class_idx: int | None = None,
                     cols: int | None = None, device=None, batch: int = 16) -> np.ndarray:
    """Uncurated grid of the seeds' images (row-major, `cols` per row, default about square)."""
    ws = seed_ws(G, seeds, psi=psi, cutoff=cutoff, class_idx=class_idx, device=device)
    return make_grid(render(G, ws, noise_mode, batch), cols=cols)


__all__ = ["STYLE_GROUPS", "NOISE_LAYER_SETS", "DEFAULT_PSIS", "seed_ws", "render", "style_indices",
           "mix_ws", "style_mixing_images", "style_mixing_grid", "noise_split_resolution",
           "noise_layer_names", "restrict_noise", "noise_layers_figure", "noise_std_map",
           "std_map_to_uint8", "noise_variation_figure", "truncation_figure", "average_image",
           "uncurated_figure"]
