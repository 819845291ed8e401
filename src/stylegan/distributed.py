"""Multi-process runs (training, metrics, ADA): torchrun or our own spawner, gloo on CPU, nccl on CUDA.

Every collective here is the identity without an initialised process group (or with one process),
so callers never branch on "am I distributed?".

Gradients are synchronised explicitly, as in NVIDIA's StyleGAN3 loop: after a phase's rounds the
gradients of the phase's network are flattened into one tensor, summed with one `all_reduce`,
divided by the world size and passed through `nan_to_num`. We do not wrap the networks in
DistributedDataParallel: the R1 and path-length terms take double backward through
`autograd.grad`, the D phases use G without gradients (and vice versa), and gradient
accumulation over rounds wants exactly one reduction per phase -- all things DDP's hooks make
awkward, while the explicit reduction is one collective per phase and trivially correct.
"""
from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Callable, ContextManager, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def current() -> DistInfo:
    """Rank / world size of the initialised process group (0 / 1 without one)."""
    if not is_initialized():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def under_torchrun() -> bool:
    """True when launched by torchrun (or another env:// launcher) with RANK / WORLD_SIZE set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun described in the environment (no-op for WORLD_SIZE 1)."""
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local = int(os.environ["LOCAL_RANK"])
    if world > 1 and not is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", init_method="env://",
                                rank=rank, world_size=world)
    return DistInfo(rank, world, local)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank: int, world: int, port: int, backend: str, fn: Callable, args: tuple) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group(backend=backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        fn(rank, world, *args)
        # Leave together: a process tearing down gloo while a peer still talks to it (or to the
        # TCP store rank 0 hosts) can abort.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., None], world_size: int, args: tuple = (), backend: str = "gloo",
          while_running: Optional[Callable[[list[int]], ContextManager]] = None) -> None:
    """Run fn(rank, world_size, *args) in `world_size` fresh processes joined in one process group.

    fn and args must be picklable (module-level function). An exception in any process stops
    all of them and is re-raised here (torch.multiprocessing.ProcessRaisedException).
    `while_running(pids)`: a context the parent waits in (e.g. one forwarding signals to them).
    """
    import torch.multiprocessing as mp

    context = mp.spawn(_spawned, args=(world_size, free_port(), backend, fn, args), nprocs=world_size, join=False)
    with (while_running or (lambda pids: contextlib.nullcontext()))([p.pid for p in context.processes]):
        while not context.join():
            pass


# ----------------------------------------------------------------------------------- collectives


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all_reduce ('sum' or 'min' / 'max'); identity without a process group."""
    if is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                               "max": dist.ReduceOp.MAX}[op])
    return t


def sync_gradients(params: Sequence[nn.Parameter]) -> None:
    """Average gradients over ranks and replace NaN / +-Inf (0, +1e5, -1e5), like the official loop.

    Parameters without a gradient contribute zeros (so every rank reduces the same layout) and
    keep `grad=None`, so the optimizer skips them (e.g. blocks above the current resolution of a
    progressive network), as it would in a single process.
    """
    params = [p for p in params if p.numel() > 0]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    if is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        if p.grad is not None:
            p.grad.copy_(g.reshape(p.shape))


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank `src` to every rank."""
    if not (is_initialized() and dist.get_world_size() > 1):
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)


def barrier() -> None:
    if is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] per rank -> [B * g, ...] interleaved: row j of rank r lands at j * g + r.

    Interleaving undoes a round-robin split of the items over ranks (item i on rank i % g), so the
    gathered order is the single-process order.
    """
    if not (is_initialized() and dist.get_world_size() > 1):
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts, dim=1).flatten(0, 1)


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """In-place broadcast of rank `src`'s tensor; identity without a process group."""
    if is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(t, src=src)
    return t


__all__ = ["DistInfo", "current", "is_initialized", "under_torchrun", "backend_for", "init_from_env", "spawn",
           "free_port", "all_reduce_", "all_gather_rows", "broadcast_", "sync_gradients", "broadcast_module", "barrier"]
