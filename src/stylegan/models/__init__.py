"""Networks: mapping (shared), StyleGAN v1 / StyleGAN2 / StyleGAN3 synthesis, discriminators, configs."""
from .config import (STYLEGAN3_R, STYLEGAN3_T, Architecture, DiscriminatorConfig, GeneratorConfig, MappingConfig,
                     StyleGAN3Options)
from .generator import Generator, mix_styles
from .mapping import MappingNetwork, truncate


def build_discriminator(cfg: DiscriminatorConfig):
    """StyleGAN2 discriminator, or the progressive one (v1, and StyleGAN2 configs B-D that still grow)."""
    if cfg.version == 2 and not cfg.growing:
        from .stylegan2 import Discriminator
    else:
        from .stylegan1 import Discriminator  # noqa: F811
    return Discriminator(cfg)


__all__ = ["Architecture", "DiscriminatorConfig", "GeneratorConfig", "MappingConfig", "StyleGAN3Options",
           "STYLEGAN3_T", "STYLEGAN3_R", "Generator",
           "mix_styles", "MappingNetwork", "truncate", "build_discriminator"]
