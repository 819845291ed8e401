"""Fine-tuning from a network file that is not a snapshot of ours: NVIDIA's pickles (stylegan2-ada-
pytorch / stylegan3 code, TF StyleGAN2) and rosinality checkpoints, read through the restricted
unpickler only (`io.load`), never executing code from the file.

This is the ADA paper's transfer-learning workflow (Karras et al. 2020a, Sec. 4: e.g. FFHQ ->
MetFaces, optionally with `--freezed`). Unlike the official `--resume`, which copies weights into
networks built from the preset, the networks' shape comes from the file: the preset (or `auto`)
supplies only the training settings (losses, learning rates, batch, augmentation). So the data must
have the file's resolution and channels; a label count that differs is allowed only when the user
asks for a fresh label pathway (`--fresh-labels`), which starts the label embedding of G and D (and
D's conditional output) from scratch and keeps every other weight.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from ..io.checkpoint import CheckpointError
from ..io.load import read_foreign, sniff
from ..models import DiscriminatorConfig, GeneratorConfig
from .config import TrainingConfig
from .errors import TrainingSetupError


def is_foreign(path: str | Path) -> bool:
    """Not one of our checkpoints (an official pickle or a rosinality .pt)."""
    return sniff(path) != "safetensors"


@dataclass(frozen=True)
class ForeignNetworks:
    """The networks a foreign file describes (configs only; nothing is built here)."""

    path: str
    G: GeneratorConfig
    D: Optional[DiscriminatorConfig]  # None: the file has no discriminator (D starts fresh)
    names: tuple[str, ...]  # the networks in the file: 'G', 'G_ema', 'D'


def read_foreign_networks(path: str | Path) -> ForeignNetworks:
    try:
        f = read_foreign(path)
        g = f.network(None)  # G_ema, else G
    except (CheckpointError, ValueError) as e:
        raise TrainingSetupError(f"--resume {path}: {e}") from None
    d = f.networks.get("D")
    return ForeignNetworks(str(path), g.cfg, None if d is None else d.cfg, tuple(sorted(f.networks)))


def _shape(r: int, c: int) -> str:
    return f"{r}x{r}x{c}"


def transfer_config(cfg: TrainingConfig, file: ForeignNetworks, *, resolution: int, channels: int,
                    label_dim: int, cond: bool, fresh_labels: bool) -> tuple[TrainingConfig, tuple[str, ...]]:
    """`cfg` (the preset resolved for the data) with the file's networks -> (config, notes for the log).

    Raises TrainingSetupError naming both shapes when the data cannot be trained from the file."""
    g = file.G
    if (g.img_resolution, g.img_channels) != (resolution, channels):
        raise TrainingSetupError(
            f"--resume {file.path}: its networks make {_shape(g.img_resolution, g.img_channels)} images, the "
            f"dataset is {_shape(resolution, channels)}; fine-tuning needs the same resolution and channels "
            f"(`stylegan dataset --resolution {g.img_resolution}` re-creates the dataset)")
    c_dim = label_dim if cond else 0
    notes = [f"fine-tuning from {file.path} ({', '.join(file.names)}): the networks' shape comes from the file, "
             f"the training settings from the preset; fresh optimizers, kimg 0"]
    if g.c_dim != c_dim:
        if not fresh_labels:
            have = f"{g.c_dim} classes" if g.c_dim else "no labels"
            want = f"{c_dim} label dimensions" if c_dim else "no labels (unconditional)"
            raise TrainingSetupError(
                f"--resume {file.path}: its networks take {have}, this run {want}; add --fresh-labels to start "
                f"the label embedding afresh (every other weight is kept)")
        notes.append(f"--fresh-labels: the label pathway of G and D starts afresh ({g.c_dim} -> {c_dim} classes)")
    G = g.replace(c_dim=c_dim)
    if G.v3 is not None and cfg.G.v3 is not None and G.v3.magnitude_ema_beta != cfg.G.v3.magnitude_ema_beta:
        # A training setting stored with the layers: stylegan3's train.py derives it from this run's --batch.
        G = G.replace(v3=replace(G.v3, magnitude_ema_beta=cfg.G.v3.magnitude_ema_beta))
    if file.D is None:
        notes.append(f"{file.path} has no discriminator: D starts fresh (the preset's)")
        D = cfg.D.replace(c_dim=c_dim)
    else:
        D = file.D.replace(c_dim=c_dim)
    loss = cfg.loss
    if loss.cls_weight > 0 and D.aux_classes != c_dim:  # the official networks have no AC-GAN head
        notes.append("the file's D has no auxiliary classifier: cls_weight 0 (the official losses)")
        loss = replace(loss, cls_weight=0.0)
    # The official train.py scripts start a fine-tune thus (stylegan2-ada-pytorch and stylegan3):
    # ADA reacts 5x faster (ada_kimg 100), G_ema has no ramp-up (the file's G is already trained),
    # and stylegan3's R blur of D's inputs is off (the file's D saw sharp images).
    changes = []
    if cfg.augment.speed_kimg != 100:
        changes.append("ADA speed 100 kimg")
    if cfg.ema_rampup is not None:
        changes.append("no G_ema ramp-up")
    if loss.blur_init_sigma > 0:
        changes.append("no D input blur")
        loss = replace(loss, blur_init_sigma=0.0)
    if changes:
        notes.append(f"fine-tuning as the official --resume does: {', '.join(changes)}")
    return cfg.replace(G=G, D=D, loss=loss, cond=c_dim > 0, ema_rampup=None,
                       augment=replace(cfg.augment, speed_kimg=100.0)), tuple(notes)


__all__ = ["is_foreign", "ForeignNetworks", "read_foreign_networks", "transfer_config"]
