"""`stylegan` command line: one thin module per subcommand, imported only when used.

Each module in this package named in `_COMMANDS` exposes a `click.Command` called `command`.
Lazy import keeps `stylegan --help` fast and lets a subcommand fail on a missing optional
dependency without breaking the others.
"""
from __future__ import annotations

import importlib

import click

_COMMANDS = {
    "dataset": "Convert images into a training dataset (zip of PNGs + dataset.json).",
    "train": "Train a StyleGAN / StyleGAN2 network.",
    "generate": "Generate images from a network.",
    "mix": "Style-mixing grid (StyleGAN Fig. 3).",
    "figures": "The papers' figures: noise variation, noise layers, truncation, uncurated.",
    "video": "Latent interpolation video (slerp in Z, lerp in W).",
    "project": "Project a real image into W (or W+).",
    "directions": "Find edit directions in W: SeFa, GANSpace, or from labels (InterFaceGAN).",
    "edit": "Edit seeds or a projected w along directions: a grid of strengths, or a video sweep.",
    "metrics": "Compute FID, KID, precision/recall, IS, PPL, linear separability.",
    "convert": "Convert official NVIDIA pickles and rosinality checkpoints (to ours, or ours to rosinality).",
    "report": "Progress grid and curves of a training run (and how many MNIST digits it draws).",
    "info": "Print a checkpoint's config and parameter counts.",
    "export": "Export a generator to ONNX (truncation and noise fixed at export time).",
    "explore": "Local web explorer: seeds, truncation, mixing, noise, loops, projection.",
    "selftest": "Check this installation on a device: official parity, training, fast paths, speed.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        try:
            module = importlib.import_module(f"stylegan.cli.{name.replace('-', '_')}")
        except ModuleNotFoundError as e:
            if e.name == f"stylegan.cli.{name}":
                return None
            raise
        return module.command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stylegan")
def main() -> None:
    """StyleGAN and StyleGAN2 in pure PyTorch."""


__all__ = ["main"]
