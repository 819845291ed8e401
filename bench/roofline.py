"""`python bench/bench.py --roofline`: each phase's achieved GFLOP/s as a fraction of this machine's.

Peak: the best of a few dense kernels that dominate StyleGAN2 (F.conv2d 3x3 with 512 channels at
32x32 and 256 channels at 64x64, batch 8; a 2048^2 matmul), in fp32 and bf16, at the benchmark's
thread count (see `kernel_peaks` for CPUs that emulate bf16). Work: torch.utils.flop_counter formulas over one call of the same networks
(gen: G forward; training phases: forward + backward, double backward included for R1 / PL),
counted with the default fast paths; grouped and depthwise convolutions' weight gradients by
`conv_backward_flops` (torch's formula overcounts them by the number of groups). Fraction = (FLOPs / median seconds) / fp32 conv peak; the
FLOPs are the matmul / convolution ones only (elementwise work is not counted), so 100% is
unreachable and the fraction says how much of the wall time the dense kernels fill.
"""
from __future__ import annotations

import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import conv_flop_count, flop_registry

def _conv(n, c, r):
    """3x3 'same' conv, n x c channels x r px: (make inputs for dtype, op, FLOPs)."""
    return (lambda dt: (torch.randn(n, c, r, r, dtype=dt), torch.randn(c, c, 3, 3, dtype=dt)),
            lambda x, w: F.conv2d(x, w, padding=1), 2 * n * c * c * 9 * r * r)


PEAK_KERNELS = {
    "conv3x3 512ch 32px": lambda n: _conv(n, 512, 32),
    "conv3x3 256ch 64px": lambda n: _conv(n, 256, 64),
    "matmul 2048^2": lambda n: ((lambda dt: (torch.randn(2048, 2048, dtype=dt), torch.randn(2048, 2048, dtype=dt))),
                                torch.mm, 2 * 2048 ** 3),
}


def kernel_peaks(reps: int = 5) -> dict[str, dict[str, float]]:
    """{dtype: {kernel: best GFLOP/s over `reps`}} (best, not median: the machine's capability).

    fp32 convs at batch 8; bf16 too where the CPU has bf16 instructions. Where it has none
    (`stylegan.nn.precision_problem`), bf16 is emulated and ~50x slower, so it is measured once at
    batch 1 (the rate hardly depends on the batch) and marked "emulated".
    """
    from stylegan.nn import precision_problem

    emulated = precision_problem("bf16", "cpu") is not None
    out: dict[str, dict[str, float]] = {}
    for dt in (torch.float32, torch.bfloat16):
        slow = dt == torch.bfloat16 and emulated
        name = str(dt).replace("torch.", "") + (" (emulated)" if slow else "")
        out[name] = {}
        for kname, spec in PEAK_KERNELS.items():
            make, fn, flops = spec(1 if slow else 8)
            if slow and kname.startswith("matmul"):
                make, fn, flops = (lambda dt: (torch.randn(512, 512, dtype=dt), torch.randn(512, 512, dtype=dt)),
                                   torch.mm, 2 * 512 ** 3)
            a, b = make(dt)
            fn(a, b)  # warm-up (oneDNN primitive creation)
            times = []
            for _ in range(1 if slow else reps):
                t = time.perf_counter()
                fn(a, b)
                times.append(time.perf_counter() - t)
            out[name][kname] = flops / min(times) / 1e9
    return out


def conv_backward_flops(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding,
                        groups, output_mask, out=None, **kwargs) -> int:
    """FLOPs of aten.convolution_backward (the inputs' and the weight's gradient), groups included.

    torch 2.13's `flop_registry` formula ignores `groups` for the weight gradient, so it counts a
    grouped conv (our fused modulated conv: N groups) or a depthwise one (the FIR filters: C
    groups) as if every output channel saw every input channel: up to C times the real work.
    """
    def t(shape):
        return [shape[1], shape[0]] + list(shape[2:])

    total = 0
    if output_mask[0]:
        total += conv_flop_count(list(grad_out.shape), list(w.shape), list(out[0].shape), not transposed)
    if output_mask[1]:
        a, b = (grad_out.shape, x.shape) if transposed else (x.shape, grad_out.shape)
        total += conv_flop_count(t(a), t(b), t(out[1].shape), False) // groups
    return total


class _DispatchFlops(TorchDispatchMode):
    """Matmul / convolution FLOPs by `flop_registry`'s per-op formulas, with `conv_backward_flops`
    for the convolutions' backward; no module tracker (FlopCounterMode's backward hooks raise
    inside autograd.grad(create_graph=True) w.r.t. a leaf, R1, in torch 2.13)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._overloadpacket is torch.ops.aten.convolution_backward:
            self.total += conv_backward_flops(*args, **kwargs, out=out)
        else:
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(fn) -> int:
    """Matmul / convolution FLOPs of fn(), forward and backward."""
    with _DispatchFlops() as counter:
        fn()
    return counter.total


def phase_flops(bench, name: str, args) -> dict[str, int]:
    """FLOPs of gen b16 / b1 and of each training phase of config `name` (ours, default fast paths)."""
    tcfg = bench.make_config(name)
    torch.manual_seed(0)
    G = bench.Generator(tcfg.G).eval()
    D = bench.build_discriminator(tcfg.D)
    out = {}
    for gb in args.gen_batches:
        z = torch.randn(gb, G.z_dim)
        with torch.no_grad():
            out[f"gen_b{gb}"] = count_flops(lambda: G(z, noise_mode="const"))
    tr = bench.Trainer(tcfg, G, D, args.train_batch or bench.TRAIN_BATCH[name], torch.device("cpu"))
    G.train()
    for phase, fn in tr.phases().items():
        out[phase] = count_flops(fn)
    return out


def report(bench, args, results: list[dict], flops: dict[str, dict[str, int]], peaks) -> None:
    fp32_conv = max(v for k, v in peaks["float32"].items() if k.startswith("conv"))
    print(f"\nload average after the runs: {os.getloadavg()}")
    print("\nMachine peaks (GFLOP/s, best of several runs):\n")
    print("| kernel | " + " | ".join(peaks) + " |")
    print("|---" * (len(peaks) + 1) + "|")
    for k in PEAK_KERNELS:
        print(f"| {k} | " + " | ".join(f"{peaks[d][k]:.3g}" for d in peaks) + " |")
    print(f"\nFraction of the fp32 conv peak ({fp32_conv:.0f} GFLOP/s); matmul + conv FLOPs per call (roofline.count_flops):\n")
    variants = list(results[0]["variants"])
    print("| config | phase | GFLOP per call | " + " | ".join(f"{v}: GFLOP/s (fraction)" for v in variants) + " |")
    print("|---" * (len(variants) + 3) + "|")
    for r in results:
        f = flops[r["config"]]
        for key in [k for k in f if k.startswith("gen")] + ["Gmain", "Dmain", "Dreg", "Greg"]:
            if f.get(key, 0) == 0:
                continue
            cells = []
            for v in variants:
                vr = r["variants"][v]
                ts = vr.get(f"{key}_times") or vr.get("phase_times", {}).get(key)
                if not ts:
                    cells.append("-")
                    continue
                gflops = f[key] / statistics.median(ts) / 1e9
                cells.append(f"{gflops:.1f} ({gflops / fp32_conv:.0%})")
            if any(c != "-" for c in cells):
                print(f"| {r['config']} | {key} | {f[key] / 1e9:.2f} | " + " | ".join(cells) + " |")


def run(bench, args, device, variants) -> int:
    threads = torch.get_num_threads()
    print(bench.markdown_header(threads, str(bench.perf.allocator_info())), flush=True)
    peaks = kernel_peaks()
    flops = {name: phase_flops(bench, name, args) for name in args.configs}
    results = [bench.bench_config(name, args, device, variants) for name in args.configs]
    report(bench, args, results, flops, peaks)
    return 0
