"""Progressive growing schedule: a pure function of images seen, checked against the TF rules."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from stylegan.models.stylegan1 import downsample_box, upsample_nearest
from stylegan.training.config import ProgressiveConfig
from stylegan.training.progressive import (GrowthStage, active_num_ws, fade_reals, growth_kimg, needs_reset,
                                           reset_points, schedule)

V1 = ProgressiveConfig()  # start 8, 600 + 600 kimg, the v1 1-GPU batch table and lr table


def tf_lod(kimg: float, cfg: ProgressiveConfig, final: int) -> float:
    """The TF StyleGAN v1 `training_schedule` lod formula, written out independently."""
    phase_dur = cfg.lod_training_kimg + cfg.lod_transition_kimg
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = math.log2(final) - math.floor(math.log2(cfg.start_resolution)) - phase_idx
    if cfg.lod_transition_kimg > 0:
        lod -= max(phase_kimg - cfg.lod_training_kimg, 0.0) / cfg.lod_transition_kimg
    return max(lod, 0.0)


def test_phase_boundaries_1024():
    p = schedule(0, V1, 1024)
    assert (p.resolution, p.lod, p.alpha, p.batch, p.lr, p.index) == (8, 7.0, 1.0, 128, 0.001, 0)
    assert schedule(599.9, V1, 1024).lod == 7.0
    p = schedule(600, V1, 1024)  # end of the stable phase: nothing fades yet
    assert (p.resolution, p.lod, p.index, p.fading) == (8, 7.0, 0, False)
    p = schedule(900, V1, 1024)  # half way through fading in 16x16
    assert (p.resolution, p.lod, p.alpha, p.index, p.fading) == (16, 6.5, 0.5, 1, True)
    p = schedule(1200, V1, 1024)
    assert (p.resolution, p.lod, p.alpha, p.index) == (16, 6.0, 1.0, 2)
    p = schedule(2100, V1, 1024)  # fading in 32x32: the new resolution's batch applies
    assert (p.resolution, p.batch, p.lr, p.index) == (32, 64, 0.001, 3)
    p = schedule(3 * 1200 + 600 + 300, V1, 1024)  # fading in 128x128
    assert (p.resolution, p.batch, p.lr, p.alpha) == (128, 16, 0.0015, 0.5)
    assert (schedule(6 * 1200 + 1, V1, 1024).resolution, schedule(6 * 1200 + 1, V1, 1024).lr) == (512, 0.003)
    assert growth_kimg(V1, 1024) == 7 * 1200
    for kimg in (8400, 8400.5, 10_000, 25_000, 1e6):  # the final resolution stays
        p = schedule(kimg, V1, 1024)
        assert (p.resolution, p.lod, p.alpha, p.batch, p.lr, p.index) == (1024, 0.0, 1.0, 4, 0.003, 14)


@pytest.mark.parametrize("final", [8, 16, 64, 256, 1024])
@pytest.mark.parametrize("cfg", [V1, ProgressiveConfig(start_resolution=4), ProgressiveConfig(
    lod_training_kimg=100, lod_transition_kimg=50), ProgressiveConfig(lod_transition_kimg=0),
    ProgressiveConfig(lod_training_kimg=0, lod_transition_kimg=30)])
def test_matches_tf_formula_and_reset_rule(cfg, final):
    prev = None
    prev_lod = -1.0
    resets, tf_resets = [], []
    end = growth_kimg(cfg, final) + 500
    step = 7.3
    kimg = 0.0
    while kimg <= end:
        p = schedule(kimg, cfg, final)
        assert p.lod == pytest.approx(tf_lod(kimg, cfg, final), abs=1e-9)
        assert p.resolution == final >> int(math.floor(p.lod))
        assert p.alpha == pytest.approx(1 - (p.lod - math.floor(p.lod)))
        if prev is not None:
            assert p.lod <= prev.lod and p.resolution >= prev.resolution and p.index >= prev.index
        if needs_reset(None if prev is None else prev.index, p, cfg):
            resets.append(kimg)
        # TF training_loop: reset when floor(lod) or ceil(lod) changes (not on the very first round)
        if prev is not None and (math.floor(p.lod) != math.floor(prev_lod) or math.ceil(p.lod) != math.ceil(prev_lod)):
            tf_resets.append(kimg)
        prev, prev_lod = p, p.lod
        kimg += step
    assert resets == tf_resets
    # every reset point is crossed once and is where phase_index changes
    points = reset_points(cfg, final)
    assert len(resets) == len(points)
    for r, x in zip(resets, points):
        assert x < r <= x + step + 1e-9
    assert prev.lod == 0.0 and prev.resolution == final


def test_batch_and_lr_tables_per_resolution():
    cfg = ProgressiveConfig(start_resolution=4, lod_training_kimg=1, lod_transition_kimg=1)
    seen = {}
    for k in range(0, 20):
        p = schedule(k + 0.5, cfg, 1024)
        seen[p.resolution] = (p.batch, p.lr)
    assert seen == {4: (128, 0.001), 8: (128, 0.001), 16: (128, 0.001), 32: (64, 0.001), 64: (32, 0.001),
                    128: (16, 0.0015), 256: (8, 0.002), 512: (4, 0.003), 1024: (4, 0.003)}
    # unlisted resolution: the nearest listed lower one's batch, base lr
    sparse = dataclasses.replace(cfg, batch_by_resolution=((4, 64), (32, 16)), lr_by_resolution=((8, 0.01),))
    assert (schedule(0, sparse, 16).batch, schedule(0, sparse, 16).lr) == (64, 0.001)
    assert schedule(1e4, sparse, 16).batch == 64 and schedule(1e4, sparse, 256).batch == 16
    assert schedule(2.5, sparse, 256).lr == 0.01  # fading in 8x8


def test_num_gpus_and_start_clamping():
    assert schedule(0, V1, 1024, num_gpus=3).batch == 126
    assert schedule(1e5, V1, 1024, num_gpus=8).batch == 8  # at least one image per GPU
    p = schedule(0, V1, 4)  # dataset smaller than the start resolution: no growing
    assert (p.resolution, p.lod, p.index) == (4, 0.0, 0)
    assert schedule(0, ProgressiveConfig(start_resolution=4), 32).resolution == 4
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError):
            schedule(bad, V1, 64)
    with pytest.raises(ValueError):
        schedule(0, ProgressiveConfig(start_resolution=6), 64)
    with pytest.raises(ValueError):
        schedule(0, V1, 48)


def test_pure_and_frozen():
    a, b = schedule(1234.5, V1, 256), schedule(1234.5, V1, 256)
    assert a == b and isinstance(a, GrowthStage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.lod = 0.0  # type: ignore[misc]
    assert not needs_reset(None, a, V1)
    c = schedule(1300, V1, 256)
    assert needs_reset(a.index, c, V1) == (a.index != c.index)
    assert not needs_reset(a.index, c, dataclasses.replace(V1, reset_optimizer=False))


def test_active_num_ws():
    assert [active_num_ws(r) for r in (4, 8, 32, 1024)] == [2, 4, 8, 18]


def test_fade_reals():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(fade_reals(x, 0.0), x)
    assert torch.equal(fade_reals(x, 2.0), upsample_nearest(downsample_box(x, 4), 4))
    lo = downsample_box(x, 2)
    expect = upsample_nearest(torch.lerp(lo, upsample_nearest(downsample_box(lo, 2), 2), 0.25), 2)
    torch.testing.assert_close(fade_reals(x, 1.25), expect)
    assert fade_reals(x, 3.0).shape == x.shape
    with pytest.raises(ValueError):
        fade_reals(x, 3.5)
