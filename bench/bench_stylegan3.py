"""StyleGAN3 speed: filtered_lrelu (fast vs reference form) on the layer shapes of a 256 px network,
and whole-generator inference of ours (fast / reference forms) beside NVIDIA's code on the same
machine, in the same process.

    .venv/bin/python bench/bench_stylegan3.py --op                       # the op alone
    .venv/bin/python bench/bench_stylegan3.py --net --official /tmp/sg3  # G(z): ours vs NVIDIA's

NVIDIA's networks come from a local NVlabs/stylegan3 checkout (`--official`, never part of this
repository); without a GPU they run their reference ops (upfirdn2d / bias_act in plain PyTorch).
Every figure is the best of `--repeat` timed calls after one warm-up; the script prints the load
average before and after, since a busy machine moves them.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from official_checkout import use_checkout  # noqa: E402 - makes NVIDIA's checkout importable

from bench import load_average  # noqa: E402 - bench/bench.py


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def load() -> str:
    return "load average " + load_average()


def bench_op(config: str, res: int, repeat: int) -> None:
    from stylegan.models import Generator
    from stylegan.models.stylegan3 import synthesis_schedule
    from stylegan.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_reference
    from stylegan.ops.settings import OpSettings

    cfg = sg3_config(config, res)
    layers = Generator(cfg).synthesis.layers()
    _, specs = synthesis_schedule(cfg)
    print(f"filtered_lrelu, StyleGAN3-{config} {res} px layers, batch 1, float32, no autograd")
    total_ref = total_fast = 0.0
    with torch.no_grad():
        for layer, s in zip(layers, specs):
            size = s.in_size + s.conv_kernel - 1
            x = torch.randn(1, s.out_channels, size, size)
            kw = dict(up=s.up_factor, down=s.down_factor, padding=s.padding, clamp=256.0,
                      gain=1.0 if s.is_torgb else 2 ** 0.5, slope=1.0 if s.is_torgb else 0.2)
            args = (x, layer.up_filter, layer.down_filter, layer.bias)
            ref = best_ms(lambda: filtered_lrelu_reference(*args, **kw), repeat)
            fast = best_ms(lambda: filtered_lrelu(*args, settings=OpSettings(), **kw), repeat)
            total_ref, total_fast = total_ref + ref, total_fast + fast
            print(f"  {s.name:<12} [1, {s.out_channels}, {size}, {size}] up {s.up_factor} down {s.down_factor}"
                  f"{' radial' if s.down_radial else ''}: reference {ref:8.1f} ms, fast {fast:7.1f} ms "
                  f"({ref / fast:4.1f}x)", flush=True)
    print(f"  all layers: reference {total_ref:.0f} ms, fast {total_fast:.0f} ms ({total_ref / total_fast:.1f}x)")


def sg3_config(config: str, res: int):
    from stylegan.models import GeneratorConfig, MappingConfig, StyleGAN3Options

    r = config == "R"
    return GeneratorConfig(z_dim=512, w_dim=512, img_resolution=res, channel_base=32768 * (2 if r else 1),
                           channel_max=512 * (2 if r else 1), version=3, conv_clamp=256,
                           v3=StyleGAN3Options(conv_kernel=1 if r else 3, use_radial_filters=r),
                           mapping=MappingConfig(num_layers=2, w_avg_beta=0.998))


def official_generator(root: Path, config: str, res: int):
    use_checkout(root, "training/networks_stylegan3.py")
    from training import networks_stylegan3 as n3  # noqa: E402
    r = config == "R"
    kw = dict(conv_kernel=1, use_radial_filters=True) if r else {}
    return n3.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                        channel_base=32768 * (2 if r else 1), channel_max=512 * (2 if r else 1),
                        mapping_kwargs=dict(num_layers=2), **kw).eval()


def bench_net(config: str, res: int, batch: int, repeat: int, official: Path | None) -> None:
    from stylegan import perf
    from stylegan.models import Generator

    torch.manual_seed(0)
    G = Generator(sg3_config(config, res)).eval()
    z = torch.randn(batch, 512)
    print(f"G(z), StyleGAN3-{config} {res} px (official channel counts), batch {batch}, float32, CPU")
    with torch.no_grad():
        fast = best_ms(lambda: G(z), repeat)
        with perf.reference_mode():
            ref = best_ms(lambda: G(z), repeat)
        print(f"  ours, fast forms       {fast:8.0f} ms/batch", flush=True)
        print(f"  ours, reference forms  {ref:8.0f} ms/batch", flush=True)
        if official is not None:
            G0 = official_generator(official, config, res)
            G0.load_state_dict(G.state_dict())
            nv = best_ms(lambda: G0(z, None), repeat)
            diff = (G0(z, None) - G(z)).abs().max().item()
            print(f"  NVIDIA's code (CPU)    {nv:8.0f} ms/batch  (same weights; max |difference| {diff:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description="StyleGAN3 speed on this machine")
    ap.add_argument("--op", action="store_true", help="time filtered_lrelu on every layer shape")
    ap.add_argument("--net", action="store_true", help="time G(z) (and NVIDIA's with --official)")
    ap.add_argument("--config", choices=["T", "R"], default="T")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--official", type=Path, default=None, help="an NVlabs/stylegan3 checkout to compare with")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load()}")
    if args.op or not args.net:
        bench_op(args.config, args.res, args.repeat)
    if args.net:
        bench_net(args.config, args.res, args.batch, args.repeat, args.official)
    print(load())


if __name__ == "__main__":
    main()
