"""A finished (or running) training run in two pictures: `progress.png` and `curves.png`.

`progress.png`: G_ema of every snapshot on the same latents (seeds 0..7, constant noise), one row
per snapshot, labelled with its kimg: what the network learned, and when (e.g. the early mode
collapse of small GANs, where each row shows one digit, and its end).
`curves.png`: the tick means of stats.jsonl over kimg (G and D losses, the R1 and path-length
penalties, the ADA probability) and, for runs on MNIST digits, the digit coverage of each snapshot
(`stylegan.metrics.digits`: entropy of the nearest-real-digit labels, digits with >= 3%).

    from stylegan.training.report import run_report
    report = run_report("runs/00000-mnist-cpu-demo")    # RunReport(progress, curves, digits)

`stylegan report RUN_DIR` is the command line; scripts/demo.sh calls it last.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data.dataset import open_dataset
from ..io.checkpoint import Checkpoint, read_checkpoint
from ..io.images import to_uint8
from ..metrics.digits import DigitDiversity, RealDigits, digit_diversity
from ..synth.sample import z_from_seeds
from .snapshot import list_snapshots

__all__ = ["RunReport", "ReportError", "run_report", "snapshot_kimg", "is_digit_data"]

DIGIT_DATA = ("builtin:mnist",)


class ReportError(Exception):
    """The run directory cannot be reported on (missing, or no snapshot / statistics yet)."""


@dataclass(frozen=True)
class RunReport:
    progress: Path
    curves: Path
    digits: list[tuple[float, DigitDiversity]] = field(default_factory=list)  # (kimg, measure) per snapshot

    @property
    def final_digits(self) -> Optional[DigitDiversity]:
        return self.digits[-1][1] if self.digits else None


def snapshot_kimg(ckpt: Checkpoint) -> float:
    """kimg of a training snapshot, as it records it (names counted kimg before they counted images)."""
    if "kimg" not in ckpt.info:
        raise ReportError(f"{ckpt.path} is not a training snapshot (no kimg in its info)")
    return float(ckpt.info["kimg"])


def is_digit_data(spec: Optional[str]) -> bool:
    return spec in DIGIT_DATA


def _run_config(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _stats(run_dir: Path) -> list[dict]:
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a crash: skip it, keep the rest
            continue
    return out


@torch.no_grad()
def _progress_rows(snapshots: Sequence[Path], seeds: Sequence[int], device: torch.device, reals: Optional[RealDigits]
                   ) -> tuple[list[float], list[np.ndarray], list[tuple[float, DigitDiversity]]]:
    """Per snapshot: its kimg, a row of G_ema images [H, n*W, C] uint8 (and its digit measure)."""
    kimgs, rows, digits = [], [], []
    for snap in snapshots:
        ckpt = read_checkpoint(snap)
        kimg = snapshot_kimg(ckpt)
        G = ckpt.build("G_ema", device)
        z = z_from_seeds(seeds, G.z_dim).to(device)
        c = torch.eye(G.c_dim, device=device)[torch.arange(len(seeds)) % G.c_dim] if G.c_dim > 0 else None
        img = to_uint8(G(z, c, noise_mode="const")).numpy()  # [n, H, W, C]
        kimgs.append(kimg)
        rows.append(np.concatenate(list(img), axis=1))
        if reals is not None and G.img_channels == 1 and G.img_resolution ** 2 == reals.images.shape[1]:
            digits.append((kimg, digit_diversity(G, reals)))
    return kimgs, rows, digits


def _figure(width: float, height: float):
    """A matplotlib Figure drawn off-screen (no pyplot, so no backend or other global state is touched)."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise ReportError("stylegan report draws with matplotlib: pip install 'stylegan[data]' "
                          "(or matplotlib)") from None
    return Figure(figsize=(width, height), dpi=100)


def _plot_progress(rows: list[np.ndarray], labels: list[str], path: Path) -> None:
    h = rows[0].shape[0]
    grid = np.concatenate(rows, axis=0)
    cmap = "gray" if grid.shape[2] == 1 else None
    fig = _figure(1.2 + grid.shape[1] / 40, 0.4 + grid.shape[0] / 40)
    ax = fig.subplots()
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([h * (i + 0.5) for i in range(len(rows))], labels, fontsize=8)
    ax.set_xticks([])
    ax.set_title("G_ema, same latents at every snapshot", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def _kimg_label(kimg: float) -> str:
    return f"{kimg:.0f} kimg" if kimg >= 1 else f"{kimg:.2g} kimg"  # 8.016 -> 8 (ticks end a step late)


def _mean(rec: dict, key: str) -> float:
    """The mean of a stats.jsonl entry ({"num", "mean", "std"}, the official layout); NaN if absent."""
    v = rec.get(key)
    return float(v["mean"]) if isinstance(v, dict) and v.get("num", 0) else math.nan


def _plot_curves(stats: list[dict], digits: list[tuple[float, DigitDiversity]], path: Path) -> None:
    kimg = [_mean(r, "Progress/kimg") for r in stats]
    augment = [_mean(r, "Progress/augment") for r in stats]
    has_aug = any(a > 0 for a in augment if not math.isnan(a))
    has_cls = any(not math.isnan(_mean(r, "Loss/D/cls")) for r in stats)
    panels = 2 + has_aug + has_cls + bool(digits)
    fig = _figure(7, 2.1 * panels)
    axes = list(fig.subplots(panels, 1, sharex=True))
    ax = axes[0]
    ax.plot(kimg, [_mean(r, "Loss/G/loss") for r in stats], label="G loss")
    ax.plot(kimg, [_mean(r, "Loss/D/loss") for r in stats], label="D loss")
    ax.set_ylabel("loss (tick mean)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, name in (("Loss/r1_penalty", "R1 penalty"), ("Loss/pl_penalty", "path-length penalty")):
        ys = [_mean(r, key) for r in stats]
        if any(not math.isnan(y) for y in ys):
            ax.plot([k for k, y in zip(kimg, ys) if not math.isnan(y)], [y for y in ys if not math.isnan(y)],
                    label=name, marker=".")
    ax.set_yscale("log")
    ax.set_ylabel("penalty")
    ax.legend(fontsize=8)
    rest = axes[2:]
    if has_aug:
        ax = rest.pop(0)
        ax.plot(kimg, augment, color="tab:green")
        ax.set_ylabel("augment p")
        ax.set_ylim(bottom=0)
    if has_cls:  # the auxiliary classifier (AC-GAN): D's accuracy on reals, both cross-entropies
        ax = rest.pop(0)
        ax.plot(kimg, [_mean(r, "Loss/D/cls") for r in stats], label="CE of D on reals")
        ax.plot(kimg, [_mean(r, "Loss/G/cls") for r in stats], label="CE of D on G's fakes (G's term)")
        ax.plot(kimg, [_mean(r, "Loss/D/cls_accuracy") for r in stats], label="D's accuracy on reals",
                linestyle="--")
        ax.set_ylabel("classifier")
        ax.legend(fontsize=8)
    if digits:
        ax = rest.pop(0)
        dk = [k for k, _ in digits]
        ax.plot(dk, [d.entropy for _, d in digits], marker="o", label="entropy of digit labels")
        if digits[0][1].agreement is not None:
            ax.plot(dk, [2.3 * d.agreement for _, d in digits], marker="^", linestyle=":",
                    label="drawn as asked (x 2.3: 2.3 = all)")
        ax.axhline(math.log(10), color="gray", linestyle=":", linewidth=1)
        ax.text(dk[0], math.log(10), " all ten equally (2.30)", va="bottom", fontsize=7, color="gray")
        ax.set_ylim(0, 2.5)
        ax.set_ylabel("digit entropy")
        ax2 = ax.twinx()
        ax2.plot(dk, [d.digits for _, d in digits], color="tab:red", marker="s", linestyle="--",
                 label="digits with >= 3%")
        ax2.set_ylim(0, 10.5)
        ax2.set_ylabel("digits drawn", color="tab:red")
        lines = [ln for ln in ax.get_lines() + ax2.get_lines() if not ln.get_label().startswith("_")]
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower right")
    axes[-1].set_xlabel("kimg (thousands of real images shown)")
    fig.tight_layout()
    fig.savefig(path)


def run_report(run_dir: str | Path, *, seeds: Sequence[int] = range(8), digits: Optional[bool] = None,
               device: str | torch.device = "cpu", max_rows: int = 16) -> RunReport:
    """Write progress.png and curves.png into run_dir -> RunReport.

    digits: measure digit coverage per snapshot (None: when the run trained on builtin:mnist).
    max_rows: at most this many snapshots in progress.png (evenly spaced, the last always).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"no such run directory: {run_dir}")
    snapshots = list_snapshots(run_dir)  # oldest first
    if not snapshots:
        raise ReportError(f"{run_dir} has no snapshot-*.safetensors yet")
    if len(snapshots) > max_rows:
        keep = np.unique(np.linspace(0, len(snapshots) - 1, max_rows).round().astype(int))
        snapshots = [snapshots[i] for i in keep]
    data = _run_config(run_dir).get("run", {}).get("data")
    if digits is None:
        digits = is_digit_data(data)
    reals = None
    if digits:
        reals = RealDigits.from_dataset(open_dataset(DIGIT_DATA[0], use_labels=True))
    kimgs, rows, measures = _progress_rows(snapshots, list(seeds), torch.device(device), reals)
    progress = run_dir / "progress.png"
    _plot_progress(rows, [_kimg_label(k) for k in kimgs], progress)
    curves = run_dir / "curves.png"
    _plot_curves(_stats(run_dir), measures, curves)
    return RunReport(progress=progress, curves=curves, digits=measures)
