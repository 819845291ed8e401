"""Generator = mapping network + synthesis network, with truncation, style mixing and noise control."""
from __future__ import annotations

import torch
from torch import nn

from ..nn import NoiseInput, NoiseMode, Runtime
from .config import GeneratorConfig
from .mapping import MappingNetwork, truncate


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int | torch.Tensor) -> torch.Tensor:
    """Style mixing (StyleGAN Sec. 3.1): style inputs [0, crossover) from ws_a, the rest from ws_b.

    ws_a, ws_b: [N, num_ws, w_dim]; crossover: int or [N] per-sample tensor -> [N, num_ws, w_dim].
    """
    if ws_a.shape != ws_b.shape:
        raise ValueError(f"ws shapes differ: {tuple(ws_a.shape)} vs {tuple(ws_b.shape)}")
    idx = torch.arange(ws_a.shape[1], device=ws_a.device)  # [num_ws]
    cross = torch.as_tensor(crossover, device=ws_a.device).reshape(-1, 1)  # [N or 1, 1]
    use_a = (idx[None, :] < cross)[:, :, None]  # [N or 1, num_ws, 1]
    return torch.where(use_a, ws_a, ws_b)


def build_synthesis(cfg: GeneratorConfig) -> nn.Module:
    if cfg.version == 3:
        from .stylegan3 import SynthesisNetwork
    elif cfg.version == 2 and not cfg.growing:
        from .stylegan2 import SynthesisNetwork  # noqa: F811
    else:
        from .stylegan1 import SynthesisNetwork  # noqa: F811
    return SynthesisNetwork(cfg)


class Generator(nn.Module):
    """z [N, z_dim], c [N, c_dim] -> images [N, C, R, R] in about [-1, 1].

    `G.mapping(z, c, psi, cutoff) -> ws [N, num_ws, w_dim]`; `G.synthesis(ws, noise_mode) -> img`.
    `G(z, c, runtime=...)` takes the code paths of that `Runtime` (None: `Runtime.current()`, read
    once here and handed to both networks).
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = build_synthesis(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
                cutoff: int | None = None, noise_mode: NoiseMode = "const", update_w_avg: bool = False,
                *, runtime: Runtime | None = None, **synthesis_kwargs) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        ws = self.mapping(z, c, psi=psi, cutoff=cutoff, update_w_avg=update_w_avg, runtime=rt)
        return self.synthesis(ws, noise_mode=noise_mode, runtime=rt, **synthesis_kwargs)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        return truncate(ws, self.mapping.w_avg, psi, cutoff)

    def noise_inputs(self) -> dict[str, NoiseInput]:
        """Every noise input of the synthesis network by name, coarse to fine (for noise control)."""
        return {name: m for name, m in self.synthesis.named_modules() if isinstance(m, NoiseInput)}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
