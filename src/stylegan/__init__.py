"""StyleGAN and StyleGAN2 in pure PyTorch.

    import stylegan
    G = stylegan.load("network.safetensors")   # or an official NVIDIA .pkl, read safely
    img = G(z, psi=0.7)                         # [N, C, H, W] in [-1, 1]
"""
from .io.checkpoint import CheckpointError, save_checkpoint
from .io.load import load
from .models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from .version import __version__

__all__ = ["load", "save_checkpoint", "CheckpointError", "Generator", "GeneratorConfig",
           "DiscriminatorConfig", "MappingConfig", "build_discriminator", "__version__"]
