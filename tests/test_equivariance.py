"""StyleGAN3's equivariance metrics (EQ-T, EQ-T_frac, EQ-R; stylegan.metrics.equivariance): the image
ops and the per-sample errors of the tiny official T and R networks against what NVIDIA's code
computed (tests/data/official_sg3_equivariance.*, made by scripts/make-eq-fixture.py), the PSNR's
edge cases, the metric loop, its registry ids and the CLI."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stylegan.cli.metrics as metrics_cli
import stylegan.metrics.equivariance as E
from stylegan.io.checkpoint import save_checkpoint
from stylegan.metrics import MetricError, MetricOptions, compute_metric, get_metric
from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.models.stylegan3 import input_transform
from stylegan.selftest.fixture import SG3_FIXTURES, load_fixture, sg3_fixture_generator

from official_fixture import needs_fixture
from sg3_helpers import tiny_sg3

FIXTURE = Path(__file__).parent / "data" / "official_sg3_equivariance.npz"
OP_TOL = 1e-5  # max abs, float32: the same arithmetic in another order
PSNR_SAMPLE_TOL = 0.02  # dB per sample (PSNRs up to 97 dB: float32 rounding of ws and images shows)
PSNR_TOTAL_TOL = 3e-3  # dB over the 8 samples


@pytest.fixture(scope="module")
def fx():
    with np.load(FIXTURE) as data:
        tensors = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    return tensors, json.loads(FIXTURE.with_suffix(".json").read_text())


def tiny_sg2():
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, channel_base=64, channel_max=8,
                                     mapping=MappingConfig(num_layers=2))).eval()


def assert_op(ours, ref, name):
    (img, mask), (ref_img, ref_mask) = ours, ref
    assert img.shape == ref_img.shape and mask.shape == ref_img.shape, name
    assert torch.equal(mask.to(torch.uint8), ref_mask), f"{name}: mask differs"
    err = (img - ref_img).abs().max().item()
    assert err <= OP_TOL, f"{name}: max abs {err:.2e}"


# ---------------------------------------------------------------------------------------------- image ops


@needs_fixture
@pytest.mark.parametrize("kind", ["int", "frac"])
def test_translations_match_nvidia(fx, kind):
    t, meta = fx
    op = E.integer_translate if kind == "int" else E.fractional_translate
    for pre, x in (("", t["in.x"]), ("rect_", t["in.x_rect"])):
        for j, (tx, ty) in enumerate(meta["ops"][kind]["amounts"]):
            name = f"{pre}{kind}{j}"
            assert_op(op(x, tx, ty), (t[f"out.{name}"], t[f"mask.{name}"]), name)
            if kind == "int":  # whole pixels: a copy, exact
                assert torch.equal(op(x, tx, ty)[0], t[f"out.{name}"]), name


@needs_fixture
def test_rotations_and_filters_match_nvidia(fx):
    t, meta = fx
    x = t["in.x"]
    for j, angle in enumerate(meta["ops"]["rot"]["amounts"]):
        assert_op(E.fractional_rotate(x, angle), (t[f"out.rot{j}"], t[f"mask.rot{j}"]), f"rot{j}")
        assert_op(E.pseudo_rotate(x, angle), (t[f"out.pseudo{j}"], t[f"mask.pseudo{j}"]), f"pseudo{j}")
    mat = E.rotation_matrix(meta["ops"]["filter"]["angle"])
    for up in (4, 1):
        f = E.bandlimit_filter(mat, a=3, amax=6, up=up)
        assert f.shape == t[f"filter.up{up}"].shape == (2 * 6 * up - 1,) * 2
        assert (f - t[f"filter.up{up}"]).abs().max().item() < 1e-6


def test_integer_translation_is_undone_exactly():
    x = torch.randn(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    for tx, ty in [(0.125, -0.1), (-0.26, 0.3), (0.51 / 24, 0.0)]:
        y, m = E.integer_translate(x, tx, ty)
        ix, iy = round(tx * 24), round(ty * 20)
        assert m.sum().item() == 2 * 3 * (24 - abs(ix)) * (20 - abs(iy))
        assert torch.equal(y * m, y) and (y != 0).sum() <= m.sum()
        back, m_back = E.integer_translate(y, -tx, -ty)
        assert torch.equal(back * m_back, x * m_back)  # every pixel that came back is the original
        assert m_back.sum() == m.sum()
    y, m = E.integer_translate(x, 1.0, 0.0)  # moved out entirely
    assert not y.any() and not m.any()


def test_constant_images_stay_constant_inside_the_masks():
    x = torch.full((1, 2, 24, 24), 0.5)
    for img, mask in (E.fractional_translate(x, 0.07, -0.11), E.fractional_rotate(x, 0.9), E.pseudo_rotate(x, -2.5)):
        assert mask.sum() > 0
        assert ((img - x).abs() * mask).max().item() < 1e-5


def test_psnr_edge_cases_are_the_official_ones():
    assert E.psnr(0.0, 10.0) == math.inf  # identical images: log10(0) = -inf, no cap
    assert math.isnan(E.psnr(0.0, 0.0))  # no valid pixel: 0 / 0
    assert E.psnr(4.0, 1.0) == pytest.approx(0.0)  # MSE = I_max^2 = 4
    assert E.psnr(4e-6, 1.0) == pytest.approx(60.0)
    x = torch.randn(1, 3, 16, 16)
    img, mask = E.integer_translate(x, 0.0, 0.0)
    assert E.psnr(((img - x).square() * mask).sum(), mask.sum()) == math.inf


def test_input_transforms_are_the_models_input_transform():
    t = torch.tensor([[0.1, -0.05], [-0.125, 0.0625]])
    for i in range(2):
        ref = input_transform(translate=tuple(t[i].tolist()))
        assert torch.allclose(E.translation_transform(t)[i], ref, atol=1e-7)
    angles = torch.tensor([0.4, -2.9])
    for i in range(2):
        ref = input_transform(rotate=math.degrees(angles[i].item()))
        assert torch.allclose(E.rotation_transform(angles)[i], ref, atol=1e-6)


def test_amounts_follow_the_official_distributions():
    idx = range(200)
    t = E.sample_amounts(E.EqConfig(200, "int"), idx, 0, 64)
    assert t.shape == (200, 2) and t.abs().max() <= 0.125
    assert torch.equal(t * 64, (t * 64).round())  # whole pixels
    f = E.sample_amounts(E.EqConfig(200, "frac"), idx, 0, 64)
    assert f.abs().max() <= 0.125 and not torch.equal(f * 64, (f * 64).round())
    a = E.sample_amounts(E.EqConfig(200, "rot"), idx, 0, 64)
    assert a.shape == (200,) and a.abs().max() <= math.pi and a.min() < -2.5 and a.max() > 2.5
    assert torch.equal(E.sample_amounts(E.EqConfig(200, "rot"), [5, 6], 0, 64), a[5:7])  # per sample, not per batch


# ---------------------------------------------------------------------------------------------- networks


@needs_fixture
@pytest.mark.parametrize("net", ["t", "r"])
@pytest.mark.parametrize("kind", ["int", "frac", "rot"])
def test_per_sample_errors_match_nvidia(fx, net, kind, one_thread):
    t, meta = fx
    G = sg3_fixture_generator(load_fixture(SG3_FIXTURES[net.upper()]))
    p = f"{net}.{kind}."
    c = t[p + "c"]
    with torch.no_grad():
        ws = G.mapping(t[p + "z"], None if c.numel() == 0 else c)
        rows = E.equivariance_errors(G, ws, kind, t[p + "amounts"])  # [8, 2]
    ref = t[p + "rows"]
    assert torch.equal(rows[:, 1], ref[:, 1])  # the same valid pixels
    ours = np.array([E.psnr(se, n) for se, n in rows.tolist()])
    theirs = np.array(meta["networks"][net]["metrics"][kind]["per_sample_psnr"])
    assert np.abs(ours - theirs).max() < PSNR_SAMPLE_TOL
    total = E.psnr(rows[:, 0].sum(), rows[:, 1].sum())
    assert abs(total - meta["networks"][net]["metrics"][kind]["psnr"]) < PSNR_TOTAL_TOL


def test_metric_is_finite_and_deterministic(one_thread):
    G = tiny_sg3()
    opts = dict(G=G, progress=False)
    for kind in E.KINDS:
        cfg = E.EqConfig(6, kind)
        a = E.compute_equivariance(MetricOptions(batch=4, **opts), cfg, return_all=True)
        b = E.compute_equivariance(MetricOptions(batch=6, **opts), cfg, return_all=True)
        assert a.shape == (6, 2) and torch.isfinite(a).all() and (a[:, 1] > 0).all()
        assert torch.equal(a[:, 1], b[:, 1])
        psnr_a, psnr_b = ([E.psnr(se, n) for se, n in r.tolist()] for r in (a, b))
        assert np.allclose(psnr_a, psnr_b, rtol=0, atol=0.05)  # batch size only changes float rounding
        value = E.compute_equivariance(MetricOptions(batch=4, **opts), cfg)
        assert value == E.compute_equivariance(MetricOptions(batch=4, **opts), cfg)
        assert value == pytest.approx(E.psnr(a[:, 0].sum(), a[:, 1].sum()), abs=1e-9) and 0 < value < 200
        other = E.compute_equivariance(MetricOptions(batch=4, seed=1, **opts), cfg)
        assert other != value


def test_registry_ids(one_thread, monkeypatch):
    for k in ("50k", "10k", "5k", "1k"):
        for mid in (f"eqt{k}_int", f"eqt{k}_frac", f"eqr{k}"):
            spec = get_metric(mid)
            assert spec.detector is None and not spec.needs_dataset and not spec.is_proxy
    small(monkeypatch)
    result = compute_metric("eqr1k", tiny_sg3(), None, progress=False)
    assert list(result["results"]) == ["eqr1k"] and math.isfinite(result["results"]["eqr1k"])
    assert result["detector"] is None and result["proxy_of"] is None


def test_stylegan2_gets_one_clear_line():
    with pytest.raises(MetricError, match=r"EQ-T needs a StyleGAN3 network \(its input transform") as e:
        compute_metric("eqt50k_int", tiny_sg2(), None, progress=False)
    assert "\n" not in str(e.value) and "StyleGAN2 network" in str(e.value)


def small(monkeypatch, n=4):
    """The registry's sample counts (1k at least) cut to n: the plumbing is what these tests check."""
    full = E.compute_equivariance
    monkeypatch.setattr(E, "compute_equivariance",
                        lambda opts, cfg, **kw: full(opts, dataclasses.replace(cfg, num_samples=n), **kw))


def test_cli_writes_the_jsonl(tmp_path, monkeypatch, offline):
    small(monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    net = run / "snapshot-000000.safetensors"
    save_checkpoint(net, {"G_ema": tiny_sg3()})
    res = CliRunner().invoke(metrics_cli.command, ["--network", str(net), "--metrics", "eqt1k_int,eqt1k_frac",
                                                   "--device", "cpu", "--batch", "2"])
    assert res.exit_code == 0, res.output
    assert "eqt1k_int" in res.output and "eqt1k_frac" in res.output
    for mid in ("eqt1k_int", "eqt1k_frac"):
        line = json.loads((run / f"metric-{mid}.jsonl").read_text().splitlines()[-1])
        assert line["metric"] == mid and list(line["results"]) == [mid] and math.isfinite(line["results"][mid])
        assert line["snapshot_pkl"] == net.name and line["detector"] is None
    sg2 = tmp_path / "sg2.safetensors"
    save_checkpoint(sg2, {"G_ema": tiny_sg2()})
    res = CliRunner().invoke(metrics_cli.command, ["--network", str(sg2), "--metrics", "eqr1k", "--device", "cpu"])
    assert res.exit_code != 0 and "EQ-R needs a StyleGAN3 network" in res.output
    assert "Traceback" not in res.output
