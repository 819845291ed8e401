"""Several machines: two torchrun "nodes" (one process each, gloo, c10d rendezvous on loopback) train
exactly what `--gpus 2` trains on one machine: the final snapshots agree bit for bit."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from test_training_helpers import make_dataset, snapshot_tensors

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN = ["train", "--cfg", "tiny", "--kimg", "0.032", "--kimg-per-tick", "0.016", "--device", "cpu",
         "--threads", "1", "--aug", "noaug", "--workers", "0"]


def test_two_torchrun_nodes_equal_gpus_2(tmp_path):
    data = str(make_dataset(tmp_path / "d", n=32))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, "-m", "stylegan", *TRAIN, "--data", data, "--gpus", "2",
                             "--outdir", str(tmp_path / "gpus2")], capture_output=True, text=True, env=env,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]

    port = _free_port()
    nodes = []
    for node in range(2):  # each "machine" writes to its own outdir: only global rank 0 may write
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "sg-test",
               "-m", "stylegan", *TRAIN, "--data", data, "--outdir", str(tmp_path / f"node{node}")]
        nodes.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = [p.communicate(timeout=300) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [e[-2000:] for _, e in outs]

    written = [sorted((tmp_path / f"node{n}").glob("*/snapshot-*.safetensors")) for n in range(2)]
    assert sum(bool(w) for w in written) == 1  # exactly one node (the one holding global rank 0) wrote
    multi = next(w for w in written if w)[-1]
    ref = sorted((tmp_path / "gpus2").glob("*/snapshot-*.safetensors"))[-1]
    assert multi.name == ref.name
    a, b = snapshot_tensors(ref), snapshot_tensors(multi)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between --gpus 2 and two torchrun nodes"
