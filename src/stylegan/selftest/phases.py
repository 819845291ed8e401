"""Checks (b) and fp16 + conv_clamp: a few training steps of every phase at a small config.

One minibatch of StyleGAN2 training is five updates: G main (non-saturating loss), G reg (path
length), D main (logistic loss), D reg (R1), and the G_ema average. Each is run here on random
"real" images and checked for what a broken installation shows first: non-finite losses or
gradients, parameters that do not move, an average that does not follow.

`_phase_losses` is the only function that talks to the training loss API
(`stylegan.training.losses`); everything else here (and the speed check) goes through it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..models import Generator, build_discriminator
from ..training.config import LossConfig, OptimizerConfig, TrainingConfig
from ..training.ema import ema_beta, update_ema
from ..training.losses import PhaseContext, RoundInputs, StyleGANLoss
from ..training.config import DataShape
from ..training.presets import resolve_preset
from .result import CheckFailed, CheckSkipped, require

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")
# What each phase must report (StyleGANLoss's report names).
PHASE_LOSSES = {"Gmain": ("Loss/G/loss",), "Greg": ("Loss/pl_penalty",), "Dmain": ("Loss/D/loss",),
                "Dreg": ("Loss/r1_penalty",)}


def small_config(resolution: int = 32, batch: int = 4) -> TrainingConfig:
    """The `tiny` CPU preset (32 px RGB, 32 channels at most): every phase in well under a second."""
    cfg = resolve_preset("tiny", DataShape(resolution, 3))
    return cfg.replace(batch=batch, D=cfg.D.replace(mbstd_group_size=min(cfg.D.mbstd_group_size or 1, batch)))


def _phase_losses(G: nn.Module, D: nn.Module, loss_cfg: LossConfig, phase: str, real: torch.Tensor,
                  z: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward + backward of one training phase through the library's loss; gradients accumulate
    in G / D. real [N, C, H, W] in [-1, 1], z [N, z_dim] -> {report name: mean value}."""
    reported: dict[str, list[torch.Tensor]] = {}
    result = StyleGANLoss(G, D, loss_cfg).accumulate_gradients(phase, RoundInputs(real, None, z, None),
                                                               PhaseContext(gain=1.0))
    for name, value in result.stats:
        reported.setdefault(name, []).append(value.float())
    return {name: torch.cat([v.flatten() for v in vs]).mean() for name, vs in reported.items()}


def _adam(module: nn.Module, opt: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps)


@dataclass
class PhaseNets:
    """G, D, G_ema and their optimizers, as a training process holds them."""

    cfg: TrainingConfig
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    G_opt: torch.optim.Optimizer
    D_opt: torch.optim.Optimizer
    nimg: int = 0

    @classmethod
    def build(cls, cfg: TrainingConfig, device: torch.device, seed: int = 0) -> "PhaseNets":
        torch.manual_seed(seed)
        G = Generator(cfg.G).train().requires_grad_(False).to(device)
        D = build_discriminator(cfg.D).train().requires_grad_(False).to(device)
        return cls(cfg, G, D, copy.deepcopy(G).eval(), _adam(G, cfg.G_opt), _adam(D, cfg.D_opt))

    def batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random 'real' images [N, C, R, R] in [-1, 1] and latents [N, z_dim], reproducible from `seed`."""
        g = torch.Generator().manual_seed(seed)
        n, c, r = self.cfg.batch, self.cfg.G.img_channels, self.cfg.G.img_resolution
        real = torch.rand([n, c, r, r], generator=g) * 2 - 1
        z = torch.randn([n, self.cfg.G.z_dim], generator=g)
        dev = next(self.G.parameters()).device
        return real.to(dev), z.to(dev)

    def network(self, phase: str) -> tuple[nn.Module, torch.optim.Optimizer]:
        return (self.G, self.G_opt) if phase.startswith("G") else (self.D, self.D_opt)

    def gradients(self, phase: str, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fresh gradients of one phase on its network (the other one frozen); its losses."""
        module, opt = self.network(phase)
        module.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        losses = _phase_losses(self.G, self.D, self.cfg.loss, phase, real, z)
        module.requires_grad_(False)
        return losses

    def ema(self) -> None:
        n = self.cfg.batch
        update_ema(self.G_ema, self.G, ema_beta(n, self.cfg.ema_kimg, self.nimg, self.cfg.ema_rampup))
        self.nimg += n


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def _grad_report(module: nn.Module) -> tuple[int, list[str]]:
    """(tensors with a non-zero gradient, names of those with a non-finite one)."""
    grads = {k: p.grad for k, p in module.named_parameters() if p.grad is not None}
    bad = [k for k, g in grads.items() if not torch.isfinite(g).all()]
    return sum(bool(g.abs().sum() > 0) for g in grads.values()), bad


def _check_phase(nets: PhaseNets, name: str, real: torch.Tensor, z: torch.Tensor, every_tensor_moves: bool) -> str:
    """One phase: its loss reported and finite, gradients finite and not all zero, weights moved."""
    module, opt = nets.network(name)
    before = _params(module)
    losses = nets.gradients(name, real, z)
    missing = [k for k in PHASE_LOSSES[name] if k not in losses]
    require(not missing, f"{name} reported no {missing} (reported: {sorted(losses)})")
    bad_loss = {k: v.item() for k, v in losses.items() if not torch.isfinite(v)}
    require(not bad_loss, f"{name}: non-finite losses {bad_loss}")
    nonzero, bad = _grad_report(module)
    require(not bad, f"{name}: non-finite gradients in {bad[:4]}")
    require(nonzero > 0, f"{name}: every gradient is zero")
    opt.step()
    after = _params(module)
    require(all(torch.isfinite(p).all() for p in after.values()), f"{name}: non-finite weights after the step")
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    # The adversarial losses reach every parameter; R1 and path length do not (e.g. D's last bias).
    need = len(before) if every_tensor_moves and name.endswith("main") else 1
    require(moved >= need, f"{name}: only {moved} of {len(before)} parameter tensors moved")
    key = PHASE_LOSSES[name][0]
    return f"{name} {key.split('/')[-1]} {losses[key].item():.3g}"


def _check_ema(nets: PhaseNets) -> None:
    """One EMA update brings G_ema closer to G."""
    ema_before, G_now = _params(nets.G_ema), _params(nets.G)
    nets.ema()
    ema_after = _params(nets.G_ema)
    gap_before = sum((ema_before[k] - G_now[k]).square().sum() for k in G_now)
    gap_after = sum((ema_after[k] - G_now[k]).square().sum() for k in G_now)
    require(bool(gap_after < gap_before), f"EMA: G_ema did not move towards G "
                                          f"(|G_ema - G|^2 {gap_before:.3g} -> {gap_after:.3g})")


def _run_phases(nets: PhaseNets, steps: int, every_tensor_moves: bool = True) -> list[str]:
    """`steps` minibatches of the four phases and the EMA, each checked; the last losses."""
    notes: list[str] = []
    for step in range(steps):
        real, z = nets.batch(seed=step)
        try:
            notes = [_check_phase(nets, name, real, z, every_tensor_moves) for name in PHASES]
            _check_ema(nets)
        except CheckFailed as e:
            raise CheckFailed(f"step {step}: {e}") from None
    return notes


def check_training_phases(device: torch.device, steps: int = 2) -> str:
    """Every phase at the small config: finite losses and gradients, parameters moved, EMA followed."""
    nets = PhaseNets.build(small_config(), device)
    notes = _run_phases(nets, steps)
    return f"{steps} steps x (Gmain, Greg, Dmain, Dreg, EMA), finite, all moved: " + ", ".join(notes)


def check_fp16_clamp(device: torch.device) -> str:
    """The StyleGAN2-ADA mixed precision scheme: fp16 in the highest-resolution blocks with
    activations clamped to +-256, which the networks apply on CUDA only."""
    if device.type != "cuda":
        raise CheckSkipped(f"CUDA only: on {device.type} every block runs float32")
    cfg = small_config()
    cfg = cfg.replace(G=cfg.G.replace(num_fp16_res=2, conv_clamp=256), D=cfg.D.replace(num_fp16_res=2, conv_clamp=256))
    nets = PhaseNets.build(cfg, device)
    # Forward: fp16 blocks against the same weights in float32.
    real, z = nets.batch(seed=0)
    with torch.no_grad():
        img16, img32 = nets.G(z, noise_mode="const"), nets.G(z, noise_mode="const", force_fp32=True)
        log16, log32 = nets.D(img32), nets.D(img32, force_fp32=True)
    for what, a, b in (("G images", img16, img32), ("D logits", log16, log32)):
        err = (a.float() - b).abs().max().item() / max(b.abs().max().item(), 1e-6)
        require(math.isfinite(err) and err <= 2e-2, f"{what} with fp16 blocks vs float32: rel. error {err:.2e} > 2e-2")
    # fp16 activations may flush a few tiny gradients to zero: only finiteness and progress are required.
    notes = _run_phases(nets, steps=2, every_tensor_moves=False)
    return "fp16 blocks (16-32 px) + clamp 256 match float32 within 2%; training finite: " + ", ".join(notes)


__all__ = ["PHASES", "PhaseNets", "small_config", "check_training_phases", "check_fp16_clamp"]
