"""The README's explorer screenshot, of a real network: serve `stylegan explore` for NETWORK on
127.0.0.1, open it in headless Chromium (scripts/setup-browser.sh installs it), set a view and save
the whole page as OUT.

    .venv/bin/python scripts/explorer-screenshot.py runs/00000-mnist-cpu-demo/snapshot-000060000.safetensors \
        docs/images/explorer.png --seed 11 --class 7 --mix-seed 3 --mix coarse

A StyleGAN3 network shows its Transform panel (--tx, --ty image widths, --rotate degrees, --untransform)
and no stochastic variation (it has no noise inputs). NETWORK `random:stylegan3-t` (or `-r`) is an
UNTRAINED seeded network (128 px, channel_base 4096, channel_max 64, as scripts/make-sg3-equivariance.py
builds), its output scaled 3x so that the textures show; docs/explore.md's picture:

    .venv/bin/python scripts/explorer-screenshot.py random:stylegan3-t docs/images/explore-stylegan3.png \
        --seed 7 --tx 0.125 --ty -0.05 --rotate 15 --mix-seed 3 --mix 0-3
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import time

import torch

import stylegan
from stylegan.explore import ExploreConfig, create_app
from stylegan.explore.server import serve_in_thread
from stylegan.models import STYLEGAN3_R, STYLEGAN3_T, Generator, GeneratorConfig, MappingConfig

RANDOM_SG3 = {"random:stylegan3-t": STYLEGAN3_T, "random:stylegan3-r": STYLEGAN3_R}


def wait_for(fn, timeout: float = 60.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def random_sg3(name: str) -> Generator:
    """An untrained StyleGAN3 network, seeded: there is no trained one offline. Its raw output is
    nearly flat grey (std ~0.1 in [-1, 1]), so it is scaled 3x (output_scale 0.75 instead of 0.25)."""
    torch.manual_seed(0)
    opts = dataclasses.replace(RANDOM_SG3[name], output_scale=0.75)
    cfg = GeneratorConfig(z_dim=64, w_dim=64, img_resolution=128, channel_base=4096, channel_max=64, version=3,
                          v3=opts, mapping=MappingConfig(num_layers=2, w_avg_beta=0.998), conv_clamp=256)
    return Generator(cfg).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("network")
    ap.add_argument("out")
    ap.add_argument("--seed", default="11")
    ap.add_argument("--class", dest="class_idx", default=None)
    ap.add_argument("--psi", default="1")
    ap.add_argument("--mix-seed", default="3")
    ap.add_argument("--mix", default="coarse")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--tx", default="0", help="StyleGAN3: translate x, image widths")
    ap.add_argument("--ty", default="0", help="StyleGAN3: translate y, image widths")
    ap.add_argument("--rotate", default="0", help="StyleGAN3: rotate, degrees")
    ap.add_argument("--untransform", action="store_true", help="StyleGAN3: move the image back")
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        raise SystemExit("needs chromium and chromedriver: bash scripts/setup-browser.sh")
    G = random_sg3(args.network) if args.network in RANDOM_SG3 else stylegan.load(args.network)
    sg3 = getattr(G.cfg, "version", None) == 3
    app = create_app(G, "cpu", config=ExploreConfig())
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={args.width},1180", "--hide-scrollbars", "--force-color-profile=srgb",
                "--proxy-server=direct://", "--proxy-bypass-list=*", "--no-first-run"):
        opts.add_argument(arg)
    with serve_in_thread(app, "127.0.0.1", 0) as url:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        try:
            driver.get(url)
            wait_for(lambda: driver.execute_script("return !!window.explorer"), what="the explorer script")
            view = {"seed": args.seed, "psi": args.psi, "mix_seed": args.mix_seed, "mix": args.mix}
            if sg3:  # no noise inputs, so no variation strip; the transform instead
                view.update(tx=args.tx, ty=args.ty, rotate=args.rotate, untransform="1" if args.untransform else "")
            else:
                view.update(var="1", std_samples="24")
            if args.class_idx is not None:
                view["class"] = args.class_idx
            driver.execute_script("window.explorer.set(arguments[0])", view)
            for img in ("img-main", "img-mix") if sg3 else ("img-main", "img-mix", "img-variation"):  # once rendered
                wait_for(lambda img=img: driver.execute_script(
                    f"const i = document.getElementById('{img}');"
                    f"return i && i.complete && i.naturalWidth > 0 && (i.dataset.query || '').includes('seed={args.seed}')"
                    + (f" && i.dataset.query.includes('tx={args.tx}')" if sg3 else "")),
                    what=img, timeout=300)
            driver.execute_script("document.activeElement.blur()")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(args.width, height + 140)
            time.sleep(0.5)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
