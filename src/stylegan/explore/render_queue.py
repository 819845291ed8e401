"""One render at a time, and only the newest request of each slider: stale requests are dropped.

A dragged slider sends a request per step. Queuing them all would make the picture lag further and
further behind the hand; instead every request names a key (the page's client id + the panel) and
takes a ticket, renders run one at a time on a single worker thread (one device, no contention), and
a queued render whose ticket is no longer the newest for its key is skipped when its turn comes.
A burst of N requests during one render therefore costs at most two renders: the running one and
the newest. Requests without a key (scripts, the download links) always render, unless their
client went away before their turn (then nobody would see them either).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable, TypeVar

from starlette.requests import Request

T = TypeVar("T")
DROPPED = object()  # the result of a request that was superseded before its turn
_MAX_KEYS = 4096


class RenderQueue:
    """Single-worker render executor with newest-wins dropping per key; counts renders and drops."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylegan-render")
        self._lock = threading.Lock()
        self._newest: dict[str, int] = {}
        self._tickets = 0
        self.renders = 0   # written by the worker thread only
        self.dropped = 0

    def _take_ticket(self, key: str) -> int:
        with self._lock:
            self._tickets += 1
            self._newest.pop(key, None)  # re-insert: the dict stays ordered by last use
            self._newest[key] = self._tickets
            if len(self._newest) > _MAX_KEYS:
                del self._newest[next(iter(self._newest))]
            return self._tickets

    def _is_newest(self, key: str, ticket: int) -> bool:
        with self._lock:
            return self._newest.get(key) == ticket

    async def run(self, fn: Callable[[], T], key: str | None = None, gone: threading.Event | None = None
                  ) -> T | object:
        """Run fn() on the render thread; with a key, return DROPPED instead if a newer request with
        the same key arrived before this one's turn; with `gone`, also if it was set by then (the
        client went away: nobody would see the image)."""
        ticket = self._take_ticket(key) if key is not None else None

        def job():
            stale = ticket is not None and not self._is_newest(key, ticket)
            if stale or (gone is not None and gone.is_set()):
                self.dropped += 1
                return DROPPED
            self.renders += 1
            return fn()

        return await asyncio.wrap_future(self._executor.submit(job))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@contextlib.asynccontextmanager
async def client_gone(request: Request) -> AsyncIterator[threading.Event]:
    """An event set when the client of this request goes away (ASGI's http.disconnect), for
    `RenderQueue.run`: a render whose client gave up is skipped like a stale one, so a storm of
    requests whose clients timed out does not keep the renderer busy for nobody. Only for routes
    that never read the body (it is read, and dropped, here)."""
    gone = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    task = asyncio.ensure_future(watch())
    try:
        yield gone
    finally:
        task.cancel()


__all__ = ["RenderQueue", "DROPPED", "client_gone"]
