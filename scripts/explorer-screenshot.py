"""The README's explorer screenshot, of a real network: serve `stylegan explore` for NETWORK on
127.0.0.1, open it in headless Chromium (scripts/setup-browser.sh installs it), set a view and save
the whole page as OUT.

    .venv/bin/python scripts/explorer-screenshot.py runs/00000-mnist-cpu-demo/snapshot-000060000.safetensors \
        docs/images/explorer.png --seed 11 --class 7 --mix-seed 3 --mix coarse
"""
from __future__ import annotations

import argparse
import shutil
import time

import stylegan
from stylegan.explore import ExploreConfig, create_app
from stylegan.explore.server import serve_in_thread


def wait_for(fn, timeout: float = 60.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


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
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        raise SystemExit("needs chromium and chromedriver: bash scripts/setup-browser.sh")
    G = stylegan.load(args.network)
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
            view = {"seed": args.seed, "psi": args.psi, "mix_seed": args.mix_seed, "mix": args.mix, "var": "1",
                    "std_samples": "24"}
            if args.class_idx is not None:
                view["class"] = args.class_idx
            driver.execute_script("window.explorer.set(arguments[0])", view)
            for img in ("img-main", "img-mix", "img-variation"):  # each shows the view once rendered
                wait_for(lambda img=img: driver.execute_script(
                    f"const i = document.getElementById('{img}');"
                    f"return i && i.complete && i.naturalWidth > 0 && (i.dataset.query || '').includes('seed={args.seed}')"),
                    what=img)
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
