"""NVIDIA's StyleGAN2 reference fixture, shipped as package data (see data/README.md).

The fixture holds random official weights, one batch of latents and the outputs NVIDIA's code
computed from them. It travels inside the package so that every installation -- a fresh clone, a
wheel, a machine with a new accelerator -- can prove it reproduces the official networks, and so
that no parity test ever depends on files beside the checkout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

# The one import of the official-weight mapping (kwargs -> configs, official keys -> ours): the
# same code that reads official pickles, so the fixture checks that path too.
from ..io.official import discriminator_config_from_kwargs, generator_config_from_kwargs, official_to_ours_state

# Installed packages are plain directories (wheels are unpacked), so a filesystem path is safe here.
FIXTURE = Path(__file__).resolve().parent / "data" / "official_sg2_tiny.npz"

# The outputs the fixture holds, in the order its JSON lists the calls.
OUTPUTS = ("out.ws", "out.ws_trunc", "out.img_const", "out.img_none", "out.img_trunc", "out.d_logits")


@dataclass(frozen=True)
class OfficialFixture:
    tensors: dict[str, torch.Tensor]  # official keys ('G.mapping.fc0.weight', 'in.z', 'out.ws', ...)
    meta: dict  # the JSON: G_kwargs, D_kwargs, calls

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors under `prefix` ('G.' / 'D.'), prefix removed."""
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def load_fixture(path: Path = FIXTURE) -> OfficialFixture:
    """The fixture's tensors (float32, CPU) and its JSON description."""
    if not path.exists():
        raise FileNotFoundError(f"the official fixture is missing from this installation: {path} "
                                f"(it is package data of stylegan.selftest; reinstall the package)")
    with np.load(path) as data:
        tensors = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return OfficialFixture(tensors, meta)


def fixture_networks(fx: OfficialFixture) -> tuple[nn.Module, nn.Module]:
    """(G, D) built from the official kwargs and loaded with the official weights, CPU, eval mode."""
    from ..models import Generator, build_discriminator

    G = Generator(generator_config_from_kwargs(fx.meta["G_kwargs"])[0])
    D = build_discriminator(discriminator_config_from_kwargs(fx.meta["D_kwargs"])[0])
    G.load_state_dict(official_to_ours_state(fx.prefixed("G."), G, "fixture G"), strict=True)
    D.load_state_dict(official_to_ours_state(fx.prefixed("D."), D, "fixture D"), strict=True)
    return G.eval().requires_grad_(False), D.eval().requires_grad_(False)


@torch.no_grad()
def fixture_calls(G: nn.Module, D: nn.Module, z: torch.Tensor, c: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The fixture JSON's `calls` with our argument names; z [N, z_dim] -> {out.*: tensor}."""
    c = None if c is None or c.numel() == 0 else c
    ws = G.mapping(z, c)  # [N, num_ws, w_dim]
    img_const = G.synthesis(ws, noise_mode="const")  # [N, 3, 32, 32]
    return {
        "out.ws": ws,
        "out.ws_trunc": G.mapping(z, c, psi=0.7, cutoff=4),
        "out.img_const": img_const,
        "out.img_none": G.synthesis(ws, noise_mode="none"),
        "out.img_trunc": G(z, c, psi=0.7, cutoff=4, noise_mode="const"),
        "out.d_logits": D(img_const, c),  # [N, 1]
    }


def fixture_errors(out: dict[str, torch.Tensor], fx: OfficialFixture) -> dict[str, float]:
    """Max abs error of each output against NVIDIA's, computed in float32 on the CPU."""
    return {k: (out[k].detach().float().cpu() - fx.tensors[k]).abs().max().item() for k in OUTPUTS}


__all__ = ["FIXTURE", "OUTPUTS", "OfficialFixture", "load_fixture", "fixture_networks", "fixture_calls",
           "fixture_errors"]
