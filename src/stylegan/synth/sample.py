"""Seeds -> latents -> images: the sampling shared by every tool.

Latents come from `np.random.RandomState(seed).randn(z_dim)`, the convention of NVIDIA's
`generate.py`, so a seed names the same image here and in the official repos.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import Iterable, Sequence

import numpy as np
import torch

from ..nn import NoiseMode, weight_cache
from ..nn.precision import PrecisionLike, as_precision, precision_problem, precision_scope


def parse_range(spec: str | Sequence[int]) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    if not isinstance(spec, str):
        return [int(v) for v in spec]
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ValueError(f"range {part!r} runs backwards")
            out.extend(range(a, b + 1))
        elif re.fullmatch(r"\d+", part):
            out.append(int(part))
        else:
            raise ValueError(f"cannot parse {part!r} in {spec!r}: use e.g. '0-7,12'")
    if not out:
        raise ValueError(f"no numbers in {spec!r}")
    return out


def format_range(values: Sequence[int]) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7': `parse_range`'s inverse, runs of consecutive numbers in the given order."""
    parts, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[i - 1] + 1:
            a, b = values[start], values[i - 1]
            parts.append(str(a) if a == b else f"{a}-{b}")
            start = i
    return ",".join(parts)


def z_from_seeds(seeds: Iterable[int], z_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[len(seeds), z_dim] float32, one latent per seed (official generate.py convention)."""
    z = np.stack([np.random.RandomState(int(s)).randn(z_dim) for s in seeds])
    return torch.from_numpy(z).to(torch.float32).to(device)


def class_labels(G, n: int, class_idx: int | None, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """One-hot [n, c_dim] for a conditional G (class_idx required), None for an unconditional one."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise ValueError("this network is unconditional: --class does not apply")
        return None
    if class_idx is None:
        raise ValueError(f"this network is conditional ({G.c_dim} classes): pass a class index (--class)")
    if not 0 <= class_idx < G.c_dim:
        raise ValueError(f"class {class_idx} out of range 0..{G.c_dim - 1}")
    c = torch.zeros(n, G.c_dim, device=device)
    c[:, class_idx] = 1
    return c


def precision_context(G, precision: PrecisionLike, device: torch.device | str | None = None, *,
                      warn: bool = True) -> contextlib.AbstractContextManager:
    """`precision_scope(precision)` for running G; None keeps the precision already in force.

    Only StyleGAN2 blocks read the scope, so a 16-bit request for another network is an error
    rather than a silent fp32 run. With `warn`, a device that would emulate the dtype (a CPU
    without bf16 instructions) gets a RuntimeWarning saying so.
    """
    from ..models.stylegan2 import SynthesisNetwork

    p = as_precision(precision)
    if p is None:
        return contextlib.nullcontext()
    if p.dtype != "fp32" and not isinstance(getattr(G, "synthesis", G), SynthesisNetwork):
        raise ValueError(f"precision {p.dtype!r} applies to StyleGAN2 networks only; this one runs in fp32")
    problem = precision_problem(p, device if device is not None else next(G.parameters()).device)
    if warn and problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=3)
    return precision_scope(p)


def parse_vec2(spec: str | Sequence[float]) -> tuple[float, float]:
    """'0.1,-0.2' -> (0.1, -0.2) (gen_images.py's --translate)."""
    if not isinstance(spec, str):
        a, b = spec
        return float(a), float(b)
    parts = spec.split(",")
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise ValueError(f"expected two comma-separated numbers like '0.1,-0.2', got {spec!r}")


def input_transform_scope(G, translate: Sequence[float] | None = None,
                          rotate: float | None = None) -> contextlib.AbstractContextManager:
    """Show a StyleGAN3 network's images translated by (tx, ty) (image widths) and rotated by `rotate`
    degrees while inside, as stylegan3's gen_images.py / gen_video.py do: the inverse transform is
    copied into `G.synthesis.input.transform`, and the previous one restored on exit.

    Both None: nothing changes. A network without a Fourier-feature input (StyleGAN / StyleGAN2)
    raises ValueError here, before anything runs: its image cannot be moved this way.
    """
    if translate is None and rotate is None:
        return contextlib.nullcontext()
    from ..models.stylegan3 import has_input_transform, input_transform

    if not has_input_transform(G):
        raise ValueError("--translate / --rotate apply to StyleGAN3 networks only (the transform of their "
                         "Fourier-feature input); this network has none")
    return _buffer_scope(G.synthesis.input.transform, input_transform(translate or (0.0, 0.0), rotate or 0.0))


@contextlib.contextmanager
def _buffer_scope(buf: torch.Tensor, value: torch.Tensor):
    saved = buf.clone()
    with torch.no_grad():
        buf.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            buf.copy_(saved)


@torch.no_grad()
def generate(G, seeds: Sequence[int], *, psi: float = 1.0, cutoff: int | None = None,
             noise_mode: NoiseMode = "const", class_idx: int | None = None, batch: int = 16,
             device: torch.device | str | None = None, precision: PrecisionLike = None) -> torch.Tensor:
    """Images for `seeds`: [len(seeds), C, H, W] float in about [-1, 1] on the CPU.

    precision: 'fp32', 'bf16', 'fp16' or a `stylegan.nn.Precision` (16 bits in the highest
    resolutions, see stylegan.nn.precision); None keeps the current `precision_scope`.
    """
    device = torch.device(device) if device is not None else next(G.parameters()).device
    out = []
    with precision_context(G, precision, device), weight_cache():
        for i in range(0, len(seeds), batch):
            chunk = list(seeds[i:i + batch])
            z = z_from_seeds(chunk, G.z_dim, device)
            c = class_labels(G, len(chunk), class_idx, device)
            out.append(G(z, c, psi=psi, cutoff=cutoff, noise_mode=noise_mode).cpu())
    return torch.cat(out)
