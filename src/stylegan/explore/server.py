"""Serving the explorer with uvicorn: in the foreground (the CLI) or on a thread (tests, bench).

uvicorn alone lets a client hold a connection forever: it has no deadline for a request's head
(a client that connects and sends nothing, or dribbles its headers a byte at a time, is never
timed out; its keep-alive timer restarts on every byte). `ServerLimits` states every limit a
client meets at the connection level, and `GuardedH11Protocol` adds the missing one: the request
line and headers must arrive within `head_timeout` of the connection (or of the previous
response). Limits on bodies (size, stalls, uploads at once) are the app's (`ExploreConfig`), so
they hold under any ASGI server. The protocol is uvicorn's h11 one (pure Python) also where
httptools is installed: the deadline is built on its events.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerLimits:
    """What one slow or greedy client may hold of the server (docs/explore.md, "Safe under abuse")."""

    head_timeout: float = 10.0         # request line + headers must arrive within this: 408, closed
    keep_alive: float = 5.0            # an idle kept-alive connection is closed after this (uvicorn)
    max_head_bytes: int = 16 * 2 ** 10  # request line + headers (h11's buffer): 400 beyond
    max_connections: int = 512         # open connections + requests in progress: 503 beyond (uvicorn's
                                       # limit_concurrency; below the usual 1024 file descriptors)
    backlog: int = 2048                # connections the kernel queues before they are accepted


def _head_timeout_response(timeout: float) -> bytes:
    """A complete 408 written straight to the socket: h11 has no request to answer yet."""
    body = f"request timeout: the request line and headers did not arrive within {timeout:g} s\n".encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def guarded_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for every request head (see the module docstring).

    The deadline starts when the connection is made and again when a response is complete, and
    is cleared only when a whole request head has been parsed (not by each byte, which is what a
    slowloris client sends). When it passes: a connection that sent part of a head gets a 408 and
    is closed; one that sent nothing (an idle or pre-opened connection), or was still sending the
    body of a request already answered, is closed without a word."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def data_received(self, data: bytes) -> None:
            self._head_bytes += len(data)
            super().data_received(data)
            if self._answering():
                self._clear_head_deadline()

        def on_response_complete(self) -> None:
            self._arm_head_deadline()
            super().on_response_complete()  # may parse a pipelined request at once
            if self._answering():
                self._clear_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._clear_head_deadline()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            """uvicorn answers malformed HTTP (a bad chunk, say) with a 400 and closes, but a
            request already handed to the app was told nothing until the connection was lost, a
            loop turn later: an app that answered first (a fast route) wrote a second response
            into h11 ("Exception in ASGI application" in the log). Its cycle is marked
            disconnected now, so its answer is dropped and its body read sees the disconnect."""
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:  # too late for a 400: the app's response is half sent
                    self.transport.close()
                    return
            super().send_400_response(msg)

        def _answering(self) -> bool:
            """A request head was parsed and its response is not complete: the app has it."""
            return self.cycle is not None and not self.cycle.response_complete

        def _arm_head_deadline(self) -> None:
            self._clear_head_deadline()
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _clear_head_deadline(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self._answering():
                return
            if self._head_bytes and self.conn.their_state is h11.IDLE:
                self.transport.write(_head_timeout_response(head_timeout))
            self.transport.close()

    return GuardedH11Protocol


def listen(host: str, port: int, backlog: int = ServerLimits.backlog) -> socket.socket:
    """A bound listening socket (port 0: a free one); a busy port is a clear OSError.

    Made with proto IPPROTO_TCP on purpose: asyncio switches Nagle's algorithm off (TCP_NODELAY)
    only on accepted sockets whose proto says TCP, and with Nagle on, every response after the
    first on a kept-alive connection (the page's, the browser's) waited ~40 ms for the client's
    delayed ACK of the headers before the body went out (measured: 56 ms vs 13 ms round trips for a
    12 ms render).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _server(app, limits: ServerLimits | None = None):
    """A uvicorn server for `app` with every limit of `limits` set explicitly (none left to
    uvicorn's defaults, which may change between its versions)."""
    import uvicorn

    limits = limits or ServerLimits()
    return uvicorn.Server(uvicorn.Config(
        app, http=guarded_protocol(limits.head_timeout), timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]
        h11_max_incomplete_event_size=limits.max_head_bytes, limit_concurrency=limits.max_connections,
        backlog=limits.backlog, log_level="warning", access_log=False))


def serve(app, sock: socket.socket, limits: ServerLimits | None = None) -> None:
    """Serve until Ctrl-C."""
    _server(app, limits).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0,
                    limits: ServerLimits | None = None) -> Iterator[str]:
    """Run the app on a background thread for the duration of the block; yields its URL."""
    limits = limits or ServerLimits()
    sock = listen(host, port, limits.backlog)
    server = _server(app, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the explorer server did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


__all__ = ["LOOPBACK", "ServerLimits", "guarded_protocol", "listen", "url_of", "serve", "serve_in_thread"]
