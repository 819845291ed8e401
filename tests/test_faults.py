"""What real clusters and laptops do to a run, injected: preemption signals, a full disk, damaged
snapshots, damaged data. Each stops (or resumes) with one clear line and loses nothing beyond the
current minibatch (docs/training.md, "Faults")."""
import errno
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from stylegan.io.checkpoint import read_checkpoint
from stylegan.training.errors import TrainingDataError, TrainingInterrupted, TrainingIOError, TrainingSetupError
from stylegan.training.launch import train

from test_training_helpers import make_dataset, snapshot_tensors, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("faults") / "discs", n=48))


def _signal_at(batch_idx, *signums):
    def cb(trainer):
        if trainer.state.batch_idx == batch_idx:
            for s in signums:
                os.kill(os.getpid(), s)
    return cb


def _equal_snapshots(a, b):
    ta, tb = snapshot_tensors(a), snapshot_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{k} differs"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_with_a_snapshot_and_resume_is_exact(tmp_path, data, signum):
    cfg = tiny_config(ada=True, total_kimg=0.08)  # 10 minibatches, ticks every 2
    full = train(cfg, data, str(tmp_path / "full"), device="cpu", quiet=True)
    with pytest.raises(TrainingInterrupted) as err:  # mid-tick: after minibatch 3
        train(cfg, data, str(tmp_path / "cut"), device="cpu", quiet=True, callback=_signal_at(3, signum))
    run = next((tmp_path / "cut").iterdir())
    snap = run / "snapshot-000000024.safetensors"  # 3 minibatches of 8: nothing beyond them is lost
    assert err.value.last_snapshot == str(snap) and snap.is_file()
    assert signal.Signals(signum).name in str(err.value) and f"--resume {run}" in str(err.value)
    assert err.value.exit_code == 75
    assert read_checkpoint(snap).state["progress"]["batch_idx"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are gone again
    resumed = train(cfg, data, str(tmp_path / "more"), device="cpu", quiet=True, resume=str(run))
    assert resumed.state.batch_idx == full.state.batch_idx == 10
    _equal_snapshots(full.last_snapshot, resumed.last_snapshot)


def test_second_signal_while_saving_does_not_damage_the_snapshot(tmp_path, data, monkeypatch):
    import stylegan.training.loop as loop

    real = loop.write_snapshot

    def write_while_signalled(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of writing
        os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(loop, "write_snapshot", write_while_signalled)
    with pytest.raises(TrainingInterrupted) as err:
        train(tiny_config(total_kimg=0.08), data, str(tmp_path), device="cpu", quiet=True,
              callback=_signal_at(2, signal.SIGTERM))
    read_checkpoint(err.value.last_snapshot)  # complete, checksum verified
    assert not list(Path(err.value.last_snapshot).parent.glob(".*.tmp"))


def test_full_disk_keeps_the_previous_snapshot_and_leaves_no_partial_file(tmp_path, data, monkeypatch):
    import safetensors.torch

    real, calls = safetensors.torch.save_file, []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:  # the third snapshot: half written, then the disk is full
            Path(filename).write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    with pytest.raises(TrainingIOError) as err:
        train(tiny_config(total_kimg=0.08), data, str(tmp_path), device="cpu", quiet=True)
    run = next(tmp_path.iterdir())
    msg = str(err.value)
    assert "No space left on device" in msg and "snapshot-000000040.safetensors" in msg and "--resume" in msg
    assert err.value.exit_code == 74
    snaps = sorted(p.name for p in run.glob("snapshot-*"))
    assert snaps == ["snapshot-000000008.safetensors", "snapshot-000000024.safetensors"]
    assert err.value.last_snapshot == str(run / snaps[-1])
    read_checkpoint(run / snaps[-1])
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_unwritable_stats_file_is_one_clear_stop(tmp_path, data):
    run = tmp_path / "run"
    (run / "stats.jsonl").mkdir(parents=True)  # writing it fails like an unwritable file
    with pytest.raises(TrainingIOError, match=r"cannot write the tick statistics .*stats.jsonl: Is a directory"):
        train(tiny_config(), data, str(tmp_path), run_dir=str(run), device="cpu", quiet=True)


def _flip_bit(path):
    b = bytearray(Path(path).read_bytes())
    b[len(b) - 200] ^= 1
    Path(path).write_bytes(bytes(b))


def test_resume_falls_back_past_a_damaged_snapshot(tmp_path, data):
    cfg = tiny_config(total_kimg=0.032)
    res = train(cfg, data, str(tmp_path / "a"), device="cpu", quiet=True)
    newest = Path(res.last_snapshot)
    _flip_bit(newest)
    with pytest.raises(TrainingSetupError, match=f"{newest.name} is damaged"):  # named explicitly: an error
        train(cfg.replace(total_kimg=0.048), data, str(tmp_path / "b"), device="cpu", quiet=True, resume=str(newest))
    more = train(cfg.replace(total_kimg=0.048), data, str(tmp_path / "c"), device="cpu", quiet=True,
                 resume=str(res.run_dir))  # a run directory: the newest intact one, and the log says so
    log = (more.run_dir / "log.txt").read_text()
    assert f"skipped a damaged snapshot: {newest}" in log
    assert "resumed training state from" in log and "snapshot-000000024.safetensors" in log
    assert more.state.cur_nimg == 48


def test_data_damaged_mid_run_is_one_clear_stop_not_a_hang(tmp_path, monkeypatch):
    """The training zip is truncated after training started, while worker processes read it."""
    import stylegan.data.stream as stream

    src = make_dataset(tmp_path / "imgs", n=48)
    zpath = tmp_path / "data.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(src.iterdir()):
            z.writestr(p.name, p.read_bytes())

    def truncate(trainer):
        if trainer.state.batch_idx == 2:
            with open(zpath, "r+b") as f:
                f.truncate(zpath.stat().st_size // 3)

    monkeypatch.setattr(stream, "CACHE_BYTES", 0)  # read from disk while training, by worker processes
    t = time.time()
    with pytest.raises(TrainingDataError) as err:
        train(tiny_config(total_kimg=0.4), str(zpath), str(tmp_path / "runs"), device="cpu", quiet=True,
              workers=2, callback=truncate)
    msg = str(err.value)
    assert "data.zip" in msg and "Traceback" not in msg and "\n" not in msg and err.value.exit_code == 65, msg
    assert time.time() - t < 60
    assert err.value.last_snapshot is not None and "--resume" in msg


def test_cli_sigterm_exits_75_with_one_line_and_gpus_2_agree(tmp_path, data):
    """SIGTERM to the command (with --gpus 2: to the parent only, as a container runtime sends it)."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "stylegan", "train", "--data", data, "--cfg", "tiny", "--outdir", str(out),
           "--kimg", "50", "--kimg-per-tick", "0.016", "--device", "cpu", "--gpus", "2", "--threads", "1",
           "--aug", "noaug"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("*/snapshot-*.safetensors")):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 75, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "interrupted by SIGTERM" in lines[0] and "--resume" in lines[0], stderr
    snap = sorted(out.glob("*/snapshot-*.safetensors"))[-1]
    assert read_checkpoint(snap).info["world_size"] == 2
