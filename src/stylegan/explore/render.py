"""What the explorer draws, as plain functions of (network, View): latents, images, encodings.

Built on the library's own pieces (seed convention, truncation, style mixing, the noise std map,
slerp/lerp loops), so the explorer shows exactly what `stylegan generate / mix / figures / video`
write. All functions run wherever G lives; images come back as uint8 numpy [H, W, C].
"""
from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from dataclasses import replace
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from ..io.images import make_grid, pil_to_tensor, to_pil, to_uint8
from ..models.stylegan3 import has_input_transform, input_transform
from ..nn import weight_cache
from ..synth.figures import mix_ws, noise_std_map, render, seed_ws, std_map_to_uint8
from ..synth.sample import class_labels, z_from_seeds
from ..synth.video import interpolation_latents
from .equivariance import loop_transform, untransform
from .errors import BadRequest, ParamError
from .params import View

# Image formats a projection target may have: plain raster formats decoded by Pillow itself. Not
# EPS / PDF (Pillow hands EPS to Ghostscript, an interpreter, if one is installed), nor the
# rarer plugins: an upload is read by the server, so only what a person drops is accepted.
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM")  # JPEG includes MPO (cameras)
ANIM_STEPS_PER_SEED = 1000    # resolution of the loop position t between two seeds
NOISE_DRAWS_SHOWN = 4         # stochastic variation: draws shown beside the std map


@contextlib.contextmanager
def scaled_noise(G, factor: float) -> Iterator[None]:
    """Multiply every noise input's learned strength by `factor` inside the block (restored after,
    also on error). The explorer renders one request at a time, so the change is never seen by
    another render."""
    if factor == 1.0:
        yield
        return
    saved = [(m, m.strength.detach().clone()) for m in G.noise_inputs().values()]
    try:
        with torch.no_grad():
            for m, s in saved:
                m.strength.mul_(factor)
        yield
    finally:
        with torch.no_grad():
            for m, s in saved:
                m.strength.copy_(s)


@torch.no_grad()
def synthesize(G, ws: torch.Tensor, view: View) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> uint8 [N, R, R, C]: `figures.render` (what `stylegan generate` writes),
    and for a StyleGAN3 network under the view's input transform, passed per call (G's own
    `transform` buffer is never touched, so a projection's copy of G or a concurrent reader sees no
    change), then moved back when the view asks to `untransform`."""
    if not has_input_transform(G):
        return render(G, ws, view.noise_mode)
    translate, rotate = (view.translate_x, view.translate_y), view.rotate
    transform = input_transform(translate, rotate).to(G.device)  # [3, 3]
    with weight_cache():
        img = G.synthesis(ws, noise_mode=view.noise_mode, transform=transform)  # [N, C, R, R]
        if view.untransform:
            img = untransform(img, translate, rotate)
    return to_uint8(img).numpy()


@torch.no_grad()
def view_ws(G, view: View, stored: torch.Tensor | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
    """ws [1, num_ws, w_dim] of the main image: the seed's (or the stored w's) truncated ws, with
    `mix_styles` taken from `mix_seed` when mixing, plus the edit's `offset` [num_ws, w_dim]
    (`editing.DirectionStore.offset`) last."""
    dev = G.device
    if stored is not None:
        ws = G.truncate(stored.to(dev), view.psi, view.cutoff)
    else:
        ws = seed_ws(G, [view.seed], psi=view.psi, cutoff=view.cutoff, class_idx=view.class_idx, device=dev)
    if view.mix_seed is not None and view.mix_styles:
        other = seed_ws(G, [view.mix_seed], psi=view.psi, cutoff=view.cutoff, class_idx=view.class_idx,
                        device=dev)
        ws = mix_ws(ws, other, view.mix_styles)
    return ws if offset is None else ws + offset.to(ws.device, ws.dtype)


@torch.no_grad()
def render_image(G, view: View, stored: torch.Tensor | None = None, offset: torch.Tensor | None = None) -> np.ndarray:
    """The main image, uint8 [R, R, C]."""
    with scaled_noise(G, view.noise_strength):
        return synthesize(G, view_ws(G, view, stored, offset), view)[0]


@torch.no_grad()
def render_mixing(G, view: View, stored: torch.Tensor | None = None, offset: torch.Tensor | None = None
                  ) -> np.ndarray:
    """StyleGAN Fig. 3 for one pair: [first source | second source | mix] as uint8 [R, 3 R, C]. An
    edit moves all three (the offset is the same on every style input it touches, so the mix of
    the edited sources is the edited mix: the main image)."""
    if view.mix_seed is None:
        raise ParamError("mix_seed: style mixing needs a second seed")
    first = view_ws(G, replace(view, mix_seed=None), stored, offset)
    second = seed_ws(G, [view.mix_seed], psi=view.psi, cutoff=view.cutoff, class_idx=view.class_idx,
                     device=G.device)
    second = second if offset is None else second + offset.to(second.device, second.dtype)
    mixed = mix_ws(first, second, view.mix_styles)
    with scaled_noise(G, view.noise_strength):
        tiles = synthesize(G, torch.cat([first, second, mixed]), view)
    return make_grid(tiles, rows=1)


@torch.no_grad()
def render_variation(G, view: View, stored: torch.Tensor | None = None, offset: torch.Tensor | None = None
                     ) -> np.ndarray:
    """StyleGAN Fig. 4 for one w: NOISE_DRAWS_SHOWN random-noise renders | per-pixel std map over
    `std_samples` draws (normalised to its maximum), as uint8 [R, (NOISE_DRAWS_SHOWN + 1) R, C]. A
    network without noise inputs (StyleGAN3) is refused: its strip would be one image four times and a
    black map, which reads as a broken page rather than as "no noise"."""
    if not G.noise_inputs():
        raise ParamError("variation: StyleGAN3 has no per-pixel noise inputs, so there is no stochastic "
                         "variation to show")
    ws = view_ws(G, view, stored, offset)
    with scaled_noise(G, view.noise_strength):
        std, draws = noise_std_map(G, ws, max(view.std_samples, NOISE_DRAWS_SHOWN))
    std_img = np.repeat(std_map_to_uint8(std, None)[:, :, None], G.img_channels, axis=2)
    tiles = np.concatenate([draws[:NOISE_DRAWS_SHOWN], std_img[None]])
    return make_grid(tiles, rows=1)


@torch.no_grad()
def render_animation(G, view: View, offset: torch.Tensor | None = None) -> np.ndarray:
    """The frame at position `anim_t` of a loop through `anim_seeds` (slerp in Z or lerp in W), the
    interpolation of `stylegan video`, plus the edit's offset; uint8 [R, R, C]."""
    dev = G.device
    seeds = list(view.anim_seeds)
    c = class_labels(G, 1, view.class_idx, dev)
    frame = round(view.anim_t * len(seeds) * ANIM_STEPS_PER_SEED)
    if view.anim_space == "z":
        z = interpolation_latents(z_from_seeds(seeds, G.z_dim, dev), [frame], ANIM_STEPS_PER_SEED, "z")
        ws = G.mapping(z, c, psi=view.psi, cutoff=view.cutoff)
    else:
        keys = seed_ws(G, seeds, psi=view.psi, cutoff=view.cutoff, class_idx=view.class_idx, device=dev)
        ws = interpolation_latents(keys, [frame], ANIM_STEPS_PER_SEED, "w")
    if offset is not None:
        ws = ws + offset.to(ws.device, ws.dtype)
    with scaled_noise(G, view.noise_strength):
        return synthesize(G, ws, view)[0]


@torch.no_grad()
def render_equivariance(G, view: View, stored: torch.Tensor | None = None, offset: torch.Tensor | None = None
                        ) -> np.ndarray:
    """The frame at position `anim_t` of the equivariance loop: the main image's ws under the view's
    transform advanced along `eq_motion` (`equivariance.loop_transform`), moved back with
    `untransform`; uint8 [R, R, C]. StyleGAN3 only."""
    if not has_input_transform(G):
        raise ParamError("equivariance: the transform loop needs a StyleGAN3 network (one with an input "
                         "transform); this network has none")
    translate, rotate = loop_transform((view.translate_x, view.translate_y), view.rotate, view.eq_motion,
                                       view.anim_t)
    moved = replace(view, translate_x=translate[0], translate_y=translate[1], rotate=rotate)
    return render_image(G, moved, stored, offset)


def encode(image: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """uint8 [H, W, C] -> PNG (fast, lossless: level 1 deflate) or JPEG bytes."""
    buf = io.BytesIO()
    if fmt == "png":
        to_pil(image).save(buf, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        to_pil(image).save(buf, format="JPEG", quality=quality, subsampling=0)  # 4:4:4: small images
    else:
        raise ParamError(f"fmt must be png or jpeg, got {fmt!r}")
    return buf.getvalue()


def decode_upload(data: bytes, G, max_pixels: int) -> torch.Tensor:
    """Uploaded image bytes -> projection target [1, C, R, R] in [-1, 1] (center-cropped, resized).

    The header is read first and an image of more than `max_pixels` pixels is refused before any
    pixel is decoded (a small file can claim a huge size); anything PIL cannot decode, or cannot
    convert to the network's channels (modes like I;16, F, CMYK with odd profiles), is a
    BadRequest naming the problem, never a crash of the server. Only UPLOAD_FORMATS are opened."""
    try:
        img = Image.open(io.BytesIO(data), formats=_readable_formats())
        w, h = img.size
        if w * h > max_pixels:
            raise BadRequest(f"image is {w}x{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels")
        img.load()
        return pil_to_tensor(img, G.img_resolution, G.img_channels)
    except BadRequest:
        raise
    except Image.DecompressionBombError as e:
        raise BadRequest(f"image is too large to decode safely ({e})") from None
    except Image.UnidentifiedImageError:
        raise BadRequest(f"cannot decode the uploaded image: it is not an image in a format the explorer "
                         f"reads ({_sniff(data)}); send a PNG, JPEG, WebP, BMP, GIF, TIFF or PPM file") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise BadRequest(f"cannot decode the uploaded image ({type(e).__name__}: {e})") from None


def _readable_formats() -> list[str]:
    """UPLOAD_FORMATS this Pillow build has (WebP is optional in some builds)."""
    Image.init()
    return [f for f in UPLOAD_FORMATS if f in Image.OPEN]


def _sniff(data: bytes) -> str:
    """What a non-image upload looks like, for the message: its size and first bytes."""
    head = data[:8]
    shown = head.decode("ascii") if head.isascii() and head.decode("ascii").isprintable() else head.hex(" ")
    return f"{len(data):,} bytes starting {shown!r}"


def decode_w(data: bytes, G) -> torch.Tensor:
    """Uploaded `projected_w.npz` (key 'w', [1, num_ws, w_dim] or [num_ws, w_dim]) -> float32
    [1, num_ws, w_dim]. Read with allow_pickle=False: an npz cannot run code here."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            w = np.asarray(f["w"])
    except KeyError:
        raise BadRequest("the .npz has no key 'w' (expected projected_w.npz from `stylegan project`)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # damaged, not an npz
        raise BadRequest(f"cannot read the uploaded .npz ({type(e).__name__}: {e})") from None
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
        raise BadRequest(f"w has shape {tuple(w.shape)}; this network needs [1, {G.num_ws}, {G.w_dim}]")
    if not np.issubdtype(w.dtype, np.floating) or not np.isfinite(w).all():
        raise BadRequest("w must hold finite floating-point numbers")
    return torch.from_numpy(w[:1].astype(np.float32))


def encode_w(ws: torch.Tensor) -> bytes:
    """ws [1, num_ws, w_dim] -> .npz bytes with key 'w' (what `stylegan generate --projected-w` reads)."""
    buf = io.BytesIO()
    np.savez(buf, w=ws.detach().cpu().to(torch.float32).numpy())
    return buf.getvalue()


__all__ = ["UPLOAD_FORMATS", "scaled_noise", "synthesize", "view_ws", "render_image", "render_mixing",
           "render_variation", "render_animation", "render_equivariance", "encode", "decode_upload", "decode_w",
           "encode_w"]
