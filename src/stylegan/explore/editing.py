"""The explorer's Edit panel behind the API: sets of directions (SeFa on load, GANSpace on demand
with progress, uploaded files) and the ws offset an edit adds to the view.

The maths is the library's (`synth.sefa`, `synth.ganspace`, `synth.directions.edit_offset`), so
the page shows exactly what `stylegan edit` writes with the same file. SeFa needs only the weights
(and a few thousand mapping samples for its scales: `ExploreConfig.sefa_scale_samples`), so the set
`sefa` is made the first time it is asked for; GANSpace samples the mapping network, on its own
thread with a private copy of it, and reports its progress; a loaded file is checked like
`stylegan edit` checks it.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

from ..synth.directions import (DirectionError, Directions, check_network, edit_offset, network_sha256, range_spec,
                                read_directions)
from ..synth.ganspace import ganspace_directions
from ..synth.sefa import sefa_directions
from .errors import BadRequest, NotFound, ParamError
from .jobs import BackgroundJob, running_jobs

SEFA_ID = "sefa"           # the set computed on load
LISTED = 64                # components described per set (the page shows the first few as sliders)


@dataclass(frozen=True)
class DirectionSet:
    id: str
    label: str
    directions: Directions
    warning: str | None = None   # computed on another network (another snapshot, or an uploaded file)

    def summary(self, listed: int = LISTED) -> dict:
        d = self.directions
        k = min(listed, d.count)
        return {"id": self.id, "label": self.label, "method": d.provenance.method, "count": d.count,
                "layers": range_spec(d.layers), "value_name": d.value_name,
                "values": [float(v) for v in d.values[:k]], "scales": [float(s) for s in d.scales[:k]],
                "names": [d.name(i) for i in range(k)], "samples": d.provenance.samples,
                "date": d.provenance.date, "warning": self.warning}


class GanspaceJob(BackgroundJob):
    """GANSpace on a private copy of the mapping network, on its own thread. States: running ->
    done | cancelled (the samples so far) | error; the result is the Directions."""

    kind = "ganspace"

    def __init__(self, job_id: str, G, samples: int, network: str = ""):
        self.samples, self.network = samples, network
        self.G = copy.deepcopy(G)  # taken between renders by the caller; renders never race with it
        self.done = 0
        self.set_id: str | None = None  # its id among the explorer's sets once stored
        super().__init__(job_id)

    def status(self) -> dict:
        with self._lock:
            return {"id": self.id, "state": self.state, "done": self.done, "total": self.samples,
                    "error": self.error}

    def _progress(self, done: int, total: int) -> bool:
        with self._lock:
            self.done = done
        return not self.cancelled

    def _work(self) -> Directions:
        with torch.no_grad():
            return ganspace_directions(self.G, self.samples, network=self.network, progress=self._progress)


class DirectionStore:
    """The sets of one explorer by id ('sefa', 'g3', 's4', 'd5'), oldest first, at most `limit`
    besides 'sefa'; the GANSpace job. Ids come from the explorer's counter (`new_id`). Everything
    that reads G (SeFa, the network checks of `add`) runs on the render thread, between renders
    (which scale the noise strengths while they draw). At most `max_jobs` GANSpace threads are
    alive at once (the newest and cancelled ones still stopping: `jobs.running_jobs`)."""

    def __init__(self, new_id: Callable[[str], str], limit: int = 16, scale_samples: int = 2000, max_jobs: int = 3):
        self.new_id, self.limit, self.scale_samples, self.max_jobs = new_id, limit, scale_samples, max_jobs
        self.sets: OrderedDict[str, DirectionSet] = OrderedDict()
        self.jobs: dict[str, GanspaceJob] = {}
        self._started: list[GanspaceJob] = []  # whose threads may still run

    def add(self, d: Directions, prefix: str, label: str, G) -> DirectionSet:
        try:
            warning = check_network(d, G)
        except DirectionError as e:
            raise BadRequest(str(e)) from None
        s = DirectionSet(self.new_id(prefix), label, d, warning)
        self.sets[s.id] = s
        while len(self.sets) > self.limit + 1:
            oldest = next(k for k in self.sets if k != SEFA_ID)
            del self.sets[oldest]
        return s

    def ensure_sefa(self, G, network: str = "") -> DirectionSet:
        """The SeFa set of the current network (all style inputs), computed once (call on the render
        thread: it reads G)."""
        if SEFA_ID not in self.sets:
            d = sefa_directions(G, network=network, scale_samples=self.scale_samples)
            self.sets[SEFA_ID] = DirectionSet(SEFA_ID, "SeFa, all style inputs", d)
            self.sets.move_to_end(SEFA_ID, last=False)
        return self.sets[SEFA_ID]

    def sefa_on(self, G, layers: tuple[int, ...], network: str = "") -> DirectionSet:
        """SeFa of the chosen style inputs as a new set (render thread)."""
        if not layers or layers == tuple(range(G.num_ws)):
            return self.ensure_sefa(G, network)
        d = sefa_directions(G, layers, network=network, scale_samples=self.scale_samples)
        return self.add(d, "s", f"SeFa, style inputs {range_spec(layers)}", G)

    def upload(self, data: bytes, filename: str, G) -> DirectionSet:
        try:
            d = read_directions(data, filename or "the uploaded file")
        except DirectionError as e:
            raise BadRequest(str(e)) from None
        return self.add(d, "d", f"{d.provenance.method}: {filename or 'uploaded file'}", G)

    def network_changed(self, G) -> None:
        """After a snapshot switch: SeFa is recomputed when next asked for; the other sets stay,
        warned as computed on another network."""
        self.sets.pop(SEFA_ID, None)
        sha = network_sha256(G)
        for k, s in list(self.sets.items()):
            self.sets[k] = DirectionSet(s.id, s.label, s.directions, check_network(s.directions, G, sha))

    def get(self, set_id: str, G) -> DirectionSet:
        if set_id == SEFA_ID:
            return self.ensure_sefa(G)
        s = self.sets.get(set_id)
        if s is None:
            raise ParamError(f"dirs={set_id}: no such set of directions (computed and uploaded sets live only as "
                             f"long as the server)")
        return s

    def offset(self, set_id: str, edit: tuple[tuple[int, float], ...], layers: tuple[int, ...], G
               ) -> torch.Tensor | None:
        """The ws offset [num_ws, w_dim] of an edit ({component: strength} on `layers`, empty: the
        set's own), None when nothing is edited."""
        if not edit or all(a == 0 for _, a in edit):
            return None
        d = self.get(set_id, G).directions
        bad = [k for k, _ in edit if k >= d.count]
        if bad:
            raise ParamError(f"edit: component {bad[0]} out of range: set {set_id} has {d.count} (0..{d.count - 1})")
        return edit_offset(d, dict(edit), layers or None).to(G.device)

    def job(self, job_id: str) -> GanspaceJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no GANSpace job {job_id!r} (only the latest one is kept)")
        return job

    def start_ganspace(self, G, samples: int, network: str = "") -> GanspaceJob:
        """Cancel the running job and start another (render thread: it copies G); Busy (429) when
        `max_jobs` threads are still alive."""
        self._started = running_jobs(self._started, self.max_jobs, "GANSpace runs")
        for job in self.jobs.values():  # one at a time: a new one replaces the old
            job.cancel()
        job = GanspaceJob(self.new_id("j"), G, samples, network).start()
        self.jobs = {job.id: job}
        self._started.append(job)
        return job

    def job_status(self, job_id: str, G) -> dict:
        """A job's progress; once it has a result, also the id of its set (`dirs`), stored here on
        the event loop, never from the job's thread."""
        job = self.job(job_id)
        status = job.status()
        if status["state"] in ("done", "cancelled") and job.result is not None:
            if job.set_id is None:
                n = job.result.provenance.samples
                job.set_id = self.add(job.result, "g", f"GANSpace, {n:,} samples", G).id
            status["dirs"] = job.set_id
        return status

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel()


__all__ = ["SEFA_ID", "LISTED", "DirectionSet", "GanspaceJob", "DirectionStore"]
