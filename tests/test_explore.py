"""The explorer's app through its HTTP API (no socket): every control, stale-request dropping,
uploads and their limits, projection with progress and cancel, run directories, the error policy,
the defaults the page reads, the routes table of the docs, the CLI; StyleGAN3 networks (the input
transform, the equivariance loop and its untransform, no noise) and the pure image op behind them."""
import asyncio
import io
import logging
import re
import struct
import time
import warnings
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

with warnings.catch_warnings():  # starlette's TestClient announces a future move to another httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main
from stylegan.explore import ExploreConfig, create_app
from stylegan.explore import app as explore_app
from stylegan.explore.params import (DEFAULT_CLASS, DEFAULT_VIEW, EDIT_SLIDER_RANGE, PAGE_SETTINGS, PER_REQUEST_KEYS,
                                     QUERY_KEYS, View, page_defaults, parse_view, view_query)
from stylegan.io.images import to_uint8
from stylegan.explore.equivariance import EQ_RADIUS, loop_transform, resample_affine, untransform
from stylegan.models.config import StyleGAN1Options, StyleGAN3Options
from stylegan.models.stylegan3 import has_input_transform, image_transform, input_transform
from stylegan.synth.projector import PixelMSE, project
from stylegan.synth.sample import class_labels, z_from_seeds

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

R = 16
SMALL = ExploreConfig(w_avg_samples=500, preview_every=2, max_upload_bytes=200_000, max_upload_pixels=4_000_000)


def tiny(version: int = 2, c_dim: int = 0, seed: int = 0, resolution: int = R, z_dim: int = 16,
         channel_base: int = 256) -> Generator:
    """A small network whose noise inputs matter (strength 0.2) and whose w_avg is not zero (a
    trained network's is not: psi = 0 must use it)."""
    torch.manual_seed(seed)
    if version == 1:
        cfg = GeneratorConfig(z_dim=z_dim, w_dim=z_dim, c_dim=c_dim, img_resolution=resolution, version=1,
                              architecture="orig", channel_base=channel_base // 2, channel_max=8, growing=True,
                              resample_filter=(1, 2, 1), mapping=MappingConfig(num_layers=2), v1=StyleGAN1Options())
    else:
        cfg = GeneratorConfig(z_dim=z_dim, w_dim=z_dim, c_dim=c_dim, img_resolution=resolution,
                              channel_base=channel_base, channel_max=32, mapping=MappingConfig(num_layers=2))
    G = Generator(cfg)
    with torch.no_grad():
        for m in G.noise_inputs().values():
            m.strength.fill_(0.2)
        G.mapping.w_avg.normal_()
    return G.eval().requires_grad_(False)


def tiny_sg3(seed: int = 0, resolution: int = R, z_dim: int = 16, channel_base: int = 128, channel_max: int = 8,
             num_layers: int = 4, config: str = "T", output_scale: float = 1.0) -> Generator:
    """A small StyleGAN3 network (config T or R; 4 layers instead of 14, as tests/test_stylegan3_cli.py
    builds them): its input affine turns and shifts the Fourier features per w (a fresh one is the
    identity), w_avg is not zero, and its output is scaled up (a random network's is nearly flat
    grey, and a change must show in 8 bits)."""
    torch.manual_seed(seed)
    radial = config == "R"
    opts = StyleGAN3Options(num_layers=num_layers, num_critical=1, output_scale=output_scale,
                            conv_kernel=1 if radial else 3, use_radial_filters=radial)
    cfg = GeneratorConfig(z_dim=z_dim, w_dim=z_dim, img_resolution=resolution, channel_base=channel_base,
                          channel_max=channel_max, version=3, v3=opts, mapping=MappingConfig(num_layers=2))
    G = Generator(cfg)
    with torch.no_grad():
        G.synthesis.input.affine.weight.normal_(0, 0.3)
        G.mapping.w_avg.normal_()
    return G.eval().requires_grad_(False)


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    return np.asarray(Image.open(io.BytesIO(resp.content)))


def reference(G, seed: int, psi: float = 1.0, class_idx=None, noise_mode="const") -> np.ndarray:
    """The library's own image for a seed: what `stylegan generate` writes."""
    with torch.no_grad():
        z = z_from_seeds([seed], G.z_dim)
        img = G(z, class_labels(G, 1, class_idx), psi=psi, noise_mode=noise_mode)
    return to_uint8(img)[0].numpy()


@pytest.fixture(scope="module")
def G():
    return tiny()


@pytest.fixture(scope="module")
def client(G):
    with TestClient(create_app(G, "cpu", config=SMALL, distance=PixelMSE())) as c:
        yield c


def image(client, **params) -> np.ndarray:
    return png(client.get("/api/image", params=params))


# ----------------------------------------------------------------------------------- controls

def test_image_is_the_librarys_image(client, G):
    assert np.array_equal(image(client, seed=5), reference(G, 5))
    assert np.array_equal(image(client, seed=5, psi=0.7), reference(G, 5, psi=0.7))
    assert not np.array_equal(image(client, seed=5), image(client, seed=6))


def test_psi_zero_gives_the_same_image_for_every_seed(client):
    a, b = image(client, seed=1, psi=0), image(client, seed=2, psi=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(image(client, seed=1, psi=0.5), image(client, seed=2, psi=0.5))
    # cutoff: only the first styles are truncated, so psi 0 no longer erases the seed
    assert not np.array_equal(image(client, seed=1, psi=0, cutoff=2), image(client, seed=2, psi=0, cutoff=2))


def test_style_mixing(client, G):
    first, second = image(client, seed=3), image(client, seed=9)
    assert np.array_equal(image(client, seed=3, mix_seed=9, mix=""), first)  # empty range: the first seed
    assert np.array_equal(image(client, seed=3, mix_seed=9, mix=f"0-{G.num_ws - 1}"), second)  # all styles
    coarse = image(client, seed=3, mix_seed=9, mix="coarse")
    assert not np.array_equal(coarse, first) and not np.array_equal(coarse, second)
    strip = png(client.get("/api/mixing", params={"seed": 3, "mix_seed": 9, "mix": "coarse"}))
    assert strip.shape == (R, 3 * R, 3)
    assert np.array_equal(strip[:, :R], first) and np.array_equal(strip[:, R:2 * R], second)
    assert np.array_equal(strip[:, 2 * R:], coarse)


def test_noise_modes_and_strength(client):
    none = image(client, seed=4, noise="none")
    assert np.array_equal(none, image(client, seed=4, noise="none"))  # deterministic
    assert not np.array_equal(image(client, seed=4, noise="random"), image(client, seed=4, noise="random"))
    assert np.array_equal(image(client, seed=4, noise="random", noise_strength=0), none)
    assert not np.array_equal(image(client, seed=4, noise_strength=3), image(client, seed=4))
    assert np.array_equal(image(client, seed=4), image(client, seed=4))  # strengths restored after


def test_stochastic_variation_strip(client):
    strip = png(client.get("/api/variation", params={"seed": 2, "std_samples": 8}))
    assert strip.shape == (R, 5 * R, 3)
    draws = [strip[:, i * R:(i + 1) * R] for i in range(4)]
    assert not np.array_equal(draws[0], draws[1])
    assert strip[:, 4 * R:].max() == 255  # std map normalised to its maximum
    flat = png(client.get("/api/variation", params={"seed": 2, "std_samples": 8, "noise_strength": 0}))
    assert flat[:, 4 * R:].max() == 0 and np.array_equal(flat[:, :R], flat[:, R:2 * R])


def test_animation_frames_pass_through_the_seeds(client):
    for space in ("z", "w"):
        params = {"anim_seeds": "10-13", "anim_space": space}
        assert np.array_equal(png(client.get("/api/animation", params={**params, "t": 0})), image(client, seed=10))
        assert np.array_equal(png(client.get("/api/animation", params={**params, "t": 0.5})), image(client, seed=12))
        between = png(client.get("/api/animation", params={**params, "t": 0.125}))
        assert not np.array_equal(between, image(client, seed=10)) and not np.array_equal(between, image(client, seed=11))


def test_conditional_class_changes_the_output():
    Gc = tiny(c_dim=3)
    with TestClient(create_app(Gc, "cpu")) as c:
        a, b = image(c, seed=1, **{"class": 0}), image(c, seed=1, **{"class": 2})
        assert not np.array_equal(a, b)
        assert np.array_equal(b, reference(Gc, 1, class_idx=2))
        assert np.array_equal(image(c, seed=1), a)  # default class 0
        r = c.get("/api/image", params={"class": 3})
        assert r.status_code == 400 and "class=3 is out of range 0..2" in r.json()["error"]


def test_stylegan1_network(G):
    G1 = tiny(version=1)
    with TestClient(create_app(G1, "cpu")) as c:
        assert np.array_equal(image(c, seed=8, psi=0.6), reference(G1, 8, psi=0.6))
        assert c.get("/api/network").json()["kind"] == "StyleGAN (v1), progressive"


def test_formats_and_download(client, G):
    r = client.get("/api/image", params={"seed": 5, "fmt": "jpeg", "quality": 95})
    assert r.headers["content-type"] == "image/jpeg"
    jpeg = np.asarray(Image.open(io.BytesIO(r.content)))
    assert jpeg.shape == (R, R, 3) and np.abs(jpeg.astype(int) - reference(G, 5)).mean() < 12
    r = client.get("/api/image", params={"seed": 5, "download": "1"})
    assert r.headers["content-disposition"] == 'attachment; filename="image-seed0005.png"'
    assert float(r.headers["x-render-ms"]) > 0


@pytest.mark.parametrize("params, words", [
    ({"psi": "abc"}, "psi must be a number"),
    ({"psi": "nan"}, "psi=nan is out of range"),
    ({"seed": "-1"}, "seed=-1 is out of range"),
    ({"seed": str(2 ** 32)}, "out of range 0..4294967295"),
    ({"seed": "1.5"}, "seed must be an integer"),
    ({"mix_seed": "2", "mix": "banana"}, "mix: unknown layer range 'banana'"),
    ({"mix_seed": "2", "mix": "0-99"}, "mix: unknown layer range '0-99'"),
    ({"noise": "loud"}, "noise must be one of const, random, none"),
    ({"cutoff": "0"}, "cutoff=0 is out of range"),
    ({"fmt": "gif"}, "fmt must be one of"),
    ({"class": "0"}, "this network is unconditional"),
    ({"w": "../../etc/passwd"}, "w must name an uploaded or projected latent"),
    ({"w": "u999"}, "w=u999: no such latent"),
])
def test_bad_parameters_are_400_naming_the_problem(client, params, words):
    r = client.get("/api/image", params=params)
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_a_bad_parameter_is_400_naming_it_and_an_internal_error_is_500(client, monkeypatch, caplog):
    """Only what the client got wrong is a 4xx; a ValueError from a bug is no "bad request": the
    client gets a generic 500, the log the traceback, and the server answers the next request."""
    r = client.get("/api/image", params={"seed": 1, "psi": "lots"})
    assert r.status_code == 400 and r.json() == {"error": "psi must be a number, got 'lots'"}
    r = client.get("/api/mixing", params={"seed": 1})  # a ParamError raised while rendering
    assert r.status_code == 400 and r.json()["error"].startswith("mix_seed:")

    def broken(G, view, stored=None, offset=None):
        raise ValueError("a bug deep in the library")

    with monkeypatch.context() as m, caplog.at_level(logging.ERROR, logger="stylegan.explore"):
        m.setattr(explore_app, "render_image", broken)
        r = client.get("/api/image", params={"seed": 1})
    assert r.status_code == 500 and r.json() == {"error": explore_app.INTERNAL_ERROR}
    assert "Traceback" in caplog.text and "ValueError: a bug deep in the library" in caplog.text
    assert "GET /api/image" in caplog.text
    assert client.get("/api/image", params={"seed": 1}).status_code == 200
    assert client.get("/api/stats").status_code == 200


# ----------------------------------------------------------------------------------- w files

def test_w_download_round_trips_through_generate_and_upload(client, G, tmp_path):
    params = {"seed": 3, "psi": 0.6, "mix_seed": 9, "mix": "middle"}
    r = client.get("/api/w.npz", params=params)
    assert r.status_code == 200 and r.headers["content-disposition"] == 'attachment; filename="seed0003-w.npz"'
    path = tmp_path / "w.npz"
    path.write_bytes(r.content)
    ws = np.load(path)["w"]
    assert ws.shape == (1, G.num_ws, G.w_dim) and ws.dtype == np.float32
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["generate", "--network", str(_save(G, tmp_path / "g.safetensors")),
                                    "--projected-w", str(path), "--outdir", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    shown = image(client, **params)
    assert np.array_equal(np.asarray(Image.open(out / "proj00.png")), shown)
    wid = client.post("/api/w", content=path.read_bytes()).json()["w"]
    assert np.array_equal(image(client, w=wid), shown)  # psi 1 leaves an uploaded w as it is
    assert np.array_equal(image(client, w=wid, psi=0), image(client, seed=1, psi=0))


def test_bad_w_uploads(client, G):
    def upload(**arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return client.post("/api/w", content=buf.getvalue())

    r = upload(w=np.zeros((1, 3, G.w_dim), np.float32))
    assert r.status_code == 400 and "w has shape (1, 3, 16)" in r.json()["error"]
    assert "no key 'w'" in upload(x=np.zeros(3)).json()["error"]
    assert "finite" in upload(w=np.full((1, G.num_ws, G.w_dim), np.nan, np.float32)).json()["error"]
    r = client.post("/api/w", content=b"not an npz at all")
    assert r.status_code == 400 and "cannot read the uploaded .npz" in r.json()["error"]
    obj = io.BytesIO()
    np.savez(obj, w=np.array([{"a": 1}], dtype=object))
    assert client.post("/api/w", content=obj.getvalue()).status_code == 400  # never unpickled


# ----------------------------------------------------------------------------------- stale requests

def test_fifty_rapid_requests_render_only_a_few_and_the_last_one_wins(G):
    """Fifty requests of one slider (one client key) arrive while the first renders: only the
    newest is rendered (plus the one already running), the others are answered 204 at once."""
    app = create_app(G, "cpu")
    queue = app.state.explorer.queue

    async def burst():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await asyncio.gather(*[c.get("/api/image", params={"seed": s, "client": "abc"})
                                          for s in range(50)])

    try:
        t0 = time.perf_counter()
        answers = asyncio.run(burst())
        elapsed = time.perf_counter() - t0
    finally:
        app.state.explorer.shutdown()
    codes = [r.status_code for r in answers]
    assert codes[-1] == 200 and np.array_equal(png(answers[-1]), reference(G, 49))
    assert set(codes) <= {200, 204} and codes.count(200) == queue.renders
    assert queue.renders <= 3 and queue.renders + queue.dropped == 50, (queue.renders, queue.dropped, elapsed)
    # without a client key (scripts, downloads) every request renders
    app2 = create_app(G, "cpu")

    async def plain():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app2), base_url="http://t") as c:
            return await asyncio.gather(*[c.get("/api/image", params={"seed": s}) for s in range(5)])

    try:
        assert [r.status_code for r in asyncio.run(plain())] == [200] * 5
    finally:
        app2.state.explorer.shutdown()


# ----------------------------------------------------------------------------------- uploads, projection

def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _huge_png(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header claims width x height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_uploads_refused_clearly_and_server_keeps_running(client):
    r = client.post("/api/project", content=b"\0" * (SMALL.max_upload_bytes + 1))
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    r = client.post("/api/project", content=b"GIF89a this is not really an image")
    assert r.status_code == 400 and "cannot decode the uploaded image" in r.json()["error"]
    r = client.post("/api/project", content=_huge_png(3000, 2000))  # over this app's 4 MP limit
    assert r.status_code == 400 and "image is 3000x2000 pixels; the limit is 4 megapixels" in r.json()["error"]
    r = client.post("/api/project", content=_huge_png(100_000, 100_000))  # refused by Pillow's own guard
    assert r.status_code == 400 and "too large to decode safely" in r.json()["error"]
    truncated = _png_bytes(np.zeros((64, 64, 3), np.uint8))[:-30]
    assert client.post("/api/project", content=truncated).status_code == 400
    assert client.post("/api/project", content=b"").status_code == 400
    assert client.post("/api/project", params={"steps": "0"}, content=_png_bytes(np.zeros((8, 8, 3), np.uint8))
                       ).status_code == 400
    assert client.get("/api/image", params={"seed": 1}).status_code == 200


def _wait(client, job: str, until=lambda s: s["state"] != "running", timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = client.get(f"/api/project/{job}").json()
        if until(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def test_projection_shows_progress_and_its_result_is_explorable(client, G):
    target = image(client, seed=7)
    r = client.post("/api/project", params={"steps": 40}, content=_png_bytes(target))
    job = r.json()["job"]
    s = _wait(client, job)
    assert s["state"] == "done" and s["step"] == s["steps"] == 40 and len(s["dists"]) == 40
    assert s["dists"][-1] < s["dists"][0] / 2
    preview = png(client.get(f"/api/project/{job}/preview"))
    assert preview.shape == (R, 2 * R, 3) and np.array_equal(preview[:, :R], target)
    result = image(client, w=s["w"])
    start_err = np.abs(image(client, psi=0).astype(float) - target).mean()
    assert np.abs(result.astype(float) - target).mean() < start_err / 2
    assert np.array_equal(preview[:, R:], result)  # the last preview is the result
    assert client.get("/api/project/j999").status_code == 404


def test_projection_cancel(client):
    r = client.post("/api/project", params={"steps": 5000}, content=_png_bytes(image(client, seed=2)))
    job = r.json()["job"]
    _wait(client, job, until=lambda s: s["step"] >= 2)
    assert client.post(f"/api/project/{job}/cancel").status_code == 200
    s = _wait(client, job)
    assert s["state"] == "cancelled" and 2 <= s["step"] < 5000 and s["w"]
    assert client.get("/api/image", params={"w": s["w"]}).status_code == 200


def test_project_step_callback_keeps_behaviour_and_can_stop(G):
    target = torch.from_numpy(reference(G, 7)).permute(2, 0, 1)[None] / 127.5 - 1
    kw = dict(num_steps=6, distance=PixelMSE(), w_avg_samples=200, seed=1)
    plain, hist = project(G, target, **kw)
    seen = []
    same, _ = project(G, target, **kw, step_callback=lambda step, ws, d: seen.append((step, ws.clone(), d)))
    assert torch.equal(plain, same) and [s for s, _, _ in seen] == list(range(6))
    assert all(torch.equal(ws[0], plain[s]) and d == hist.dist[s] for s, ws, d in seen)
    stopped, hist3 = project(G, target, **kw, step_callback=lambda step, ws, d: step < 2)
    assert stopped.shape[0] == 3 and torch.equal(stopped, plain[:3]) and len(hist3.dist) == 3


# ----------------------------------------------------------------------------------- networks, page, CLI

def _save(G, path):
    stylegan.save_checkpoint(path, {"G_ema": G})
    return path


def test_run_directory_lists_snapshots_by_number_and_switches(tmp_path):
    run = tmp_path / "00001-run"
    run.mkdir()
    _save(tiny(seed=1), run / "snapshot-9.safetensors")
    _save(tiny(seed=2), run / "snapshot-10.safetensors")  # sorts after 9 by number, before it by name
    (run / "log.txt").write_text("not a snapshot")
    with TestClient(create_app(run, "cpu")) as c:
        info = c.get("/api/network").json()
        assert info["snapshots"] == ["snapshot-9.safetensors", "snapshot-10.safetensors"]
        assert info["snapshot"] == "snapshot-10.safetensors" and info["run"] == "00001-run"
        assert np.array_equal(image(c, seed=1), reference(tiny(seed=2), 1))
        info = c.post("/api/network", params={"snapshot": "snapshot-9.safetensors"}).json()
        assert info["source"] == "snapshot-9.safetensors"
        assert np.array_equal(image(c, seed=1), reference(tiny(seed=1), 1))
        r = c.post("/api/network", params={"snapshot": "../../g.safetensors"})
        assert r.status_code == 400 and "unknown snapshot" in r.json()["error"]


def test_network_panel_and_errors(tmp_path, G):
    path = _save(G, tmp_path / "net.safetensors")
    with TestClient(create_app(path, "cpu")) as c:
        info = c.get("/api/network").json()
        assert info == {**info, "kind": "StyleGAN2 (v2)", "resolution": R, "z_dim": 16, "w_dim": 16, "c_dim": 0,
                        "num_ws": G.num_ws, "params": sum(p.numel() for p in G.parameters()),
                        "source": "net.safetensors", "snapshots": [], "device": "cpu"}
        r = c.post("/api/network", params={"snapshot": "snapshot-1.safetensors"})
        assert r.status_code == 400 and "single file" in r.json()["error"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="without snapshot"):
        create_app(tmp_path / "empty", "cpu")
    with pytest.raises(ValueError, match="no such network"):
        create_app(tmp_path / "missing.safetensors", "cpu")


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>stylegan explore</title>" in page.text
    for text in [page.text] + [client.get(f"/static/{name}").text for name in ("app.js", "style.css")]:
        assert "://" not in text  # no CDN, no external URL: everything comes from this server


# ----------------------------------------------------------------------------------- defaults, routes, docs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "explore.md"


def test_the_page_gets_its_defaults_from_the_python_declaration(client, G):
    served = client.get("/api/defaults").json()
    assert served == {"view": page_defaults(), "conditional_class": str(DEFAULT_CLASS),
                      "project_steps": SMALL.project_steps, "max_project_steps": SMALL.max_project_steps,
                      "edit_slider_range": list(EDIT_SLIDER_RANGE), "ganspace_samples": SMALL.ganspace_samples,
                      "max_ganspace_samples": SMALL.max_ganspace_samples}
    # the page keeps every key of the View but the per-request ones, and its defaults are View()'s
    view = {k: v for k, v in served["view"].items() if k not in PAGE_SETTINGS}
    assert set(view) == set(QUERY_KEYS) - set(PER_REQUEST_KEYS) - set(PAGE_SETTINGS)
    assert parse_view(view, G) == DEFAULT_VIEW == View()
    # and a view's query reads back as the same view
    other = View(seed=7, psi=0.7, cutoff=2, noise_mode="random", noise_strength=0.25, mix_seed=3,
                 mix_styles=(0, 1, 2, 3), fmt="jpeg", quality=80, std_samples=8, anim_seeds=(1, 2, 5),
                 anim_space="w", anim_t=0.25, dirs="g3", edit=((0, 1.5), (3, -2.0)), edit_layers=(0, 1, 4))
    assert view_query(other)["anim_seeds"] == "1-2,5"
    assert view_query(other)["edit"] == "0:1.5,3:-2" and view_query(other)["edit_layers"] == "0-1,4"
    assert parse_view(view_query(other), G) == other


def test_app_js_and_the_page_hold_no_copy_of_the_defaults():
    """app.js and index.html take every default from /api/defaults: no `key: "default"` literal (the
    old DEFAULTS object), no `state.key = / !== "default"`, no default value in the page's controls."""
    js = (explore_app.STATIC / "app.js").read_text()
    html = (explore_app.STATIC / "index.html").read_text()
    assert "api/defaults" in js
    js = js.replace('query({ fmt: "png", download: "1" })', "")  # the PNG download: always PNG, not the default
    copies = [*page_defaults().items(), ("class", str(DEFAULT_CLASS))]
    for key, value in copies:
        if value:
            literal = rf'(\b{key}\s*:\s*|state\.{key}\s*(=|[!=]==?)\s*)"{re.escape(value)}"'
            assert not re.search(literal, js), f"app.js repeats the default {key}={value!r}"
    for control in ("seed", "seed-slider", "psi", "noise-strength", "std-samples", "anim-seeds", "anim-speed",
                    "proj-steps", "tx", "ty", "rotate", "eq-speed"):
        tag = re.search(rf'<input id="{control}"[^>]*>', html).group(0)
        assert "value=" not in tag, f"index.html gives #{control} a default: {tag}"
    assert not re.search(r'name="noise"[^>]*checked', html)


def _routes_markdown() -> str:
    """The docs' routes table: a row per ROUTES entry, its handler's first docstring paragraph."""
    rows = ["| method | path | answers |", "|---|---|---|"]
    for e in explore_app.ROUTES:
        doc = " ".join(e.handler.__doc__.split("\n\n")[0].split()).replace("|", "\\|")
        rows.append(f"| {e.method} | `{e.path}` | {doc} |")
    return "\n".join(rows)


def test_docs_route_table_and_query_keys_match_the_code():
    docs = DOCS.read_text()
    table = re.search(r"<!-- routes:[^\n]*-->\n(.*?)\n<!-- /routes -->", docs, re.S).group(1)
    assert table == _routes_markdown(), f"update the routes table in docs/explore.md to:\n{_routes_markdown()}"
    keys = re.search(r"Query keys: `([^`]+)`", docs).group(1).split()
    assert keys == list(QUERY_KEYS)


def test_cli_prints_url_warns_off_loopback_and_fails_cleanly(tmp_path, G, monkeypatch):
    import stylegan.explore.server as server

    served = []
    monkeypatch.setattr(server, "serve", lambda app, sock: served.append(sock.getsockname()))
    path = _save(G, tmp_path / "net.safetensors")
    res = CliRunner().invoke(main, ["explore", "--network", str(path), "--port", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert served[0][0] == "127.0.0.1" and f"http://127.0.0.1:{served[0][1]}/" in res.output
    assert "WARNING" not in res.output
    res = CliRunner().invoke(main, ["explore", "--network", str(path), "--host", "0.0.0.0", "--port", "0",
                                    "--device", "cpu"])
    assert res.exit_code == 0 and "WARNING: listening on 0.0.0.0: anyone" in res.output
    res = CliRunner().invoke(main, ["explore", "--network", str(tmp_path / "nope.safetensors")])
    assert res.exit_code != 0 and "no such network file or run directory" in res.output
    assert "Traceback" not in res.output


def test_listening_socket_lets_asyncio_disable_nagle():
    """asyncio sets TCP_NODELAY only on accepted sockets whose proto is TCP; without it every
    response after the first on a kept-alive connection waited for the client's delayed ACK."""
    import socket

    from stylegan.explore.server import listen

    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        client = socket.create_connection(sock.getsockname()[:2])
        conn, _ = sock.accept()
        import asyncio.base_events as be

        be._set_nodelay(conn)  # what asyncio does to every accepted socket of its server
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.close(), client.close()
    finally:
        sock.close()


# ----------------------------------------------------------------------------------- StyleGAN3

def reference_sg3(G, seed: int, psi: float = 1.0, translate=(0.0, 0.0), rotate: float = 0.0,
                  undo: bool = False) -> np.ndarray:
    """The library's image of a StyleGAN3 network under an input transform: G.synthesis with
    transform=input_transform(...) (what `stylegan generate --translate --rotate` writes), moved back
    by `untransform` with `undo`, encoded as the explorer encodes."""
    with torch.no_grad():
        ws = G.mapping(z_from_seeds([seed], G.z_dim), None, psi=psi)
        img = G.synthesis(ws, transform=input_transform(translate, rotate))
        if undo:
            img = untransform(img, translate, rotate)
    return to_uint8(img)[0].numpy()


@pytest.fixture(scope="module")
def G3():
    return tiny_sg3()


@pytest.fixture(scope="module")
def client3(G3):
    with TestClient(create_app(G3, "cpu", config=SMALL, distance=PixelMSE())) as c:
        yield c


def test_sg3_network_panel_truncation_mixing_and_sefa(client3, G3, client):
    info = client3.get("/api/network").json()
    assert info["kind"] == "StyleGAN3 (config T)" and info["input_transform"] is True
    assert info["noise_inputs"] == 0 and info["num_ws"] == G3.num_ws == 4 + 2  # the input, 4 layers, ToRGB
    assert client.get("/api/network").json()["input_transform"] is False
    assert np.array_equal(image(client3, seed=5, psi=0.7), reference_sg3(G3, 5, psi=0.7))
    assert np.array_equal(image(client3, seed=1, psi=0), image(client3, seed=2, psi=0))
    # style mixing over its ws: all of them from the second seed is the second seed
    assert np.array_equal(image(client3, seed=3, mix_seed=9, mix=f"0-{G3.num_ws - 1}"), image(client3, seed=9))
    some = image(client3, seed=3, mix_seed=9, mix="0-2")
    assert not np.array_equal(some, image(client3, seed=3)) and not np.array_equal(some, image(client3, seed=9))
    sets = client3.get("/api/directions").json()["sets"]  # SeFa of its affines (the Edit panel opens)
    assert sets[0]["id"] == "sefa" and sets[0]["layers"] == f"0-{G3.num_ws - 1}"


@pytest.mark.parametrize("translate, rotate", [((0.1, -0.05), 0.0), ((0.0, 0.0), 30.0), ((0.03, 0.02), -12.5)])
def test_sg3_image_under_a_transform_is_the_librarys(client3, G3, translate, rotate):
    params = {"seed": 5, "psi": 0.8, "tx": translate[0], "ty": translate[1], "rotate": rotate}
    moved = image(client3, **params)
    assert np.array_equal(moved, reference_sg3(G3, 5, 0.8, translate, rotate))
    assert not np.array_equal(moved, image(client3, seed=5, psi=0.8))
    undone = reference_sg3(G3, 5, 0.8, translate, rotate, undo=True)
    assert np.array_equal(image(client3, **params, untransform=1), undone)
    assert np.array_equal(image(client3, seed=5, psi=0.8), reference_sg3(G3, 5, 0.8))  # G's buffer untouched


def test_sg3_untransform_holds_a_whole_pixel_shift_still(client3):
    """Config T is equivariant to translation: moved by whole pixels and moved back, the picture is the
    unmoved one (to 8-bit rounding) wherever the moved image has content."""
    base = image(client3, seed=5).astype(int)
    moved = image(client3, seed=5, tx=3 / R, ty=-2 / R).astype(int)
    back = image(client3, seed=5, tx=3 / R, ty=-2 / R, untransform=1).astype(int)
    assert np.abs(moved - base).mean() > 5
    assert np.abs(back - base)[2:, :R - 3].max() <= 1  # rows / columns that came in from outside aside
    assert np.abs(moved[:R - 2, 3:] - base[2:, :R - 3]).max() <= 1  # content moved right and up, as gen_images


def test_sg3_mixing_and_seed_loop_carry_the_transform(client3):
    p = {"tx": 0.125, "rotate": 20, "untransform": 1}
    strip = png(client3.get("/api/mixing", params={"seed": 3, "mix_seed": 9, "mix": "0-2", **p}))
    assert strip.shape == (R, 3 * R, 3)
    assert np.array_equal(strip[:, :R], image(client3, seed=3, **p))
    assert np.array_equal(strip[:, R:2 * R], image(client3, seed=9, **p))
    assert np.array_equal(strip[:, 2 * R:], image(client3, seed=3, mix_seed=9, mix="0-2", **p))
    frame = png(client3.get("/api/animation", params={"anim_seeds": "10-13", "t": 0.5, **p}))
    assert np.array_equal(frame, image(client3, seed=12, **p))


def test_sg3_equivariance_loop_frames(client3, G3):
    base = {"seed": 5, "tx": 0.05, "rotate": 10}
    for motion in ("translate", "rotate", "both"):  # t = 0 is the view itself
        frame = png(client3.get("/api/equivariance", params={**base, "eq": motion, "t": 0}))
        assert np.array_equal(frame, image(client3, **base))
    for motion, t in [("translate", 0.25), ("rotate", 0.5), ("both", 0.7)]:
        translate, rotate = loop_transform((0.05, 0.0), 10.0, motion, t)
        params = {**base, "eq": motion, "t": t}
        frame = png(client3.get("/api/equivariance", params=params))
        assert np.array_equal(frame, reference_sg3(G3, 5, translate=translate, rotate=rotate))
        undone = png(client3.get("/api/equivariance", params={**params, "untransform": 1}))
        assert np.array_equal(undone, reference_sg3(G3, 5, translate=translate, rotate=rotate, undo=True))
    r = client3.get("/api/equivariance", params={"eq": "wobble"})
    assert r.status_code == 400 and "eq must be one of translate, rotate, both" in r.json()["error"]


def test_sg3_projection_and_edit_work_under_a_transform(client3, G3):
    """The projector needs no noise buffers (StyleGAN3 has none); its result and an edit of it render
    under the transform like a seed."""
    job = client3.post("/api/project", params={"steps": 4}, content=_png_bytes(reference_sg3(G3, 7))).json()["job"]
    status = _wait(client3, job)
    assert status["state"] == "done" and status["step"] == 4
    moved = image(client3, w=status["w"], tx=0.1, edit="0:1.5")
    assert moved.shape == (R, R, 3) and not np.array_equal(moved, image(client3, w=status["w"], edit="0:1.5"))


def test_sg3_has_no_noise_to_vary(client3):
    r = client3.get("/api/variation", params={"seed": 2})
    assert r.status_code == 400 and "StyleGAN3 has no per-pixel noise inputs" in r.json()["error"]
    # noise settings are accepted and change nothing, as G.synthesis ignores noise_mode
    assert np.array_equal(image(client3, seed=2, noise="random", noise_strength=3), image(client3, seed=2))


@pytest.mark.parametrize("params, words", [
    ({"tx": "0.1"}, "tx=0.1: translate / rotate apply to StyleGAN3 networks only"),
    ({"ty": "-0.25", "rotate": "15"}, "ty=-0.25, rotate=15: translate / rotate apply to StyleGAN3 networks only"),
])
def test_sg2_network_refuses_a_transform_in_one_line(client, params, words):
    for route, extra in [("/api/image", {}), ("/api/mixing", {"mix_seed": 3}), ("/api/animation", {})]:
        r = client.get(route, params={**params, **extra})
        assert r.status_code == 400 and r.json()["error"].startswith(words), r.text
        assert "\n" not in r.json()["error"] and "this network has none" in r.json()["error"]
    assert png(client.get("/api/image", params={"tx": 0, "ty": "0", "rotate": "0.0"})).shape == (R, R, 3)
    r = client.get("/api/equivariance", params={"t": 0.5})
    assert r.status_code == 400 and "needs a StyleGAN3 network" in r.json()["error"]


def test_sg3_transform_parameters_are_checked(client3):
    for params, words in [({"tx": "3"}, "tx=3 is out of range -2..2"), ({"rotate": "abc"}, "rotate must be a number"),
                          ({"ty": "inf"}, "ty=inf is out of range")]:
        r = client3.get("/api/image", params=params)
        assert r.status_code == 400 and words in r.json()["error"], r.text


def test_sg3_defaults_list_the_transform_and_a_view_reads_back(client3, G3, G):
    view = client3.get("/api/defaults").json()["view"]
    expect = {"tx": "0", "ty": "0", "rotate": "0", "untransform": "", "eq": "translate",
              "eq_speed": PAGE_SETTINGS["eq_speed"]}
    assert {k: view[k] for k in expect} == expect
    other = View(seed=7, psi=0.7, mix_seed=3, mix_styles=(0, 1), translate_x=0.125, translate_y=-0.25, rotate=30.0,
                 untransform=True, eq_motion="both")
    assert view_query(other)["untransform"] == "1" and view_query(DEFAULT_VIEW)["untransform"] == ""
    assert parse_view(view_query(other), G3) == other
    assert has_input_transform(G3) and not has_input_transform(G)


# ----------------------------------------------------------------------------------- the pure image op

def test_whole_pixel_shift_is_undone_exactly_away_from_borders():
    img = torch.randn(2, 3, 16, 16, dtype=torch.float32)
    for dx, dy in [(3, 0), (-2, 5), (1, -1)]:
        moved = torch.roll(img, shifts=(dy, dx), dims=(2, 3))  # content moved right dx, down dy (wrapping)
        back = untransform(moved, (dx / 16, dy / 16), 0.0)
        ys, xs = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, -dx), 16 - max(0, dx))
        assert (back[..., ys, xs] - img[..., ys, xs]).abs().max() < 1e-6
        # and the forward transform moves content the way the network does: right for tx > 0
        fwd = resample_affine(img, input_transform((dx / 16, dy / 16)))
        ys, xs = slice(max(0, dy), 16 + min(0, dy)), slice(max(0, dx), 16 + min(0, dx))
        assert (fwd[..., ys, xs] - moved[..., ys, xs]).abs().max() < 1e-6


def test_rotation_by_zero_is_the_identity_and_matrices_agree():
    img = torch.randn(1, 3, 12, 12)
    assert (untransform(img, (0.0, 0.0), 0.0) - img).abs().max() < 1e-6
    assert (resample_affine(img, image_transform()) - img).abs().max() < 1e-6
    for translate, rotate in [((0.1, -0.2), 30.0), ((0.0, 0.0), -90.0)]:
        inv = torch.linalg.inv(image_transform(translate, rotate))
        assert torch.allclose(inv, input_transform(translate, rotate).double(), atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        resample_affine(torch.zeros(1, 1, 4, 6), image_transform())


def test_transform_then_untransform_of_a_smooth_image_is_close():
    n = 32
    y, x = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    img = torch.stack([torch.sin(2.0 * x + 1.0 * y), torch.cos(1.5 * y - 0.5 * x), x * y])[None]  # [1, 3, n, n]
    translate, rotate = (0.1, -0.05), 25.0
    shown = resample_affine(img, input_transform(translate, rotate))  # what an equivariant network shows
    back = untransform(shown, translate, rotate)
    c = slice(n // 2 - 6, n // 2 + 6)  # the middle: never outside the frame on the way
    assert (back - img)[..., c, c].abs().max() < 0.01
    assert (shown - img)[..., c, c].abs().max() > 0.2


def test_equivariance_loop_path():
    start = ((0.05, -0.1), 10.0)
    for motion in ("translate", "rotate", "both"):
        assert loop_transform(*start, motion, 0.0) == start
        (tx, ty), rot = loop_transform(*start, motion, 1 - 1e-9)  # the loop closes
        assert abs(tx - 0.05) < 1e-6 and abs(ty + 0.1) < 1e-6 and abs(rot - 370.0) % 360 < 1e-5
    (tx, ty), rot = loop_transform(*start, "translate", 0.25)
    assert (tx, ty, rot) == pytest.approx((0.05 + EQ_RADIUS, -0.1 + EQ_RADIUS, 10.0))
    assert loop_transform(*start, "rotate", 0.5) == ((0.05, -0.1), 190.0)
    (tx, ty), rot = loop_transform(*start, "both", 0.5)
    assert (tx, ty, rot) == pytest.approx((0.05, -0.1 + 2 * EQ_RADIUS, 190.0))
    with pytest.raises(ValueError, match="motion must be one of"):
        loop_transform(*start, "spin", 0.1)
