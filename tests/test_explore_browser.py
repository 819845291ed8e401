"""The explorer in a real browser: headless Chromium (Debian's package, driven through Selenium and
Debian's chromedriver) against the real server on 127.0.0.1.

Moves the psi slider with the keyboard and types a seed, checks the pixels the page shows against
the library's images, drags the seed fifty times and checks the last image wins with a few renders,
runs a short projection and watches its progress, downloads the PNG and the w, moves an Edit slider
and sees the library's edited image. On a StyleGAN3 network: the transform controls and the noise
note show, a translate slider moved with the keyboard and the untransform box give the library's
images, and the transform loop plays frames of the same w. Set EXPLORE_SCREENSHOT=PATH to keep its screenshot
(EXPLORE_EDIT_SCREENSHOT=PATH: the Edit panel's) (the README's, of the demo's trained network, comes
from scripts/explorer-screenshot.py).

scripts/test.sh installs the browser (scripts/setup-browser.sh); this test skips only where no
browser can be installed at all, and says so loudly.
"""
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.explore import ExploreConfig, create_app
from stylegan.explore.server import serve_in_thread
from stylegan.io.images import to_uint8
from stylegan.synth.projector import PixelMSE
from stylegan.synth.sample import z_from_seeds
from test_explore import reference, reference_sg3, tiny, tiny_sg3  # the API tests' networks and images

R = 64
ROOT = Path(__file__).resolve().parents[1]


def _find_browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _browser_or_skip() -> tuple[str, str]:
    found = _find_browser()
    if found is None:  # not installed by scripts/test.sh (e.g. pytest run directly): try once here
        subprocess.run(["bash", str(ROOT / "scripts" / "setup-browser.sh")], check=False)
        found = _find_browser()
    if found is None:
        msg = ("\n" + "!" * 78 + "\nNO BROWSER: Chromium and chromedriver are not installed and could not be "
               "installed\n(scripts/setup-browser.sh needs apt-get and root). The real-browser test of "
               "`stylegan explore`\nDID NOT RUN.\n" + "!" * 78)
        print(msg, file=sys.stderr)
        warnings.warn(msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="module")
def G():
    return tiny(seed=3, resolution=R, z_dim=32, channel_base=1024)


@pytest.fixture(scope="module")
def server(G):
    app = create_app(G, "cpu", config=ExploreConfig(w_avg_samples=500, preview_every=2), distance=PixelMSE())
    with serve_in_thread(app, "127.0.0.1", 0) as url:
        assert url.startswith("http://127.0.0.1:")
        yield url, app.state.explorer


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1180", "--hide-scrollbars", "--force-color-profile=srgb",
                "--proxy-server=direct://", "--proxy-bypass-list=*", "--no-first-run"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(fn, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


PIXELS_JS = """
const img = document.getElementById(arguments[0]);
if (!img.complete || img.naturalWidth === 0) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d');
g.drawImage(img, 0, 0);
return [c.width, c.height, Array.from(g.getImageData(0, 0, c.width, c.height).data)];
"""


def shown(driver, img_id: str = "img-main", **expect) -> np.ndarray:
    """Pixels [H, W, 3] the page shows in img_id once its query has the expected values."""
    def ready():
        q = driver.execute_script(f"return document.getElementById('{img_id}').dataset.query || ''")
        params = dict(p.split("=", 1) for p in q.split("&") if "=" in p)
        if any(params.get(k) != str(v) for k, v in expect.items()):
            return None
        return driver.execute_script(PIXELS_JS, img_id)

    w, h, data = wait_for(ready, what=f"{img_id} showing {expect}")
    return np.asarray(data, np.uint8).reshape(h, w, 4)[:, :, :3]


def renders(explorer) -> int:
    return explorer.queue.renders


def test_explorer_in_a_real_browser(G, server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, explorer = server
    driver = browser
    driver.get(url + "?seed=5")
    assert np.array_equal(shown(driver, seed=5), reference(G, 5))
    assert "StyleGAN2 (v2)" in driver.find_element(By.ID, "net-summary").text
    assert driver.find_element(By.ID, "net-table").text.count("\n") >= 7

    # psi slider, moved with the keyboard like a user: 1.00 -> 0.90 in ten steps
    psi = driver.find_element(By.ID, "psi")
    driver.execute_script("arguments[0].focus()", psi)  # a click would jump to the clicked value
    before = shown(driver, seed=5)
    for _ in range(10):  # ten steps of 0.01
        psi.send_keys(Keys.ARROW_LEFT)
    after = shown(driver, seed=5, psi="0.9")
    assert np.abs(after.astype(int) - before).mean() > 1  # the picture changed
    assert np.array_equal(after, reference(G, 5, psi=0.9))
    assert "psi=0.9" in driver.current_url  # the URL holds the state

    # seed typed into its box
    seed = driver.find_element(By.ID, "seed")
    seed.send_keys(Keys.CONTROL, "a")
    seed.send_keys("42")
    assert np.array_equal(shown(driver, seed=42, psi="0.9"), reference(G, 42, psi=0.9))

    # fifty rapid seed changes (one JS task, as fast as events can come): the last one is shown
    r0 = renders(explorer)
    driver.execute_script("""
        const s = document.getElementById('seed-slider');
        for (let i = 100; i < 150; i++) { s.value = i; s.dispatchEvent(new Event('input')); }""")
    assert np.array_equal(shown(driver, seed=149, psi="0.9"), reference(G, 149, psi=0.9))
    burst = renders(explorer) - r0
    assert burst <= 3, burst
    # and fifty changes 4 ms apart (a fast drag): far fewer renders than requests, last one shown
    r0, d0 = renders(explorer), explorer.queue.dropped
    driver.execute_script("""
        const s = document.getElementById('seed-slider');
        let i = 200;
        const tick = () => { s.value = i; s.dispatchEvent(new Event('input')); if (++i < 250) setTimeout(tick, 4); };
        tick();""")
    assert np.array_equal(shown(driver, seed=249, psi="0.9"), reference(G, 249, psi=0.9))
    drag = renders(explorer) - r0
    print(f"\nbrowser: 50 changes in one task -> {burst} render(s); 50 changes 4 ms apart -> {drag} renders, "
          f"{explorer.queue.dropped - d0} dropped on the server")
    assert drag < 50

    # projection of a generated image: progress shows while it runs, then the result is explored
    target = tmp_path / "target.png"
    Image.fromarray(reference(G, 7)).save(target)
    steps = driver.find_element(By.ID, "proj-steps")
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("150")
    driver.execute_script("document.getElementById('proj-file').style.display = 'block'")
    driver.find_element(By.ID, "proj-file").send_keys(str(target))
    driver.execute_script("document.getElementById('proj-file').style.display = ''")
    seen = set()

    def finished():
        text = driver.find_element(By.ID, "proj-status").text
        seen.add(text)
        return text.startswith("done")

    wait_for(finished, timeout=120, what="the projection to finish")
    running = [t for t in seen if t.startswith("running: step") and not t.startswith("running: step 0 ")]
    assert running, seen  # live progress with a distance was shown on the way
    assert "distance" in running[0]
    assert int(driver.find_element(By.ID, "proj-progress").get_attribute("value")) == 150
    w_id = driver.execute_script("return window.explorer.state.w")
    assert w_id.startswith("p")
    preview = shown(driver, "img-proj")
    assert preview.shape == (R, 2 * R, 3)
    result = shown(driver, w=w_id)
    assert np.abs(result.astype(float) - reference(G, 7)).mean() < \
        np.abs(reference(G, 0, psi=0).astype(float) - reference(G, 7)).mean()

    # back to a seed, downloads of the PNG (full resolution) and of the w
    driver.find_element(By.ID, "w-clear").click()  # the projection reset psi to 1 to show its result
    shown(driver, seed=249, psi="1")
    driver.find_element(By.ID, "download-png").click()
    png = wait_for(lambda: next(iter(driver.downloads.glob("*.png")), None), what="the PNG download")
    wait_for(lambda: not list(driver.downloads.glob("*.crdownload")), what="the download to complete")
    assert png.name == "image-seed0249.png"
    assert np.array_equal(np.asarray(Image.open(png)), reference(G, 249))
    driver.find_element(By.ID, "download-w").click()
    npz = wait_for(lambda: next(iter(driver.downloads.glob("*.npz")), None), what="the w download")
    time.sleep(0.2)
    assert np.load(npz)["w"].shape == (1, G.num_ws, G.w_dim)

    # a bad value typed into the page: a message, not a crash; the next good value clears it
    driver.execute_script("window.explorer.set({cutoff: '99'})")
    message = driver.find_element(By.ID, "message")
    wait_for(lambda: message.is_displayed() and "cutoff=99 is out of range" in message.text, what="the message")
    driver.execute_script("window.explorer.set({cutoff: ''})")
    wait_for(lambda: not message.is_displayed(), what="the message to clear")

    # the Edit panel: SeFa is there when the page opens; a slider moved with the keyboard edits the
    # image exactly as the library does, the address bar keeps the edit, Reset undoes it
    from stylegan.synth.directions import edit_offset
    from stylegan.synth.sefa import sefa_directions

    driver.execute_script("window.explorer.set({seed: '21', psi: '1'})")
    plain = shown(driver, seed=21, psi="1")
    slider = wait_for(lambda: next(iter(driver.find_elements(By.ID, "edit-0")), None), what="the edit sliders")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#edit-sliders input[type=range]")) == 8
    driver.execute_script("arguments[0].focus()", slider)
    for _ in range(10):  # ten steps of 0.1: one standard deviation of W along SeFa's first direction
        slider.send_keys(Keys.ARROW_RIGHT)
    moved = shown(driver, seed=21, psi="1", edit="0%3A1")
    assert np.abs(moved.astype(int) - plain).mean() > 1  # the picture changed
    d = sefa_directions(G, scale_samples=explorer.config.sefa_scale_samples)
    with torch.no_grad():
        ws = G.mapping(z_from_seeds([21], G.z_dim), None) + edit_offset(d, {0: 1.0})
        expect = to_uint8(G.synthesis(ws, noise_mode="const"))[0].numpy()
    assert np.array_equal(moved, expect)
    assert "edit=0%3A1" in driver.current_url
    assert driver.find_element(By.ID, "edit-0-out").text == "+1.0σ"
    edit_shot = tmp_path / "edit-panel.png"
    driver.find_element(By.ID, "edit-card").screenshot(str(edit_shot))
    if os.environ.get("EXPLORE_EDIT_SCREENSHOT"):
        shutil.copy(edit_shot, os.environ["EXPLORE_EDIT_SCREENSHOT"])
    driver.find_element(By.ID, "edit-reset").click()
    wait_for(lambda: "edit=" not in driver.execute_script("return document.getElementById('img-main').dataset.query"),
             what="the unedited image")
    assert np.array_equal(shown(driver, seed=21, psi="1"), plain) and "edit=" not in driver.current_url

    # the view of the screenshot: mixing and stochastic variation beside the image, projection below
    driver.execute_script("window.explorer.set({seed: '11', psi: '0.8', mix_seed: '3', mix: 'coarse', var: '1', "
                          "std_samples: '24'})")
    mix = shown(driver, "img-mix", seed=11, psi="0.8")
    assert np.array_equal(mix[:, :R], reference(G, 11, psi=0.8))
    shown(driver, "img-variation", seed=11, psi="0.8")
    shown(driver, seed=11, psi="0.8")
    driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, height + 140)  # the whole page, no scrolling
    time.sleep(0.3)
    shot = tmp_path / "explorer.png"
    driver.save_screenshot(str(shot))
    assert Image.open(shot).size[0] >= 1400
    if os.environ.get("EXPLORE_SCREENSHOT"):
        shutil.copy(shot, os.environ["EXPLORE_SCREENSHOT"])


# ----------------------------------------------------------------------------------- StyleGAN3

@pytest.fixture(scope="module")
def G3():
    return tiny_sg3(seed=1, resolution=R, z_dim=32, channel_base=512, channel_max=16, num_layers=6, output_scale=1.5)


@pytest.fixture(scope="module")
def server3(G3):
    app = create_app(G3, "cpu", config=ExploreConfig(w_avg_samples=500), distance=PixelMSE())
    with serve_in_thread(app, "127.0.0.1", 0) as url:
        yield url, app.state.explorer


# The next frame of a loop past its start, read in its load event: a frame shown while the loop runs
# is replaced a round trip later, so its query and its pixels must be read in the same task.
LOOP_FRAME_JS = """
const done = arguments[arguments.length - 1];
const img = document.getElementById('img-main');
img.addEventListener('load', function onload() {
  const q = img.dataset.query || '';
  if (Number(new URLSearchParams(q).get('t') || 0) <= 0.001) return;
  img.removeEventListener('load', onload);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0);
  done([q, c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]);
});
"""


def test_stylegan3_network_in_a_real_browser(G3, server3, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from stylegan.explore.equivariance import loop_transform

    url, explorer = server3
    driver = browser
    driver.get(url + "?seed=5")
    assert np.array_equal(shown(driver, seed=5), reference_sg3(G3, 5))
    assert "StyleGAN3 (config T)" in driver.find_element(By.ID, "net-summary").text
    assert driver.find_element(By.ID, "transform-card").is_displayed()
    note = driver.find_element(By.ID, "noise-note")
    assert note.is_displayed() and note.text == "StyleGAN3 has no per-pixel noise inputs"
    noise_inputs = driver.find_elements(By.CSS_SELECTOR, "#noise-card input")
    assert len(noise_inputs) >= 5 and not any(i.is_enabled() for i in noise_inputs)

    # translate x, moved with the keyboard: ten steps of 0.001 image widths (0.64 px at 64 px)
    tx = driver.find_element(By.ID, "tx")
    driver.execute_script("arguments[0].focus()", tx)
    before = shown(driver, seed=5)
    for _ in range(10):
        tx.send_keys(Keys.ARROW_RIGHT)
    after = shown(driver, seed=5, tx="0.01")
    assert np.abs(after.astype(int) - before).mean() > 1  # the picture moved
    assert np.array_equal(after, reference_sg3(G3, 5, translate=(0.01, 0.0)))
    assert "tx=0.01" in driver.current_url and driver.find_element(By.ID, "tx-out").text == "0.010 w"

    # untransform: the picture moved back, as the library's untransform does
    driver.find_element(By.ID, "untransform").click()
    back = shown(driver, seed=5, tx="0.01", untransform="1")
    assert np.array_equal(back, reference_sg3(G3, 5, translate=(0.01, 0.0), undo=True))

    # the transform loop: frames of the same w at the position each request names, then still again
    driver.find_element(By.ID, "eq-play").click()
    assert driver.find_element(By.ID, "eq-play").text == "Stop"

    def main_query() -> dict:
        q = driver.execute_script("return document.getElementById('img-main').dataset.query || ''")
        return dict(p.split("=", 1) for p in q.split("&") if "=" in p)

    driver.set_script_timeout(30)
    q, w, h, data = driver.execute_async_script(LOOP_FRAME_JS)  # query and pixels of one frame, read together
    t = float(dict(p.split("=", 1) for p in q.split("&"))["t"])
    translate, rotate = loop_transform((0.01, 0.0), 0.0, "translate", t)
    pixels = np.asarray(data, np.uint8).reshape(h, w, 4)[:, :, :3]
    assert np.array_equal(pixels, reference_sg3(G3, 5, translate=translate, rotate=rotate, undo=True))
    driver.find_element(By.ID, "eq-play").click()
    assert driver.find_element(By.ID, "eq-play").text == "Animate transform"
    wait_for(lambda: "t" not in main_query(), what="the still image after the loop")
    assert np.array_equal(shown(driver, seed=5, tx="0.01", untransform="1"), back)

    # the seed loop shares the main image with it: playing one stops the other
    driver.find_element(By.ID, "eq-play").click()
    driver.find_element(By.ID, "anim-play").click()
    assert driver.find_element(By.ID, "eq-play").text == "Animate transform"
    assert driver.execute_async_script(LOOP_FRAME_JS)[0]  # a frame of the seed loop arrived
    driver.find_element(By.ID, "anim-play").click()
    assert driver.find_element(By.ID, "anim-play").text == "Play loop"
    wait_for(lambda: "t" not in main_query(), what="the still image after the seed loop")
