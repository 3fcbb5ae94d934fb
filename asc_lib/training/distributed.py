"""Beyond one process: the process-group helpers the training loop and the teacher outputs use.

:func:`asc_lib.training.loop.fit` gives every rank an equal share of each global batch (the recipe's
``batch_size``, so the optimisation matches one process up to per-rank BatchNorm statistics and
augmentation draws), keeps the replicas in sync, and only rank 0 evaluates and writes the checkpoint;
:func:`asc_lib.training.distill.teacher_outputs` fills one shard per rank. The command line that starts
the study's stages under ``torchrun`` is :mod:`asc_lib.methods.torchrun`.

One process (no ``torchrun``) is a world of size 1: every helper here is then a no-op, so the library
never needs two code paths. Backend: NCCL on GPUs, gloo on CPU (what ``make test`` exercises).
"""
from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asc_lib.training.device import resolve_device


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (``rank`` 0 of ``size`` 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The current world: from the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPU); return the world and this rank's
    device. Without torchrun: a world of one on ``device``."""
    if not launched_by_torchrun():
        return World(), resolve_device(device)
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "auto" and not use_cuda:
        resolve_device("auto")  # a driver without usable CUDA stops here, loudly; else it says "cpu" and why
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        target = torch.device("cuda", local)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return world(), target


def shutdown() -> None:
    """Leave the process group together: DDP's reducers (which hold the group) are released first, then all
    ranks wait for each other, so that no rank tears its transport down, or exits, while another still talks
    to it (a rank that exited early with gloo's worker threads alive was seen to abort in CI)."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. builds a disk cache), the other ranks afterwards (and read it)."""
    here = world()
    if not here.main:
        barrier()
    yield
    if here.main:
        barrier()


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of ``n`` items that ``rank`` of ``size`` handles (sizes differ by ≤ 1)."""
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is outside a world of {size}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def rank_batch(index: torch.Tensor, here: World) -> torch.Tensor:
    """This rank's share of one global batch: every ``size``-th item from ``rank``, the batch first padded
    by wrapping round so that all ranks get the same number (as ``DistributedSampler`` does)."""
    if here.size == 1:
        return index
    pad = (-len(index)) % here.size
    if pad:
        index = torch.cat([index, index.repeat(pad // len(index) + 1)[:pad]])
    return index[here.rank::here.size]


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """All ranks' contiguous shards (:func:`shard_bounds` of ``n`` rows) concatenated in rank order, on
    every rank."""
    here = world()
    if here.size == 1:
        return local
    longest = n // here.size + (1 if n % here.size else 0)
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(here.size)]
    dist.all_gather(parts, padded)
    rows = [part[:stop - start] for part, (start, stop) in
            zip(parts, (shard_bounds(n, r, here.size) for r in range(here.size)))]
    return torch.cat(rows)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks."""
    if world().size == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world().size


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def parameters_in_sync(model: torch.nn.Module) -> bool:
    """True when every rank holds exactly rank 0's parameters (DDP's promise, checked)."""
    if world().size == 1:
        return True
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    same = torch.tensor(float(torch.equal(flat, reference)), device=flat.device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())
