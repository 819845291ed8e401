"""What a request to the explorer can get wrong: the only errors its clients ever see in detail.

Each type carries its HTTP status, and its message is shown in the page as it is, so it names the
parameter or the upload at fault. Everything else that goes wrong while a request is handled is a
bug or a fault of the server, never "a bad request": the app answers it 500 with a generic message
and logs its traceback (see `app.py`). They subclass ValueError because callers of the render and
decode functions have always caught a bad value as one.
"""
from __future__ import annotations


class BadRequest(ValueError):
    """What the client sent is wrong (a malformed upload, an unknown id ...): answered `status`."""

    status: int = 400


class ParamError(BadRequest):
    """A query parameter is missing, malformed or out of range; the message names it."""


class UploadTooLarge(BadRequest):
    """A request body over the explorer's upload limit, refused before it is read to the end."""

    status = 413


class NotFound(BadRequest):
    """An id the server gave out is gone (only the latest projection is kept)."""

    status = 404


class RequestTimeout(BadRequest):
    """An upload stalled or crawled past the explorer's time limits (a slow client must not hold a
    connection forever): answered 408, and the connection is closed."""

    status = 408


class Busy(BadRequest):
    """Too many uploads or job starts at once: refused (429) instead of holding another body in
    memory or another thread with its own copy of the network. The client may retry."""

    status = 429


__all__ = ["BadRequest", "ParamError", "UploadTooLarge", "NotFound", "RequestTimeout", "Busy"]
