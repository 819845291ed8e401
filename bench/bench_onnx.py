#!/usr/bin/env python
"""ONNX Runtime (CPU) vs our PyTorch generator, images per second, in the same run. Not a test.

    python bench/bench_onnx.py                       # S64 generator, batch 16 and 1
    python bench/bench_onnx.py --res 32 --batches 8 --iters 20 --json out.json

The generator (random weights: speed does not depend on them) is exported with
`stylegan.io.onnx_export.export_onnx` (dynamic batch, psi 0.7, const noise) and both sides run
`z -> image` for the same z: ours is `G(z, psi=0.7, noise_mode='const')` under no_grad with its
default fast paths (the modconv form picked per layer) and derived weights reused across calls
(`stylegan.nn.weight_cache`, as `stylegan generate` does), ONNX Runtime the exported graph
(unfused modconvs, its own graph optimizations) with as many intra-op threads as torch uses.
Repetitions alternate between the two so that load from other processes hits both alike; the
report gives median and min/max of --iters timed repetitions after --warmup untimed ones.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from stylegan import perf
from stylegan.device import cpu_model
from stylegan.io.onnx_export import ExportOptions, export_onnx
from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.nn import WeightCache, weight_cache


def make_generator(res: int) -> Generator:
    """S64 of bench/bench.py at `res`: channel_base 8192, channel_max 256, 8 mapping layers."""
    cfg = GeneratorConfig(z_dim=512, w_dim=512, img_resolution=res, channel_base=8192, channel_max=256,
                          mapping=MappingConfig(num_layers=8))
    return Generator(cfg).eval().requires_grad_(False)


def machine() -> dict:
    import onnxruntime

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "threads": torch.get_num_threads(),
            "allocator": perf.allocator_info(), "loadavg_at_start": os.getloadavg(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch and ORT intra-op threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    perf.retain_malloc()  # as the CLI does on CPU (docs/performance.md)
    import onnxruntime as ort

    G = make_generator(args.res)
    report: dict = {"machine": machine(), "res": args.res, "psi": 0.7, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.onnx"
        t = timed(lambda: export_onnx(G, path, ExportOptions(psi=0.7, noise="const", batch="dynamic")))
        report["export_s"] = round(t, 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        cache = WeightCache()
        for batch in args.batches:
            z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(batch))
            feed = {"z": z.numpy()}

            def ours():
                with torch.no_grad(), weight_cache(cache):
                    return G(z, psi=0.7, noise_mode="const")

            def onnx():
                return session.run(None, feed)[0]

            err = float(abs(onnx() - ours().numpy()).max())
            times: dict[str, list[float]] = {"pytorch": [], "onnxruntime": []}
            for i in range(args.warmup + args.iters):
                for name, fn in (("pytorch", ours), ("onnxruntime", onnx)) if i % 2 else \
                        (("onnxruntime", onnx), ("pytorch", ours)):
                    t = timed(fn)
                    if i >= args.warmup:
                        times[name].append(t)
            row = {name: {"img_s_median": round(batch / statistics.median(ts), 2),
                          "img_s_range": [round(batch / max(ts), 2), round(batch / min(ts), 2)]}
                   for name, ts in times.items()}
            row["max_abs_error"] = err
            report["results"][f"batch{batch}"] = row
            print(f"{args.res}px batch {batch}: " + ", ".join(
                f"{n} {r['img_s_median']} img/s (range {r['img_s_range'][0]}-{r['img_s_range'][1]})"
                for n, r in row.items() if n != "max_abs_error") + f", max |diff| {err:.1e}", flush=True)
    report["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(report["machine"]), f"export {report['export_s']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
