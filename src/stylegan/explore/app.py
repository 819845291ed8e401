"""The explorer's ASGI app: `create_app(network, device=...)` -> a Starlette application.

The API is the table `ROUTES` at the end of this module: one (method, path, handler) row per
endpoint, each handler a small function of (Explorer, Request) whose docstring says what it answers
(docs/explore.md shows the table; a test keeps the two equal). All state travels in the query
string (see `params.View`); image routes called with `client=<id>` drop stale requests per
(client, route), see `render_queue`.

Errors are JSON {"error": ...}. A `BadRequest` (errors.py: a malformed parameter or upload, an
unknown id) is the client's mistake and is answered with its status and message. Anything else is a
bug or a fault of the server: it is answered 500 with a generic message, its traceback goes to the
server's log, and the server keeps serving.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator, NamedTuple

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..device import resolve_device
from ..io.load import load
from ..nn import WeightCache, weight_cache
from ..synth.directions import directions_bytes
from ..synth.projector import Distance, resolve_distance
from .editing import DirectionStore
from .errors import BadRequest, Busy, NotFound, ParamError, RequestTimeout
from .jobs import running_jobs
from .network import NetworkSource, network_info, network_source
from .params import (DEFAULT_CLASS, EDIT_SLIDER_RANGE, View, page_defaults, parse_directions_request, parse_projection,
                     parse_view)
from .projection import ProjectionJob, ProjectionRequest
from .render_queue import DROPPED, RenderQueue, client_gone
from .render import (decode_upload, decode_w, encode, encode_w, render_animation, render_equivariance,
                     render_image, render_mixing, render_variation, view_ws)
from .uploads import UploadSlots, read_body

STATIC = Path(__file__).parent / "static"
INTERNAL_ERROR = "internal error: the server could not answer this request (its log has the details)"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExploreConfig:
    """Limits and projection defaults of one explorer."""

    max_upload_bytes: int = 25 * 2 ** 20   # uploads larger than this are refused (413)
    max_upload_pixels: int = 40_000_000    # decoded images larger than this are refused (400)
    max_stored_w: int = 64                 # uploaded / projected latents kept (oldest dropped)
    project_steps: int = ProjectionRequest.steps  # default steps of a projection started from the page
    max_project_steps: int = 5000
    w_avg_samples: int = ProjectionRequest.w_avg_samples  # projector's W statistics (official: 10k)
    preview_every: int = ProjectionRequest.preview_every  # projection preview every N steps
    ganspace_samples: int = 100_000        # default W samples of a GANSpace run started from the page
    sefa_scale_samples: int = 2000         # W samples for SeFa's scales (std along each; +-1.6%): fast on load
    max_ganspace_samples: int = 2_000_000
    max_concurrent_uploads: int = 4        # bodies read at once, each up to max_upload_bytes (429 beyond)
    upload_idle_timeout: float = 10.0      # seconds an upload may send nothing (408 beyond)
    upload_timeout: float = 120.0          # seconds a whole upload may take (408 beyond)
    max_job_threads: int = 3               # projection (and GANSpace) threads alive at once, the newest
                                           # and cancelled ones still stopping, each with a copy of G (429)


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
        self.job_threads: list[ProjectionJob] = []  # started projections whose threads may still run
        self.uploads = UploadSlots(config.max_concurrent_uploads)
        self._starting_projection = False
        self._ids = itertools.count(1)
        self._distance = distance
        self._distance_lock = threading.Lock()
        self.directions = DirectionStore(self.new_id, scale_samples=config.sefa_scale_samples,
                                         max_jobs=config.max_job_threads)

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

    def network_name(self) -> str:
        return "" if self.source is None else (self.snapshot or self.source.path.name)

    def edit_offset(self, view: View) -> torch.Tensor | None:
        """The ws offset of the view's edit (None: no edit); call on the render thread (SeFa is
        computed there the first time)."""
        return self.directions.offset(view.dirs, view.edit, view.edit_layers, self.G)

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
        self.directions.network_changed(self.G)

    @contextlib.contextmanager
    def projection_start(self) -> Iterator[None]:
        """One projection start at a time, and at most `max_job_threads` projection threads alive:
        a cancelled projection stops only at its next step, holding its thread and its copy of G
        until then, so a storm of starts would pile them up. Busy (429) instead."""
        if self._starting_projection:
            raise Busy("another projection is being started; try again in a moment")
        self.job_threads = running_jobs(self.job_threads, self.config.max_job_threads, "projections")
        self._starting_projection = True
        try:
            yield
        finally:
            self._starting_projection = False

    def job(self, job_id: str) -> ProjectionJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no projection {job_id!r} (only the latest one is kept)")
        return job

    def job_status(self, job_id: str) -> dict:
        """The job's progress; once it has a result, also the id of that latent (`w`). The result
        joins the stored latents here, on the event loop, never from the job's thread."""
        job = self.job(job_id)
        status = job.status()
        if status["state"] in ("done", "cancelled") and job.result is not None:
            if job.w_id is None:
                job.w_id = self.store_w(job.result, "p")
            status["w"] = job.w_id
        return status

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel()
        self.directions.shutdown()
        self.queue.shutdown()


# ----------------------------------------------------------------------------------- helpers

Handler = Callable[[Explorer, Request], Awaitable[Response]]
Draw = Callable[[torch.nn.Module, View, "torch.Tensor | None", "torch.Tensor | None"], np.ndarray]


def _error(status: int, message: str, close: bool = False) -> JSONResponse:
    """{"error": message}; `close`: the connection is closed after it (a stalled upload's rest is
    never read)."""
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _file_stem(view: View) -> str:
    """What downloads are named after: the stored latent's id, else the seed."""
    return view.w_id or f"seed{view.seed:04d}"


async def _render(ex: Explorer, request: Request, name: str, draw: Draw) -> Response:
    """`draw` of the request's view, rendered on the render queue and encoded as the view asks.
    With `client=<id>`, a request superseded by a newer one of the same client and route before its
    turn is answered 204 (X-Stale) without rendering."""
    view = parse_view(request.query_params, ex.G)
    client = request.query_params.get("client", "").strip()

    def job() -> tuple[bytes, float]:
        start = time.perf_counter()
        with weight_cache(ex.weights):
            img = draw(ex.G, view, ex.stored_w(view.w_id), ex.edit_offset(view))
        return encode(img, view.fmt, view.quality), (time.perf_counter() - start) * 1e3

    async with client_gone(request) as gone:
        result = await ex.queue.run(job, f"{client}/{name}" if client else None, gone)
    if result is DROPPED:
        return Response(status_code=204, headers={"X-Stale": "1"})
    data, ms = result
    headers = {"X-Render-Ms": f"{ms:.2f}", "Cache-Control": "no-store"}
    if request.query_params.get("download") == "1":
        ext = view.fmt.replace("jpeg", "jpg")
        headers["Content-Disposition"] = f'attachment; filename="{name}-{_file_stem(view)}.{ext}"'
    return Response(data, media_type=f"image/{view.fmt}", headers=headers)


def _draw_animation(G: torch.nn.Module, view: View, stored: torch.Tensor | None,
                    offset: torch.Tensor | None) -> np.ndarray:
    return render_animation(G, view, offset)  # the loop runs through seeds, never through a stored w


# ----------------------------------------------------------------------------------- handlers
# One per endpoint; the first line of each docstring is its row in docs/explore.md.

async def index(ex: Explorer, request: Request) -> Response:
    """The page (static/index.html; no CDN, works offline)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def defaults(ex: Explorer, request: Request) -> Response:
    """Every default the page starts from, declared once in Python (params.py, ExploreConfig)."""
    return JSONResponse({"view": page_defaults(), "conditional_class": str(DEFAULT_CLASS),
                         "project_steps": ex.config.project_steps,
                         "max_project_steps": ex.config.max_project_steps,
                         "edit_slider_range": list(EDIT_SLIDER_RANGE),
                         "ganspace_samples": ex.config.ganspace_samples,
                         "max_ganspace_samples": ex.config.max_ganspace_samples})


async def network(ex: Explorer, request: Request) -> Response:
    """Network panel: kind, resolution, dims, parameters, device, snapshots."""
    return JSONResponse(ex.info())


async def switch_snapshot(ex: Explorer, request: Request) -> Response:
    """Switch to another snapshot of the run directory (`?snapshot=NAME`) -> the network panel."""
    name = request.query_params.get("snapshot", "")
    await ex.queue.run(lambda: ex.switch_snapshot(name))  # between renders, never during one
    return JSONResponse(ex.info())


async def image(ex: Explorer, request: Request) -> Response:
    """The current image (PNG or JPEG; `download=1`: as an attachment)."""
    return await _render(ex, request, "image", render_image)


async def mixing(ex: Explorer, request: Request) -> Response:
    """First source | second source | mix (StyleGAN Fig. 3)."""
    return await _render(ex, request, "mixing", render_mixing)


async def variation(ex: Explorer, request: Request) -> Response:
    """Random-noise draws | per-pixel std map (StyleGAN Fig. 4)."""
    return await _render(ex, request, "variation", render_variation)


async def animation(ex: Explorer, request: Request) -> Response:
    """One frame (`t` in [0, 1)) of the seed loop (slerp in Z or lerp in W)."""
    return await _render(ex, request, "animation", _draw_animation)


async def equivariance(ex: Explorer, request: Request) -> Response:
    """StyleGAN3: one frame (`t` in [0, 1)) of the transform loop of the image (`eq`: translate, rotate or
    both); `untransform=1` moves it back."""
    return await _render(ex, request, "equivariance", render_equivariance)


async def download_w(ex: Explorer, request: Request) -> Response:
    """The current ws as .npz, for `stylegan generate --projected-w`."""
    view = parse_view(request.query_params, ex.G)
    ws = await ex.queue.run(lambda: view_ws(ex.G, view, ex.stored_w(view.w_id), ex.edit_offset(view)))
    return Response(encode_w(ws), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{_file_stem(view)}-w.npz"'})


async def upload_w(ex: Explorer, request: Request) -> Response:
    """Upload a projected_w.npz (the body) -> `{"w": id}`."""
    ws = decode_w(await read_body(request, ex.config, ex.uploads), ex.G)
    return JSONResponse({"w": ex.store_w(ws, "u")})


async def start_projection(ex: Explorer, request: Request) -> Response:
    """Upload an image (the body; `steps`, `w_plus`, `proj_seed`), start projecting it -> `{"job": id}`."""
    cfg = ex.config
    view = parse_view(request.query_params, ex.G)  # class, and the same validation as renders
    base = ProjectionRequest(steps=cfg.project_steps, class_idx=view.class_idx,
                             w_avg_samples=cfg.w_avg_samples, preview_every=cfg.preview_every)
    req = parse_projection(request.query_params, base, cfg.max_project_steps)
    target = decode_upload(await read_body(request, ex.config, ex.uploads), ex.G, cfg.max_upload_pixels)
    with ex.projection_start():
        for job in ex.jobs.values():  # one projection at a time: a new one replaces the old
            job.cancel()
        G = await ex.queue.run(lambda: copy.deepcopy(ex.G))  # a private copy, taken between renders
        distance = await ex.queue.run(ex.distance)
        job = ProjectionJob(ex.new_id("j"), G, target, req, distance)
        await ex.queue.run(job.start)  # its first preview renders there, not on the event loop
        ex.jobs = {job.id: job}
        ex.job_threads.append(job)
    return JSONResponse({"job": job.id})


async def projection_status(ex: Explorer, request: Request) -> Response:
    """A projection's state, step, distances; its latent `w` once done or cancelled."""
    return JSONResponse(ex.job_status(request.path_params["job"]))


async def projection_preview(ex: Explorer, request: Request) -> Response:
    """Target | the latest previewed step, as PNG."""
    preview = ex.job(request.path_params["job"]).preview()
    return Response(encode(preview, "png"), media_type="image/png", headers={"Cache-Control": "no-store"})


async def cancel_projection(ex: Explorer, request: Request) -> Response:
    """Stop a projection (its latest w becomes its result) -> its state."""
    job = ex.job(request.path_params["job"])
    job.cancel()
    return JSONResponse(job.status())


async def list_directions(ex: Explorer, request: Request) -> Response:
    """Edit panel: the sets of directions (SeFa of the network, computed on the first call; GANSpace
    results; uploaded files), each with its components' values and style inputs."""
    store = ex.directions

    def listing() -> dict:  # on the render thread, where the sets change
        store.ensure_sefa(ex.G, ex.network_name())
        return {"sets": [s.summary() for s in store.sets.values()], "jobs": [j.status() for j in store.jobs.values()]}

    return JSONResponse(await ex.queue.run(listing))


async def compute_directions(ex: Explorer, request: Request) -> Response:
    """Compute a set: `method=sefa` (`layers`: its style inputs) -> `{"dirs": id}` at once;
    `method=ganspace` (`samples`) -> `{"job": id}`, running beside the renders."""
    req = parse_directions_request(request.query_params, ex.G, ex.config.ganspace_samples,
                                   ex.config.max_ganspace_samples)
    store = ex.directions
    if req.method == "sefa":
        s = await ex.queue.run(lambda: store.sefa_on(ex.G, req.layers, ex.network_name()))
        return JSONResponse({"dirs": s.id, "set": s.summary()})
    job = await ex.queue.run(lambda: store.start_ganspace(ex.G, req.samples, ex.network_name()))
    return JSONResponse({"job": job.id})


async def directions_job(ex: Explorer, request: Request) -> Response:
    """A GANSpace job's state and samples done; its set `dirs` once done or cancelled."""
    job_id = request.path_params["job"]
    ex.directions.job(job_id)  # 404 at once for an unknown job
    # on the render thread: storing the result compares it with G, which no render may be changing
    return JSONResponse(await ex.queue.run(lambda: ex.directions.job_status(job_id, ex.G)))


async def cancel_directions_job(ex: Explorer, request: Request) -> Response:
    """Stop a GANSpace job (the samples so far make its result) -> its state."""
    job = ex.directions.job(request.path_params["job"])
    job.cancel()
    return JSONResponse(job.status())


async def upload_directions(ex: Explorer, request: Request) -> Response:
    """Upload a direction file (the body; `name`: its file name) -> `{"dirs": id}`."""
    data = await read_body(request, ex.config, ex.uploads)
    name = Path(request.query_params.get("name", "")).name[:100]
    s = await ex.queue.run(lambda: ex.directions.upload(data, name, ex.G))  # compares with G: between renders
    return JSONResponse({"dirs": s.id, "set": s.summary()})


async def download_directions(ex: Explorer, request: Request) -> Response:
    """A set of directions (`dirs`) as a direction file, for `stylegan edit`."""
    view = parse_view(request.query_params, ex.G)
    s = await ex.queue.run(lambda: ex.directions.get(view.dirs, ex.G))
    return Response(directions_bytes(s.directions), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="directions-{s.id}.npz"'})


async def stats(ex: Explorer, request: Request) -> Response:
    """Renders done and stale requests dropped."""
    return JSONResponse({"renders": ex.queue.renders, "dropped": ex.queue.dropped})


# ----------------------------------------------------------------------------------- routes

class Endpoint(NamedTuple):
    method: str
    path: str
    handler: Handler


ROUTES: tuple[Endpoint, ...] = (
    Endpoint("GET", "/", index),
    Endpoint("GET", "/api/defaults", defaults),
    Endpoint("GET", "/api/network", network),
    Endpoint("POST", "/api/network", switch_snapshot),
    Endpoint("GET", "/api/image", image),
    Endpoint("GET", "/api/mixing", mixing),
    Endpoint("GET", "/api/variation", variation),
    Endpoint("GET", "/api/animation", animation),
    Endpoint("GET", "/api/equivariance", equivariance),
    Endpoint("GET", "/api/w.npz", download_w),
    Endpoint("POST", "/api/w", upload_w),
    Endpoint("POST", "/api/project", start_projection),
    Endpoint("GET", "/api/project/{job}", projection_status),
    Endpoint("GET", "/api/project/{job}/preview", projection_preview),
    Endpoint("POST", "/api/project/{job}/cancel", cancel_projection),
    Endpoint("GET", "/api/directions", list_directions),
    Endpoint("POST", "/api/directions", compute_directions),
    Endpoint("GET", "/api/directions/job/{job}", directions_job),
    Endpoint("POST", "/api/directions/job/{job}/cancel", cancel_directions_job),
    Endpoint("POST", "/api/directions/upload", upload_directions),
    Endpoint("GET", "/api/directions.npz", download_directions),
    Endpoint("GET", "/api/stats", stats),
)


def _endpoint(ex: Explorer, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`handler` bound to `ex`, under the API's one error policy: a BadRequest is answered with
    its status and message; any other exception is a bug or a fault of the server, so the client
    gets a generic 500 (details of internals are no use to it and would read as its own mistake)
    and the log gets the traceback."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(ex, request)
        except BadRequest as e:
            return _error(e.status, str(e), close=isinstance(e, RequestTimeout))
        except ClientDisconnect:  # gone while its upload was read: nobody to answer
            _log.debug("explore: %s %s: the client disconnected", request.method, request.url.path)
            return Response(status_code=400)
        except Exception:
            _log.exception("explore: %s %s failed", request.method, request.url.path)
            return _error(500, INTERNAL_ERROR)
    return endpoint


def _routes(ex: Explorer) -> list[BaseRoute]:
    """ROUTES bound to `ex`, and the page's static files."""
    routes: list[BaseRoute] = [Route(e.path, _endpoint(ex, e.handler), methods=[e.method], name=e.handler.__name__)
                               for e in ROUTES]
    return routes + [Mount("/static", StaticFiles(directory=STATIC), name="static")]


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

    app = Starlette(routes=_routes(ex), lifespan=lifespan)
    app.state.explorer = ex
    return app


__all__ = ["create_app", "ExploreConfig", "Explorer", "ROUTES", "Endpoint"]
