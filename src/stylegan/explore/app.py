"""The explorer's ASGI app: `create_app(network, device=...)` -> a Starlette application.

Routes (all state travels in the query string, see `params.View`; errors are JSON {"error": ...}):
    GET  /                          the page (static/index.html; no CDN, works offline)
    GET  /api/network               network panel: kind, resolution, dims, params, snapshots
    POST /api/network?snapshot=N    switch to another snapshot of the run directory
    GET  /api/image                 the current image (PNG or JPEG; download=1: as an attachment)
    GET  /api/mixing                first source | second source | mix (StyleGAN Fig. 3)
    GET  /api/variation             random-noise draws | per-pixel std map (StyleGAN Fig. 4)
    GET  /api/animation?t=...       one frame of the seed loop (slerp in Z or lerp in W)
    GET  /api/w.npz                 the current ws for `stylegan generate --projected-w`
    POST /api/w                     upload a projected_w.npz -> {"w": id}
    POST /api/project               upload an image, start a projection -> {"job": id}
    GET  /api/project/ID            progress; /preview: target | current; POST /cancel
    GET  /api/stats                 renders done and stale requests dropped
Image routes called with `client=<id>` drop stale requests per (client, route), see `render_queue`.
"""
from __future__ import annotations

import copy
import itertools
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..device import resolve_device
from ..io.load import load
from ..nn import WeightCache, weight_cache
from ..synth.projector import Distance, resolve_distance
from .network import NetworkSource, network_info, network_source
from .params import MAX_SEED, ParamError, View, parse_view
from .projection import ProjectionJob, ProjectionRequest
from .render_queue import DROPPED, RenderQueue
from .render import (decode_upload, decode_w, encode, encode_w, render_animation, render_image,
                     render_mixing, render_variation, view_ws)

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ExploreConfig:
    """Limits and projection defaults of one explorer."""

    max_upload_bytes: int = 25 * 2 ** 20   # uploads larger than this are refused (413)
    max_upload_pixels: int = 40_000_000    # decoded images larger than this are refused (400)
    max_stored_w: int = 64                 # uploaded / projected latents kept (oldest dropped)
    project_steps: int = 200               # default steps of a projection started from the page
    max_project_steps: int = 5000
    w_avg_samples: int = 10000             # projector's W statistics (official: 10k)
    preview_every: int = 5                 # projection preview every N steps


class UploadTooLarge(ValueError):
    pass


class NotFound(KeyError):
    pass


class Explorer:
    """The state behind one app: the network, its source, stored latents, projection jobs."""

    def __init__(self, G: torch.nn.Module, device: torch.device, source: NetworkSource | None,
                 config: ExploreConfig, distance: Distance | None):
        self.G, self.device, self.source, self.config = G, device, source, config
        self.snapshot = source.snapshots[-1].name if source and source.is_run else None
        self.queue = RenderQueue()
        self.weights = WeightCache()  # derived weights of G, reused across renders (stylegan.nn.weight_cache)
        self.stored: OrderedDict[str, torch.Tensor] = OrderedDict()  # id -> ws [1, num_ws, w_dim]
        self.jobs: dict[str, ProjectionJob] = {}
        self._ids = itertools.count(1)
        self._distance = distance
        self._distance_lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        """'u7', 'p8': ids the server gives out (the browser never sends a path, only these)."""
        return f"{prefix}{next(self._ids)}"

    def store_w(self, ws: torch.Tensor, prefix: str) -> str:
        wid = self.new_id(prefix)
        self.stored[wid] = ws.detach().cpu()
        while len(self.stored) > self.config.max_stored_w:
            self.stored.popitem(last=False)
        return wid

    def stored_w(self, wid: str | None) -> torch.Tensor | None:
        if wid is None:
            return None
        ws = self.stored.get(wid)
        if ws is None:
            raise ParamError(f"w={wid}: no such latent (uploaded and projected latents live only as long "
                             f"as the server)")
        if ws.shape[1:] != (self.G.num_ws, self.G.w_dim):
            raise ParamError(f"w={wid} has shape {tuple(ws.shape)}; this network needs "
                             f"[1, {self.G.num_ws}, {self.G.w_dim}]")
        return ws

    def distance(self) -> Distance:
        with self._distance_lock:
            if self._distance is None:
                self._distance = resolve_distance(device=self.device)
            return self._distance

    def info(self) -> dict:
        name = "(in-memory network)" if self.source is None else \
            (self.snapshot if self.snapshot else self.source.path.name)
        info = network_info(self.G, name)
        info["device"] = str(self.device)
        info["run"] = self.source.path.name if self.source and self.source.is_run else None
        info["snapshots"] = [p.name for p in self.source.snapshots] if self.source else []
        info["snapshot"] = self.snapshot
        return info

    def switch_snapshot(self, name: str) -> None:
        if self.source is None or not self.source.is_run:
            raise ParamError("snapshot: this network is a single file, not a run directory")
        try:
            path = self.source.snapshot(name)
        except ValueError as e:
            raise ParamError(f"snapshot: {e}") from None
        self.G = load(path, device=self.device)
        self.snapshot = name

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel()
        self.queue.shutdown()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"upload of {int(declared) / 2 ** 20:.1f} MB exceeds the limit of "
                             f"{limit / 2 ** 20:.0f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"upload exceeds the limit of {limit / 2 ** 20:.0f} MB")
        chunks.append(chunk)
    if size == 0:
        raise ParamError("the upload is empty")
    return b"".join(chunks)


def _int_param(request: Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(key, "").strip()
    if not raw:
        return default
    if not raw.lstrip("-").isdigit() or not lo <= int(raw) <= hi:
        raise ParamError(f"{key} must be an integer in {lo}..{hi}, got {raw!r}")
    return int(raw)


def _routes(ex: Explorer) -> list:
    Draw = Callable[[torch.nn.Module, View, "torch.Tensor | None"], np.ndarray]

    def image_route(draw: Draw, name: str):
        async def endpoint(request: Request) -> Response:
            view = parse_view(request.query_params, ex.G)
            client = request.query_params.get("client", "").strip()
            key = f"{client}/{name}" if client else None

            def job() -> tuple[bytes, float]:
                start = time.perf_counter()
                with weight_cache(ex.weights):
                    img = draw(ex.G, view, ex.stored_w(view.w_id))
                return encode(img, view.fmt, view.quality), (time.perf_counter() - start) * 1e3

            result = await ex.queue.run(job, key)
            if result is DROPPED:
                return Response(status_code=204, headers={"X-Stale": "1"})
            data, ms = result
            headers = {"X-Render-Ms": f"{ms:.2f}", "Cache-Control": "no-store"}
            if request.query_params.get("download") == "1":
                stem = view.w_id or f"seed{view.seed:04d}"
                headers["Content-Disposition"] = f'attachment; filename="{name}-{stem}.{view.fmt.replace("jpeg", "jpg")}"'
            return Response(data, media_type=f"image/{view.fmt}", headers=headers)
        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def network(request: Request) -> Response:
        if request.method == "POST":
            name = request.query_params.get("snapshot", "")
            await ex.queue.run(lambda: ex.switch_snapshot(name))
        return JSONResponse(ex.info())

    async def w_npz(request: Request) -> Response:
        view = parse_view(request.query_params, ex.G)
        ws = await ex.queue.run(lambda: view_ws(ex.G, view, ex.stored_w(view.w_id)))
        stem = view.w_id or f"seed{view.seed:04d}"
        return Response(encode_w(ws), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{stem}-w.npz"'})

    async def upload_w(request: Request) -> Response:
        ws = decode_w(await _read_body(request, ex.config.max_upload_bytes), ex.G)
        return JSONResponse({"w": ex.store_w(ws, "u")})

    async def start_projection(request: Request) -> Response:
        cfg = ex.config
        view = parse_view(request.query_params, ex.G)  # class, and the same validation as renders
        req = ProjectionRequest(
            steps=_int_param(request, "steps", cfg.project_steps, 1, cfg.max_project_steps),
            seed=_int_param(request, "proj_seed", 303, 0, MAX_SEED),
            w_plus=request.query_params.get("w_plus", "0") in ("1", "true", "on"),
            class_idx=view.class_idx, w_avg_samples=cfg.w_avg_samples, preview_every=cfg.preview_every)
        data = await _read_body(request, cfg.max_upload_bytes)
        target = decode_upload(data, ex.G, cfg.max_upload_pixels)
        for job in ex.jobs.values():  # one projection at a time: a new one replaces the old
            job.cancel()
        G = await ex.queue.run(lambda: copy.deepcopy(ex.G))  # a private copy, taken between renders
        distance = await ex.queue.run(ex.distance)
        job_id = ex.new_id("j")
        ex.jobs = {job_id: ProjectionJob(job_id, G, target, req, distance).start()}
        return JSONResponse({"job": job_id})

    def job_of(request: Request) -> ProjectionJob:
        job = ex.jobs.get(request.path_params["job"])
        if job is None:
            raise NotFound(f"no projection {request.path_params['job']!r} (only the latest one is kept)")
        return job

    async def projection_status(request: Request) -> Response:
        job = job_of(request)
        status = job.status()
        # The result joins the stored latents here, on the event loop, never from the job's thread.
        if status["state"] in ("done", "cancelled") and job.result is not None:
            if job.w_id is None:
                job.w_id = ex.store_w(job.result, "p")
            status["w"] = job.w_id
        return JSONResponse(status)

    async def projection_preview(request: Request) -> Response:
        return Response(encode(job_of(request).preview(), "png"), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    async def projection_cancel(request: Request) -> Response:
        job = job_of(request)
        job.cancel()
        return JSONResponse(job.status())

    async def stats(request: Request) -> Response:
        return JSONResponse({"renders": ex.queue.renders, "dropped": ex.queue.dropped})

    return [
        Route("/", index),
        Route("/api/network", network, methods=["GET", "POST"]),
        Route("/api/image", image_route(render_image, "image")),
        Route("/api/mixing", image_route(render_mixing, "mixing")),
        Route("/api/variation", image_route(render_variation, "variation")),
        Route("/api/animation", image_route(lambda G, v, w: render_animation(G, v), "animation")),
        Route("/api/w.npz", w_npz),
        Route("/api/w", upload_w, methods=["POST"]),
        Route("/api/project", start_projection, methods=["POST"]),
        Route("/api/project/{job}", projection_status),
        Route("/api/project/{job}/preview", projection_preview),
        Route("/api/project/{job}/cancel", projection_cancel, methods=["POST"]),
        Route("/api/stats", stats),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(network: str | os.PathLike | torch.nn.Module, device: str | torch.device = "auto", *,
               config: ExploreConfig | None = None, distance: Distance | None = None) -> Starlette:
    """The explorer for `network` (a checkpoint, an official .pkl, a run directory, or a loaded
    Generator) rendering on `device` ('auto': CUDA, then MPS, then CPU). `distance` is the
    projector's (default: resolved on the first projection, see synth.projector.resolve_distance).
    Serve it with any ASGI server (`stylegan explore` uses uvicorn) or test it with a TestClient."""
    dev = resolve_device(device)
    if isinstance(network, torch.nn.Module):
        source, G = None, network.to(dev).eval().requires_grad_(False)
    else:
        source = network_source(network)
        G = load(source.snapshots[-1] if source.is_run else source.path, device=dev)
    ex = Explorer(G, dev, source, config or ExploreConfig(), distance)

    @asynccontextmanager
    async def lifespan(app):
        yield
        ex.shutdown()

    app = Starlette(routes=_routes(ex), lifespan=lifespan, exception_handlers={
        ValueError: lambda request, e: _error(400, str(e)),  # the library's errors for bad input
        UploadTooLarge: lambda request, e: _error(413, str(e)),
        NotFound: lambda request, e: _error(404, e.args[0]),
    })
    app.state.explorer = ex
    return app


__all__ = ["create_app", "ExploreConfig", "Explorer"]
