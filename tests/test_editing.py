"""Latent-space editing: SeFa and GANSpace against a direct numpy computation, the style affines
each w feeds, alpha 0 is the identity, the direction file (round trip, damaged files), and on a
conditional network trained here for seconds a labels direction that moves a classifier's output
monotonically along alpha (from the classes, from a classifier, from a CSV); the CLI commands."""
import io
import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegan
from stylegan.cli import main
from stylegan.io.images import to_uint8
from stylegan.synth import directions as D
from stylegan.synth.edit import edit_grid, edit_images, preview_grid, sweep_alphas, sweep_frames
from stylegan.synth.figures import render, seed_ws
from stylegan.synth.ganspace import ganspace_directions
from stylegan.synth.interfacegan import (boundary, class_samples, classifier_samples, labels_directions,
                                         load_classifier, read_label_csv, seed_samples)
from stylegan.synth.sefa import affine_weights, factorize, sefa_directions, style_affines
from test_explore import tiny, tiny_sg3

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return tiny(resolution=16, z_dim=16)


def same_up_to_sign(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    """Rows of a and b equal up to each row's sign."""
    dots = np.abs(np.sum(a * b, axis=1)) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return bool(np.all(dots > 1 - tol))


# ----------------------------------------------------------------------------------- SeFa

def sefa_numpy(G, layers=None) -> tuple[np.ndarray, np.ndarray]:
    """Shen & Zhou's `factorize_weight`, written again from the state dict: per style input the
    modulated conv's affine (the last input: the final ToRGB's), times the equalized-lr gain 1/sqrt(w_dim),
    rows normalised, eigenvectors of A^T A by np.linalg.eig, largest first."""
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in G.state_dict().items()}
    names = []
    for res in G.synthesis.block_resolutions:
        if res > 4:
            names.append(f"synthesis.b{res}.conv0.affine.weight")
        names.append(f"synthesis.b{res}.conv1.affine.weight")
    names.append(f"synthesis.b{G.img_resolution}.torgb.affine.weight")
    assert len(names) == G.num_ws
    layers = range(G.num_ws) if layers is None else layers
    A = np.concatenate([sd[names[i]] / np.sqrt(G.w_dim) for i in layers])
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eig(A.T @ A)
    order = np.argsort(-values.real)
    return vectors.real[:, order].T, values.real[order]


@pytest.mark.parametrize("layers", [None, (0, 1), (3, 4, 5)])
def test_sefa_matches_a_direct_numpy_computation(G, layers):
    ref_vectors, ref_values = sefa_numpy(G, layers)
    d = sefa_directions(G, layers, scale_samples=500)
    np.testing.assert_allclose(d.values, ref_values, rtol=1e-9, atol=1e-9)
    distinct = np.flatnonzero(np.diff(ref_values[:6]) < -1e-6)  # eigenvectors of distinct eigenvalues
    assert same_up_to_sign(d.vectors[distinct].astype(np.float64), ref_vectors[distinct], tol=1e-5)
    assert d.layers == (tuple(range(G.num_ws)) if layers is None else layers)
    assert np.allclose(np.linalg.norm(d.vectors, axis=1), 1, atol=1e-6)
    # without the row normalisation: rosinality's closed_form_factorization.py (SVD of the stacked weights)
    A = np.concatenate(affine_weights(G, range(G.num_ws)))
    vectors, values = factorize([A], normalize=False)
    s = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(values[:len(s)], s ** 2, rtol=1e-8)


def test_style_affines_are_the_ones_each_w_feeds():
    """Hooks on every style affine while ws carries a different vector per style input: each affine
    style_affines names for input i received exactly ws[:, i], and no other affine ran."""
    for G in (tiny(resolution=16), tiny(version=1, resolution=16), _progressive_v2(), _resnet_v2(), tiny_sg3()):
        syn = G.synthesis
        ws = torch.randn(1, G.num_ws, G.w_dim)
        seen = {}
        hooks = [m.register_forward_pre_hook(lambda m, inp: seen.__setitem__(m, inp[0].detach().clone()))
                 for name, m in syn.named_modules() if name.endswith("affine")]
        with torch.no_grad():
            syn(ws)
        for h in hooks:
            h.remove()
        named = {m: i for i, pairs in enumerate(style_affines(syn)) for _, m in pairs}
        assert set(named) == set(seen), type(syn).__module__
        for m, i in named.items():
            assert torch.equal(seen[m], ws[:, i]), (type(syn).__module__, i)
        assert all(style_affines(syn)[i] for i in range(G.num_ws))  # every w feeds some affine


def _progressive_v2():
    from stylegan import Generator, GeneratorConfig, MappingConfig

    cfg = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, version=2, growing=True, architecture="orig",
                          channel_base=128, channel_max=16, mapping=MappingConfig(num_layers=2))
    return Generator(cfg).eval()


def _resnet_v2():
    from stylegan import Generator, GeneratorConfig, MappingConfig

    cfg = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, architecture="resnet", channel_base=128,
                          channel_max=16, mapping=MappingConfig(num_layers=2))
    return Generator(cfg).eval()


# ----------------------------------------------------------------------------------- GANSpace

def test_ganspace_matches_a_direct_numpy_pca(G):
    n = 3000
    z = np.random.RandomState(7).randn(n, G.z_dim)
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(z).float(), None)[:, 0].double().numpy()
    values, vectors = np.linalg.eig(np.cov(w, rowvar=False))
    order = np.argsort(-values.real)
    values, vectors = values.real[order], vectors.real[:, order].T
    d = ganspace_directions(G, n, seed=7, batch=257)  # uneven batches: the merged moments are exact
    np.testing.assert_allclose(d.values, values / values.sum(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(d.scales, np.sqrt(values), rtol=1e-5)
    assert same_up_to_sign(d.vectors[:5].astype(np.float64), vectors[:5], tol=1e-5)
    assert d.provenance.samples == n and d.provenance.method == "ganspace"
    # the moments merged over batches equal the moments of all samples at once
    m = D.w_moments(G, n, seed=7, batch=1000)
    np.testing.assert_allclose(m.cov, np.cov(w, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.mean, w.mean(0), rtol=1e-9, atol=1e-12)


def test_scales_are_ws_standard_deviations_along_each_direction(G):
    """Measured on the same samples, no direction has more variance than the first principal
    component, and each scale is the std of the projected samples."""
    g = ganspace_directions(G, 4000, seed=3)
    s = sefa_directions(G, scale_samples=4000, seed=3)
    assert np.all(s.scales <= g.scales[0] * (1 + 1e-6)) and np.all(np.diff(g.scales) <= 1e-6)
    w = np.concatenate(list(D.w_batches(G, 4000, seed=3)))
    np.testing.assert_allclose(s.scales, (w @ s.vectors.T.astype(np.float64)).std(axis=0, ddof=1), rtol=1e-5)


def test_ganspace_progress_can_stop_early(G):
    calls = []
    d = ganspace_directions(G, 10_000, batch=1000, progress=lambda done, total: calls.append(done) or done < 3000)
    assert calls == [1000, 2000, 3000] and d.provenance.samples == 3000


# ----------------------------------------------------------------------------------- edits

def test_alpha_zero_is_the_identity(G):
    d = sefa_directions(G, scale_samples=500)
    ws = seed_ws(G, [1, 2], psi=0.7)
    edited = D.edit_ws(ws, d, [0, 3], [-2.0, 0.0, 1.5])
    assert edited.shape == (2, 3, G.num_ws, G.w_dim)
    assert torch.equal(edited[:, 1], ws)
    grid = edit_images(G, ws, d, [0], D.parse_alphas("-3:3:7"))
    assert np.array_equal(grid[:, 3], render(G, ws))  # alpha 0: what `stylegan generate` draws
    assert not np.array_equal(grid[:, 0], grid[:, 3])
    # the offset is alpha * scale * vector on the chosen layers only
    off = D.edit_offset(d, {2: 1.5}, layers=(1, 4))
    expect = 1.5 * d.scales[2] * d.vectors[2]
    assert torch.allclose(off[1], torch.from_numpy(expect).float()) and torch.allclose(off[4], off[1])
    assert off[[0, 2, 3, 5]].abs().sum() == 0
    assert edit_grid(G, ws, d, [0], [-1, 0, 1]).shape == (2 * 16, 3 * 16, 3)
    assert preview_grid(G, ws[:1], d, 4, [-1, 0, 1]).shape == (4 * 16, 3 * 16, 3)


def test_sweep_loops_and_starts_at_its_low_end(G):
    d = sefa_directions(G, scale_samples=500)
    alphas = sweep_alphas(-2, 2, 8)
    assert alphas[0] == -2 and alphas[4] == pytest.approx(2) and alphas[1] == pytest.approx(alphas[7])
    ws = seed_ws(G, [3, 4, 5])
    frames = list(sweep_frames(G, ws, d, [1], alphas, batch=4, cols=2))
    assert len(frames) == 8 and frames[0].shape == (2 * 16, 2 * 16, 3)
    first = edit_images(G, ws, d, [1], [-2.0])[:, 0]
    assert np.array_equal(frames[0][:16, :16], first[0]) and np.array_equal(frames[0][16:, :16], first[2])


def test_parse_alphas():
    assert D.parse_alphas("-3:3:7") == [-3, -2, -1, 0, 1, 2, 3]
    assert D.parse_alphas("-1,0,2.5") == [-1, 0, 2.5] and D.parse_alphas("2") == [2.0]
    assert D.parse_alphas("-1:1:5") == [-1, -0.5, 0, 0.5, 1]
    for bad in ("", "a:b:3", "1:2:0", "nan", "1,,x"):
        with pytest.raises(ValueError, match="strengths"):
            D.parse_alphas(bad)


# ----------------------------------------------------------------------------------- the file

def test_direction_file_round_trip(G, tmp_path):
    d = sefa_directions(G, (0, 1, 2), num=5, scale_samples=500, network="net.safetensors")
    path = D.save_directions(d, tmp_path / "d.npz")
    e = D.load_directions(path)
    for key in ("vectors", "scales", "values"):
        assert np.array_equal(getattr(e, key), getattr(d, key)), key
    assert (e.layers, e.num_ws, e.value_name, e.names) == (d.layers, d.num_ws, d.value_name, d.names)
    assert e.provenance == d.provenance and e.provenance.network == "net.safetensors"
    assert e.provenance.network_sha256 == D.network_sha256(G) and len(e.provenance.date) >= 19
    assert e.count == 5 and e.head(2).count == 2
    assert D.check_network(e, G) is None
    other = tiny(resolution=16, z_dim=16, seed=1)
    assert "another network (net.safetensors)" in D.check_network(e, other)
    with pytest.raises(D.DirectionError, match="w_dim 16 with 6 style inputs; this network has w_dim 32"):
        D.check_network(e, tiny(resolution=16, z_dim=32))


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good(G) -> dict:
    with np.load(io.BytesIO(D.directions_bytes(sefa_directions(G, num=3, scale_samples=200)))) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("vectors"), "damaged: it lacks vectors"),
    (lambda a: a.update(format=np.str_("something-else")), "not a direction file"),
    (lambda a: a.update(version=np.int64(7)), "version 7"),
    (lambda a: a.update(vectors=a["vectors"] * 2), "unit length; vector 0 has length 2"),
    (lambda a: a.update(vectors=np.full_like(a["vectors"], np.nan)), "finite"),
    (lambda a: a.update(scales=a["scales"][:2]), "scales must have one entry per vector (3)"),
    (lambda a: a.update(scales=-a["scales"]), "scales must be positive"),
    (lambda a: a.update(layers=np.array([0, 9])), "layers must be distinct style indices in 0..5"),
    (lambda a: a.update(layers=np.array(["a"])), "layers must be a list of integers"),
    (lambda a: a.update(meta=np.str_("{not json")), "meta record is not valid"),
    (lambda a: a.update(meta=np.str_(json.dumps({"method": "sefa"}))), "meta record is not valid"),
    (lambda a: a.update(meta=np.str_(json.dumps({**json.loads(str(a["meta"])), "method": "magic"}))),
     "method must be one of"),
])
def test_damaged_direction_files_are_clear_errors(G, tmp_path, change, words):
    arrays = _good(G)
    change(arrays)
    path = tmp_path / "bad.npz"
    path.write_bytes(_npz(**arrays))
    with pytest.raises(D.DirectionError, match=re.escape(words)) as e:
        D.load_directions(path)
    assert str(path) in str(e.value)


def test_unreadable_direction_files(G, tmp_path):
    good = D.directions_bytes(sefa_directions(G, num=3, scale_samples=200))
    cases = {"truncated.npz": good[: len(good) // 2], "text.npz": b"hello", "empty.npz": b""}
    buf = io.BytesIO()
    np.savez(buf, format=np.array([object()], dtype=object))  # a pickle inside
    cases["pickle.npz"] = buf.getvalue()
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(D.DirectionError, match=rf"{name}.*(cannot be read|not a direction file|pickles)"):
            D.load_directions(tmp_path / name)
    with pytest.raises(D.DirectionError, match="no such direction file"):
        D.load_directions(tmp_path / "missing.npz")


def test_label_csv_parsing():
    seeds, labels = read_label_csv("seed,label\n3,1\n4, no\n\n# a comment\n5,0.9\n6,-2\n")
    assert seeds == [3, 4, 5, 6] and labels == [True, False, True, False]
    with pytest.raises(D.DirectionError, match="line 3: expected an integer seed"):
        read_label_csv("1,1\n2,0\nx,1\n")
    with pytest.raises(D.DirectionError, match="line 1: expected 'seed,label'"):
        read_label_csv("7\n")
    with pytest.raises(D.DirectionError, match="no \\(seed, label\\) rows"):
        read_label_csv("seed,label\n")


def test_boundary_needs_both_labels_and_finds_a_planted_normal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8))
    normal = np.eye(8)[2] * 0.6 + np.eye(8)[5] * 0.8
    n, acc = boundary(x, x @ normal > 0.1)
    assert n @ normal > 0.98 and acc > 0.97
    with pytest.raises(D.DirectionError, match="present in all 400 samples"):
        boundary(x, np.ones(400, bool))


# ----------------------------------------------------------------------------------- a trained network

R = 16


def _labelled_discs(root, n: int = 64):
    """Class 0: a disc on the left, class 1: a disc on the right (grayscale R x R, dataset.json)."""
    root.mkdir(parents=True, exist_ok=True)
    rnd = np.random.RandomState(0)
    yy, xx = np.mgrid[:R, :R]
    entries, images = [], []
    for i in range(n):
        k = i % 2
        cx = rnd.uniform(0.2, 0.38) * R if k == 0 else rnd.uniform(0.62, 0.8) * R
        cy, r = rnd.uniform(0.25, 0.75) * R, rnd.uniform(0.12, 0.19) * R
        img = (255 * ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)).astype(np.uint8)
        Image.fromarray(img, mode="L").save(root / f"img{i:04d}.png")
        entries.append([f"img{i:04d}.png", k])
        images.append(img.astype(np.float64) / 127.5 - 1)
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return root, np.stack(images), np.array([k for _, k in entries])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A conditional StyleGAN2 trained for 0.3 kimg (seconds) with D's class head (AC-GAN, as the
    CPU demo) on discs whose class is their side, and a logistic classifier fitted to the reals."""
    import dataclasses

    from sklearn.linear_model import LogisticRegression

    from stylegan.training.launch import train
    from stylegan.training.presets import DataShape, resolve_preset

    tmp = tmp_path_factory.mktemp("edit-train")
    root, images, labels = _labelled_discs(tmp / "discs")
    cfg = resolve_preset("tiny", DataShape(R, 1, c_dim=2))
    cfg = cfg.replace(D=cfg.D.replace(aux_classes=2), loss=dataclasses.replace(cfg.loss, cls_weight=1.0), cond=True,
                      total_kimg=0.3, kimg_per_tick=0.3, snap=1)
    threads = torch.get_num_threads()
    res = train(cfg, str(root), str(tmp / "runs"), device="cpu", quiet=True)
    torch.set_num_threads(threads)
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(images.reshape(len(images), -1), labels)
    assert clf.score(images.reshape(len(images), -1), labels) == 1.0

    def classify(img: torch.Tensor) -> np.ndarray:
        """img [N, 1, R, R] in [-1, 1] -> logit of 'class 1' (right)."""
        return clf.decision_function(img.reshape(img.shape[0], -1).double().numpy())

    weights = tmp / "clf.npz"
    np.savez(weights, coef=clf.coef_[0], intercept=clf.intercept_)
    return stylegan.load(res.last_snapshot), res.last_snapshot, classify, weights


ALPHAS = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


def _mean_logits(G, d, classify, k: int = 0, class_idx: int = 0) -> np.ndarray:
    """Mean classifier logit over 8 seeds drawn as `class_idx`, per strength along direction k."""
    ws = seed_ws(G, list(range(100, 108)), class_idx=class_idx)
    imgs = D.edit_ws(ws, d, [k], ALPHAS)  # [8, A, L, D]
    with torch.no_grad():
        out = G.synthesis(imgs.flatten(0, 1), noise_mode="const")
    return classify(out).reshape(8, len(ALPHAS)).mean(axis=0)


def _monotone(logits: np.ndarray) -> bool:
    return bool(np.all(np.diff(logits) > 0))


def test_a_labels_direction_moves_the_classifier_monotonically(trained):
    G, _, classify, _ = trained
    d = labels_directions(G, class_samples(G, 2000, [1]))
    assert d.names == ("class 1",) and d.values[0] > 0.9  # W separates the classes
    logits = _mean_logits(G, d, classify)
    assert _monotone(logits), logits
    assert logits[-1] - logits[0] > 2, logits
    assert logits[0] < 0  # drawn as class 0 (left) and pushed further left
    # the opposite class gives the opposite direction
    d0 = labels_directions(G, class_samples(G, 2000, [0]))
    assert float(d0.vectors[0] @ d.vectors[0]) < -0.9


def test_a_classifier_and_a_csv_give_directions_that_move_it_too(trained):
    G, _, classify, _ = trained

    def logits(img):
        return torch.from_numpy(classify(img))

    samples = classifier_samples(G, logits, 600, batch=100)
    assert samples.labels.any() and not samples.labels.all()
    d = labels_directions(G, samples, keep=0.5)
    assert _monotone(_mean_logits(G, d, classify))
    seeds = list(range(300))
    with torch.no_grad():
        imgs = G.synthesis(seed_ws(G, seeds, class_idx=0))
    csv_dir = labels_directions(G, seed_samples(G, seeds, classify(imgs) > 0, class_idx=0))
    assert _monotone(_mean_logits(G, csv_dir, classify))


def test_load_classifier_from_a_file_and_a_module(tmp_path):
    (tmp_path / "myclf.py").write_text("def score(img):\n    return img.mean(dim=(1, 2, 3))\n")
    fn = load_classifier(f"{tmp_path / 'myclf.py'}:score")
    assert fn(torch.ones(2, 1, 4, 4)).tolist() == [1.0, 1.0]
    assert load_classifier("numpy:mean") is np.mean
    with pytest.raises(D.DirectionError, match="module:function"):
        load_classifier("nocolon")
    with pytest.raises(D.DirectionError, match="has no function 'nope'"):
        load_classifier("numpy:nope")
    with pytest.raises(D.DirectionError, match="cannot import"):
        load_classifier("no_such_module_xyz:f")


# ----------------------------------------------------------------------------------- CLI

def _run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


def test_cli_directions_and_edit(trained, tmp_path):
    G, snap, classify, weights = trained
    out = tmp_path / "sefa.npz"
    res = _run("directions", "--network", snap, "--method", "sefa", "--out", out, "--preview", 4,
               "--alpha", "-2:2:5", "--class", 1, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "sefa: 32 direction(s) on style inputs 0-5" in res.output
    d = D.load_directions(out)
    assert np.array_equal(d.vectors, sefa_directions(G).vectors)
    assert Image.open(tmp_path / "sefa-preview.png").size == (5 * R, 4 * R)

    # a grid: rows = seeds, columns = strengths; alpha 0 = `stylegan generate`
    res = _run("edit", "--network", snap, "--directions", out, "--seeds", "5-7", "--class", 1, "--component", "0,2",
               "--alpha", "-3:3:7", "--outdir", tmp_path / "e", "--device", "cpu")
    assert res.exit_code == 0, res.output
    grid = np.asarray(Image.open(tmp_path / "e" / "edit-c0.png"))
    assert grid.shape == (3 * R, 7 * R) and (tmp_path / "e" / "edit-c2.png").is_file()
    res = _run("generate", "--network", snap, "--seeds", "5-7", "--class", 1, "--outdir", tmp_path / "g",
               "--device", "cpu")
    assert res.exit_code == 0, res.output
    for row, seed in enumerate((5, 6, 7)):  # equal up to the batches' float round-off (21 images vs 3)
        ref = np.asarray(Image.open(tmp_path / "g" / f"seed{seed:04d}.png")).astype(int)
        diff = np.abs(grid[row * R:(row + 1) * R, 3 * R:4 * R] - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.02
    # combined components, other layers, a video sweep
    res = _run("edit", "--network", snap, "--directions", out, "--seeds", "5", "--class", 1, "--component", "0-1",
               "--combine", "--layers", "coarse", "--video", "--frames", 6, "--format", "gif", "--outdir",
               tmp_path / "v", "--device", "cpu")
    assert res.exit_code == 0, res.output
    from stylegan.synth.video import read_video

    assert read_video(tmp_path / "v" / "edit-c0+1.gif").shape == (6, R, R, 3)

    # labels from the classes, with the file's provenance; the edit moves the classifier
    lab = tmp_path / "labels.npz"
    res = _run("directions", "--network", snap, "--method", "labels", "--classes", "1", "--samples", 2000,
               "--out", lab, "--preview", 0, "--device", "cpu")
    assert res.exit_code == 0, res.output
    d = D.load_directions(lab)
    assert d.provenance.method == "labels" and d.provenance.params["classes"] == [1] and d.names == ("class 1",)
    assert _monotone(_mean_logits(G, d, classify))

    # a classifier given as file.py:function, and a CSV
    (tmp_path / "clf.py").write_text(
        "import numpy as np, torch\n"
        f"_p = np.load({str(weights)!r})\n"
        "def right(img):\n"
        "    x = img.reshape(img.shape[0], -1).double()\n"
        "    return x @ torch.from_numpy(_p['coef']) + float(_p['intercept'][0])\n")
    res = _run("directions", "--network", snap, "--method", "labels", "--classifier", f"{tmp_path / 'clf.py'}:right",
               "--samples", 600, "--out", tmp_path / "clf.npz", "--preview", 0, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert _monotone(_mean_logits(G, D.load_directions(tmp_path / "clf.npz"), classify))
    seeds = list(range(200))
    with torch.no_grad():
        labels = classify(G.synthesis(seed_ws(G, seeds, class_idx=0))) > 0
    (tmp_path / "l.csv").write_text("seed,label\n" + "".join(f"{s},{int(v)}\n" for s, v in zip(seeds, labels)))
    res = _run("directions", "--network", snap, "--method", "labels", "--csv", tmp_path / "l.csv", "--class", 0,
               "--out", tmp_path / "csv.npz", "--preview", 0, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert D.load_directions(tmp_path / "csv.npz").provenance.samples == 200

    # GANSpace, then a projected w edited
    res = _run("directions", "--network", snap, "--method", "ganspace", "--samples", 3000, "--num", 6,
               "--out", tmp_path / "gs.npz", "--preview", 2, "--preview-class", 1, "--device", "cpu")
    assert res.exit_code == 0, res.output
    gs = D.load_directions(tmp_path / "gs.npz")
    assert gs.count == 6 and gs.provenance.params["class"] is None  # W of every class; the preview's: 1
    assert "seed 0, class 1" in res.output
    np.savez(tmp_path / "w.npz", w=seed_ws(G, [9], class_idx=0).numpy())
    res = _run("edit", "--network", snap, "--directions", tmp_path / "gs.npz", "--projected-w", tmp_path / "w.npz",
               "--alpha", "-1,0,1", "--outdir", tmp_path / "p", "--device", "cpu")
    assert res.exit_code == 0, res.output
    p = np.asarray(Image.open(tmp_path / "p" / "edit-c0.png"))
    with torch.no_grad():
        ref = to_uint8(G.synthesis(seed_ws(G, [9], class_idx=0)))[0].numpy()
    assert np.array_equal(p[:, R:2 * R], ref[:, :, 0])


def test_cli_errors_are_one_line(trained, tmp_path):
    G, snap, _, _ = trained
    out = tmp_path / "s.npz"
    assert _run("directions", "--network", snap, "--method", "sefa", "--out", out, "--preview", 0, "--samples", 300,
                "--device", "cpu").exit_code == 0
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    cases = [
        (("edit", "--directions", tmp_path / "bad.npz", "--seeds", "1"), "not a direction file"),
        (("edit", "--directions", out, "--seeds", "1", "--component", "99"), "--component [99] out of range"),
        (("edit", "--directions", out), "give --seeds"),
        (("edit", "--directions", out, "--seeds", "1", "--alpha", "x"), "cannot read strengths"),
        (("edit", "--directions", out, "--seeds", "1", "--layers", "huge"), "cannot parse 'huge'"),
        (("directions", "--method", "labels", "--out", tmp_path / "x.npz"), "--classes"),  # conditional: classes
        (("directions", "--method", "sefa", "--classes", "1"), "belong to --method labels"),
        (("directions", "--method", "labels", "--classes", "5"), "classes [5] out of range 0..1"),
        (("directions", "--method", "labels", "--csv", tmp_path / "none.csv"), "no such file"),
    ]
    for args, words in cases:
        res = _run(*args[:1], "--network", snap, *args[1:], "--device", "cpu")
        if args[-1] == tmp_path / "x.npz":
            assert res.exit_code == 0, res.output  # the classes of a conditional network: fine
            continue
        assert res.exit_code != 0 and words in res.output, (args, res.output)
        assert "Traceback" not in res.output
    other = tmp_path / "other.safetensors"
    stylegan.save_checkpoint(other, {"G_ema": tiny(resolution=16, z_dim=24)})
    res = _run("edit", "--network", other, "--directions", out, "--seeds", "1", "--device", "cpu")
    assert res.exit_code != 0 and "this network has w_dim 24" in res.output
