"""Request bodies read under limits: size (413), stalls and crawls (408), how many at once (429).

An upload is read chunk by chunk as it arrives, never whole and unbounded: a body over the limit
is refused by its Content-Length before a byte is read, or, when the client lies in that header,
leaves it out or sends chunks, as soon as the bytes read pass the limit. A client that stops
sending, or sends a byte now and then (slowloris), is answered 408 after a gap of
`upload_idle_timeout` or after `upload_timeout` in all, and its connection is closed. At most
`max_concurrent_uploads` bodies are in memory at once. The limits are the app's
(`ExploreConfig`), so they hold under any ASGI server.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator, Protocol

from starlette.requests import Request

from .errors import BadRequest, Busy, RequestTimeout, UploadTooLarge


class UploadLimits(Protocol):
    """The fields of `ExploreConfig` that bound an upload."""

    max_upload_bytes: int
    max_concurrent_uploads: int
    upload_idle_timeout: float
    upload_timeout: float


def human_size(n: float) -> str:
    """25 MB, 195 KB, 512 bytes (binary units, as the limits are declared)."""
    for unit, size in (("MB", 2 ** 20), ("KB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


class UploadSlots:
    """Bodies being read now, at most `limit` (counted on the event loop's thread: no lock)."""

    def __init__(self, limit: int):
        self.limit, self.in_use = limit, 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """A slot for one body, or Busy (429) when all are taken: slow or parallel uploads hold at
        most `limit` times the upload limit in memory."""
        if self.in_use >= self.limit:
            raise Busy(f"{self.in_use} uploads are being received already (at most {self.limit} at once); "
                       f"try again when one is done")
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


async def read_body(request: Request, limits: UploadLimits, slots: UploadSlots) -> bytes:
    """The request body under `limits` (see the module docstring); an empty one is a BadRequest."""
    refuse_declared_size(request, limits.max_upload_bytes)
    with slots.take():
        body = await _stream_body(request, limits)
    if not body:
        raise BadRequest("the upload is empty")
    return body


def refuse_declared_size(request: Request, limit: int) -> None:
    """413 before a byte of the body is read when its Content-Length says it is too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"upload of {human_size(int(declared))} exceeds the limit of {human_size(limit)} "
                             f"({limit:,} bytes)")


async def _stream_body(request: Request, limits: UploadLimits) -> bytes:
    """Chunk by chunk: at most `max_upload_bytes`, no gap over `upload_idle_timeout`, all of it
    within `upload_timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.upload_timeout
    stream = request.stream()
    chunks, size = [], 0
    while True:
        wait = min(limits.upload_idle_timeout, deadline - loop.time())
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(wait, 0.0))
        except StopAsyncIteration:
            return b"".join(chunks)
        except asyncio.TimeoutError:
            raise RequestTimeout(_stall_message(limits, size, loop.time() >= deadline)) from None
        size += len(chunk)
        if size > limits.max_upload_bytes:
            raise UploadTooLarge(f"upload exceeds the limit of {human_size(limits.max_upload_bytes)} "
                                 f"({limits.max_upload_bytes:,} bytes)")
        chunks.append(chunk)


def _stall_message(limits: UploadLimits, received: int, whole: bool) -> str:
    if whole:
        return (f"the upload took longer than {limits.upload_timeout:g} s (the limit for a whole upload); "
                f"{human_size(received)} arrived")
    return (f"the upload stalled: nothing arrived for {limits.upload_idle_timeout:g} s after "
            f"{human_size(received)}")


__all__ = ["UploadLimits", "UploadSlots", "human_size", "read_body", "refuse_declared_size"]
