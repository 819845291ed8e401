#!/usr/bin/env python
"""Latency of the explorer (`stylegan explore`) against a bare G(z) call, not a test.

    python bench/bench_explore.py                      # S32, S64, S256 on CPU; prints a markdown table
    python bench/bench_explore.py --configs S256 --iters 20 --fmt jpeg

For each config (the networks of bench/bench.py, random weights: latency does not depend on them)
one process holds the network, a bare call and the explorer's real server on 127.0.0.1; every
repetition, in this order and with the same seed:
- bare:   z from the seed, `G(z, noise_mode='const')` under no_grad (batch 1) with derived weights
          reused across calls (`stylegan.nn.weight_cache`, as the server and `stylegan generate`
          do) -- the floor;
- server: the app's own render time for the same image (X-Render-Ms: mapping, synthesis, uint8,
          PNG/JPEG encoding), read from the response;
- round trip: GET /api/image?seed=... over a kept-alive HTTP connection, until the last byte.
Overhead = round trip / bare - 1 per repetition (paired, so a load spike from other processes hits
both sides): everything the explorer adds to what a script would pay. HTTP = round trip - server
render: the transport alone. Repetitions alternate which of bare and served runs first; medians and
[min-max] over --iters repetitions after --warmup untimed ones.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import httpx
import torch

from bench import load_average, make_config, median_range  # bench/bench.py: the S32 / S64 / S256 networks
from stylegan import perf
from stylegan.device import cpu_model
from stylegan.explore import create_app
from stylegan.explore.server import serve_in_thread
from stylegan.models import Generator
from stylegan.nn import WeightCache, weight_cache
from stylegan.synth.sample import z_from_seeds



def measure(name: str, args, device: torch.device) -> dict:
    G = Generator(make_config(name).G).to(device).eval().requires_grad_(False)
    app = create_app(G, device)
    times = {"bare": [], "server": [], "round trip": []}
    cache = WeightCache()
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=600) as client:
        def bare(seed: int) -> float:
            t0 = time.perf_counter()
            with torch.no_grad(), weight_cache(cache):
                G(z_from_seeds([seed], G.z_dim, device), noise_mode="const").cpu()
            return (time.perf_counter() - t0) * 1e3

        def served(seed: int) -> tuple[float, float]:
            t0 = time.perf_counter()
            r = client.get("api/image", params={"seed": seed, "fmt": args.fmt})
            r.read()
            trip = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            return trip, float(r.headers["X-Render-Ms"])

        for rep in range(args.warmup + args.iters):
            if rep % 2 == 0:  # alternate the order so neither always runs first after a pause
                b, (trip, server) = bare(rep), served(rep)
            else:
                (trip, server), b = served(rep), bare(rep)
            if rep >= args.warmup:
                times["bare"].append(b)
                times["server"].append(server)
                times["round trip"].append(trip)
    app.state.explorer.shutdown()
    return {"config": name, "resolution": G.img_resolution, "params": sum(p.numel() for p in G.parameters()),
            "times": times}



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="S32,S64,S256", help="comma-separated: S32, S64, S256 (bench/bench.py)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--fmt", choices=["png", "jpeg"], default="png")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        perf.retain_malloc()  # as `stylegan explore` does on CPU (via the CLI's device rule)
    load_start = load_average()
    rows = [measure(name.strip(), args, device) for name in args.configs.split(",") if name.strip()]
    alloc = perf.allocator_info()
    alloc = f"{alloc.get('allocator', '?')} ({alloc['mallopt']})" if alloc.get("mallopt") else alloc.get("allocator", alloc)
    print(f"Explorer latency, one {args.fmt.upper()} image, batch 1, {args.iters} repetitions after "
          f"{args.warmup} warm-up (median [min-max], ms)\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; device {device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; allocator: {alloc}")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
          f"{load_start}, at end {load_average()}\n")
    print("| config | resolution | G params | bare G(z) | server render | round trip | HTTP (trip - render) "
          "| overhead (trip / bare - 1) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        t = row["times"]
        http = [a - b for a, b in zip(t["round trip"], t["server"])]
        overhead = [(a - b) / b * 100 for a, b in zip(t["round trip"], t["bare"])]  # paired per repetition
        print(f"| {row['config']} | {row['resolution']} px | {row['params'] / 1e6:.2f} M | {median_range(t['bare'])} | "
              f"{median_range(t['server'])} | {median_range(t['round trip'])} | {median_range(http)} | "
              f"{statistics.median(overhead):+.0f}% [{min(overhead):+.0f}..{max(overhead):+.0f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
