"""A projection running beside the explorer: live progress and preview, cancellable.

`synth.projector.project` does the optimisation; its step callback records the distance, renders a
preview (target | current w) every few steps, and stops the run when the user cancels. The job runs
on its own thread so the explorer stays responsive; it works on its own copy of the network, so the
renders of the main thread never race with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..synth.projector import Distance, project, projection_frames
from .jobs import BackgroundJob


@dataclass(frozen=True)
class ProjectionRequest:
    steps: int = 200
    seed: int = 303
    w_plus: bool = False
    class_idx: int | None = None
    w_avg_samples: int = 10000
    preview_every: int = 5


class ProjectionJob(BackgroundJob):
    """One projection on a private copy of G. States: running -> done | cancelled | error; the
    result is the final ws [1, num_ws, w_dim] (CPU)."""

    kind = "project"

    def __init__(self, job_id: str, G, target: torch.Tensor, request: ProjectionRequest,
                 distance: Distance):
        self.G, self.target, self.request, self.distance = G, target, request, distance
        self.step = 0                       # steps done
        self.dists: list[float] = []
        self.w_id: str | None = None             # the result's id among the explorer's stored latents
        self._preview: np.ndarray | None = None
        super().__init__(job_id)

    def start(self) -> "ProjectionJob":
        with torch.no_grad():
            self._preview = next(projection_frames(self.G, self.target, self._w_avg()))
        return super().start()

    def preview(self) -> np.ndarray | None:
        """uint8 [R, 2 R, C]: target | the latest previewed step."""
        with self._lock:
            return self._preview

    def status(self) -> dict:
        with self._lock:
            return {"id": self.id, "state": self.state, "step": self.step, "steps": self.request.steps,
                    "dist": self.dists[-1] if self.dists else None, "dists": list(self.dists[-500:]),
                    "error": self.error}

    def _w_avg(self) -> torch.Tensor:
        return self.G.w_avg.detach().reshape(1, 1, -1).repeat(1, self.G.num_ws, 1).cpu()  # [1, L, C]

    def _on_step(self, step: int, ws: torch.Tensor, dist: float) -> bool:
        last = step + 1 == self.request.steps
        preview = None
        if step % self.request.preview_every == 0 or last or self.cancelled:
            preview = next(projection_frames(self.G, self.target, ws))
        with self._lock:
            self.step, self.dists = step + 1, self.dists + [dist]
            if preview is not None:
                self._preview = preview
        return not self.cancelled

    def _work(self) -> torch.Tensor:
        r = self.request
        ws_steps, _ = project(self.G, self.target, num_steps=r.steps, w_plus=r.w_plus, distance=self.distance,
                              seed=r.seed, class_idx=r.class_idx, w_avg_samples=r.w_avg_samples,
                              step_callback=self._on_step)
        return ws_steps[-1:].clone()


__all__ = ["ProjectionRequest", "ProjectionJob"]
