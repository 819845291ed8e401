"""Training loop: EMA, a short run and its run directory, exact resume, NaN policy, v1 progressive."""
import json
import math
import random

import numpy as np
import pytest
import torch

import stylegan
from stylegan.io.checkpoint import read_checkpoint
from stylegan import distributed as ddp
from stylegan.training.ema import ema_beta, update_ema
from stylegan.data.stream import DataStream
from stylegan.training.errors import TrainingDiverged, TrainingSetupError
from stylegan.training.launch import train
from stylegan.training.stepper import round_seed
from stylegan.training.monitor import DivergenceMonitor
from stylegan.training.presets import DataShape

from test_training_helpers import make_dataset, module_tensors, snapshot_tensors, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("data") / "discs"))


@pytest.fixture(scope="module")
def cond_data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("cdata") / "discs3", labels=True))


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------- EMA


def test_ema_beta_half_life_and_rampup():
    assert ema_beta(32, 10.0) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10.0) ** (10000 / 32) == pytest.approx(0.5)  # half-life of 10 kimg
    # ramp-up: half-life min(10 kimg, 0.05 * images seen)
    assert ema_beta(32, 10.0, cur_nimg=1000, rampup=0.05) == pytest.approx(0.5 ** (32 / 50))
    assert ema_beta(32, 10.0, cur_nimg=10 ** 7, rampup=0.05) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10.0, cur_nimg=0, rampup=0.05) == 0.0  # first step copies G


def test_update_ema_lerps_params_and_copies_buffers():
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(1.0), b.weight.fill_(3.0)
        a.running_mean.fill_(5.0), b.running_mean.fill_(7.0)
    update_ema(b, a, beta=0.25)  # b = a + 0.25 (b - a)
    torch.testing.assert_close(b.weight, torch.full((3,), 1.5))
    torch.testing.assert_close(b.running_mean, torch.full((3,), 5.0))


# ----------------------------------------------------------------------------------- pieces


def test_divergence_monitor_policy():
    m = DivergenceMonitor(nan_ticks=3)
    assert m.update(0, True) == (True, None)
    assert m.update(2, True) == (False, None)  # bad tick: no snapshot, keep going
    assert m.update(0, True) == (True, None)  # recovered: counter reset
    assert m.update(1, True) == (False, None)
    assert m.update(1, True) == (False, None)
    ok, reason = m.update(1, True)
    assert not ok and "3 consecutive ticks" in reason
    ok, reason = DivergenceMonitor(3).update(0, False)
    assert not ok and "weights" in reason  # broken weights stop at once


def test_sync_gradients_replaces_non_finite():
    p = torch.nn.Parameter(torch.zeros(5))
    p.grad = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), -2.0])
    q = torch.nn.Parameter(torch.zeros(2))  # no grad: stays None
    ddp.sync_gradients([p, q])
    torch.testing.assert_close(p.grad, torch.tensor([1.0, 0.0, 1e5, -1e5, -2.0]))
    assert q.grad is None


def test_data_stream_shards_by_rank(data):
    from stylegan.data.dataset import open_dataset

    ds = open_dataset(data)
    whole = DataStream(ds, seed=3).rank_indices(40, 16)  # crosses an epoch boundary (48 images)
    parts = [DataStream(ds, seed=3, rank=r, world=2).rank_indices(40, 16) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    epoch0 = DataStream(ds, seed=3).indices(0, 48)
    assert sorted(epoch0.tolist()) == list(range(48))  # one epoch = a permutation


@pytest.mark.parametrize("workers", [0, 1])
def test_data_stream_streaming_matches_cache(data, workers):
    from stylegan.data.dataset import open_dataset

    ds = open_dataset(data, xflip=True)
    cached = DataStream(ds, seed=1)
    streamed = DataStream(ds, seed=1, cache_bytes=0, workers=workers)
    assert cached.images is not None and streamed.images is None
    for pos, batch in ((0, 8), (8, 8), (16, 8), (90, 12), (0, 4)):  # a jump restarts the loader
        a, b = cached.get(pos, batch), streamed.get(pos, batch)
        assert torch.equal(a[0], b[0]) and a[0].dtype == torch.uint8 and a[0].shape == (batch, 1, 32, 32)


def test_round_seed_is_a_function_of_coordinates():
    assert round_seed(0, 5, 1, 2) == round_seed(0, 5, 1, 2)
    assert len({round_seed(0, b, p, r) for b in range(4) for p in range(4) for r in range(3)}) == 48


# ----------------------------------------------------------------------------------- runs


def test_short_run_writes_run_directory(tmp_path, data):
    cfg = tiny_config(total_kimg=0.032)
    res = train(cfg, data, str(tmp_path / "runs"), device="cpu", quiet=True)
    run = res.run_dir
    assert run.name == "00000-discs-tiny"
    for name in ("config.json", "log.txt", "stats.jsonl", "reals.png", "fakes_init.png", "fakes000000032.png",
                 "snapshot-000000032.safetensors"):
        assert (run / name).is_file(), name
    conf = json.loads((run / "config.json").read_text())
    assert conf["training"]["batch"] == 8 and conf["run"]["data"] == data
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert len(lines) == res.state.cur_tick == 3  # tick 0 = first minibatch, then 2 minibatches per tick
    for rec in lines:
        for key in ("Loss/G/loss", "Loss/D/loss"):
            assert math.isfinite(rec[key]["mean"])
    assert "Loss/r1_penalty" in lines[0] and "Loss/pl_penalty" in lines[0]
    log = (run / "log.txt").read_text()
    assert "tick 0" in log and "sec/kimg" in log and "augment" in log
    # Snapshot: loadable generator, full training state.
    snap = res.last_snapshot
    G = stylegan.load(snap)
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 1, 32, 32) and torch.isfinite(img).all()
    ckpt = read_checkpoint(snap)
    assert set(ckpt.modules) == {"G", "D", "G_ema"}
    st = ckpt.state
    assert st["progress"]["cur_nimg"] == 32 and st["progress"]["batch_idx"] == 4
    assert {"G_opt", "D_opt", "pl_mean", "rng", "augment"} <= set(st)
    assert st["G_opt"]["state"]  # Adam moments were saved
    assert ckpt.info["kind"] == "training-snapshot"
    # The next run gets the next number.
    res2 = train(cfg.replace(total_kimg=0.008), data, str(tmp_path / "runs"), device="cpu", quiet=True, desc="x")
    assert res2.run_dir.name == "00001-x"


def test_conditional_run(tmp_path, cond_data):
    cfg = tiny_config(cond=True, total_kimg=0.016)
    res = train(cfg, cond_data, str(tmp_path), device="cpu", quiet=True)
    G = stylegan.load(res.last_snapshot)
    assert G.c_dim == 3
    assert math.isfinite(res.stats[-1]["Loss/D/loss"]["mean"])
    with pytest.raises(TrainingSetupError, match="labels"):
        train(cfg, str(make_dataset(tmp_path / "nolabels", n=8)), str(tmp_path), device="cpu", quiet=True)


def test_bad_data_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingSetupError, match="cannot open --data"):
        train(tiny_config(), str(tmp_path / "missing"), str(tmp_path), device="cpu", quiet=True)
    with pytest.raises(TrainingSetupError, match="configured for 32x32"):
        train(tiny_config(), str(make_dataset(tmp_path / "d16", n=4, res=16)), str(tmp_path), device="cpu",
              quiet=True)


class _Crash(Exception):
    pass


def _crash_at(batch_idx):
    def cb(trainer):
        if trainer.state.batch_idx == batch_idx:
            raise _Crash()
    return cb


def _tiny_v1():
    from stylegan.training.presets import _cpu_sg1

    cfg = _cpu_sg1(DataShape(32, 1), channel_base=128, channel_max=16, z_dim=16, batch=8, phase_kimg=0.016)
    return cfg.replace(kimg_per_tick=0.016, total_kimg=0.08, snap=1)


@pytest.mark.parametrize("variant", ["v2-ada", "v1-progressive"])
def test_exact_resume_matches_uninterrupted_run(tmp_path, data, variant):
    cfg = tiny_config(ada=True) if variant == "v2-ada" else _tiny_v1()
    steps = round(cfg.total_kimg * 1000 / cfg.batch)
    full = train(cfg, data, str(tmp_path / "a"), device="cpu", quiet=True)
    # Crash mid-tick (after minibatch 6; the last snapshot is from the tick that ended at minibatch 5),
    # in what stands for a new process: its numpy and Python RNGs start from other states.
    np.random.seed(1234)
    random.seed(1234)
    with pytest.raises(_Crash):
        train(cfg, data, str(tmp_path / "b"), device="cpu", quiet=True, callback=_crash_at(6))
    snap = sorted((tmp_path / "b").glob("*/snapshot-*.safetensors"))[-1]
    saved = read_checkpoint(snap).state["progress"]
    assert 0 < saved["batch_idx"] < 6
    resumed = train(cfg, data, str(tmp_path / "c"), device="cpu", quiet=True, resume=str(snap))
    assert resumed.state.batch_idx == full.state.batch_idx == steps
    assert resumed.state.cur_nimg == full.state.cur_nimg
    a, b = module_tensors(full.last_snapshot), module_tensors(resumed.last_snapshot)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    # Every tensor of the snapshot, training state included (optimizer moments, RNG states of
    # torch, numpy and Python), is the uninterrupted run's.
    ta, tb = snapshot_tensors(full.last_snapshot), snapshot_tensors(resumed.last_snapshot)
    assert ta.keys() == tb.keys() and any("numpy" in k for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{k} differs after resume"
    sa, sb = read_checkpoint(full.last_snapshot).state, read_checkpoint(resumed.last_snapshot).state
    assert torch.equal(sa["pl_mean"], sb["pl_mean"])
    assert sa["augment"] == sb["augment"]
    if variant == "v1-progressive":
        assert float(a["G.synthesis.lod"]) == 0.0  # grew to full resolution
        assert sa["progress"]["growth_stage"] == 4


def test_nan_stops_and_keeps_last_good_snapshot(tmp_path, data):
    cfg = tiny_config(total_kimg=0.2)

    def poison(trainer):
        if trainer.state.batch_idx == 6:
            with torch.no_grad():
                next(trainer.stepper.D.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged) as err:
        train(cfg, data, str(tmp_path), device="cpu", quiet=True, callback=poison)
    run = next(tmp_path.glob("0000*"))
    snap = run / "snapshot-000000040.safetensors"
    assert err.value.last_snapshot == str(snap)
    assert "NaN" in str(err.value) and str(snap) in str(err.value)
    log = (run / "log.txt").read_text()
    assert "training stopped" in log
    ckpt = read_checkpoint(snap)  # intact and finite (the loader refuses NaN weights)
    assert ckpt.state["progress"]["batch_idx"] == 5  # from the tick before the poisoning
    stylegan.load(snap, which="D")
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert lines[-1]["Progress/nonfinite_losses"]["mean"] > 0


def test_ticks_shorter_than_a_kimg_keep_every_snapshot(tmp_path, data):
    from stylegan.training.snapshot import latest_snapshot

    # 0.016 kimg ticks: the old names (whole kimg) made every snapshot of this run 'snapshot-000000'.
    res = train(tiny_config(total_kimg=0.048), data, str(tmp_path), device="cpu", quiet=True)
    snaps = sorted(p.name for p in res.run_dir.glob("snapshot-*.safetensors"))
    assert len(snaps) == res.state.cur_tick == 4
    counts = [read_checkpoint(res.run_dir / n).state["progress"]["cur_nimg"] for n in snaps]
    assert counts == [8, 24, 40, 48]  # tick 0 ends after the first minibatch, then one tick per 16 images
    assert latest_snapshot(res.run_dir) == res.last_snapshot == res.run_dir / "snapshot-000000048.safetensors"


def test_bf16_training_takes_effect_and_resumes_exactly(tmp_path, data):
    """--precision bf16 (here only the 32x32 blocks, to keep bf16 emulation on CPUs cheap): losses
    finite, weights differ from the fp32 run, and a crash + resume ends bit-identical within bf16."""
    from stylegan.nn.precision import Precision

    fp32_cfg = tiny_config(total_kimg=0.024)
    cfg = fp32_cfg.replace(precision=Precision("bf16", num_low_res=1))
    fp32 = train(fp32_cfg, data, str(tmp_path / "fp32"), device="cpu", quiet=True)
    full = train(cfg, data, str(tmp_path / "a"), device="cpu", quiet=True)
    assert all(math.isfinite(r["Loss/G/loss"]["mean"]) and math.isfinite(r["Loss/D/loss"]["mean"]) for r in full.stats)
    a, f = module_tensors(full.last_snapshot), module_tensors(fp32.last_snapshot)
    assert any(not torch.equal(a[k], f[k]) for k in a if k.startswith("G."))
    with pytest.raises(_Crash):
        train(cfg, data, str(tmp_path / "b"), device="cpu", quiet=True, callback=_crash_at(2))
    snap = sorted((tmp_path / "b").glob("*/snapshot-*.safetensors"))[-1]
    resumed = train(cfg, data, str(tmp_path / "c"), device="cpu", quiet=True, resume=str(snap))
    b = snapshot_tensors(resumed.last_snapshot)
    for k, v in snapshot_tensors(full.last_snapshot).items():
        assert torch.equal(v, b[k]), f"{k} differs after resume"
    assert read_checkpoint(full.last_snapshot).info["training"]["precision"]["dtype"] == "bf16"


def test_resume_from_weights_only_checkpoint(tmp_path, data):
    from stylegan.io.checkpoint import save_checkpoint

    cfg = tiny_config(total_kimg=0.008)
    res = train(cfg, data, str(tmp_path / "a"), device="cpu", quiet=True)
    G = stylegan.load(res.last_snapshot, which="G")
    path = tmp_path / "g_only.safetensors"
    save_checkpoint(path, {"G": G})
    res2 = train(cfg, data, str(tmp_path / "b"), device="cpu", quiet=True, resume=str(path))
    assert res2.state.batch_idx == 1  # fresh counters
    log = (res2.run_dir / "log.txt").read_text()
    assert "no training state" in log


def test_max_minutes_ends_with_a_snapshot(tmp_path, data):
    res = train(tiny_config(total_kimg=1.0), data, str(tmp_path), device="cpu", quiet=True, max_minutes=1e-6)
    assert res.state.batch_idx == 1  # the time is up after the first minibatch
    assert res.last_snapshot is not None and res.last_snapshot.is_file()
    assert "--max-minutes" in (res.run_dir / "log.txt").read_text()


def test_metrics_hook_writes_jsonl(tmp_path, data, monkeypatch):
    import stylegan.metrics as metrics

    calls = []

    def fake_compute(name, G, dataset, **kw):
        calls.append((name, dataset, kw["num_gpus"], kw["rank"]))
        if name == "kid50k_full":  # a valid metric that fails at run time
            raise metrics.MetricError("detector file missing")
        return {"results": {name: 1.5}, "metric": name, "total_time": 0.0, "total_time_str": "0s",
                "num_gpus": 1, "detector": None, "proxy_of": None}

    monkeypatch.setattr(metrics, "compute_metric", fake_compute)
    cfg = tiny_config(total_kimg=0.016).replace(metrics=("fid50k_full", "kid50k_full"))
    res = train(cfg, data, str(tmp_path), device="cpu", quiet=True)
    lines = [json.loads(x) for x in (res.run_dir / "metric-fid50k_full.jsonl").read_text().splitlines()]
    assert len(lines) == 1  # the first snapshot; kid50k_full's failure then disabled metrics
    assert lines[0]["results"] == {"fid50k_full": 1.5} and lines[0]["snapshot_pkl"].startswith("snapshot-")
    assert calls[0] == ("fid50k_full", data, 1, 0)
    assert "metrics disabled" in (res.run_dir / "log.txt").read_text()


# ----------------------------------------------------------------------------------- torch.compile


def _fake_compile(log, phase, fail=False):
    """Stands in for torch.compile: runs the module itself and logs which phase called it."""

    def compile_fn(module, **kw):
        def compiled(*args, **kwargs):
            if fail:
                raise RuntimeError("simulated inductor failure")
            log.append((type(module).__name__, phase[-1]))
            return module(*args, **kwargs)
        return compiled
    return compile_fn


@pytest.mark.parametrize("fail", [False, True])
def test_compile_runs_main_phases_compiled_regularizers_eager_and_matches(tmp_path, data, monkeypatch, fail):
    from stylegan.training.losses import StyleGANLoss

    cfg = tiny_config(total_kimg=0.032)  # 4 minibatches, R1 and path length every 2
    plain = train(cfg, data, str(tmp_path / "plain"), device="cpu", quiet=True)
    log: list = []
    phase: list = [None]
    accumulate = StyleGANLoss._accumulate

    def spy(self, work, *args):
        phase.append(work.double_backward)
        return accumulate(self, work, *args)

    monkeypatch.setattr(StyleGANLoss, "_accumulate", spy)
    monkeypatch.setattr(torch, "compile", _fake_compile(log, phase, fail))
    if fail:
        with pytest.warns(RuntimeWarning, match="torch.compile failed"):
            compiled = train(cfg, data, str(tmp_path / "comp"), device="cpu", quiet=True, compile=True)
        assert log == []
    else:
        compiled = train(cfg, data, str(tmp_path / "comp"), device="cpu", quiet=True, compile=True)
        assert {n for n, _ in log} == {"MappingNetwork", "SynthesisNetwork", "Discriminator"}
        assert True in phase and not any(reg for _, reg in log)  # R1 / PL ran, never through a compiled graph
    a, b = module_tensors(plain.last_snapshot), module_tensors(compiled.last_snapshot)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
