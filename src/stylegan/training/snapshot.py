"""Training snapshots: what is saved besides the networks, file names, and exact resume.

A snapshot holds G, D and G_ema (with their configs) and the training state: optimizer moments, the
path-length running mean, the ADA controller, the progress counters and every RNG state. Restoring
all of it makes a resumed run compute exactly what the uninterrupted run computes: every tensor of
the final snapshot matches (tests/test_training.py). Snapshots are named by the number of real images
shown, so ticks shorter than 1 kimg never overwrite one another.
"""
from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..io.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from ..io.serialize import to_dict
from .config import TrainingConfig
from .errors import TrainingSetupError

STATE_FORMAT = "stylegan-training-state"
STATE_VERSION = 1
SNAPSHOT_GLOB = "snapshot-*.safetensors"
_SNAPSHOT_NUMBER = re.compile(r"^snapshot-(\d+)\.safetensors$")


@dataclass
class StepCounters:
    """Where the minibatches stand; owned by `Stepper` (the math advances them, nothing else)."""

    cur_nimg: int = 0  # real images shown so far (all processes)
    batch_idx: int = 0  # minibatches so far
    data_pos: int = 0  # position in the global real-image stream
    growth_stage: int = -1  # progressive growing: stage index of the last minibatch (-1: none yet)


@dataclass(frozen=True)
class TrainingState:
    """The progress record of a snapshot: the stepper's counters and the run driver's tick counters.

    A value, composed when a snapshot is written (`Trainer.state`) and split again on resume; the
    live counters have one owner each (`Stepper.counters`, the driver's ticks, the divergence
    monitor's bad ticks)."""

    cur_nimg: int = 0  # real images shown so far (all processes)
    cur_tick: int = 0  # index of the tick in progress
    batch_idx: int = 0  # minibatches so far
    tick_start_nimg: int = 0
    data_pos: int = 0  # position in the global real-image stream
    growth_stage: int = -1  # progressive growing: stage index of the last minibatch (-1: none yet)
    bad_ticks: int = 0  # consecutive ticks with non-finite losses
    last_snapshot: Optional[str] = None

    @property
    def counters(self) -> StepCounters:
        return StepCounters(cur_nimg=self.cur_nimg, batch_idx=self.batch_idx, data_pos=self.data_pos,
                            growth_stage=self.growth_stage)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingState":
        d = dict(d)
        if "phase_index" in d:  # snapshots written before progressive "phases" were called stages
            d.setdefault("growth_stage", d.pop("phase_index"))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def snapshot_name(cur_nimg: int) -> str:
    """snapshot-000120000.safetensors after 120 kimg: the image count, so every tick's name is new."""
    return f"snapshot-{int(cur_nimg):09d}.safetensors"


def fakes_name(cur_nimg: int) -> str:
    return f"fakes{int(cur_nimg):09d}.png"


def list_snapshots(run_dir: str | Path) -> tuple[Path, ...]:
    """The snapshots of `run_dir`, oldest first.

    Sorted by the number in the name, not the name itself, so any zero padding orders correctly
    (runs written before snapshots were named by image count used 6-digit kimg numbers; one run
    uses one scheme)."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob(SNAPSHOT_GLOB)
             if p.is_file() and (m := _SNAPSHOT_NUMBER.match(p.name))]
    return tuple(p for _, p in sorted(found))


def latest_snapshot(run_dir: str | Path) -> Optional[Path]:
    """The newest snapshot of `run_dir` (None if it has none)."""
    snaps = list_snapshots(run_dir)
    return snaps[-1] if snaps else None


def newest_intact_snapshot(run_dir: str | Path) -> tuple[Optional[Path], tuple[str, ...]]:
    """The newest snapshot of `run_dir` that reads back intact (checksum verified), and one note for
    each newer snapshot skipped as damaged (a crash mid-copy, a flipped bit, a truncated file)."""
    notes = []
    for snap in reversed(list_snapshots(run_dir)):
        try:
            read_checkpoint(snap)
        except CheckpointError as e:
            notes.append(f"warning: skipped a damaged snapshot: {e}")
            continue
        return snap, tuple(notes)
    return None, tuple(notes)


# ----------------------------------------------------------------------------------- RNG state


def seed_host_rngs(seed: int, rank: int) -> None:
    """Seed numpy's and Python's global RNGs from (seed, rank) at the start of a run.

    Nothing in the loop draws from them (torch is re-seeded per round), but they are part of the
    snapshot, so they must be a function of the run for a resumed run to end bit-identical."""
    np.random.seed([seed & 0xFFFFFFFF, rank])
    random.seed(seed * 1_000_003 + rank)


def rng_state() -> dict:
    np_state = np.random.get_state()
    py = random.getstate()
    out = {"torch": torch.get_rng_state(),
           "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                     "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
           "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
           "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() and torch.cuda.is_initialized() else None}
    return out


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"].to(torch.uint8))
    n = s["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = s["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if s.get("cuda") and torch.cuda.is_available():
        states = [t.to(torch.uint8) for t in s["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ----------------------------------------------------------------------------------- files


@dataclass
class TrainingSnapshotState:
    """Everything a snapshot stores besides the networks."""

    progress: TrainingState
    optimizers: dict[str, dict]  # "G_opt" / "D_opt" -> optimizer.state_dict()
    pl_mean: torch.Tensor  # scalar float32: the path-length running mean
    augment: Optional[dict]  # AdaController.state_dict(), None without augmentation
    rng: dict  # rng_state()

    def to_state(self) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "progress": self.progress.to_dict(),
                "pl_mean": self.pl_mean.detach().cpu(), "augment": self.augment, "rng": self.rng,
                **self.optimizers}

    @classmethod
    def from_state(cls, state: dict, optimizer_keys: tuple[str, ...]) -> "TrainingSnapshotState":
        return cls(progress=TrainingState.from_dict(state["progress"]),
                   optimizers={k: state[k] for k in optimizer_keys}, pl_mean=state["pl_mean"],
                   augment=state.get("augment"), rng=state["rng"])


def write_snapshot(path: Path, modules: dict[str, torch.nn.Module], state: TrainingSnapshotState,
                   info: dict[str, Any]) -> None:
    """Networks + training state, written atomically (a reader never sees half a snapshot)."""
    save_checkpoint(path, modules, state=state.to_state(), info={"kind": "training-snapshot", **info})


@dataclass
class Resume:
    """What `--resume FILE` provides: weights, and the training state when the file has one."""

    path: str
    weights: dict[str, dict[str, torch.Tensor]]  # "G" / "D" / "G_ema" -> state dict (those present)
    state: Optional[TrainingSnapshotState]  # None: a weights-only checkpoint (fresh optimizers, kimg 0)
    config_changed: bool  # the snapshot was trained with another config (not an exact continuation)
    partial: bool = False  # --fresh-labels: weights missing from the file or shaped otherwise stay as initialised

    @property
    def note(self) -> str:
        if self.state is None:
            return (f"resumed weights {sorted(self.weights)} from {self.path} "
                    f"(no training state: fresh optimizers, kimg 0)")
        p = self.state.progress
        return (f"resumed training state from {self.path} at kimg {p.cur_nimg / 1000:.3f} "
                f"(tick {p.cur_tick}, minibatch {p.batch_idx})")


def read_resume(path: str | Path, cfg: TrainingConfig, optimizer_keys: tuple[str, ...],
                fresh_labels: bool = False) -> Resume:
    """Read a snapshot (or any checkpoint of ours with G, D or G_ema) to continue training `cfg`, or
    a foreign network file (official pickle, rosinality .pt) to fine-tune from (training.transfer)."""
    from ..io.load import load_all, sniff

    if sniff(path) != "safetensors":
        try:
            nets = load_all(path)
        except (CheckpointError, ValueError) as e:
            raise TrainingSetupError(f"--resume {path}: {e}") from None
        weights = {name: m.state_dict() for name, m in nets.items() if name in ("G", "D", "G_ema")}
        return Resume(str(path), weights, None, False, partial=fresh_labels)
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as e:
        raise TrainingSetupError(str(e)) from None
    weights = {name: ckpt.state_dict(name) for name in ("G", "D", "G_ema") if name in ckpt.modules}
    if not weights:
        raise TrainingSetupError(f"{path} holds none of the networks G, D, G_ema")
    state = ckpt.state
    if not (isinstance(state, dict) and state.get("format") == STATE_FORMAT):
        return Resume(str(path), weights, None, False)
    if int(state.get("version", 0)) > STATE_VERSION:
        raise TrainingSetupError(f"{path}: training state version {state['version']} is newer than this code")
    changed = False
    saved_cfg = ckpt.info.get("training")
    if saved_cfg is not None:
        a, b = dict(saved_cfg), to_dict(cfg)
        for k in ("total_kimg", "snap", "kimg_per_tick", "metrics"):
            a.pop(k, None), b.pop(k, None)
        changed = a != b
    return Resume(str(path), weights, TrainingSnapshotState.from_state(state, optimizer_keys), changed)


__all__ = ["STATE_FORMAT", "STATE_VERSION", "SNAPSHOT_GLOB", "StepCounters", "TrainingState", "snapshot_name", "fakes_name",
           "list_snapshots", "latest_snapshot", "newest_intact_snapshot", "seed_host_rngs", "rng_state", "set_rng_state", "TrainingSnapshotState",
           "write_snapshot", "Resume", "read_resume"]
