"""The explorer's Edit panel through its HTTP API (no socket): SeFa on the first call, edits equal
to the library's (`synth.directions.edit_offset`) combined with truncation, mixing and a stored w,
alpha 0 is the identity, GANSpace with progress and cancel, direction files up and down, bad
parameters, a snapshot switch."""
import io
import time
import warnings

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from stylegan.explore import ExploreConfig, create_app
from stylegan.explore.editing import LISTED
from stylegan.io.images import to_uint8
from stylegan.synth import directions as D
from stylegan.synth.figures import mix_ws, seed_ws
from stylegan.synth.ganspace import ganspace_directions
from stylegan.synth.sefa import sefa_directions
from test_explore import SMALL, _save, png, tiny

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def G():
    return tiny()


@pytest.fixture(scope="module")
def sefa(G):
    return sefa_directions(G, scale_samples=SMALL.sefa_scale_samples)  # what the explorer computes


@pytest.fixture(scope="module")
def client(G):
    with TestClient(create_app(G, "cpu", config=SMALL)) as c:
        yield c


def image(client, **params) -> np.ndarray:
    return png(client.get("/api/image", params=params))


def edited(G, ws: torch.Tensor, d, coefficients: dict, layers=None) -> np.ndarray:
    """The library's edited image: ws + edit_offset, rendered as `stylegan generate` renders."""
    with torch.no_grad():
        img = G.synthesis(ws + D.edit_offset(d, coefficients, layers), noise_mode="const")
    return to_uint8(img)[0].numpy()


def test_sefa_is_listed_and_edits_equal_the_librarys(client, G, sefa):
    sets = client.get("/api/directions").json()["sets"]
    assert [s["id"] for s in sets] == ["sefa"]
    s = sets[0]
    assert s["count"] == G.w_dim and s["layers"] == f"0-{G.num_ws - 1}" and s["value_name"] == "eigenvalue"
    assert np.allclose(s["values"], sefa.values[:LISTED]) and np.allclose(s["scales"], sefa.scales[:LISTED])
    ws = seed_ws(G, [5])
    assert np.array_equal(image(client, seed=5, edit="0:2"), edited(G, ws, sefa, {0: 2.0}))
    assert np.array_equal(image(client, seed=5, edit="1:-1.5,4:0.5"), edited(G, ws, sefa, {1: -1.5, 4: 0.5}))
    coarse = image(client, seed=5, edit="0:2", edit_layers="coarse")
    assert np.array_equal(coarse, edited(G, ws, sefa, {0: 2.0}, layers=range(4)))
    assert not np.array_equal(coarse, image(client, seed=5, edit="0:2"))


def test_alpha_zero_is_the_identity(client):
    plain = image(client, seed=6, psi=0.7)
    assert np.array_equal(image(client, seed=6, psi=0.7, edit="0:0,3:0"), plain)
    assert not np.array_equal(image(client, seed=6, psi=0.7, edit="0:1"), plain)


def test_edit_adds_to_truncation_mixing_and_a_stored_w(client, G, sefa):
    ws = mix_ws(seed_ws(G, [3], psi=0.6), seed_ws(G, [9], psi=0.6), range(4))
    main = image(client, seed=3, psi=0.6, mix_seed=9, mix="coarse", edit="2:1.5")
    assert np.array_equal(main, edited(G, ws, sefa, {2: 1.5}))
    strip = png(client.get("/api/mixing", params={"seed": 3, "psi": 0.6, "mix_seed": 9, "mix": "coarse",
                                                  "edit": "2:1.5"}))
    assert np.array_equal(strip[:, 2 * 16:], main)  # the mix of the edited sources is the edited mix
    # a stored (uploaded) w, and the w download carries the edit
    w = seed_ws(G, [12])
    buf = io.BytesIO()
    np.savez(buf, w=w.numpy())
    wid = client.post("/api/w", content=buf.getvalue()).json()["w"]
    assert np.array_equal(image(client, w=wid, edit="0:-2"), edited(G, w, sefa, {0: -2.0}))
    got = np.load(io.BytesIO(client.get("/api/w.npz", params={"w": wid, "edit": "0:-2"}).content))["w"]
    np.testing.assert_allclose(got, (w + D.edit_offset(sefa, {0: -2.0})).numpy(), rtol=0, atol=1e-6)
    frame = png(client.get("/api/animation", params={"anim_seeds": "1-2", "t": 0, "edit": "0:2"}))
    assert np.array_equal(frame, edited(G, seed_ws(G, [1]), sefa, {0: 2.0}))


def test_sefa_of_some_layers_and_a_direction_file_up_and_down(client, G, sefa, tmp_path):
    r = client.post("/api/directions", params={"method": "sefa", "layers": "coarse"}).json()
    assert r["set"]["layers"] == "0-3" and r["set"]["method"] == "sefa"
    ref = sefa_directions(G, range(4), scale_samples=SMALL.sefa_scale_samples)
    assert np.allclose(r["set"]["values"], ref.values[:LISTED])
    assert np.array_equal(image(client, seed=2, dirs=r["dirs"], edit="0:1"), edited(G, seed_ws(G, [2]), ref, {0: 1.0}))
    # download the SeFa set, upload it back: the same directions
    data = client.get("/api/directions.npz", params={"dirs": "sefa"}).content
    d = D.read_directions(data)
    assert np.array_equal(d.vectors, sefa.vectors) and d.provenance.network_sha256 == D.network_sha256(G)
    up = client.post("/api/directions/upload", params={"name": "../../etc/mine.npz"}, content=data).json()
    assert up["set"]["label"] == "sefa: mine.npz" and up["set"]["warning"] is None
    assert np.array_equal(image(client, seed=2, dirs=up["dirs"], edit="3:2"), image(client, seed=2, edit="3:2"))
    # a file of another network of the same shape: usable, with a warning
    other = sefa_directions(tiny(seed=5), num=4, scale_samples=300, network="other.safetensors")
    up = client.post("/api/directions/upload", params={"name": "o.npz"}, content=D.directions_bytes(other)).json()
    assert "another network (other.safetensors)" in up["set"]["warning"] and up["set"]["count"] == 4


@pytest.mark.parametrize("body, words", [
    (b"junk", "not a direction file"),
    (b"PK\x03\x04 broken", "cannot be read as .npz"),
])
def test_bad_direction_uploads_are_400(client, body, words):
    r = client.post("/api/directions/upload", params={"name": "x.npz"}, content=body)
    assert r.status_code == 400 and words in r.json()["error"] and "x.npz" in r.json()["error"]


def test_a_direction_file_of_another_shape_is_refused(client):
    d = sefa_directions(tiny(z_dim=24), num=3, scale_samples=300)
    r = client.post("/api/directions/upload", content=D.directions_bytes(d))
    assert r.status_code == 400 and "this network has w_dim 16" in r.json()["error"]


@pytest.mark.parametrize("params, words", [
    ({"edit": "0:x"}, "edit: expected component:strength pairs"),
    ({"edit": "0:99"}, "strength in -10..10"),
    ({"edit": "0:1,0:2"}, "component 0 is named twice"),
    ({"edit": "999:1"}, "component 999 out of range: set sefa has 16"),
    ({"edit": "0:1", "dirs": "g77"}, "dirs=g77: no such set"),
    ({"dirs": "../x"}, "dirs must name a set"),
    ({"edit_layers": "huge"}, "edit_layers: unknown layer range"),
])
def test_bad_edit_parameters_are_400_naming_them(client, params, words):
    r = client.get("/api/image", params={"seed": 1, **params})
    assert r.status_code == 400 and words in r.json()["error"], r.json()


def test_ganspace_job_progress_result_and_cancel(G):
    config = ExploreConfig(**{**SMALL.__dict__, "ganspace_samples": 3000})
    with TestClient(create_app(G, "cpu", config=config)) as c:
        assert c.get("/api/defaults").json()["ganspace_samples"] == 3000
        job = c.post("/api/directions", params={"method": "ganspace"}).json()["job"]
        status = _wait(c, job)
        assert status["state"] == "done" and status["done"] == status["total"] == 3000
        s = {x["id"]: x for x in c.get("/api/directions").json()["sets"]}[status["dirs"]]
        ref = ganspace_directions(G, 3000)
        assert s["method"] == "ganspace" and np.allclose(s["values"], ref.values[:LISTED])
        assert np.array_equal(image(c, seed=4, dirs=status["dirs"], edit="0:2"),
                              edited(G, seed_ws(G, [4]), ref, {0: 2.0}))
        assert _wait(c, job)["dirs"] == status["dirs"]  # asked again: the same set, stored once
        # a long one, cancelled: the samples so far make the result
        job = c.post("/api/directions", params={"method": "ganspace", "samples": 2_000_000}).json()["job"]
        _wait(c, job, until=lambda s: s["done"] > 0)
        assert c.post(f"/api/directions/job/{job}/cancel").json()["id"] == job
        status = _wait(c, job)
        assert status["state"] == "cancelled" and 0 < status["done"] < 2_000_000 and status["dirs"]
        assert c.get("/api/directions/job/j999").status_code == 404
        r = c.post("/api/directions", params={"method": "ganspace", "samples": 10 ** 9})
        assert r.status_code == 400 and "samples=1000000000 is out of range" in r.json()["error"]


def _wait(client, job: str, until=lambda s: s["state"] != "running", timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = client.get(f"/api/directions/job/{job}").json()
        if until(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def test_a_snapshot_switch_recomputes_sefa_and_warns_on_the_other_sets(tmp_path):
    run = tmp_path / "00001-run"
    run.mkdir()
    _save(tiny(seed=1), run / "snapshot-1.safetensors")
    _save(tiny(seed=2), run / "snapshot-2.safetensors")
    with TestClient(create_app(run, "cpu", config=SMALL)) as c:
        before = c.get("/api/directions").json()["sets"][0]
        coarse = c.post("/api/directions", params={"method": "sefa", "layers": "coarse"}).json()["dirs"]
        assert c.post("/api/network", params={"snapshot": "snapshot-1.safetensors"}).status_code == 200
        sets = {s["id"]: s for s in c.get("/api/directions").json()["sets"]}
        assert sets["sefa"]["values"] != before["values"] and sets["sefa"]["warning"] is None
        assert "another network (snapshot-2.safetensors)" in sets[coarse]["warning"]
