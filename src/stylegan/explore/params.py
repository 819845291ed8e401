"""The explorer's state: query parameters -> a typed, validated `View`.

The page keeps its whole state in the URL query (so a link reproduces a view) and sends the same
query with every request; this module is the one place that reads it. Every problem is a
`ParamError` naming the parameter, which the app answers with 400 and the page shows as a message.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from ..synth.figures import style_indices
from ..synth.sample import parse_range

MAX_SEED = 2 ** 32 - 1          # np.random.RandomState accepts seeds in [0, 2**32)
PSI_RANGE = (-5.0, 5.0)
NOISE_STRENGTH_RANGE = (0.0, 10.0)
NOISE_MODES = ("const", "random", "none")
FORMATS = ("png", "jpeg")
MAX_ANIM_SEEDS = 64
STD_SAMPLES_RANGE = (2, 256)
_W_ID = re.compile(r"[a-z0-9]{1,16}")


class ParamError(ValueError):
    """A request parameter is missing, malformed or out of range (answered with 400)."""


@dataclass(frozen=True)
class View:
    """Everything that decides the main image, plus the extra panels' settings."""

    seed: int = 0
    w_id: str | None = None           # a stored w (uploaded npz or projection) instead of the seed
    psi: float = 1.0
    cutoff: int | None = None         # truncate only the first `cutoff` style inputs (None: all)
    class_idx: int | None = None
    noise_mode: str = "const"
    noise_strength: float = 1.0       # global multiplier of every noise input's learned strength
    mix_seed: int | None = None       # style mixing: the second source (None: no mixing)
    mix_styles: tuple[int, ...] = ()  # style inputs taken from mix_seed (empty: none)
    fmt: str = "png"
    quality: int = 90                 # JPEG quality
    std_samples: int = 32             # stochastic variation: noise draws for the std map
    anim_seeds: tuple[int, ...] = (0, 1, 2, 3)
    anim_space: str = "z"             # slerp in Z or lerp in W
    anim_t: float = 0.0               # position in the loop, [0, 1)


def _one(query: Mapping[str, str], key: str) -> str | None:
    v = query.get(key)
    return None if v is None or v.strip() == "" else v.strip()


def _number(query, key: str, default, lo, hi, cast: type):
    """query[key] as `cast` (int or float) in [lo, hi]; `default` when absent or empty."""
    raw = _one(query, key)
    if raw is None:
        return default
    try:
        v = cast(raw)
    except ValueError:
        raise ParamError(f"{key} must be {'an integer' if cast is int else 'a number'}, got {raw!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        bounds = f"{lo}..{hi}" if cast is int else f"{lo:g}..{hi:g}"
        raise ParamError(f"{key}={raw} is out of range {bounds}")
    return v


def _int(query, key: str, default: int | None, lo: int, hi: int) -> int | None:
    return _number(query, key, default, lo, hi, int)


def _float(query, key: str, default: float, lo: float, hi: float) -> float:
    return _number(query, key, default, lo, hi, float)


def _choice(query, key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _one(query, key)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ParamError(f"{key} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def parse_styles(spec: str | None, num_ws: int) -> tuple[int, ...]:
    """'' -> (); 'coarse' | 'middle' | 'fine' | '0-3,6' -> style indices valid for this network."""
    if spec is None:
        return ()
    try:
        return tuple(style_indices(spec, num_ws))
    except ValueError as e:
        raise ParamError(f"mix: unknown layer range {spec!r} ({e})") from None


def parse_view(query: Mapping[str, str], G) -> View:
    """Validate the query against the network G (its num_ws, c_dim) -> View."""
    seed = _int(query, "seed", 0, 0, MAX_SEED)
    w_id = _one(query, "w")
    if w_id is not None and not _W_ID.fullmatch(w_id):
        raise ParamError(f"w must name an uploaded or projected latent, got {w_id!r}")
    if G.c_dim == 0:
        if _one(query, "class") is not None:
            raise ParamError("class: this network is unconditional (it has no classes)")
        class_idx = None
    else:
        class_idx = _int(query, "class", 0, 0, G.c_dim - 1)
    anim_raw = _one(query, "anim_seeds")
    try:
        anim_seeds = tuple(parse_range(anim_raw)) if anim_raw is not None else View.anim_seeds
    except ValueError as e:
        raise ParamError(f"anim_seeds: {e}") from None
    if not 2 <= len(anim_seeds) <= MAX_ANIM_SEEDS or max(anim_seeds) > MAX_SEED:
        raise ParamError(f"anim_seeds: give 2..{MAX_ANIM_SEEDS} seeds in 0..{MAX_SEED}")
    return View(
        seed=seed,
        w_id=w_id,
        psi=_float(query, "psi", 1.0, *PSI_RANGE),
        cutoff=_int(query, "cutoff", None, 1, G.num_ws),
        class_idx=class_idx,
        noise_mode=_choice(query, "noise", "const", NOISE_MODES),
        noise_strength=_float(query, "noise_strength", 1.0, *NOISE_STRENGTH_RANGE),
        mix_seed=_int(query, "mix_seed", None, 0, MAX_SEED),
        mix_styles=parse_styles(_one(query, "mix"), G.num_ws),
        fmt=_choice(query, "fmt", "png", FORMATS + ("jpg",)).replace("jpg", "jpeg"),
        quality=_int(query, "quality", 90, 1, 100),
        std_samples=_int(query, "std_samples", 32, *STD_SAMPLES_RANGE),
        anim_seeds=anim_seeds,
        anim_space=_choice(query, "anim_space", "z", ("z", "w")),
        anim_t=_float(query, "t", 0.0, 0.0, 1.0) % 1.0,
    )


__all__ = ["ParamError", "View", "parse_view", "parse_styles", "MAX_SEED", "NOISE_MODES", "FORMATS"]
