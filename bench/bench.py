#!/usr/bin/env python
"""Throughput of StyleGAN2 generation and training (images per second), not a test.

    python bench/bench.py                                  # S32, S64, S256 on CPU, optimized
    python bench/bench.py --configs S64 --compare          # before vs after, interleaved
    python bench/bench.py --configs S64 --channels-last --compile --json out.json
    python bench/bench.py --official ~/src/stylegan3 --threads 2   # vs NVIDIA's code (side_by_side.py)
    python bench/bench.py --roofline --compare --retain-malloc     # fraction of the machine's peak

Measures, per config:
- gen: G(z) under no_grad with noise_mode='const', batch 16 and batch 1 (img/s = batch / time);
- train: one StyleGAN2-ADA training step, written here from the losses (see `Trainer`):
  Gmain (softplus(-D(G(z)))), Dmain (softplus(D(G(z))) + softplus(-D(x))), Greg (path length on
  batch/2 via autograd.grad(create_graph=True), every 4 steps) and Dreg (R1 via
  autograd.grad(create_graph=True), every 16 steps), each followed by its Adam step, plus the G_ema
  update. Phases are timed separately; the amortised step time is
      Gmain + Dmain + ema + Greg / 4 + Dreg / 16
  (the lazy-regularization schedule), and train img/s = batch / that time.

Variants: 'after' uses the fast paths (stylegan.perf; modconv policy --modconv, optional
--channels-last / --compile); 'before' (--compare or --before) is the code as first written:
reference ops, always-fused modulated convolutions, NCHW, eager. With --compare both run on the
same networks, alternating repetition by repetition, so load from other processes hits both alike.
Timings are medians of --iters repetitions after --warmup untimed ones.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stylegan import perf
from stylegan.device import cpu_model
from stylegan.models import Generator, build_discriminator, mix_styles
from stylegan.nn import WeightCache, weight_cache
from stylegan.training.presets import DataShape, resolve_preset, stylegan2_config

# Training batch per config (the presets' batch of 64 does not fit a 2-core CPU budget; the
# per-image cost on CPU is close to batch-independent at these sizes, see docs/performance.md).
TRAIN_BATCH = {"S32": 16, "S64": 16, "S256": 4}


def make_config(name: str):
    """S32: `cifar` at 32x32x3; S64: 64 px, channel_base 8192, max 256, 8 mapping layers;
    S256: `paper256` at 256x256x3. TrainingConfig of the StyleGAN2-ADA setup."""
    if name == "S32":
        return resolve_preset("cifar", DataShape(32, 3))
    if name == "S64":
        return stylegan2_config(DataShape(64, 3), batch=32, mbstd=4, channel_base=8192, channel_max=256,
                                lr=0.0025, gamma=0.05, ema_kimg=10, map_layers=8, name="S64")
    if name == "S256":
        return resolve_preset("paper256", DataShape(256, 3))
    raise SystemExit(f"unknown config {name!r}; choose from S32, S64, S256")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# The training step


class Trainer:
    """StyleGAN2-ADA's four phases (training/loss.py + training_loop.py of the official code).

    `Gs`, `Gm`, `Dc` are the callables for synthesis, mapping and D (compiled or not); the
    regularization phases, which differentiate twice, always run eagerly (`perf.eager()`).
    """

    def __init__(self, tcfg, G, D, batch: int, device: torch.device, *, Gm=None, Gs=None, Dc=None,
                 fused_modconv="auto"):
        self.cfg, self.loss = tcfg, tcfg.loss
        self.G, self.D, self.batch, self.device = G, D, batch, device
        self.Gm, self.Gs, self.Dc = Gm or G.mapping, Gs or G.synthesis, Dc or D
        self.fused = fused_modconv
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        self.G_opt = self._adam(G, tcfg.G_opt, self.loss.pl_interval)
        self.D_opt = self._adam(D, tcfg.D_opt, self.loss.r1_interval)
        self.pl_mean = torch.zeros([], device=device)
        self.real = torch.rand(batch, G.img_channels, G.img_resolution, G.img_resolution, device=device) * 2 - 1
        self.nimg = 0
        for m in (G, D):
            m.requires_grad_(False)

    @staticmethod
    def _adam(module, ocfg, interval):
        c = interval / (interval + 1)  # lazy regularization (StyleGAN2 App. B)
        return torch.optim.Adam(module.parameters(), lr=ocfg.lr * c,
                                betas=(ocfg.betas[0] ** c, ocfg.betas[1] ** c), eps=ocfg.eps)

    def z(self, n):
        return torch.randn(n, self.G.z_dim, device=self.device)

    def run_G(self, z, update_w_avg=False):
        ws = self.Gm(z, None, update_w_avg=update_w_avg)
        p = self.loss.style_mixing_prob
        if p > 0:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) >= p:
                cutoff = ws.shape[1]
            ws = mix_styles(ws, self.Gm(torch.randn_like(z), None), cutoff)
        img = self.Gs(ws, noise_mode="random", fused_modconv=self.fused)
        return img, ws

    def _step(self, module, opt):
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    @contextlib.contextmanager
    def _phase(self, module, opt):
        module.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        try:
            yield
        finally:
            module.requires_grad_(False)
        self._step(module, opt)

    def Gmain(self):
        with self._phase(self.G, self.G_opt):
            img, _ = self.run_G(self.z(self.batch))
            F.softplus(-self.Dc(img)).mean().backward()

    def Greg(self):
        if self.loss.pl_weight == 0:
            return
        with self._phase(self.G, self.G_opt), perf.eager():
            n = max(self.batch // self.loss.pl_batch_shrink, 1)
            img, ws = self.run_G(self.z(n))
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (grads,) = torch.autograd.grad([(img * noise).sum()], [ws], create_graph=True, only_inputs=True)
            lengths = grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(lengths.mean(), self.loss.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            penalty = (lengths - pl_mean).square() * self.loss.pl_weight
            (img[:, 0, 0, 0] * 0 + penalty).mean().mul(self.loss.pl_interval).backward()

    def Dmain(self):
        with self._phase(self.D, self.D_opt):
            img, _ = self.run_G(self.z(self.batch), update_w_avg=True)
            F.softplus(self.Dc(img)).mean().backward()
            F.softplus(-self.Dc(self.real)).mean().backward()

    def Dreg(self):
        with self._phase(self.D, self.D_opt), perf.eager():
            real = self.real.detach().requires_grad_(True)
            logits = self.Dc(real)
            (grads,) = torch.autograd.grad([logits.sum()], [real], create_graph=True, only_inputs=True)
            penalty = grads.square().sum([1, 2, 3]) * (self.loss.r1_gamma / 2)
            (logits * 0 + penalty).mean().mul(self.loss.r1_interval).backward()

    @torch.no_grad()
    def ema(self):
        self.nimg += self.batch
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def phases(self):
        return {"Gmain": self.Gmain, "Greg": self.Greg, "Dmain": self.Dmain, "Dreg": self.Dreg, "ema": self.ema}

    def amortised(self, t: dict[str, float]) -> float:
        return amortised_step(self.loss, t)


def amortised_step(loss, t: dict[str, float]) -> float:
    """Seconds per training step of the lazy schedule: PL every pl_interval, R1 every r1_interval steps."""
    return t["Gmain"] + t["Dmain"] + t["ema"] + t["Greg"] / loss.pl_interval + t["Dreg"] / loss.r1_interval


# ---------------------------------------------------------------------------------------------
# Variants and timing


@dataclass
class Variant:
    name: str
    reference: bool = False  # the code as first written
    modconv: str = "auto"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    models: dict = field(default_factory=dict)
    cache: WeightCache = field(default_factory=WeightCache)

    def context(self):
        if self.reference:
            return perf.reference_mode()
        return perf.modconv_policy(self.modconv)

    def weights(self):
        """Generation reuses derived weights across calls, as `synth.sample.generate` does."""
        if self.reference:
            return contextlib.nullcontext()
        return weight_cache(self.cache)

    def fused_arg(self):
        return True if self.reference else "auto"

    def activate(self, G, D):
        perf.set_channels_last(G, self.channels_last and not self.reference)
        perf.set_channels_last(D, self.channels_last and not self.reference)


CLOCK = {"wall": time.perf_counter, "process": time.process_time}
TIMER = {"clock": time.perf_counter}


def timed(fn, device) -> float:
    clock = TIMER["clock"]
    sync(device)
    t = clock()
    fn()
    sync(device)
    return clock() - t


def run_interleaved(variants, make_fn, device, warmup, iters):
    """{variant: [seconds...]}; repetitions alternate between variants."""
    out = {v.name: [] for v in variants}
    for rep in range(warmup + iters):
        for v in variants:
            fn, ctx = make_fn(v)
            with ctx:
                t = timed(fn, device)
            if rep >= warmup:
                out[v.name].append(t)
    return out


def bench_config(name, args, device, variants):
    tcfg = make_config(name)
    torch.manual_seed(0)
    G = Generator(tcfg.G).to(device).eval()
    D = build_discriminator(tcfg.D).to(device)
    result = {"config": name, "G_params": sum(p.numel() for p in G.parameters()),
              "D_params": sum(p.numel() for p in D.parameters()), "variants": {}}
    for v in variants:
        Gc = perf.maybe_compile(G, v.compile, v.compile_mode)
        Gm = perf.maybe_compile(G.mapping, v.compile, v.compile_mode)
        Gs = perf.maybe_compile(G.synthesis, v.compile, v.compile_mode)
        Dc = perf.maybe_compile(D, v.compile, v.compile_mode)
        v.models = {"G": Gc, "Gm": Gm, "Gs": Gs, "D": Dc}
        result["variants"][v.name] = {"settings": {"reference": v.reference, "modconv": v.modconv,
                                                   "channels_last": v.channels_last, "compile": v.compile}}

    def log(msg):
        print(f"  [{name}] {msg}", flush=True)

    if "gen" in args.what:
        for gb in args.gen_batches:
            z = torch.randn(gb, G.z_dim, device=device)

            def make_gen(v, z=z):
                def fn():
                    v.activate(G, D)
                    with torch.no_grad(), v.weights():
                        v.models["G"](z, noise_mode="const", fused_modconv=v.fused_arg())
                return fn, v.context()

            times = run_interleaved(variants, make_gen, device, args.warmup, args.iters * (2 if gb == 1 else 1))
            for v in variants:
                med = statistics.median(times[v.name])
                result["variants"][v.name][f"gen_b{gb}_img_s"] = gb / med
                result["variants"][v.name][f"gen_b{gb}_times"] = times[v.name]
                log(f"gen batch {gb:>2} {v.name:>8}: {gb / med:8.2f} img/s  (median {med * 1e3:.0f} ms)")

    if "train" in args.what:
        batch = args.train_batch or TRAIN_BATCH[name]
        trainers = {}
        for v in variants:
            trainers[v.name] = Trainer(tcfg, G, D, batch, device, Gm=v.models["Gm"], Gs=v.models["Gs"],
                                       Dc=v.models["D"], fused_modconv=v.fused_arg())
        G.train()
        per_phase = {v.name: {k: [] for k in trainers[v.name].phases()} for v in variants}
        for rep in range(args.warmup + args.iters):
            for v in variants:
                tr = trainers[v.name]
                for phase, fn in tr.phases().items():
                    def run(fn=fn, v=v):
                        v.activate(G, D)
                        fn()
                    with v.context():
                        t = timed(run, device)
                    if rep >= args.warmup:
                        per_phase[v.name][phase].append(t)
        G.eval()
        for v in variants:
            tr = trainers[v.name]
            med = {k: statistics.median(ts) for k, ts in per_phase[v.name].items()}
            step = tr.amortised(med)
            r = result["variants"][v.name]
            r.update({"train_batch": batch, "train_img_s": batch / step, "train_step_s": step,
                      "phase_median_s": med, "phase_times": per_phase[v.name]})
            log(f"train batch {batch} {v.name:>8}: {batch / step:8.3f} img/s  (step {step:.2f} s; "
                + ", ".join(f"{k} {s:.2f}" for k, s in med.items()) + ")")
    for v in variants:
        for m in v.models.values():
            if isinstance(m, perf.CompiledModule) and m.compile_failed:
                result["variants"][v.name]["compile_failed"] = m.compile_failed
    return result


def load_average() -> str:
    """The 1 / 5 / 15-minute load averages as text, for a benchmark's header ("n/a" where the OS has none)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def median_range(values: list[float]) -> str:
    """A table cell of repeated timings: 'median [min-max]', one decimal."""
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def markdown_header(threads: int, allocator: str) -> str:
    """The conditions every benchmark table in docs/performance.md carries."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"| CPU | cores | torch | threads | allocator | date (UTC) | load (1/5/15 min) |\n|---|---|---|---|---|---|---|\n"
            f"| {cpu_model()} | {os.cpu_count()} | {torch.__version__} | {threads} | {allocator} | "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {' / '.join(f'{x:.2f}' for x in load)} |")



def header(args, device) -> dict:
    info = {
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "allocator": perf.allocator_info(), "mkldnn": torch.backends.mkldnn.is_available(),
        "omp_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_"))},
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "modconv_policy": args.modconv, "warmup": args.warmup, "iters": args.iters, "timer": args.timer,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# Allocator settings for --env-sweep (docs/performance.md, "Allocator"). Libraries from Debian:
# apt-get install libjemalloc2 libtcmalloc-minimal4.
LIBDIR = "/usr/lib/x86_64-linux-gnu"
HUGE = str(1 << 40)
ENVS = {
    "glibc": {},
    # Fixed thresholds: no dynamic mmap threshold, never trim the heap top back to the OS.
    "glibc-tuned": {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={1 << 25}:glibc.malloc.trim_threshold={HUGE}"},
    # No mmap at all: every block, however large, comes from (and returns to) the heap.
    "glibc-nommap": {"GLIBC_TUNABLES": f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={HUGE}"},
    "jemalloc": {"LD_PRELOAD": f"{LIBDIR}/libjemalloc.so.2"},
    "jemalloc-nodecay": {"LD_PRELOAD": f"{LIBDIR}/libjemalloc.so.2",
                         "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
    "tcmalloc": {"LD_PRELOAD": f"{LIBDIR}/libtcmalloc_minimal.so.4",
                 "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": HUGE},
    # Not an allocator: OpenMP threads sleep instead of spinning at barriers (helps on shared cores).
    "omp-passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "jemalloc+omp-passive": {"LD_PRELOAD": f"{LIBDIR}/libjemalloc.so.2", "OMP_WAIT_POLICY": "PASSIVE"},
}


def env_sweep(args, argv) -> int:
    """Re-run this benchmark in child processes under each allocator setting, in rounds."""
    names = args.env_sweep
    unknown = [n for n in names if n not in ENVS]
    if unknown:
        raise SystemExit(f"unknown --env-sweep entries {unknown}; choose from {sorted(ENVS)}")
    child_argv, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--env-sweep", "--sweep-rounds", "--json"):
            skip = True
            continue
        if a.startswith(("--env-sweep=", "--sweep-rounds=", "--json=")):
            continue
        child_argv.append(a)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rnd in range(args.sweep_rounds):
        for name in names:
            lib = ENVS[name].get("LD_PRELOAD")
            if lib and not os.path.exists(lib):
                print(f"# {name}: {lib} missing, skipped", flush=True)
                continue
            env = {k: v for k, v in os.environ.items()
                   if k not in ("GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_CONF", "OMP_WAIT_POLICY")
                   and not k.startswith("MALLOC_")}
            env.update(ENVS[name])
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
                out = tmp.name
            cmd = [sys.executable, os.path.abspath(__file__), *child_argv, "--json", out]
            print(f"# round {rnd + 1}/{args.sweep_rounds} {name}: {' '.join(f'{k}={v}' for k, v in ENVS[name].items())}",
                  flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], flush=True)
                continue
            with open(out) as fh:
                data = json.load(fh)
            os.unlink(out)
            runs[name].append(data)
            for r in data["results"]:
                for vname, v in r["variants"].items():
                    vals = {k: round(x, 3) for k, x in v.items() if k.endswith("_img_s")}
                    print(f"#   {r['config']} {vname} {vals} allocator={data['header']['allocator']}", flush=True)
    print()
    print("| allocator setting | config | variant | " + " | ".join(["metric", "median img/s", "runs"]) + " |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for name, datas in runs.items():
        if not datas:
            continue
        for ci, r in enumerate(datas[0]["results"]):
            for vname, v in r["variants"].items():
                for metric in [k for k in v if k.endswith("_img_s")]:
                    vals = [d["results"][ci]["variants"][vname][metric] for d in datas]
                    med = statistics.median(vals)
                    summary.setdefault(name, {})[f"{r['config']}/{vname}/{metric}"] = {"median": med, "runs": vals}
                    print(f"| {name} | {r['config']} | {vname} | {metric} | {med:.3f} | "
                          + ", ".join(f"{x:.3f}" for x in vals) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"envs": {n: ENVS[n] for n in names}, "summary": summary, "runs": runs}, fh, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="S32,S64,S256", help="comma list of S32, S64, S256")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--compile", action="store_true", help="torch.compile G and D (perf.maybe_compile)")
    ap.add_argument("--compile-mode", default=None)
    ap.add_argument("--channels-last", action="store_true", help="NHWC activations (perf.set_channels_last)")
    ap.add_argument("--modconv", default="auto", choices=perf.MODCONV_POLICIES)
    ap.add_argument("--retain-malloc", action="store_true",
                    help="perf.retain_malloc(): glibc reuses freed memory instead of unmapping it")
    ap.add_argument("--compare", action="store_true", help="also run 'before' (reference code), interleaved")
    ap.add_argument("--before", action="store_true", help="run only 'before' (reference code)")
    ap.add_argument("--variants", default=None,
                    help="comma list, interleaved: before, after, after-cl, after-compile, after-cl-compile")
    ap.add_argument("--what", default="gen,train", help="comma list of gen, train")
    ap.add_argument("--gen-batches", default="16,1")
    ap.add_argument("--train-batch", type=int, default=None,
                    help=f"training batch (default per config: {TRAIN_BATCH})")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--timer", default="wall", choices=sorted(CLOCK),
                    help="wall clock (img/s as users see it) or process CPU time (less sensitive to other "
                         "load; with 1 thread it equals the compute time)")
    ap.add_argument("--json", default=None, help="write all timings here")
    ap.add_argument("--env-sweep", default=None,
                    help=f"comma list of allocator settings to compare in child processes: {', '.join(ENVS)}")
    ap.add_argument("--sweep-rounds", type=int, default=2, help="rounds over all --env-sweep settings")
    ap.add_argument("--roofline", action="store_true",
                    help="this machine's fp32/bf16 conv and matmul GFLOP/s, and each phase's fraction of it "
                         "(bench/roofline.py); with --compare: before and after in the same run")
    ap.add_argument("--official", default=None, metavar="PATH",
                    help="side by side with NVIDIA's code from this checkout of NVlabs/stylegan3 or "
                         "stylegan2-ada-pytorch (bench/side_by_side.py): one process each, interleaved")
    ap.add_argument("--allocator", default="glibc-nommap", choices=sorted(ENVS),
                    help="--official: allocator environment of both processes (default: glibc keeps freed "
                         "memory, by GLIBC_TUNABLES, the same mechanism for both)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="--official: precision of ours (stylegan.nn.precision_scope); the official runs fp32")
    args = ap.parse_args(argv)
    args.env_sweep = [e.strip() for e in args.env_sweep.split(",")] if args.env_sweep else None
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.what = [w.strip() for w in args.what.split(",") if w.strip()]
    args.gen_batches = [int(b) for b in args.gen_batches.split(",") if b.strip()]
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.env_sweep:
        return env_sweep(args, argv)
    if args.official:
        import side_by_side

        return side_by_side.run(args, args.allocator, ENVS)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    TIMER["clock"] = CLOCK[args.timer]
    if args.retain_malloc and not perf.retain_malloc():
        print("# --retain-malloc: not glibc, ignored")
    info = header(args, device)
    print(markdown_header(torch.get_num_threads(), str(info["allocator"])))
    print("# stylegan bench")
    for k, v in info.items():
        print(f"# {k}: {v}")
    presets = {
        "before": Variant("before", reference=True),
        "after": Variant("after", modconv=args.modconv, channels_last=args.channels_last, compile=args.compile,
                         compile_mode=args.compile_mode),
        "after-cl": Variant("after-cl", modconv=args.modconv, channels_last=True),
        "after-compile": Variant("after-compile", modconv=args.modconv, compile=True, compile_mode=args.compile_mode),
        "after-cl-compile": Variant("after-cl-compile", modconv=args.modconv, channels_last=True, compile=True,
                                    compile_mode=args.compile_mode),
    }
    if args.variants:
        unknown = [v for v in args.variants if v not in presets]
        if unknown:
            raise SystemExit(f"unknown --variants {unknown}; choose from {sorted(presets)}")
        variants = [presets[v] for v in args.variants]
    elif args.before:
        variants = [presets["before"]]
    else:
        variants = [presets["before"], presets["after"]] if args.compare else [presets["after"]]
    if args.roofline:
        import roofline

        return roofline.run(sys.modules[__name__], args, device, variants)
    results = []
    for name in args.configs:
        results.append(bench_config(name, args, device, variants))

    print()
    cols = [f"gen b{b}" for b in args.gen_batches] + ["train"]
    print("| config | variant | " + " | ".join(f"{c} img/s" for c in cols) + " | train batch |")
    print("|---" * (len(cols) + 3) + "|")
    for r in results:
        for vname, v in r["variants"].items():
            vals = [f"{v.get(f'gen_b{b}_img_s', float('nan')):.2f}" for b in args.gen_batches]
            vals.append(f"{v.get('train_img_s', float('nan')):.3f}")
            print(f"| {r['config']} | {vname} | " + " | ".join(vals) + f" | {v.get('train_batch', '-')} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": info, "args": vars(args), "results": results}, fh, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
