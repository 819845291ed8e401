"""NVIDIA's StyleGAN2 and StyleGAN3 reference fixtures, shipped as package data (see data/README.md).

The fixture holds random official weights, one batch of latents and the outputs NVIDIA's code
computed from them. It travels inside the package so that every installation -- a fresh clone, a
wheel, a machine with a new accelerator -- can prove it reproduces the official networks, and so
that no parity test ever depends on files beside the checkout.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch
from torch import nn

# The one import of the official-weight mapping (kwargs -> configs, official keys -> ours): the
# same code that reads official pickles, so the fixture checks that path too.
from ..io.official import (discriminator_config_from_kwargs, generator_config_from_kwargs, official_to_ours_state,
                           stylegan3_config_from_kwargs)

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


# ------------------------------------------------------------------------------------------------
# StyleGAN3 (configs T and R): made by scripts/make-sg3-fixture.py from NVIDIA's networks_stylegan3.
# ------------------------------------------------------------------------------------------------

SG3_FIXTURES = {"T": FIXTURE.parent / "official_sg3t_tiny.npz", "R": FIXTURE.parent / "official_sg3r_tiny.npz"}

# The outputs each StyleGAN3 fixture holds (the JSON's `calls`; feat_*: crops of intermediate maps).
SG3_OUTPUTS = ("out.ws", "out.ws_trunc", "out.img", "out.feat_input", "out.feat_L0", "out.feat_critical",
               "out.img_trunc", "out.img_transform", "out.grad_ws")


def sg3_fixture_generator(fx: OfficialFixture) -> nn.Module:
    """The StyleGAN3 G built from the official kwargs, loaded with the official weights, CPU, eval mode."""
    from ..models import Generator

    G = Generator(stylegan3_config_from_kwargs(fx.meta["G_kwargs"])[0])
    G.load_state_dict(official_to_ours_state(fx.prefixed("G."), G, f"StyleGAN3-{fx.meta['config']} fixture G"),
                      strict=True)
    return G.eval().requires_grad_(False)


def sg3_projection(shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixture's gradient cotangent: sin(0.37 (y W + x) + 1.3 c + 3 n) (its JSON's last call)."""
    n, c, h, w = shape
    i = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    phase = (1.3 * torch.arange(c, dtype=torch.float64).reshape(1, c, 1, 1)
             + 3.0 * torch.arange(n, dtype=torch.float64).reshape(n, 1, 1, 1))
    return torch.sin(0.37 * i + phase).to(device=device, dtype=torch.float32)


def sg3_fixture_calls(G: nn.Module, fx: OfficialFixture, device: torch.device | str = "cpu",
                      synthesis_scope: Callable[[], ContextManager] = contextlib.nullcontext) -> dict[str, torch.Tensor]:
    """The StyleGAN3 fixture JSON's `calls` with our argument names -> {out.*: tensor}.

    `synthesis_scope`: entered around each synthesis call (e.g. autocast to 16 bits); the mapping
    runs outside it, as in the official mixed precision (16 bits in synthesis layers only), because
    the Fourier input turns a 1% error in w into a shift of its features."""
    z = fx.tensors["in.z"].to(device)
    c = fx.tensors["in.c"].to(device)
    c = None if c.numel() == 0 else c
    psi, cutoff = fx.meta["crossover"]["psi"], fx.meta["crossover"]["cutoff"]
    names = fx.meta["intermediate"]
    crop = int(fx.tensors["out.feat_input"].shape[0])
    seen: dict[str, torch.Tensor] = {}
    taps = {"out.feat_input": G.synthesis.input, "out.feat_L0": getattr(G.synthesis, names["feat_L0"]),
            "out.feat_critical": getattr(G.synthesis, names["feat_critical"])}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o[0, :crop].detach().float()))
             for k, m in taps.items()]
    out: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            ws = G.mapping(z, c)
            out["out.ws"] = ws
            out["out.ws_trunc"] = G.mapping(z, c, psi=psi, cutoff=cutoff)
            with synthesis_scope():
                out["out.img"] = G.synthesis(ws, noise_mode="const")
    finally:
        for h in hooks:
            h.remove()
    out.update(seen)
    with torch.no_grad():
        if synthesis_scope is contextlib.nullcontext:
            out["out.img_trunc"] = G(z, c, psi=psi, cutoff=cutoff, noise_mode="const")
        else:
            ws_trunc = G.mapping(z, c, psi=psi, cutoff=cutoff)
            with synthesis_scope():
                out["out.img_trunc"] = G.synthesis(ws_trunc, noise_mode="const")
        with synthesis_scope():
            out["out.img_transform"] = G.synthesis(ws, transform=fx.tensors["in.transform"].to(device))
    ws_var = ws.detach().clone().requires_grad_(True)
    with torch.enable_grad(), synthesis_scope():
        img = G.synthesis(ws_var)
        out["out.grad_ws"] = torch.autograd.grad((img * sg3_projection(img.shape, device)).sum(), ws_var)[0]
    return out


def sg3_fixture_errors(out: dict[str, torch.Tensor], fx: OfficialFixture) -> dict[str, float]:
    """Max abs error of each StyleGAN3 output against NVIDIA's (float32, CPU)."""
    return {k: (out[k].detach().float().cpu() - fx.tensors[k]).abs().max().item() for k in SG3_OUTPUTS}


__all__ = ["FIXTURE", "OUTPUTS", "OfficialFixture", "load_fixture", "fixture_networks", "fixture_calls",
           "fixture_errors", "SG3_FIXTURES", "SG3_OUTPUTS", "sg3_fixture_generator", "sg3_fixture_calls",
           "sg3_fixture_errors", "sg3_projection"]
