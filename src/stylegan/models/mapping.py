"""Mapping network z -> w (StyleGAN Sec. 2) and the truncation trick in W (Sec. 3.3 / App. B)."""
from __future__ import annotations

import torch
from torch import nn

from ..nn import FullyConnected, Runtime
from ..ops import normalize_2nd_moment
from .config import MappingConfig


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """w' = w_avg + psi (w - w_avg) on the first `cutoff` style inputs (all when None).

    ws: [N, num_ws, w_dim] -> same. psi=1 is the identity, psi=0 the average image.
    """
    if psi == 1:
        return ws
    w_avg = w_avg.to(ws.dtype)  # under autocast the MLP returns bf16 / fp16 ws; w_avg stays a float32 buffer
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    head = w_avg.lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)


class MappingNetwork(nn.Module):
    """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).

    z and the label embedding are each normalised to unit second moment and concatenated; the
    MLP uses leaky ReLU and lr multiplier 0.01. `w_avg` tracks the mean w during training
    (update_w_avg=True) for the truncation trick. `runtime` (None: `Runtime.current()`, read once)
    selects the bias_act form of every layer.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, cfg: MappingConfig):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = cfg.num_layers
        self.w_avg_beta = cfg.w_avg_beta
        embed = (cfg.embed_features or w_dim) if c_dim > 0 else 0
        hidden = cfg.layer_features or w_dim
        features = [z_dim + embed] + [hidden] * (cfg.num_layers - 1) + [w_dim]
        if cfg.num_layers == 0 and features[0] != w_dim:
            # No layers (StyleGAN v1 configs A/B, Table 4 'depth 0'): w is the normalised input itself.
            raise ValueError(f"a mapping network with 0 layers passes its input through, so w_dim "
                             f"({w_dim}) must equal z_dim + label embedding ({features[0]})")
        if c_dim > 0:
            self.embed = FullyConnected(c_dim, embed)
        for i in range(cfg.num_layers):
            setattr(self, f"fc{i}", FullyConnected(features[i], features[i + 1], activation="lrelu",
                                                   lr_multiplier=cfg.lr_multiplier))
        if num_ws is not None and cfg.w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def tracks_w_avg(self) -> bool:
        return hasattr(self, "w_avg")

    @torch.no_grad()
    def track_w_avg(self, w_mean: torch.Tensor) -> None:
        """Move the tracked average towards a batch's mean w [w_dim]: w_avg <- w_mean + beta (w_avg - w_mean).

        The one place w_avg changes (the centre of the truncation trick, v1 Sec. 4 / App. B). A
        single process passes its batch mean (`forward(update_w_avg=True)`); the training stepper
        passes the mean over all rounds and processes of a phase."""
        self.w_avg.copy_(w_mean.to(self.w_avg.dtype).lerp(self.w_avg, self.w_avg_beta))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, psi: float = 1.0,
                cutoff: int | None = None, update_w_avg: bool = False, *,
                runtime: Runtime | None = None) -> torch.Tensor:
        rt = Runtime.resolve(runtime)
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"this network is conditional: c must be [N, {self.c_dim}] "
                                 f"(one-hot class labels), got {None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32), runtime=rt))
            x = y if x is None else torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x, runtime=rt)
        if update_w_avg and self.tracks_w_avg:
            self.track_w_avg(x.detach().mean(dim=0))
        if self.num_ws is None:
            return x
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        if psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs w_avg, which this mapping network does not track")
            ws = truncate(ws, self.w_avg, psi, cutoff)
        return ws
