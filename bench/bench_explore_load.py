#!/usr/bin/env python
"""Latency of the explorer (`stylegan explore`) with 1, 4 and 16 pages dragging a slider at once, not a test.

    python bench/bench_explore_load.py                          # S64 and S256, 1/4/16 clients, 6 s drags
    python bench/bench_explore_load.py --configs S256 --clients 1,4,16,32 --seconds 10

The server is the real `stylegan explore` (a subprocess: its own interpreter, torch threads and
allocator, as a user runs it) serving one network of bench/bench.py (random weights: latency does
not depend on them). Each client behaves as the page does while a slider is dragged: it asks for
the main image of a new seed every `--interval-ms` (an input event) with its own client key, and a
new request aborts the client's previous one if that is still unanswered (the page's
AbortController: the connection is closed, the server drops the render when its turn comes). The
clients start at random phases. After `--seconds` the drag stops and each client's last request
is left to finish: its latency is what a user waits for when the slider is let go.

Per number of clients: requests sent, images received per client and second during the drag,
renders done and requests dropped by the server (stale or abandoned: `/api/stats`), the latency of
every image received (request -> last byte), the latency of the final image (the last request of
the drag: from the last input to the image the page ends on), and
the server's own render time of one image (`X-Render-Ms`). Median [p90 or max] in ms.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

from bench import load_average, make_config  # bench/bench.py: the S32 / S64 / S256 networks
from stylegan import save_checkpoint
from stylegan.device import cpu_model
from stylegan.models import Generator



@dataclass
class Client:
    """One page: the latency of each image it received, and of its final image after release."""

    key: str
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)
    final: float | None = None


async def fetch(address: tuple[str, int], client: Client, seed: int) -> float | None:
    """GET the main image of `seed` as the page does -> ms until its last byte (None: dropped, 204).
    One connection per request, closed when the request is cancelled (the page's abort closes
    its connection too); plain asyncio streams, so nothing of it outlives a cancel."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(f"GET /api/image?seed={seed}&client={client.key} HTTP/1.1\r\nHost: bench\r\n"
                     f"Connection: close\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        await reader.readexactly(int(headers.get("content-length", 0)))
    finally:
        writer.close()
    ms = (time.perf_counter() - t0) * 1e3
    if status == 204:
        return None
    if status != 200:
        raise RuntimeError(f"the explorer answered {status}: {head!r}")
    client.latencies.append(ms)
    client.render_ms.append(float(headers["x-render-ms"]))
    return ms


async def drag(address: tuple[str, int], client: Client, seconds: float, interval: float, rng: random.Random) -> None:
    """A new request every `interval` s for `seconds`, each aborting the previous one still in
    flight; then the last one is left to finish: its latency is the wait from the last input to the
    final image."""
    await asyncio.sleep(rng.uniform(0, interval))
    end = time.perf_counter() + seconds
    task: asyncio.Task | None = None
    seed = rng.randrange(2 ** 31)
    while time.perf_counter() < end:
        if task is not None and not task.done():
            task.cancel()  # the page's abort: the connection closes, the server drops the render
        seed += 1
        client.sent += 1
        task = asyncio.ensure_future(fetch(address, client, seed))
        await asyncio.sleep(interval)
    client.final = await task  # the newest of its key: rendered, never dropped


async def steady(address: tuple[str, int], client: Client, seconds: float, interval: float, rng: random.Random
                 ) -> None:
    """The next request as soon as the previous image arrived, for `seconds`: one request in flight
    per client, so the server is never idle and each image waits for the others' renders."""
    await asyncio.sleep(rng.uniform(0, interval))
    end = time.perf_counter() + seconds
    seed = rng.randrange(2 ** 31)
    while time.perf_counter() < end:
        seed += 1
        client.sent += 1
        client.final = await fetch(address, client, seed)


MODELS = {"page": drag, "steady": steady}


async def run_level(url: str, model: str, n: int, seconds: float, interval: float, seed: int) -> list[Client]:
    rng = random.Random(seed)
    parts = urllib.parse.urlsplit(url)
    address = (parts.hostname, parts.port)
    clients = [Client(f"bench{model}{n}-{i}") for i in range(n)]
    await asyncio.gather(*[MODELS[model](address, c, seconds, interval, random.Random(rng.random())) for c in clients])
    return clients


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of the server process, from /proc (Linux; else (nan, 0))."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])
    except (OSError, KeyError, ValueError):
        return float("nan"), 0


def stats(url: str) -> dict:
    return httpx.get(url + "api/stats", timeout=60).json()


def start_server(network: Path, threads: int | None) -> tuple[subprocess.Popen, str]:
    """`stylegan explore` on a free port of 127.0.0.1 -> (process, URL)."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen([sys.executable, "-m", "stylegan", "explore", "--network", str(network), "--port", "0",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        m = re.search(r"at (http://\S+/)", line)
        if m:
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"stylegan explore did not start: {line}")


def measure(name: str, args, workdir: Path) -> list[dict]:
    G = Generator(make_config(name).G).eval().requires_grad_(False)
    network = workdir / f"{name}.safetensors"
    save_checkpoint(network, {"G_ema": G})
    proc, url = start_server(network, args.threads)
    rows = []
    try:
        for _ in range(args.warmup):
            httpx.get(url + "api/image", params={"seed": 0}, timeout=600).raise_for_status()
        memory = [proc_status(proc.pid)]
        for model, n in [(m, int(c)) for m in args.models.split(",") for c in args.clients.split(",")]:
            before, load0 = stats(url), load_average()
            clients = asyncio.run(run_level(url, model, n, args.seconds, args.interval_ms / 1e3, args.seed))
            time.sleep(0.5)  # the dropped requests' turns
            after = stats(url)
            memory.append(proc_status(proc.pid))
            rows.append({"config": name, "resolution": G.img_resolution, "model": model, "clients": n,
                         "clients_data": clients,
                         "renders": after["renders"] - before["renders"],
                         "dropped": after["dropped"] - before["dropped"], "load": f"{load0} -> {load_average()}",
                         "memory": memory[:]})
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def median_p(values: list[float], p: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{statistics.median(ordered):.0f} [{ordered[min(len(ordered) - 1, int(p * len(ordered)))]:.0f}]"


def print_table(rows: list[dict], seconds: float) -> None:
    print("| config | clients | model | requests sent | images / client / s | renders | dropped | image latency, median [p90] "
          "| final image, median [max] | render, median | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cs = row["clients_data"]
        lat = [x for c in cs for x in c.latencies]
        finals = [c.final for c in cs if c.final is not None]
        render = [x for c in cs for x in c.render_ms]
        per_s = statistics.mean(len(c.latencies) for c in cs) / seconds
        print(f"| {row['config']} ({row['resolution']} px) | {row['clients']} | {row['model']} | {sum(c.sent for c in cs)} | "
              f"{per_s:.1f} | {row['renders']} | {row['dropped']} | {median_p(lat, 0.9)} | "
              f"{statistics.median(finals):.0f} [{max(finals):.0f}] | {statistics.median(render):.0f} | {row['load']} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="S64,S256", help="comma-separated: S32, S64, S256 (bench/bench.py)")
    ap.add_argument("--clients", default="1,4,16", help="numbers of pages dragging at once")
    ap.add_argument("--models", default="steady,page", help="client models: steady (the next request when the "
                    "image arrived), page (a request every --interval-ms, aborting the previous one, as app.js)")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each drag")
    ap.add_argument("--interval-ms", type=float, default=50.0, help="a new request per client every ... ms")
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads (OMP_NUM_THREADS)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for name in args.configs.split(",") if name.strip() for r in measure(name.strip(), args, Path(tmp))]
    threads = args.threads or torch.get_num_threads()
    print(f"Explorer under load: 1 network, clients dragging a slider at once, {args.seconds:g} s per level; "
          f"steady: the next request when the image arrived; page: a request every {args.interval_ms:g} ms, "
          f"each aborting the previous one (app.js)\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs (clients on the same machine); server "
          f"`stylegan explore --device cpu`, torch {torch.__version__}, {threads} threads")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average (1, 5, 15 min) at "
          f"start {load_start}, at end {load_average()}\n")
    print_table(rows, args.seconds)
    for name in dict.fromkeys(r["config"] for r in rows):
        memory = [r for r in rows if r["config"] == name][-1]["memory"]
        print(f"\n{name}: server RSS {memory[0][0]:.0f} MB after warm-up, {memory[-1][0]:.0f} MB after every level "
              f"(largest {max(m[0] for m in memory):.0f} MB); threads {memory[0][1]} -> {memory[-1][1]} "
              f"(most {max(m[1] for m in memory)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
