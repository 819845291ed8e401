"""A tiny StyleGAN3 generator shared by the StyleGAN3 tool, CLI and metric tests."""
from __future__ import annotations

import torch

from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.models.config import StyleGAN3Options


def tiny_sg3(seed: int = 0, res: int = 16) -> Generator:
    """A config T generator with 4 layers instead of 14 and 8 channels, in eval mode, whose input
    affine is random, so the Fourier features turn and shift with w (a fresh one is the identity)."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=res, img_channels=3, channel_base=128, channel_max=8,
                          version=3, v3=StyleGAN3Options(num_layers=4, num_critical=1),
                          mapping=MappingConfig(num_layers=2, w_avg_beta=0.998))
    G = Generator(cfg).eval()
    with torch.no_grad():
        G.synthesis.input.affine.weight.normal_(0, 0.3)
    return G
