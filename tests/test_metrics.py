"""Metric math (FID, KID, precision/recall, IS, PPL, linear separability), registry and the
end-to-end pipeline on toy objects. Nothing here downloads or needs the official detectors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from stylegan.metrics import MetricError, compute_metric, get_metric, list_metrics, proxy_for
from stylegan.metrics.features import (DetectorProvider, Extractor, FeatureStats, MetricOptions,
                                       compute_dataset_features, compute_generator_features, sample_latents)
from stylegan.metrics.fid import frechet_distance
from stylegan.metrics.inception_score import inception_score
from stylegan.metrics.kid import kernel_distance, mmd2_unbiased
from stylegan.metrics.ppl import (PPLConfig, compute_ppl, crop_face, downsample_to, filtered_mean,
                                  sample_pair_latents, slerp)
from stylegan.metrics.precision_recall import knn_radii, precision_recall
from stylegan.metrics.separability import conditional_entropy, separability_score
from metrics_helpers import ToyDataset, ToyGenerator, save_fake_detector


pytestmark = pytest.mark.usefixtures("offline")


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---------------------------------------------------------------------------------------------- FID


def frechet_eigh(mu1, s1, mu2, s2):
    """Independent float64 formula: Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), via eigh."""
    vals, vecs = np.linalg.eigh(s1)
    r1 = vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = r1 @ s2 @ r1
    ev = np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(ev)))


def test_frechet_matches_independent_formula():
    rng = np.random.default_rng(0)
    for d in (1, 3, 16, 64):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_eigh(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_diagonal_closed_form_and_scipy():
    rng = np.random.default_rng(1)
    d = 10
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    ours = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    sq = np.real(scipy.linalg.sqrtm(np.diag(v1) @ np.diag(v2)))
    via_scipy = np.sum((mu1 - mu2) ** 2) + np.trace(np.diag(v1) + np.diag(v2) - 2 * sq)
    assert ours == pytest.approx(closed, rel=1e-10)
    assert via_scipy == pytest.approx(closed, rel=1e-10)


def test_frechet_shape_error():
    with pytest.raises(MetricError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_feature_stats_mean_cov_and_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 5)).astype(np.float32)
    st = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=90)
    for chunk in np.array_split(x, 7):
        st.append(chunk)
    assert st.num_items == 90 and st.is_full()
    mu, cov = st.get_mean_cov()
    ref = x[:90].astype(np.float64)
    np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cov, np.cov(ref, rowvar=False, bias=True), rtol=1e-5, atol=1e-6)
    st.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.get_all(), x[:90])
    np.testing.assert_allclose(back.get_mean_cov()[1], cov)


# ---------------------------------------------------------------------------------------------- KID


def mmd_naive(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_naive_double_loop():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 4)) + 0.5
    naive = mmd_naive(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(naive, rel=1e-10)
    # Subsets of the full size are permutations: the estimate is the same for every subset.
    assert kernel_distance(x, y, num_subsets=5, max_subset_size=1000) == pytest.approx(naive, rel=1e-10)


def test_kid_equal_distributions_near_zero_and_can_be_negative():
    rng = np.random.default_rng(4)
    values = []
    for _ in range(6):
        x, y = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
        values.append(kernel_distance(x, y, num_subsets=10, max_subset_size=100, seed=0))
    assert max(abs(v) for v in values) < 0.05
    assert min(values) < 0  # unbiased estimator
    far = kernel_distance(rng.standard_normal((300, 16)), rng.standard_normal((300, 16)) + 1.0, num_subsets=10,
                          max_subset_size=100)
    assert far > 10 * max(abs(v) for v in values)


# ---------------------------------------------------------------------------------- precision/recall


def test_precision_recall_constructed_manifolds():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    assert precision_recall(real, torch.randn(150, 8, generator=g) + 100.0) == (0.0, 0.0)
    # Half of the generated samples are copies of reals, half far away: precision exactly 0.5.
    gen = torch.cat([real[:100], torch.randn(100, 8, generator=g) + 100.0])
    p, r = precision_recall(real, gen)
    assert p == 0.5 and 0.0 < r <= 1.0
    # Blocked computation does not change anything.
    assert precision_recall(real, gen, row_batch=17, col_batch=23) == (p, r)


def test_knn_radii_brute_force():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=g)
    d = torch.cdist(x, x)
    ref = d.sort(dim=1).values[:, 3]
    torch.testing.assert_close(knn_radii(x, 3, row_batch=7, col_batch=11), ref)


# ---------------------------------------------------------------------------------------------- IS


def test_inception_score_known_distributions():
    k, n = 10, 1000
    onehot = np.eye(k)[np.arange(n) % k]
    mean, std = inception_score(onehot, 10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0, abs=1e-9)
    uniform = np.full((n, k), 1.0 / k)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    # Mixture: each sample puts mass 1-a on its class -> IS = exp(log K - H(row)).
    a = 0.3
    rows = onehot * (1 - a) + a / k
    h = -np.sum(rows[0] * np.log(rows[0]))
    assert inception_score(rows)[0] == pytest.approx(math.exp(math.log(k) - h), rel=1e-9)


# ---------------------------------------------------------------------------------------------- PPL


def sq_l2(a, b):
    return (a.double() - b.double()).square().flatten(1).sum(1)


def test_slerp_sanity():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    torch.testing.assert_close(slerp(a, b, torch.zeros(5, 1)), an)
    torch.testing.assert_close(slerp(a, b, torch.ones(5, 1)), bn, atol=1e-5, rtol=1e-5)
    t = torch.rand(5, 1, generator=g)
    s = slerp(a, b, t)
    torch.testing.assert_close(s.norm(dim=1), torch.ones(5))
    omega = torch.acos((an * bn).sum(1))
    torch.testing.assert_close(torch.acos((an * s).sum(1).clamp(-1, 1)), t[:, 0] * omega, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampling", ["full", "end"])
def test_ppl_linear_generator_closed_form(sampling):
    G = ToyGenerator(z_dim=6, w_dim=5, img_resolution=8)
    cfg = PPLConfig(num_samples=37, space="w", sampling=sampling, crop=False)
    opts = MetricOptions(G=G, batch=8, progress=False, seed=3)
    lengths = compute_ppl(opts, cfg, distance=sq_l2, return_all=True)
    z0, z1, t, _ = sample_pair_latents(G, range(37), 3, cfg, None, torch.device("cpu"))
    w0, w1 = G.mapping(z0)[:, 0], G.mapping(z1)[:, 0]
    expected = ((w1 - w0) @ G.A.T).square().sum(1).numpy()  # ||A (w1 - w0)||^2, any t
    np.testing.assert_allclose(lengths, expected, rtol=1e-6)
    assert (t == 0).all() if sampling == "end" else (t > 0).all()
    assert compute_ppl(opts, cfg, distance=sq_l2) == pytest.approx(filtered_mean(expected), rel=1e-6)


def test_ppl_z_space_runs_and_is_deterministic():
    G = ToyGenerator()
    cfg = PPLConfig(num_samples=10, space="z", sampling="full", crop=True)
    opts = MetricOptions(G=G, batch=4, progress=False)
    a = compute_ppl(opts, cfg, distance=sq_l2, return_all=True)
    b = compute_ppl(MetricOptions(G=G, batch=7, progress=False), cfg, distance=sq_l2, return_all=True)
    assert np.all(np.isfinite(a)) and np.all(a > 0)
    np.testing.assert_allclose(a, b, rtol=1e-5)  # independent of batch size


def test_filtered_mean_crop_downsample():
    x = np.concatenate([np.full(990, 1.0), np.full(5, 1000.0), np.full(5, -1000.0)])
    assert filtered_mean(x) == pytest.approx(1.0)
    img = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    c = crop_face(img)
    assert c.shape == (2, 3, 8, 8)
    torch.testing.assert_close(c, img[:, :, 6:14, 4:12])
    big = torch.rand(1, 3, 1024, 1024)
    assert downsample_to(big, 256).shape[-1] == 256
    torch.testing.assert_close(downsample_to(big, 256)[0, 0, 0, 0], big[0, 0, :4, :4].mean())
    assert downsample_to(img, 256) is img


# ---------------------------------------------------------------------------------- separability


def test_conditional_entropy():
    y = np.array([0, 1] * 50)
    assert conditional_entropy(y, y) == 0.0
    assert conditional_entropy(y, 1 - y) == 0.0  # X determines Y
    assert conditional_entropy(y, np.array([0, 0, 1, 1] * 25)) == pytest.approx(math.log(2))


def test_separability_separable_vs_random():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 6))
    v = rng.standard_normal((6, 2))
    separable = separability_score(z, z @ v)
    random = separability_score(z, rng.standard_normal((400, 2)))
    assert separable < 1.05
    assert random > 2.5  # ~exp(2 ln 2) = 4 for two unpredictable attributes
    assert separability_score(z, np.ones(400)) == 1.0  # one class only


# ---------------------------------------------------------------------------------------------- registry


def test_registry_ids_and_unknown():
    ids = list_metrics()
    for mid in ["fid50k_full", "kid50k_full", "pr50k3_full", "is50k", "ppl2_wend", "ppl_zfull", "ppl_wfull",
                "ppl_zend", "ppl_wend", "ls", "fid1k_full", "fid5k_full", "kid5k_full", "pr5k3_full", "ppl_wend1k",
                "fid_effnet5k_full", "kid_effnet5k_full", "pr_effnet5k3_full", "ppl2_wend_effnet"]:
        assert mid in ids
    with pytest.raises(MetricError, match="Unknown metric 'fid51k'.*fid50k_full"):
        get_metric("fid51k")
    assert proxy_for("fid50k_full") == "fid_effnet50k_full"
    assert proxy_for("ppl_wend") == "ppl_wend_effnet"
    assert get_metric("fid_effnet5k_full").proxy_of == "fid5k_full"
    with pytest.raises(MetricError, match="no offline proxy"):
        proxy_for("is50k")
    with pytest.raises(MetricError, match="dataset is required"):
        compute_metric("fid1k_full", ToyGenerator(), None)
    with pytest.raises(MetricError, match="Unknown metric option"):
        compute_metric("ppl2_wend1k", ToyGenerator(), None, bogus=1)


# ---------------------------------------------------------------------------------------------- pipeline


def counting_extractor(counter):
    def fn(img):
        counter.append(img.shape[0])
        x = img.float() / 255
        return torch.cat([x.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)], 1)

    return Extractor(id="counting", fn=fn)


def test_dataset_features_cached_and_keyed(tmp_path):
    ds = ToyDataset.random(20, seed=1)
    calls = []
    opts = MetricOptions(dataset=ds, batch=6, cache_dir=tmp_path / "c", progress=False, num_workers=0)
    a = compute_dataset_features(opts, counting_extractor(calls), capture_mean_cov=True)
    assert sum(calls) == 20
    b = compute_dataset_features(opts, counting_extractor(calls), capture_mean_cov=True)
    assert sum(calls) == 20  # cache hit
    np.testing.assert_allclose(a.get_mean_cov()[0], b.get_mean_cov()[0])
    compute_dataset_features(opts, counting_extractor(calls), capture_mean_cov=True, max_items=10)
    assert sum(calls) == 30  # different max_items -> different key
    ds.images[10] ^= 1  # content change in a probed image (middle) -> recompute
    compute_dataset_features(opts, counting_extractor(calls), capture_mean_cov=True)
    assert sum(calls) == 50
    assert len(list((tmp_path / "c" / "gan-metrics").glob("*.npz"))) == 3


def test_generator_features_deterministic_and_conditional():
    G = ToyGenerator()
    ext = counting_extractor([])
    a = compute_generator_features(MetricOptions(G=G, batch=4, progress=False), ext, 10, capture_all=True).get_all()
    b = compute_generator_features(MetricOptions(G=G, batch=3, progress=False), ext, 10, capture_all=True).get_all()
    np.testing.assert_array_equal(a, b)
    Gc = ToyGenerator(c_dim=3)
    with pytest.raises(MetricError, match="conditional"):
        compute_generator_features(MetricOptions(G=Gc, progress=False), ext, 4)
    labels = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    ds = ToyDataset(ToyDataset.random(12).images, labels)
    z, c = sample_latents(Gc, range(5), 0, __import__("stylegan.metrics.features", fromlist=["x"]).make_label_sampler(
        Gc, MetricOptions(G=Gc, dataset=ds)), torch.device("cpu"))
    assert z.shape == (5, 8) and c.shape == (5, 3) and (c.sum(1) == 1).all()
    out = compute_generator_features(MetricOptions(G=Gc, dataset=ds, progress=False), ext, 6, capture_all=True)
    assert out.get_all().shape == (6, 15)


def test_fid_kid_pr_is_end_to_end_with_fake_detector(tmp_path):
    det_dir = tmp_path / "det"
    save_fake_detector(det_dir / "inception-2015-12-05.pt")
    save_fake_detector(det_dir / "vgg16.pt")
    G = ToyGenerator(img_resolution=16)
    ds = ToyDataset.random(64, seed=5)
    common = dict(device="cpu", batch=16, cache_dir=tmp_path / "cache", detector_dir=det_dir, progress=False,
                  num_workers=0)
    r = compute_metric("fid1k_full", G, ds, **common)
    assert r["metric"] == "fid1k_full" and r["detector"] == "inception" and r["proxy_of"] is None
    assert r["results"]["fid1k_full"] > 0
    kid = compute_metric("kid1k_full", G, ds, **common)["results"]["kid1k_full"]
    assert np.isfinite(kid)
    pr = compute_metric("pr1k3_full", G, ds, **common)["results"]
    assert set(pr) == {"pr1k3_full_precision", "pr1k3_full_recall"}
    is_ = compute_metric("is1k", G, None, **common)["results"]
    assert is_["is1k_mean"] >= 1.0
    ppl = compute_metric("ppl2_wend1k", G, None, **common)["results"]["ppl2_wend1k"]
    assert ppl > 0
    # Reals against themselves: FID ~ 0 (same features, same statistics).
    opts = MetricOptions(G=G, dataset=ds, **common)
    ext = opts.detectors.extractor("inception")
    st = compute_dataset_features(opts, ext, capture_mean_cov=True)
    mu, cov = st.get_mean_cov()
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-6)


def test_effnet_proxy_kid_small():
    from stylegan.metrics.kid import compute_kid

    G = ToyGenerator(img_resolution=16)
    ds = ToyDataset.random(8, seed=2)
    opts = MetricOptions(G=G, dataset=ds, batch=8, use_cache=False, progress=False, num_workers=0)
    kid = compute_kid(opts, "effnet", max_real=8, num_gen=8, num_subsets=3)
    assert np.isfinite(kid) and kid > 0
    assert isinstance(opts.detectors, DetectorProvider)
