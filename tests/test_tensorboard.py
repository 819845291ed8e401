"""TensorBoard events beside stats.jsonl: the same names and values, read back with TensorBoard's own
reader; without the package a run goes on and says so once."""
import json
import sys

import pytest

from stylegan.training.launch import train

from test_training_helpers import make_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_events_hold_the_tick_statistics_and_the_fakes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = str(make_dataset(tmp_path / "d", n=16))
    res = train(tiny_config(total_kimg=0.048), data, str(tmp_path / "runs"), device="cpu", quiet=True)
    events = EventAccumulator(str(res.run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    records = [json.loads(line) for line in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    scalars = set(events.Tags()["scalars"])
    for name in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Progress/kimg",
                 "Timing/sec_per_kimg", "Resources/cpu_mem_gb"):
        assert name in scalars, name
        logged = [r[name]["mean"] for r in records if name in r]
        assert [e.value for e in events.Scalars(name)] == pytest.approx(logged, rel=1e-6), name
    assert scalars == {k for r in records for k, v in r.items() if isinstance(v, dict)}
    fakes = events.Images("Fakes")
    assert len(fakes) == len(list(res.run_dir.glob("fakes0*.png"))) > 0


def test_without_tensorboard_the_run_goes_on_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it fails
    data = str(make_dataset(tmp_path / "d", n=16))
    res = train(tiny_config(total_kimg=0.016), data, str(tmp_path / "runs"), device="cpu", quiet=True)
    log = (res.run_dir / "log.txt").read_text()
    assert log.count("no TensorBoard events") == 1 and "done." in log
    assert not list(res.run_dir.glob("events.out.tfevents.*"))
