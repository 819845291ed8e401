"""Networks: mapping (shared), StyleGAN2 and StyleGAN v1 synthesis / discriminators, configs."""
from .config import Architecture, DiscriminatorConfig, GeneratorConfig, MappingConfig
from .generator import Generator, mix_styles
from .mapping import MappingNetwork, truncate


def build_discriminator(cfg: DiscriminatorConfig):
    """StyleGAN2 discriminator, or the progressive one (v1, and StyleGAN2 configs B-D that still grow)."""
    if cfg.version == 2 and not cfg.growing:
        from .stylegan2 import Discriminator
    else:
        from .stylegan1 import Discriminator  # noqa: F811
    return Discriminator(cfg)


__all__ = ["Architecture", "DiscriminatorConfig", "GeneratorConfig", "MappingConfig", "Generator",
           "mix_styles", "MappingNetwork", "truncate", "build_discriminator"]
