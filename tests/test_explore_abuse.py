"""`stylegan explore` under abuse, against the real uvicorn server on 127.0.0.1 (issue 22, item 6).

Oversized uploads (413 naming the limit, also when Content-Length lies, is missing or the body is
chunked), slow clients (a request head or a body dribbled or stalled: 408 and the connection
closed, the renders unaffected), uploads at once (429), 200 concurrent requests, uploads that
are not images (400 naming the problem), path traversal in every query key and path, and
property-based fuzzing with hypothesis of every route in ROUTES and of raw HTTP requests: every
answer is 2xx/4xx (never a 500, never a hang), the server answers a normal request afterwards,
nothing outside what the explorer serves is ever sent, and its memory and threads stay bounded
(RSS measured before and after; `-s` prints the numbers).

The server runs with short limits (1 s for a head, 1 s of silence in an upload, 3 s for a whole
upload) so the slow-client tests take seconds; `ServerLimits()` and `ExploreConfig()` hold the
defaults `stylegan explore` uses (docs/explore.md, "Safe under abuse").
"""
from __future__ import annotations

import asyncio
import dataclasses
import http.server
import io
import logging
import os
import re
import select
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (the 'test' extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import stylegan  # noqa: E402
from stylegan.cli import main  # noqa: E402
from stylegan.explore import create_app  # noqa: E402
from stylegan.explore.app import ROUTES  # noqa: E402
from stylegan.explore.params import QUERY_KEYS  # noqa: E402
from stylegan.explore.server import LOOPBACK, ServerLimits, _server, serve_in_thread  # noqa: E402
from stylegan.synth.directions import directions_bytes  # noqa: E402
from stylegan.synth.projector import PixelMSE  # noqa: E402
from stylegan.synth.sefa import sefa_directions  # noqa: E402
from test_explore import SMALL, tiny  # noqa: E402

LIMITS = ServerLimits(head_timeout=1.0, keep_alive=1.0)
CONFIG = dataclasses.replace(SMALL, upload_idle_timeout=1.0, upload_timeout=3.0, max_concurrent_uploads=2,
                             project_steps=10, max_project_steps=30, max_ganspace_samples=3000, max_job_threads=2)
SECRET = b"stylegan-explore-abuse-secret-7f3a91"   # in files beside the run directory: must never be served
NEVER_SERVED = (SECRET, b"def create_app(", b"root:x:0:0")  # + the explorer's source, /etc/passwd
RSS_BUDGET = 200 * 2 ** 20
MEASURED: dict[str, float] = {}                   # RSS (MB) and threads at each stage, printed at the end


# ----------------------------------------------------------------------------------- fixtures, helpers

def rss_bytes() -> float:
    """This process's resident set (the server runs on a thread of it); NaN without /proc."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return float("nan")


ERROR_LOGGERS = ("stylegan.explore", "uvicorn.error", "uvicorn")


class _Errors(logging.Handler):
    """Every ERROR the server logs (a 500's traceback, uvicorn's 'Exception in ASGI application')."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory of two snapshots of the tiny network, with secrets beside and inside it."""
    root = tmp_path_factory.mktemp("abuse")
    run = root / "00001-run"
    run.mkdir()
    for seed, name in ((1, "snapshot-1.safetensors"), (2, "snapshot-2.safetensors")):
        stylegan.save_checkpoint(run / name, {"G_ema": tiny(seed=seed)})
    (run / "secret.txt").write_bytes(SECRET)
    (root / "secret.safetensors").write_bytes(SECRET)
    return run


@pytest.fixture(scope="module")
def server(run_dir):
    """(url, app, errors): the explorer of `run_dir` served by uvicorn on a thread, warmed up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny renders; the clients of these tests share the 2 cores
    errors = _Errors()
    loggers = [logging.getLogger(n) for n in ERROR_LOGGERS]
    app = create_app(run_dir, "cpu", config=CONFIG, distance=PixelMSE())
    try:
        with serve_in_thread(app, limits=LIMITS) as url, httpx.Client(base_url=url, timeout=30) as c:
            for lg in loggers:  # now: uvicorn's Config replaced its loggers' handlers when it was made
                lg.addHandler(errors)
            for path, params in (("api/image", {"seed": 1}), ("api/mixing", {"mix_seed": 2}),
                                 ("api/variation", {"std_samples": 4}), ("api/directions", {})):
                assert c.get(path, params=params).status_code == 200
            MEASURED["start MB"], MEASURED["start threads"] = rss_bytes() / 2 ** 20, threading.active_count()
            yield url, app, errors
    finally:
        app.state.explorer.shutdown()
        torch.set_num_threads(threads)
        for lg in loggers:
            lg.removeHandler(errors)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], timeout=30) as c:
        yield c


def host_port(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port


def png_bytes(size: int = 8, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size)).save(buf, format=fmt)
    return buf.getvalue()


def npz_w(G) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, w=np.zeros((1, G.num_ws, G.w_dim), np.float32))
    return buf.getvalue()


def status_of(response: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    return int(m.group(1)) if m else None


def raw_exchange(url: str, data: bytes, timeout: float = 8.0, dribble: bytes = b"", every: float = 0.1
                 ) -> tuple[bytes, float]:
    """Send `data`, then `dribble` one byte every `every` s until the server answers or closes;
    read until it closes the connection or one response is complete. -> (what came back, seconds).
    A server that neither answers nor closes within `timeout` fails the test (a hang)."""
    t0 = time.monotonic()
    with socket.create_connection(host_port(url), timeout=timeout) as s:
        try:
            s.sendall(data)
            for byte in dribble:
                if select.select([s], [], [], 0)[0]:
                    break  # answered, or closed
                s.sendall(bytes([byte]))
                time.sleep(every)
        except OSError:
            pass  # closed by the server while we were still sending: read what it said
        out = read_response(s, t0 + timeout)
    return out, time.monotonic() - t0


def read_response(s: socket.socket, deadline: float | None = None) -> bytes:
    """Bytes until the server closes or one whole response is in; a hang fails the test."""
    deadline = deadline or time.monotonic() + 8.0
    out = b""
    while time.monotonic() < deadline:
        s.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            return out  # reset after the server closed
        if not chunk or _complete(out + chunk):
            return out + chunk
        out += chunk
    raise AssertionError(f"no answer and no close in time; got {out[:200]!r}")


def _complete(response: bytes) -> bool:
    """One whole HTTP response (head and a Content-Length body) is in `response`."""
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def assert_nothing_leaked(content: bytes) -> None:
    for marker in NEVER_SERVED:
        assert marker not in content, f"the server sent {marker!r}"


def assert_still_serving(client) -> None:
    r = client.get("/api/image", params={"seed": 3})
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"


def assert_no_server_errors(errors: _Errors) -> None:
    for name in ERROR_LOGGERS:  # still listening (a uvicorn.Config made since would have removed it)
        assert errors in logging.getLogger(name).handlers, name
    found = [f"{r.name}: {r.getMessage()}" for r in errors.records]
    errors.records.clear()
    assert not found, "the server logged errors:\n" + "\n".join(found)


# ----------------------------------------------------------------------------------- loopback, limits

def test_binds_loopback_by_default_and_sets_every_limit(run_dir, monkeypatch):
    import stylegan.explore.server as server_mod

    served = []
    monkeypatch.setattr(server_mod, "serve", lambda app, sock: served.append(sock.getsockname()[0]))
    res = CliRunner().invoke(main, ["explore", "--network", str(run_dir), "--port", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert served == ["127.0.0.1"] and served[0] in LOOPBACK
    config = _server(None).config  # what `serve` runs: the defaults, every one set explicitly
    d = ServerLimits()
    assert config.http.__name__ == "GuardedH11Protocol"
    assert (config.timeout_keep_alive, config.h11_max_incomplete_event_size, config.limit_concurrency,
            config.backlog) == (d.keep_alive, d.max_head_bytes, d.max_connections, d.backlog)


# ----------------------------------------------------------------------------------- oversized, malformed

UPLOAD_ROUTES = ("/api/w", "/api/project", "/api/directions/upload")


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_an_upload_over_the_limit_is_413_naming_it_before_the_body_is_read(server, path):
    url = server[0]
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 ** 12}\r\n\r\n".encode()
    out, seconds = raw_exchange(url, head)  # a terabyte announced, not a byte sent: answered at once
    assert status_of(out) == 413 and b"exceeds the limit of 195 KB (200,000 bytes)" in out, out
    assert seconds < 2.0


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_a_chunked_upload_is_refused_at_the_limit_while_it_streams(server, path):
    """No Content-Length: 64 KB chunks until the server answers; it must answer 413 after at most
    the limit (plus what the sockets buffer), not read the 50 MB the client would send."""
    url = server[0]
    sent = 0
    with socket.create_connection(host_port(url), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"10000\r\n" + b"\0" * 0x10000 + b"\r\n"
        try:
            while sent < 50 * 2 ** 20 and not select.select([s], [], [], 0.005)[0]:
                s.sendall(chunk)
                sent += 0x10000
        except OSError:
            pass
        out = read_response(s)
    assert status_of(out) == 413 and b"upload exceeds the limit of 195 KB" in out, out
    assert sent < 10 * 2 ** 20, f"the server read {sent / 2 ** 20:.0f} MB before refusing"
    MEASURED[f"chunked upload to {path}: MB sent before the 413"] = sent / 2 ** 20


def test_a_content_length_that_lies_or_is_missing(server, client):
    """More than it sends (408 once the body stalls), less (the body is cut there: 400, and the rest
    is no request: 400), none at all (no body: 400), malformed (400 from the server itself)."""
    url = server[0]
    w = npz_w(tiny())
    # claims more than it sends, then stalls: 408 once nothing arrives for upload_idle_timeout
    out, seconds = raw_exchange(url, b"POST /api/w HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + w[:100])
    assert status_of(out) == 408 and b"the upload stalled: nothing arrived for 1 s after 100 bytes" in out, out
    assert b"connection: close" in out.lower() and seconds < CONFIG.upload_idle_timeout + 1.5
    # claims less than it sends: the body is cut there (400), the rest is not a request (400, closed)
    out, _ = raw_exchange(url, b"POST /api/w HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" + w)
    assert status_of(out) == 400 and b"cannot read the uploaded .npz" in out, out
    # no Content-Length and no chunks: HTTP/1.1 says no body
    out, _ = raw_exchange(url, b"POST /api/w HTTP/1.1\r\nHost: x\r\n\r\n" + w)
    assert status_of(out) == 400 and b"the upload is empty" in out, out
    for bad in (b"-5", b"abc", b"5, 6", b"99999999999999999999999999"):
        out, _ = raw_exchange(url, b"POST /api/w HTTP/1.1\r\nHost: x\r\nContent-Length: " + bad + b"\r\n\r\nabc")
        assert status_of(out) in (400, 408, 413), (bad, out)
    # a malformed chunk after the head of a fast route: uvicorn's 400 and the app's answer raced
    # (the app wrote a second response: "Exception in ASGI application"); GuardedH11Protocol
    for path in ("/api/stats", "/api/w", "/api/image"):
        out, _ = raw_exchange(url, f"GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".encode())
        assert status_of(out) == 400 and b"Invalid HTTP request" in out, out
    assert_still_serving(client)
    assert_no_server_errors(server[2])


@pytest.mark.parametrize("method, path, key", [("GET", "/api/image", "mix"), ("GET", "/api/animation", "anim_seeds"),
                                               ("GET", "/api/image", "edit_layers"), ("POST", "/api/directions", "layers")])
def test_a_huge_range_in_a_url_is_refused_before_it_is_expanded(client, method, path, key):
    """'0-4294967295' would be a list of 4 billion ints (tens of GB) if expanded before its length
    was checked: 400 at once, naming the key."""
    for spec in ("0-4294967295", "0-99999999999999999999", "1,2,3-5000", "9" * 5000 + "-1"):
        t0 = time.monotonic()
        r = client.request(method, path, params={key: spec, "method": "sefa"})
        assert r.status_code == 400 and r.json()["error"].startswith(f"{key}: "), r.text
        assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("body, words", [
    (b"hello, this is text", "not an image in a format the explorer reads (19 bytes starting 'hello, t')"),
    (b"<html><body>hi</body></html>", "not an image in a format the explorer reads"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an image in a format the explorer reads"),
    (png_bytes(fmt="EPS"), "not an image in a format the explorer reads"),  # never handed to Ghostscript
    (png_bytes(fmt="ICO"), "not an image in a format the explorer reads"),
    (b"PK\x03\x04" + b"\0" * 40, "not an image in a format the explorer reads (44 bytes starting '50 4b 03 04"),
    (png_bytes(64)[:-40], "cannot decode the uploaded image"),
    (b"", "the upload is empty"),
])
def test_a_projection_upload_that_is_not_an_image_is_400_naming_the_problem(client, body, words):
    r = client.post("/api/project", content=body)
    assert r.status_code == 400 and words in r.json()["error"], r.text


# ----------------------------------------------------------------------------------- slow clients

def test_slow_clients_are_cut_off_and_never_hold_the_renders(server, client):
    """Four slowloris clients at once: one connects and says nothing, one dribbles its headers, one
    stalls its body, one crawls through it. Each is closed (the partial head and the body answered
    408); meanwhile normal requests render as fast as ever."""
    url = server[0]
    results: dict[str, tuple[bytes, float]] = {}
    post = b"POST /api/w HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    clients = {
        "silent": (b"", b""),
        "head dribble": (b"GET /api/image HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200),
        "body stall": (post + b"x" * 10, b""),
        "body crawl": (post, b"y" * 200),  # a byte every 0.25 s: never idle 1 s, over 3 s in all
    }
    threads = [threading.Thread(target=lambda k=k, a=a, d=d: results.__setitem__(
        k, raw_exchange(url, a, dribble=d, every=0.25))) for k, (a, d) in clients.items()]
    for t in threads:
        t.start()
    time.sleep(0.3)
    renders = []
    while any(t.is_alive() for t in threads):  # the explorer keeps rendering for everyone else
        t0 = time.monotonic()
        assert_still_serving(client)
        renders.append(time.monotonic() - t0)
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert results["silent"][0] == b"" and results["silent"][1] < LIMITS.head_timeout + 2.0
    out, seconds = results["head dribble"]
    assert status_of(out) == 408 and b"request line and headers did not arrive within 1 s" in out, out
    assert seconds < LIMITS.head_timeout + 2.0
    out, seconds = results["body stall"]
    assert status_of(out) == 408 and b"the upload stalled: nothing arrived for 1 s" in out, out
    out, seconds = results["body crawl"]
    assert status_of(out) == 408 and b"the upload took longer than 3 s" in out, out
    assert seconds < CONFIG.upload_timeout + 2.5
    assert renders and max(renders) < 2.0, renders
    MEASURED["slowest render during slowloris, ms"] = max(renders) * 1e3


def test_uploads_at_once_are_bounded(server, client):
    """Two uploads stall (CONFIG allows two at once): a third is refused 429 at once, without
    reading its body; once the stalled ones time out, uploads are accepted again."""
    url = server[0]
    stalled = [socket.create_connection(host_port(url)) for _ in range(CONFIG.max_concurrent_uploads)]
    try:
        for s in stalled:
            s.sendall(b"POST /api/w HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        deadline = time.monotonic() + 5
        while server[1].state.explorer.uploads.in_use < len(stalled) and time.monotonic() < deadline:
            time.sleep(0.01)
        r = client.post("/api/w", content=npz_w(tiny()))
        assert r.status_code == 429 and "2 uploads are being received already (at most 2 at once)" in r.json()["error"]
        time.sleep(CONFIG.upload_idle_timeout + 0.5)
        r = client.post("/api/w", content=npz_w(tiny()))
        assert r.status_code == 200 and r.json()["w"], r.text
    finally:
        for s in stalled:
            s.close()


# ----------------------------------------------------------------------------------- 200 at once

def storm(url: str, n: int = 200) -> list[int]:
    """n requests at once on n connections: three quarters from 10 pages dragging sliders (client
    keys) over the four image routes, the rest from scripts (no key) -> their status codes."""
    routes = ["api/image", "api/mixing", "api/variation", "api/animation"]

    async def one(c: httpx.AsyncClient, i: int) -> int:
        params = {"seed": i, "mix_seed": i + 1, "std_samples": 4, "t": (i % 10) / 10}
        route = routes[i % 4]
        if i < n * 3 // 4:  # page i % 10, each page on every route in turn
            params["client"], route = f"page{i % 10}", routes[i // 10 % 4]
        return (await c.get(route, params=params)).status_code

    async def all_at_once() -> list[int]:
        limits = httpx.Limits(max_connections=n + 50, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:
            return await asyncio.gather(*[one(c, i) for i in range(n)])

    return asyncio.run(all_at_once())


def hold_renderer(queue, until, timeout: float = 60.0) -> threading.Thread:
    """Keep the render thread busy until `until()` is true (or `timeout`), as a long render would:
    what arrives meanwhile queues up behind it."""
    busy = threading.Event()
    queue._executor.submit(busy.wait, timeout)

    def release():
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.01)
        busy.set()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_two_hundred_concurrent_requests(server, client):
    """`storm` of 200 arriving while the renderer is busy: every request is answered 200 or 204,
    of the 150 from pages only the newest of each (page, route) is rendered (40), the 50 from
    scripts all are, the server answers afterwards, and its memory and threads stay bounded."""
    url, app, errors = server
    queue = app.state.explorer.queue
    before = queue.renders, queue.dropped
    MEASURED["before storm MB"], MEASURED["before storm threads"] = rss_bytes() / 2 ** 20, threading.active_count()
    hold_renderer(queue, lambda: queue._executor._work_queue.qsize() >= 200)
    t0 = time.monotonic()
    codes = storm(url)
    seconds = time.monotonic() - t0
    renders, dropped = queue.renders - before[0], queue.dropped - before[1]
    assert set(codes) <= {200, 204} and codes.count(200) == renders, codes
    assert (renders, dropped) == (10 * 4 + 50, 150 - 10 * 4), (renders, dropped)
    assert_still_serving(client)
    assert_no_server_errors(errors)
    MEASURED.update({"after storm MB": rss_bytes() / 2 ** 20, "after storm threads": threading.active_count(),
                     "storm s": seconds, "storm renders": renders, "storm dropped": dropped})
    assert MEASURED["after storm MB"] - MEASURED["before storm MB"] < RSS_BUDGET / 2 ** 20
    assert MEASURED["after storm threads"] <= MEASURED["before storm threads"] + 1


def test_requests_whose_clients_gave_up_are_not_rendered(server, client):
    """25 scripts (no client key) ask for an image while the renderer is busy, then hang up: when
    their turn comes, nobody would see the image, so none is rendered."""
    url, app, errors = server
    queue = app.state.explorer.queue
    hung_up = threading.Event()
    hold_renderer(queue, hung_up.is_set)
    before = queue.renders, queue.dropped
    socks = [socket.create_connection(host_port(url)) for _ in range(25)]
    try:
        for i, s in enumerate(socks):
            s.sendall(f"GET /api/image?seed={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        deadline = time.monotonic() + 10
        while queue._executor._work_queue.qsize() < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue._executor._work_queue.qsize() == 25
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)  # the server sees the disconnects
    hung_up.set()
    assert_still_serving(client)
    assert (queue.renders - before[0], queue.dropped - before[1]) == (1, 25)  # only assert_still_serving's
    assert_no_server_errors(errors)


# ----------------------------------------------------------------------------------- path traversal

TRAVERSAL = ["../", "../../../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fsecret.txt",
             "..\\..\\secret.txt", "/etc/passwd", "secret.txt", "../secret.safetensors", "..", ".", "/", "//",
             "....//....//etc/passwd", "%252e%252e%252fsecret.txt", "snapshot-1.safetensors\x00.txt", "\x00",
             "%00", "~/.ssh/id_rsa", "file:///etc/passwd", "C:\\Windows\\win.ini", "../app.py",
             "snapshot-1.safetensors/../secret.txt", "00001-run/secret.txt"]

RAW_PATHS = ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static/%2e%2e%2fapp.py",
             "/static/..%5capp.py", "/static/....//app.py", "/static/%252e%252e/app.py", "/static/%00",
             "/static/app.js%00.txt", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
             "/static/../../../../../../etc/passwd", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
             "//etc/passwd", "/api/project/..%2f..%2fetc%2fpasswd", "/api/project/%2e%2e/preview",
             "/api/directions/job/..%2fsecret.txt", "/api/image/../../static/app.js", "/static/./app.js/..",
             "/static/%c0%ae%c0%ae/app.py", "/static/..;/app.py", "/api/../static/../app.py"]


# the route that reads each query key beyond the view's (those go to GET /api/image, which reads them all)
KEY_ROUTE = {"snapshot": ("POST", "/api/network"), "name": ("POST", "/api/directions/upload"),
             "method": ("POST", "/api/directions"), "layers": ("POST", "/api/directions"),
             "samples": ("POST", "/api/directions"), "steps": ("POST", "/api/project"),
             "proj_seed": ("POST", "/api/project"), "w_plus": ("POST", "/api/project")}


def test_path_traversal_in_every_path_and_query_key(server, client, run_dir):
    """Every payload in every query key (on the route that reads it), in every path parameter, and
    in raw paths (sent as bytes, not normalised by a client library): answered 2xx/4xx, and nothing
    outside what the explorer serves (the secrets beside and inside the run directory, its own
    source, /etc/passwd) is ever sent."""
    url, app, errors = server
    absolute = [str(run_dir / "secret.txt"), str(run_dir.parent / "secret.safetensors")]
    bodies = {"/api/project": png_bytes(), "/api/directions/upload": directions_bytes(sefa_directions(tiny()))}
    requests = [(*KEY_ROUTE.get(key, ("GET", "/api/image")), {key: payload}) for key in list(QUERY_KEYS) +
                ["client", "download", *KEY_ROUTE] for payload in TRAVERSAL + absolute]
    requests += [(e.method, e.path.replace("{job}", urllib.parse.quote(payload, safe="")), {})
                 for e in ROUTES if "{job}" in e.path for payload in TRAVERSAL + absolute]
    for method, path, params in requests:
        r = client.request(method, path, params=params, content=bodies.get(path))
        assert 200 <= r.status_code < 500, (method, path, params, r.status_code, r.text[:200])
        assert_nothing_leaked(r.content)
        if "snapshot" in params:
            assert r.status_code == 400 and "unknown snapshot" in r.text, (params, r.text)
    for path in RAW_PATHS:
        out, _ = raw_exchange(url, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_of(out) in (400, 404, 405), (path, out[:200])
        assert_nothing_leaked(out)
    r = client.post("/api/directions/upload", params={"name": absolute[0]}, content=bodies["/api/directions/upload"])
    assert r.status_code == 200 and r.json()["set"]["label"].endswith(": secret.txt")  # a label, never opened
    assert client.get("/static/app.js").status_code == 200  # what it does serve, it still serves
    assert_still_serving(client)
    assert_no_server_errors(errors)


# ----------------------------------------------------------------------------------- fuzzing: every route

KEYS = list(QUERY_KEYS) + ["client", "download", "steps", "w_plus", "proj_seed", "method", "layers", "samples",
                           "snapshot", "name", "var", "speed", "eq_speed"]
GOOD = {"seed": ["0", "7", "4294967295"], "psi": ["0.5", "-1", "2"], "cutoff": ["1", "2"], "noise": ["random", "none"],
        "noise_strength": ["0", "2.5"], "mix_seed": ["3"], "mix": ["coarse", "0-1", "fine", "0-3,5"],
        "fmt": ["jpeg", "jpg", "png"], "quality": ["1", "100"], "std_samples": ["2", "8"],
        "anim_seeds": ["1,2,3", "0-5"], "anim_space": ["w", "z"], "t": ["0.25", "0.999"], "dirs": ["sefa"],
        "edit": ["0:1.5", "1:-2,3:0.5"], "edit_layers": ["coarse", "all", "0-2"], "w": ["u1", "p2"],
        "client": ["pageA", "pageB"], "download": ["1"], "steps": ["2", "5"], "w_plus": ["1"], "proj_seed": ["5"],
        "method": ["sefa", "ganspace"], "layers": ["coarse", "0-1"], "samples": ["200", "1000"],
        "snapshot": ["snapshot-1.safetensors", "snapshot-2.safetensors"], "name": ["d.npz"],
        "tx": ["0", "0.1"], "ty": ["0", "-0.25"], "rotate": ["0", "15"], "untransform": ["1"],
        "eq": ["translate", "rotate", "both"]}
JUNK = st.one_of(st.text(max_size=24), st.sampled_from(TRAVERSAL), st.integers(-2 ** 70, 2 ** 70).map(str),
                 st.floats().map(repr), st.from_regex(r"\d{1,11}(-\d{1,11})?(,\d{1,11}(-\d{1,11})?){0,3}", fullmatch=True),
                 st.from_regex(r"(\d{1,5}:-?\d{1,3}(\.\d{0,3})?,?){1,4}", fullmatch=True))


def _value(key: str) -> st.SearchStrategy[str]:
    good = GOOD.get(key)
    return st.one_of(st.sampled_from(good), JUNK) if good else JUNK


QUERY = st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), max_size=6, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: _value(k) for k in keys}))


@st.composite
def images(draw) -> bytes:
    """Small, valid images in every mode and format Pillow writes (and a few it cannot convert)."""
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "LAB"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "EPS"]))
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pixels = np.frombuffer(draw(st.binary(min_size=w * h * 3, max_size=w * h * 3)), np.uint8)
    img = Image.fromarray(pixels.reshape(h, w, 3).copy())
    try:
        img = img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()
    except (OSError, ValueError, KeyError):
        return png_bytes(w)


def _bodies() -> st.SearchStrategy[bytes]:
    G = tiny()
    valid = [png_bytes(16), npz_w(G), directions_bytes(sefa_directions(G, scale_samples=200))]
    damaged = st.tuples(st.sampled_from(valid), st.integers(0, 400), st.binary(max_size=8)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):])  # cut, or a few bytes overwritten
    return st.one_of(st.binary(max_size=600), st.sampled_from(valid), damaged, images())


BODIES = _bodies()
FUZZ = settings(deadline=10_000, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz_route(client, route, examples: int = 40) -> None:
    """hypothesis on one route: query strings from the explorer's keys (valid values, junk,
    traversal payloads) and other keys, path parameters, and bodies (random bytes, valid uploads,
    damaged ones, images of every mode and format): never a 5xx, never a hang (httpx gives up after
    10 s; hypothesis after its deadline), never a secret."""
    job = st.one_of(st.sampled_from(["j1", "j999", "sefa"]), st.sampled_from(TRAVERSAL), st.text(max_size=12))

    @settings(FUZZ, max_examples=examples)
    @given(query=QUERY, body=BODIES if route.method == "POST" else st.just(b""), job=job)
    def fuzz(query, body, job):
        path = route.path.replace("{job}", urllib.parse.quote(job, safe="") or "x")
        r = client.request(route.method, path, params=query, content=body or None, timeout=10)
        assert 200 <= r.status_code < 500, (path, query, r.status_code, r.text[:300])
        assert_nothing_leaked(r.content)

    fuzz()


@pytest.mark.parametrize("route", ROUTES, ids=[f"{e.method} {e.path}" for e in ROUTES])
def test_fuzz_every_route(server, client, route):
    """`fuzz_route` on every route of ROUTES; then a normal request is answered and the server
    logged no error."""
    fuzz_route(client, route)
    assert_still_serving(client)
    assert_no_server_errors(server[2])


# ----------------------------------------------------------------------------------- fuzzing: raw HTTP

METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT", b"PRI"]
HEADERS = [b"Host: x", b"Content-Length: 5", b"Content-Length: 0", b"Content-Length: -1", b"Content-Length: abc",
           b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
           b"Transfer-Encoding: identity", b"Expect: 100-continue", b"Connection: close", b"Connection: keep-alive",
           b"Connection: upgrade\r\nUpgrade: websocket", b"Upgrade: h2c", b"Content-Type: multipart/form-data; b=x",
           b"X-Long: " + b"a" * 20000, b"Host: a\r\nHost: b", b" folded", b"Bad Header", b"\x00: \x00"]


@st.composite
def raw_requests(draw) -> bytes:
    method = draw(st.one_of(st.sampled_from(METHODS), st.binary(max_size=8)))
    paths = [e.path.encode() for e in ROUTES] + [p.encode() for p in RAW_PATHS] + [b"*", b"", b"http://x/api/image"]
    target = draw(st.one_of(st.sampled_from(paths), st.binary(max_size=30)))
    query = draw(st.one_of(st.just(b""), st.binary(max_size=30).map(lambda b: b"?" + b)))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"", b"http/1.1"]))
    headers = draw(st.lists(st.one_of(st.sampled_from(HEADERS), st.binary(max_size=30)), max_size=5))
    body = draw(st.binary(max_size=300))
    return method + b" " + target + query + b" " + version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


@settings(max_examples=100, deadline=15_000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_requests())
def test_fuzz_raw_http(server, raw):
    """hypothesis: malformed request lines, methods, targets, versions, headers (lying lengths,
    odd transfer codings, folded, oversized, NUL) and bodies, as raw bytes: the server answers
    2xx/4xx or closes without a word, never a 5xx, always within its time limits (a hang fails
    `raw_exchange`), and sends nothing it must not."""
    out, _ = raw_exchange(server[0], raw, timeout=8.0)
    status = status_of(out)
    assert status is None or 200 <= status < 500, (raw[:200], out[:300])
    assert status is not None or out == b"", (raw[:200], out[:300])
    assert_nothing_leaked(out)


def test_after_the_raw_fuzzing_the_server_answers(server, client):
    assert_still_serving(client)
    assert_no_server_errors(server[2])


# ----------------------------------------------------------------------------------- memory

def test_memory_and_threads_stay_bounded(server, client):
    """After the storm, the slow clients and every fuzz test above (this module runs in one
    process, in order): RSS within RSS_BUDGET of the warmed-up server's, and threads within the
    render thread and the bounded job threads (CONFIG.max_job_threads of each kind). Then the
    storm and a fuzz pass of every route once more: what the first round took (the allocator's
    arenas of the job threads, caches) is reused, so the second round adds little."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("RSS is read from /proc (Linux)")
    assert_still_serving(client)
    MEASURED["after round 1 MB"], MEASURED["after round 1 threads"] = rss_bytes() / 2 ** 20, threading.active_count()
    assert set(storm(server[0])) <= {200, 204}
    for route in ROUTES:
        fuzz_route(client, route, examples=8)
    assert_still_serving(client)
    assert_no_server_errors(server[2])
    MEASURED["after round 2 MB"], MEASURED["after round 2 threads"] = rss_bytes() / 2 ** 20, threading.active_count()
    print("\nexplorer under abuse, RSS of this process (the server thread and the clients):")
    for k, v in MEASURED.items():
        print(f"  {k}: {v:.1f}" if isinstance(v, float) else f"  {k}: {v}")
    for stage in ("after round 1", "after round 2"):
        assert MEASURED[f"{stage} MB"] - MEASURED["start MB"] < RSS_BUDGET / 2 ** 20, stage
        assert MEASURED[f"{stage} threads"] <= MEASURED["start threads"] + 2 * CONFIG.max_job_threads, stage
    assert MEASURED["after round 2 MB"] - MEASURED["after round 1 MB"] < 40, "memory grows round after round"


# ----------------------------------------------------------------------------------- --network URL

class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_explore_network_takes_an_http_url(tmp_path, monkeypatch):
    """`stylegan explore --network URL`, like every other --network: downloaded once into the
    cache, then served; an unreachable URL is one clean line."""
    import stylegan.explore.server as server_mod

    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    stylegan.save_checkpoint(tmp_path / "G.safetensors", {"G_ema": tiny()})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    srv.files = {"/nets/G.safetensors": (tmp_path / "G.safetensors").read_bytes()}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    served = []
    monkeypatch.setattr(server_mod, "serve", lambda app, sock: served.append(app.state.explorer.info()))
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/nets/G.safetensors"
        res = CliRunner().invoke(main, ["explore", "--network", url, "--port", "0", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        assert served and served[0]["resolution"] == tiny().img_resolution and url in res.output
        res = CliRunner().invoke(main, ["explore", "--network", url.replace("G.saf", "missing.saf"), "--port", "0"])
        assert res.exit_code != 0 and "404" in res.output and "Traceback" not in res.output
    finally:
        srv.shutdown()
        srv.server_close()
