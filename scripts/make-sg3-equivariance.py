"""docs/images/stylegan3-equivariance.png: one w of a RANDOM-WEIGHT (untrained) StyleGAN3 network of
each config under a moving input transform (NVIDIA's `gen_images.py --translate / --rotate`):
config T translated by 0 .. 0.25 image widths, config R rotated by 0 .. 60 degrees.

    .venv/bin/python scripts/make-sg3-equivariance.py docs/images/stylegan3-equivariance.png

No trained StyleGAN3 network is available offline; the weights are a seeded initialisation, so the
images are textures, not faces: what the figure shows is how they move, not what they depict.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from stylegan.models import STYLEGAN3_R, STYLEGAN3_T, Generator, GeneratorConfig, MappingConfig
from stylegan.models.stylegan3 import input_transform

RES, STEPS = 128, 6


def network(opts, seed: int) -> Generator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(z_dim=64, w_dim=64, img_resolution=RES, channel_base=4096, channel_max=64, version=3,
                          v3=opts, mapping=MappingConfig(num_layers=2, w_avg_beta=0.998), conv_clamp=256)
    return Generator(cfg).eval()


def to_uint8(img: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    img = (img[0] - mean) / std * 0.45  # untrained: stretch each channel, the same for the whole row
    return ((img.permute(1, 2, 0).numpy() * 127.5 + 128).clip(0, 255)).astype(np.uint8)


@torch.no_grad()
def row(G: Generator, transforms) -> list[np.ndarray]:
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    imgs = [G.synthesis(ws, transform=t) for t in transforms]
    mean, std = imgs[0][0].mean((1, 2), keepdim=True), imgs[0][0].std((1, 2), keepdim=True)
    return [to_uint8(img, mean, std) for img in imgs]


def main(out: str) -> None:
    shifts = [0.05 * i for i in range(STEPS)]
    angles = [12.0 * i for i in range(STEPS)]
    rows = [("T, translate x = " + ", ".join(f"{s:.2f}" for s in shifts),
             row(network(STYLEGAN3_T, 0), [input_transform(translate=(s, 0.0)) for s in shifts])),
            ("R, rotate = " + ", ".join(f"{a:.0f}" for a in angles) + " deg",
             row(network(STYLEGAN3_R, 0), [input_transform(rotate=a) for a in angles]))]
    pad, label = 4, 16
    canvas = Image.new("RGB", (STEPS * (RES + pad) + pad, len(rows) * (RES + pad + label) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (text, imgs) in enumerate(rows):
        y = pad + r * (RES + pad + label)
        draw.text((pad, y), "config " + text, fill="black")
        for i, img in enumerate(imgs):
            canvas.paste(Image.fromarray(img), (pad + i * (RES + pad), y + label))
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.size[0]}x{canvas.size[1]})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/stylegan3-equivariance.png")
