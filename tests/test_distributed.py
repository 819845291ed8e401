"""Two CPU processes (gloo) train exactly like one process with the same total batch.

Why the match is exact here: every random draw of a training round is seeded from (seed,
minibatch, phase, round) and round r of the single process is process r of the pair; the
minibatch-std group (4) equals the per-process micro-batch (4) so D groups the same samples; the
path-length mean and w_avg are reduced over processes before they are updated; and gradients are
summed then halved by all_reduce, where the single process accumulates halves (both exact in
floating point). With one CPU thread per process the kernels reduce in the same order, so the
parameters agree bit for bit; the tolerance below (1e-6) only allows for platforms whose
kernels differ by thread layout.
"""
import os

import pytest
import torch

from stylegan.training.launch import train

from test_training_helpers import make_dataset, module_tensors, tiny_config


class SaveParams:
    """Callback: every process writes its networks after the last minibatch (picklable for spawn)."""

    def __init__(self, folder, last_batch):
        self.folder, self.last_batch = str(folder), last_batch

    def __call__(self, trainer):
        if trainer.state.batch_idx == self.last_batch:
            torch.save({f"{n}.{k}": v.detach().clone() for n, m in (("G", trainer.stepper.G), ("D", trainer.stepper.D),
                                                                     ("G_ema", trainer.stepper.G_ema))
                        for k, v in m.state_dict().items()},
                       os.path.join(self.folder, f"rank{trainer.rank}.pt"))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_ranks_match_single_process(tmp_path):
    data = str(make_dataset(tmp_path / "discs"))
    cfg = tiny_config(ada=True, batch=8, batch_gpu=4, gpus=2, total_kimg=0.048)
    steps = 6
    old = torch.get_num_threads()
    try:
        single = train(cfg, data, str(tmp_path / "one"), device="cpu", quiet=True, threads=1)
    finally:
        torch.set_num_threads(old)
    (tmp_path / "ranks").mkdir()
    pair = train(cfg, data, str(tmp_path / "two"), device="cpu", quiet=True, gpus=2, threads=1,
                 callback=SaveParams(tmp_path / "ranks", steps))
    assert pair.state.batch_idx == single.state.batch_idx == steps
    # Ranks stayed identical.
    r0 = torch.load(tmp_path / "ranks" / "rank0.pt")
    r1 = torch.load(tmp_path / "ranks" / "rank1.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    # Only rank 0 wrote files: one run directory, one stats line per tick.
    runs = list((tmp_path / "two").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-tiny-ada-gpus2")
    assert len((runs[0] / "stats.jsonl").read_text().splitlines()) == pair.state.cur_tick
    # Same as one process with two accumulation rounds of 4.
    a, b = module_tensors(single.last_snapshot), module_tensors(pair.last_snapshot)
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())
    assert worst <= 1e-6, f"max parameter difference {worst}"
    for k in r0:
        assert torch.equal(r0[k], b[k])  # the snapshot is rank 0's state
