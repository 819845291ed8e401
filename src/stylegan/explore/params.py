"""The explorer's state: query parameters -> a typed, validated `View`, and its defaults.

The page keeps its whole state in the URL query (so a link reproduces a view) and sends the same
query with every request; this module is the one place that reads it. Every problem is a
`ParamError` naming the parameter, which the app answers with 400 and the page shows as a message.

The defaults are declared once, here: the field defaults of `View` (what the server assumes for an
absent key) and `PAGE_SETTINGS` (what only the page keeps). The page gets them from `/api/defaults`
(`page_defaults`) instead of repeating them, so the two can never disagree.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

from ..models.stylegan3 import has_input_transform
from ..synth.figures import style_indices
from ..synth.sample import format_range, parse_range
from .equivariance import EQ_MOTIONS
from .errors import ParamError
from .projection import ProjectionRequest

MAX_SEED = 2 ** 32 - 1          # np.random.RandomState accepts seeds in [0, 2**32)
PSI_RANGE = (-5.0, 5.0)
NOISE_STRENGTH_RANGE = (0.0, 10.0)
NOISE_MODES = ("const", "random", "none")
FORMATS = ("png", "jpeg")
MAX_ANIM_SEEDS = 64
STD_SAMPLES_RANGE = (2, 256)
DEFAULT_CLASS = 0               # a conditional network's class when the query names none
EDIT_ALPHA_RANGE = (-10.0, 10.0)  # an edit's strengths, in standard deviations of W along a direction
EDIT_SLIDER_RANGE = (-5.0, 5.0)   # the page's sliders (typed values may go to EDIT_ALPHA_RANGE)
EDIT_SLIDERS = 8                # sliders the page shows: the strongest components
MAX_COMPONENT = 4095
_W_ID = re.compile(r"[a-z0-9]{1,16}")
_RANGE_PART = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
MAX_RANGE_ITEMS = 1024          # numbers one range spec ('0-3,7') may name before it is expanded
TRANSLATE_RANGE = (-2.0, 2.0)   # StyleGAN3 input transform: translation, image widths (gen_images.py's unit)
ROTATE_RANGE = (-360.0, 360.0)  # and rotation, degrees


@dataclass(frozen=True)
class View:
    """Everything that decides the main image, plus the extra panels' settings. The field defaults
    are the explorer's defaults: what `parse_view` assumes for an absent key and what the page starts
    from (`page_defaults`)."""

    seed: int = 0
    w_id: str | None = None           # a stored w (uploaded npz or projection) instead of the seed
    psi: float = 1.0
    cutoff: int | None = None         # truncate only the first `cutoff` style inputs (None: all)
    class_idx: int | None = None      # None: unconditional, or DEFAULT_CLASS of a conditional network
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
    dirs: str = "sefa"                # the set of directions edits use (SeFa of the network, computed on load)
    edit: tuple[tuple[int, float], ...] = ()  # (component, strength) pairs, added to the ws last
    edit_layers: tuple[int, ...] = ()  # style inputs an edit changes (empty: the set's own)
    translate_x: float = 0.0          # StyleGAN3 only: the input transform's translation, image widths
    translate_y: float = 0.0
    rotate: float = 0.0               # StyleGAN3 only: its rotation, degrees
    untransform: bool = False         # StyleGAN3: move the image back (equivariance.untransform)
    eq_motion: str = "translate"      # what the equivariance loop moves: translate | rotate | both


DEFAULT_VIEW = View()

# The query key of each View field: URLs use short names, View says what they are.
QUERY_KEYS: Mapping[str, str] = MappingProxyType({
    "seed": "seed", "w": "w_id", "psi": "psi", "cutoff": "cutoff", "class": "class_idx",
    "noise": "noise_mode", "noise_strength": "noise_strength", "mix_seed": "mix_seed",
    "mix": "mix_styles", "fmt": "fmt", "quality": "quality", "std_samples": "std_samples",
    "anim_seeds": "anim_seeds", "anim_space": "anim_space", "t": "anim_t", "dirs": "dirs", "edit": "edit",
    "edit_layers": "edit_layers", "tx": "translate_x", "ty": "translate_y", "rotate": "rotate",
    "untransform": "untransform", "eq": "eq_motion",
})
# Keys set per request, never kept in the page's state: JPEG quality (scripts), the loop position.
PER_REQUEST_KEYS = ("quality", "t")
# What only the page keeps in its URL, beside the View's keys (the server ignores "var" and
# "speed"); "mix" is the preset the mixing controls start on, where an absent key means no styles.
PAGE_SETTINGS: Mapping[str, str] = MappingProxyType({
    "mix": "coarse",
    "var": "",          # "1": show the stochastic-variation strip
    "speed": "0.5",     # animation loop, seeds per second
    "edit_n": str(EDIT_SLIDERS),  # Edit panel: sliders shown
    "eq_speed": "0.1",  # equivariance loop (StyleGAN3), loops per second
})


def _query_value(value: object) -> str:
    """One View field as the page writes it in the query: '' for absent (None) and for off (False)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"  # a checkbox, as `_flag` reads it
    if isinstance(value, float):
        return format(value, ".12g")  # 1.0 -> '1', as the page's sliders write it
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return ",".join(f"{k}:{format(a, '.12g')}" for k, a in value)  # an edit: '0:1.5,3:-2'
    if isinstance(value, tuple):
        return format_range(value)
    return str(value)


def view_query(view: View) -> dict[str, str]:
    """`view` as a query (every key of QUERY_KEYS, '' where absent); `parse_view` reads it back."""
    return {key: _query_value(getattr(view, name)) for key, name in QUERY_KEYS.items()}


def page_defaults() -> dict[str, str]:
    """The state the page starts from, as query strings: the View's defaults for the keys it keeps,
    then its own settings. Served at /api/defaults: app.js repeats none of these values."""
    view = {k: v for k, v in view_query(DEFAULT_VIEW).items() if k not in PER_REQUEST_KEYS}
    return {**view, **PAGE_SETTINGS}


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


def _flag(query, key: str) -> bool:
    """A checkbox: '1', 'true' or 'on' is set; anything else (or nothing) is not."""
    return (_one(query, key) or "").lower() in ("1", "true", "on")


def _range_size(spec: str, key: str, most: int = MAX_RANGE_ITEMS) -> int:
    """How many numbers the range spec '0-3,7' names, counted without expanding it: refused beyond
    `most`, because `parse_range` builds the list, and '0-4294967295' in a URL would be 4 billion
    ints (tens of GB) before any check of its length could run."""
    count = 0
    for part in spec.split(","):
        m = _RANGE_PART.fullmatch(part)
        try:
            count += max(int(m.group(2)) - int(m.group(1)) + 1, 1) if m else 1
        except ValueError:  # more digits than int() converts (4300): not a range anyone means
            raise ParamError(f"{key}: a number in {spec[:40]!r}... is too long") from None
        if count > most:
            raise ParamError(f"{key}: {spec[:40]!r} names more than {most} numbers")
    return count


def parse_styles(spec: str | None, num_ws: int) -> tuple[int, ...]:
    """'' -> (); 'coarse' | 'middle' | 'fine' | '0-3,6' -> style indices valid for this network."""
    if spec is None:
        return ()
    _range_size(spec, "mix")
    try:
        return tuple(style_indices(spec, num_ws))
    except ValueError as e:
        raise ParamError(f"mix: unknown layer range {spec!r} ({e})") from None


def _w_id(query) -> str | None:
    """The id of a stored latent: only ids the server gives out, never a path."""
    w_id = _one(query, "w")
    if w_id is not None and not _W_ID.fullmatch(w_id):
        raise ParamError(f"w must name an uploaded or projected latent, got {w_id!r}")
    return w_id


def _class_idx(query, G) -> int | None:
    if G.c_dim == 0:
        if _one(query, "class") is not None:
            raise ParamError("class: this network is unconditional (it has no classes)")
        return None
    return _int(query, "class", DEFAULT_CLASS, 0, G.c_dim - 1)


def _anim_seeds(query) -> tuple[int, ...]:
    raw = _one(query, "anim_seeds")
    if raw is not None and _range_size(raw, "anim_seeds") > MAX_ANIM_SEEDS:
        raise ParamError(f"anim_seeds: give 2..{MAX_ANIM_SEEDS} seeds in 0..{MAX_SEED}")
    try:
        seeds = tuple(parse_range(raw)) if raw is not None else DEFAULT_VIEW.anim_seeds
    except ValueError as e:
        raise ParamError(f"anim_seeds: {e}") from None
    if not 2 <= len(seeds) <= MAX_ANIM_SEEDS or max(seeds) > MAX_SEED:
        raise ParamError(f"anim_seeds: give 2..{MAX_ANIM_SEEDS} seeds in 0..{MAX_SEED}")
    return seeds


def _edit(query) -> tuple[tuple[int, float], ...]:
    """'0:1.5,3:-2' -> ((0, 1.5), (3, -2.0)): strengths of components, each named once."""
    raw = _one(query, "edit")
    if raw is None:
        return ()
    out: list[tuple[int, float]] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        k, sep, a = part.partition(":")
        try:
            k_i, a_f = int(k), float(a)
        except ValueError:
            raise ParamError(f"edit: expected component:strength pairs like 0:1.5,3:-2, got {part!r}") from None
        lo, hi = EDIT_ALPHA_RANGE
        if not sep or not 0 <= k_i <= MAX_COMPONENT or not math.isfinite(a_f) or not lo <= a_f <= hi:
            raise ParamError(f"edit: {part!r} needs a component in 0..{MAX_COMPONENT} and a strength in {lo:g}..{hi:g}")
        if any(k_i == j for j, _ in out):
            raise ParamError(f"edit: component {k_i} is named twice")
        out.append((k_i, a_f))
    return tuple(out)


def _dirs(query) -> str:
    """The id of a set of directions: only ids the server gives out, never a path."""
    dirs = _one(query, "dirs") or DEFAULT_VIEW.dirs
    if not _W_ID.fullmatch(dirs):
        raise ParamError(f"dirs must name a set of directions of this server, got {dirs!r}")
    return dirs


def _layers(query, key: str, num_ws: int) -> tuple[int, ...]:
    """Style inputs: '' -> (); 'all' | 'coarse' | 'middle' | 'fine' | '0-3,6' -> indices of this network."""
    spec = _one(query, key)
    if spec is None:
        return ()
    if spec.lower() == "all":
        return tuple(range(num_ws))
    _range_size(spec, key)
    try:
        return tuple(style_indices(spec, num_ws))
    except ValueError as e:
        raise ParamError(f"{key}: unknown layer range {spec!r} ({e})") from None


def _check_transform(view: View, G) -> View:
    """A non-zero input transform for a network without one (StyleGAN / StyleGAN2) is refused with
    one line naming the keys sent, not silently dropped: the image would not move, and nothing would say why."""
    sent = [f"{k}={getattr(view, QUERY_KEYS[k]):g}" for k in ("tx", "ty", "rotate") if getattr(view, QUERY_KEYS[k])]
    if sent and not has_input_transform(G):
        raise ParamError(f"{', '.join(sent)}: translate / rotate apply to StyleGAN3 networks only (the transform "
                         f"of their Fourier-feature input); this network has none")
    return view


def parse_view(query: Mapping[str, str], G) -> View:
    """Validate the query against the network G (its num_ws, c_dim, input transform) -> View."""
    d = DEFAULT_VIEW
    return _check_transform(View(
        seed=_int(query, "seed", d.seed, 0, MAX_SEED),
        w_id=_w_id(query),
        psi=_float(query, "psi", d.psi, *PSI_RANGE),
        cutoff=_int(query, "cutoff", d.cutoff, 1, G.num_ws),
        class_idx=_class_idx(query, G),
        noise_mode=_choice(query, "noise", d.noise_mode, NOISE_MODES),
        noise_strength=_float(query, "noise_strength", d.noise_strength, *NOISE_STRENGTH_RANGE),
        mix_seed=_int(query, "mix_seed", d.mix_seed, 0, MAX_SEED),
        mix_styles=parse_styles(_one(query, "mix"), G.num_ws),
        fmt=_choice(query, "fmt", d.fmt, FORMATS + ("jpg",)).replace("jpg", "jpeg"),
        quality=_int(query, "quality", d.quality, 1, 100),
        std_samples=_int(query, "std_samples", d.std_samples, *STD_SAMPLES_RANGE),
        anim_seeds=_anim_seeds(query),
        anim_space=_choice(query, "anim_space", d.anim_space, ("z", "w")),
        anim_t=_float(query, "t", d.anim_t, 0.0, 1.0) % 1.0,
        dirs=_dirs(query),
        edit=_edit(query),
        edit_layers=_layers(query, "edit_layers", G.num_ws),
        translate_x=_float(query, "tx", d.translate_x, *TRANSLATE_RANGE),
        translate_y=_float(query, "ty", d.translate_y, *TRANSLATE_RANGE),
        rotate=_float(query, "rotate", d.rotate, *ROTATE_RANGE),
        untransform=_flag(query, "untransform"),
        eq_motion=_choice(query, "eq", d.eq_motion, EQ_MOTIONS),
    ), G)


@dataclass(frozen=True)
class DirectionsRequest:
    """A set of directions computed from the page: SeFa of some style inputs, or GANSpace."""

    method: str
    layers: tuple[int, ...] = ()   # sefa: the style inputs factorized (empty: all)
    samples: int = 0               # ganspace: W samples


def parse_directions_request(query: Mapping[str, str], G, default_samples: int, max_samples: int
                             ) -> DirectionsRequest:
    """`method` (sefa | ganspace), `layers` (sefa), `samples` (ganspace, up to max_samples)."""
    method = _choice(query, "method", "sefa", ("sefa", "ganspace"))
    if method == "sefa":
        return DirectionsRequest("sefa", layers=_layers(query, "layers", G.num_ws))
    return DirectionsRequest("ganspace", samples=_int(query, "samples", default_samples, 2, max_samples))


def parse_projection(query: Mapping[str, str], base: ProjectionRequest, max_steps: int) -> ProjectionRequest:
    """`steps`, `proj_seed` and `w_plus` of a projection started from the page, over `base` (the
    server's settings and defaults)."""
    return replace(base, steps=_int(query, "steps", base.steps, 1, max_steps),
                   seed=_int(query, "proj_seed", base.seed, 0, MAX_SEED), w_plus=_flag(query, "w_plus"))


__all__ = ["ParamError", "View", "DEFAULT_VIEW", "DEFAULT_CLASS", "QUERY_KEYS", "PER_REQUEST_KEYS", "PAGE_SETTINGS",
           "parse_view", "parse_styles", "parse_projection", "view_query", "page_defaults", "MAX_SEED", "NOISE_MODES",
           "FORMATS", "DirectionsRequest", "parse_directions_request", "EDIT_ALPHA_RANGE", "EDIT_SLIDER_RANGE",
           "EDIT_SLIDERS", "TRANSLATE_RANGE", "ROTATE_RANGE"]
