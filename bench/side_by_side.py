#!/usr/bin/env python
"""Ours vs NVIDIA's official StyleGAN2, side by side: `python bench/bench.py --official PATH`.

PATH is a checkout of NVlabs/stylegan3 or NVlabs/stylegan2-ada-pytorch that the user supplies; its
`training/networks_stylegan2.py` and `training/loss.py` are imported from there at run time (they
are under NVIDIA's licence and never copied into this repository). Two stand-ins make that code
import on a current Python: `pkg_resources` (gone from setuptools >= 81; only `parse_version` is
used) and `requests` (only used to download URLs, which this never does).

Protocol: one worker process per implementation, started with the same environment (threads,
GLIBC_TUNABLES), builds the same config (bench.make_config: S32, S64, S256) and waits for
commands on stdin. The parent asks for one repetition at a time, alternating between the two (and
alternating which goes first), so load from other processes hits both alike. A worker is idle
(blocked on a read) while the other runs. Each command answers its wall time and the resident-set
peak (VmHWM, reset before each command through /proc/self/clear_refs) of that command.

Both run fp32 on the CPU: the official networks are built with num_fp16_res=0 (their blocks would
otherwise run fp16 on any device), the same conv_clamp as ours, and the official training loop's
phase order and Adam / lazy-regularization settings (bench.Trainer, which the official worker
subclasses to call `StyleGAN2Loss.accumulate_gradients` for each phase).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402 - the sibling script: configs, the training step, the report header

sys.path.insert(0, str(HERE.parent / "scripts"))
from official_checkout import use_checkout  # noqa: E402 - makes NVIDIA's checkout importable
PHASES = ("Gmain", "Greg", "Dmain", "Dreg", "ema")


# ---------------------------------------------------------------------------------------------
# Worker side


def import_official(path: str):
    """(networks_stylegan2, loss) modules of the official checkout at `path`."""
    use_checkout(path, "training/networks_stylegan2.py")
    from training import loss, networks_stylegan2  # type: ignore[import-not-found]

    return networks_stylegan2, loss


def official_networks(nets, tcfg):
    """The official G and D for our TrainingConfig (fp32: num_fp16_res=0)."""
    g, d = tcfg.G, tcfg.D
    G = nets.Generator(z_dim=g.z_dim, c_dim=0, w_dim=g.w_dim, img_resolution=g.img_resolution,
                       img_channels=g.img_channels,
                       mapping_kwargs=dict(num_layers=g.mapping.num_layers, lr_multiplier=g.mapping.lr_multiplier),
                       channel_base=g.channel_base, channel_max=g.channel_max, num_fp16_res=0,
                       conv_clamp=g.conv_clamp, architecture=g.architecture,
                       resample_filter=list(g.resample_filter))
    D = nets.Discriminator(c_dim=0, img_resolution=d.img_resolution, img_channels=d.img_channels,
                           architecture=d.architecture, channel_base=d.channel_base, channel_max=d.channel_max,
                           num_fp16_res=0, conv_clamp=d.conv_clamp,
                           block_kwargs=dict(resample_filter=list(d.resample_filter)),
                           epilogue_kwargs=dict(mbstd_group_size=d.mbstd_group_size,
                                                mbstd_num_channels=d.mbstd_num_channels))
    return G, D


def make_official_trainer(bench, loss_mod):
    class OfficialTrainer(bench.Trainer):
        """bench.Trainer's phases and optimizers, each phase's loss from the official StyleGAN2Loss."""

        def __init__(self, tcfg, G, D, batch, device):
            super().__init__(tcfg, G, D, batch, device)
            lc = tcfg.loss
            self.official = loss_mod.StyleGAN2Loss(
                device, G, D, r1_gamma=lc.r1_gamma, style_mixing_prob=lc.style_mixing_prob,
                pl_weight=lc.pl_weight, pl_batch_shrink=lc.pl_batch_shrink, pl_decay=lc.pl_decay)
            self.c = torch.zeros(batch, 0, device=device)

        def _run(self, phase, module, opt, gain=1):
            with self._phase(module, opt):
                self.official.accumulate_gradients(phase, self.real, self.c, self.z(self.batch), self.c,
                                                   gain=gain, cur_nimg=self.nimg)

        def Gmain(self):
            self._run("Gmain", self.G, self.G_opt)

        def Greg(self):
            if self.loss.pl_weight != 0:
                self._run("Greg", self.G, self.G_opt, gain=self.loss.pl_interval)

        def Dmain(self):
            self._run("Dmain", self.D, self.D_opt)

        def Dreg(self):
            self._run("Dreg", self.D, self.D_opt, gain=self.loss.r1_interval)

    return OfficialTrainer


def reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(impl: str, config: str, official: str | None, train_batch: int, precision: str) -> int:
    """Serve timing commands (JSON lines on stdin) for one implementation and config."""
    out = os.fdopen(os.dup(1), "w", buffering=1)  # answers only; prints of imported code go to stderr
    os.dup2(2, 1)
    from stylegan.models import Generator, build_discriminator
    from stylegan.nn import WeightCache, precision_scope, weight_cache

    device = torch.device("cpu")
    tcfg = bench.make_config(config)
    torch.manual_seed(0)
    if impl == "ours":
        G, D = Generator(tcfg.G), build_discriminator(tcfg.D)
        trainer = bench.Trainer(tcfg, G, D, train_batch, device)

        cache = WeightCache()  # as our generation API does (stylegan.synth.sample.generate)

        def gen(z):
            with weight_cache(cache):
                return G(z, noise_mode="const")
        scope = (lambda: precision_scope(precision))
    else:
        nets, loss_mod = import_official(official)
        G, D = official_networks(nets, tcfg)
        trainer = make_official_trainer(bench, loss_mod)(tcfg, G, D, train_batch, device)
        c0 = {}

        def gen(z):
            c = c0.setdefault(z.shape[0], torch.zeros(z.shape[0], 0))
            return G(z, c, noise_mode="const")
        scope = (lambda: precision_scope(None))
    out.write(json.dumps({"ready": True, "G_params": sum(p.numel() for p in G.parameters()),
                          "D_params": sum(p.numel() for p in D.parameters())}) + "\n")
    zs = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        reset_peak_rss()
        with scope():
            if cmd["op"] == "gen":
                G.eval()
                z = zs.setdefault(cmd["batch"], torch.randn(cmd["batch"], G.z_dim))
                t = time.perf_counter()
                with torch.no_grad():
                    gen(z)
                dt = time.perf_counter() - t
            else:
                G.train()
                fn = getattr(trainer, cmd["op"])
                t = time.perf_counter()
                fn()
                dt = time.perf_counter() - t
        out.write(json.dumps({"t": dt, "peak_mib": peak_rss_mib()}) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side


def train_batch(args, config: str) -> int:
    return args.train_batch or bench.TRAIN_BATCH[config]


class Worker:
    def __init__(self, impl: str, config: str, args, env: dict[str, str]):
        cmd = [sys.executable, str(HERE / "side_by_side.py"), "--worker", impl, "--config", config,
               "--train-batch", str(train_batch(args, config)), "--precision", args.precision]
        if impl == "official":
            cmd += ["--official", args.official]
        self.impl = impl
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                     bufsize=1)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.impl} worker exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def ask(self, op: str, **kw) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait()


def _alternating(workers, rep):
    return workers if rep % 2 == 0 else workers[::-1]


def measure_config(config: str, args, env) -> dict:
    """{impl: {metric: [seconds...], 'peak': {metric: MiB}}} for one config, interleaved."""
    workers = [Worker("ours", config, args, env), Worker("official", config, args, env)]
    res = {w.impl: {"info": w.info, "times": {}, "peak": {}} for w in workers}
    try:
        if "gen" in args.what:
            for gb in args.gen_batches:
                key = f"gen_b{gb}"
                for rep in range(args.warmup + args.iters * (2 if gb == 1 else 1)):
                    for w in _alternating(workers, rep):
                        a = w.ask("gen", batch=gb)
                        r = res[w.impl]
                        r["peak"][key] = max(r["peak"].get(key, 0), a["peak_mib"])
                        if rep >= args.warmup:
                            r["times"].setdefault(key, []).append(a["t"])
                print(f"  [{config}] {key}: " + ", ".join(
                    f"{i} {gb / statistics.median(res[i]['times'][key]):.2f} img/s" for i in res), flush=True)
        if "train" in args.what:
            for rep in range(args.warmup + args.iters):
                for w in _alternating(workers, rep):
                    for phase in PHASES:
                        a = w.ask(phase)
                        r = res[w.impl]
                        r["peak"][phase] = max(r["peak"].get(phase, 0), a["peak_mib"])
                        if rep >= args.warmup:
                            r["times"].setdefault(phase, []).append(a["t"])
            for i, r in res.items():
                med = {p: statistics.median(r["times"][p]) for p in PHASES}
                r["train_step_s"] = bench.amortised_step(bench.make_config(config).loss, med)
            print(f"  [{config}] train: " + ", ".join(
                f"{i} {train_batch(args, config) / res[i]['train_step_s']:.3f} img/s" for i in res), flush=True)
    finally:
        for w in workers:
            w.close()
    return res


def print_tables(results: dict, args) -> None:
    rate = {}
    for config, res in results.items():
        for impl, r in res.items():
            for key, ts in r["times"].items():
                if key.startswith("gen_b"):
                    rate[config, impl, key] = int(key[5:]) / statistics.median(ts)
            if "train_step_s" in r:
                rate[config, impl, "train"] = train_batch(args, config) / r["train_step_s"]
    cols = [f"gen_b{b}" for b in args.gen_batches if "gen" in args.what] + (["train"] if "train" in args.what else [])
    print("\n| config | " + " | ".join(f"{c} img/s official / ours = ratio" for c in cols) + " | train batch |")
    print("|---" * (len(cols) + 2) + "|")
    for config in results:
        cells = []
        for c in cols:
            o, u = rate[config, "official", c], rate[config, "ours", c]
            cells.append(f"{o:.3g} / {u:.3g} = **{u / o:.2f}x**")
        print(f"| {config} | " + " | ".join(cells) + f" | {train_batch(args, config)} |")
    print("\nPeak resident set (MiB, VmHWM during each measurement, max over repetitions):\n")
    keys = [c for c in cols if c != "train"] + ([p for p in PHASES] if "train" in args.what else [])
    print("| config | " + " | ".join(f"{k} official / ours" for k in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for config, res in results.items():
        print(f"| {config} | " + " | ".join(
            f"{res['official']['peak'][k]:.0f} / {res['ours']['peak'][k]:.0f}" for k in keys) + " |")
    print("\nPhase medians (s): " + "; ".join(
        f"{config} {impl}: " + ", ".join(f"{p} {statistics.median(r['times'][p]):.3f}" for p in PHASES if p in r["times"])
        for config, res in results.items() for impl, r in res.items()))


def run(args, env_name: str, envs: dict) -> int:
    """Parent: both workers per config, same env; prints the header and the ratio tables."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_CONF") and not k.startswith("MALLOC_")}
    env.update(envs[env_name])
    threads = args.threads or torch.get_num_threads()
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "src"), env.get("PYTHONPATH")]))
    print(bench.markdown_header(threads, f"{env_name} ({' '.join(f'{k}={v}' for k, v in envs[env_name].items()) or 'defaults'})"))
    print(f"\nofficial: {args.official} (training/networks_stylegan2.py + loss.py, num_fp16_res=0); "
          f"ours: this tree, precision {args.precision}; warmup {args.warmup}, iters {args.iters} "
          f"(batch 1: {2 * args.iters}), interleaved, one process each\n", flush=True)
    results = {c: measure_config(c, args, env) for c in args.configs}
    print_tables(results, args)
    print(f"\nload average at the end: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"env": envs[env_name], "threads": threads, "results": results}, fh, indent=1)
    return 0


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="worker process of bench.py --official")
    ap.add_argument("--worker", choices=["ours", "official"], required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--official", default=None)
    ap.add_argument("--train-batch", type=int, required=True)
    ap.add_argument("--precision", default="fp32")
    a = ap.parse_args(argv)
    return worker(a.worker, a.config, a.official, a.train_batch, a.precision)


if __name__ == "__main__":
    sys.exit(main())
