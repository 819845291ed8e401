"""Networks: mapping (shared), StyleGAN2 and StyleGAN v1 synthesis / discriminators, configs."""
from .config import Architecture, DiscriminatorConfig, GeneratorConfig, MappingConfig
from .generator import Generator, mix_styles
from .mapping import MappingNetwork, truncate


def build_discriminator(cfg: DiscriminatorConfig):
    """The discriminator for `cfg.version` (2: StyleGAN2, 1: progressive StyleGAN/PGGAN)."""
    if cfg.version == 2:
        from .stylegan2 import Discriminator
    else:
        from .stylegan1 import Discriminator  # noqa: F811
    return Discriminator(cfg)


__all__ = ["Architecture", "DiscriminatorConfig", "GeneratorConfig", "MappingConfig", "Generator",
           "mix_styles", "MappingNetwork", "truncate", "build_discriminator"]
