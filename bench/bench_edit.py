#!/usr/bin/env python
"""Render latency of the explorer's Edit panel: the same image with the edit off and on, not a test.

    python bench/bench_edit.py                        # S64 and S256 on CPU; prints a markdown table
    python bench/bench_edit.py --configs S256 --iters 20

For each config (the networks of bench/bench.py, random weights: latency does not depend on them)
one process holds the explorer's real server on 127.0.0.1 and, every repetition, with the same seed
and in alternating order, asks for
- off: GET /api/image?seed=...                   (no edit)
- on:  GET /api/image?seed=...&edit=0:1,...,7:-1  (all 8 sliders of the page moved, SeFa)
and reads the server's render time (X-Render-Ms: mapping, the edit's offset, synthesis, uint8,
PNG) and the round trip. Edit cost = on - off per repetition (paired). It also times what the
panel costs once: SeFa of the network when the page opens (first GET /api/directions: the
eigendecomposition and the W samples of its scales, ExploreConfig.sefa_scale_samples) and a
GANSpace run of --ganspace samples.
Medians and [min-max] over --iters repetitions after --warmup untimed ones.
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
from stylegan.explore import ExploreConfig, create_app
from stylegan.explore.server import serve_in_thread
from stylegan.models import Generator

EDIT = "0:1,1:-1,2:0.5,3:-0.5,4:1.5,5:-1.5,6:2,7:-1"  # eight sliders moved



def measure(name: str, args, device: torch.device) -> dict:
    G = Generator(make_config(name).G).to(device).eval().requires_grad_(False)
    app = create_app(G, device, config=ExploreConfig(ganspace_samples=args.ganspace))
    times = {"off": [], "on": [], "off trip": [], "on trip": []}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        client.get("api/directions").raise_for_status()  # what the page asks for when it opens
        sefa_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        job = client.post("api/directions", params={"method": "ganspace"}).json()["job"]
        while client.get(f"api/directions/job/{job}").json()["state"] == "running":
            time.sleep(0.02)
        ganspace_s = time.perf_counter() - t0

        def get(seed: int, edit: bool) -> tuple[float, float]:
            params = {"seed": seed, **({"edit": EDIT} if edit else {})}
            t = time.perf_counter()
            r = client.get("api/image", params=params)
            r.read()
            trip = (time.perf_counter() - t) * 1e3
            r.raise_for_status()
            return float(r.headers["X-Render-Ms"]), trip

        for rep in range(args.warmup + args.iters):
            order = (False, True) if rep % 2 == 0 else (True, False)
            result = {edit: get(rep, edit) for edit in order}
            if rep >= args.warmup:
                times["off"].append(result[False][0])
                times["off trip"].append(result[False][1])
                times["on"].append(result[True][0])
                times["on trip"].append(result[True][1])
    app.state.explorer.shutdown()
    return {"config": name, "resolution": G.img_resolution, "params": sum(p.numel() for p in G.parameters()),
            "times": times, "sefa_ms": sefa_ms, "ganspace_s": ganspace_s}



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="S64,S256", help="comma-separated: S32, S64, S256 (bench/bench.py)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--ganspace", type=int, default=100_000, help="W samples of the GANSpace run timed")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        perf.retain_malloc()  # as `stylegan explore` does on CPU
    load_start = load_average()
    rows = [measure(name.strip(), args, device) for name in args.configs.split(",") if name.strip()]
    print(f"Explorer render with the edit off and on (8 SeFa components), one PNG, batch 1, {args.iters} "
          f"repetitions after {args.warmup} warm-up (median [min-max], ms)\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; device {device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
          f"{load_start}, at end {load_average()}\n")
    print("| config | resolution | G params | render, edit off | render, edit on | edit cost (on - off) "
          "| round trip off | round trip on | SeFa on load | GANSpace |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        t = row["times"]
        cost = [a - b for a, b in zip(t["on"], t["off"])]
        print(f"| {row['config']} | {row['resolution']} px | {row['params'] / 1e6:.2f} M | {median_range(t['off'])} | "
              f"{median_range(t['on'])} | {statistics.median(cost):+.1f} [{min(cost):+.1f}..{max(cost):+.1f}] | "
              f"{median_range(t['off trip'])} | {median_range(t['on trip'])} | {row['sefa_ms']:.0f} ms | "
              f"{row['ganspace_s']:.1f} s ({args.ganspace:,} samples) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
