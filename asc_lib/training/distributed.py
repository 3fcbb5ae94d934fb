"""Beyond one process: the study's training and teacher-logit extraction under ``torchrun``.

``torchrun --nproc_per_node N -m asc_lib.training.distributed train …`` trains the DCASE2024 baseline with
DistributedDataParallel: :func:`asc_lib.training.loop.fit` gives every rank an equal share of each global batch
(the recipe's ``batch_size``, so the optimisation matches one process up to per-rank BatchNorm
statistics and augmentation draws), keeps the replicas in sync, and only rank 0 evaluates and writes the
checkpoint. ``… -m asc_lib.training.distributed logits …`` computes a teacher's logits sharded across ranks
(:func:`asc_lib.training.distill.teacher_outputs` is rank-aware) and merges them in the original order.

One process (no ``torchrun``) is a world of size 1: every helper here is then a no-op, so the library
never needs two code paths. Backend: NCCL on GPUs, gloo on CPU (what ``make test`` exercises).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from asc_lib.config.atomic import atomic_path
from asc_lib.config.provenance import load_torch


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
    from asc_lib.training.experiment import resolve_device

    if not launched_by_torchrun():
        return World(), resolve_device(device)
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
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


# ------------------------------------------------------------------------------------------ command line

def _train(args) -> None:
    """The DCASE2024 baseline on one split, as ``notebooks/00b_baseline.ipynb`` trains it, on every rank."""
    from asc_lib.models import complexity
    from asc_lib.training import experiment
    from asc_lib.features.augment import Augment, AugmentConfig
    from asc_lib.features.frontend import output_shape
    from asc_lib.models import build_cp_mobile
    from asc_lib.config.params import data_paths, profile_recipe
    from asc_lib.training.loop import Supervised, fit

    here, device = init(args.device)
    recipe = profile_recipe(args.profile, "baseline", epochs=args.epochs, batch_size=args.batch_size,
                            min_steps=args.min_steps)
    if recipe["batch_size"] % here.size:
        raise ValueError(f"batch size {recipe['batch_size']} is not divisible by {here.size} ranks")
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, recipe["frontend"], str(device),
                                    progress=False)
    torch.manual_seed(args.seed)
    model = build_cp_mobile()
    cost = complexity.measure(model, (1, 1, *output_shape(recipe["frontend"])))
    run_dir = Path(args.run_dir) if args.run_dir else experiment.run_dir(args.profile, "baseline_ddp",
                                                                         args.split, args.seed)
    objective = Supervised(Augment(task.frontend, AugmentConfig.from_recipe(recipe)))
    evaluate = None if args.final_eval_only else task.evaluator(recipe["amp"])
    history = fit(model, objective, task.train_data(), recipe, run_dir, seed=args.seed, device=device,
                  evaluate=evaluate, progress=here.main and not args.quiet)
    in_sync = parameters_in_sync(model)
    if here.main:
        metrics = task.finish(run_dir, model, {
            "method": "baseline_ddp", "profile": args.profile, "split": args.split, "seed": args.seed,
            "recipe": recipe, "complexity": cost.as_dict(), "epochs_trained": len(history),
            "world_size": here.size, "replicas_in_sync": in_sync,
        }, amp=recipe["amp"])
        print(json.dumps({"accuracy": metrics["test"]["accuracy"], "loss": history[-1]["loss"],
                          "world_size": here.size,
                          "replicas_in_sync": in_sync, "run_dir": str(run_dir)}))
    shutdown()


def _logits(args) -> None:
    """A teacher's logits on one split, sharded across the ranks and merged (cached like one process)."""
    from asc_lib.training import experiment
    from asc_lib.training.distill import teacher_outputs
    from asc_lib.config.params import data_paths

    here, device = init(args.device)
    state = load_torch(args.teacher, "teacher file")
    if not isinstance(state, dict) or "model" not in state or "builder" not in state:
        raise ValueError(f"{args.teacher}: expected a dict with 'builder' and 'model' (see save_teacher_file)")
    teacher = _build(state)
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, state["frontend"], "cpu",
                                    progress=False)
    key = {"teacher": str(Path(args.teacher).resolve()), "profile": args.profile, "split": args.split,
           "frontend": state["frontend"], "purpose": "torchrun logits"}
    logits = teacher_outputs(teacher, task.train_waves, key, frontend=task.frontend, device=device,
                             cache_dir=args.cache_dir, progress=here.main and not args.quiet,
                             batch_size=args.batch_size)
    if here.main:
        if not isinstance(logits, torch.Tensor):
            raise SystemExit(f"the logits exceed the memory budget; they are on disk in {logits.path} "
                             "(np.load it with mmap_mode='r')")
        with atomic_path(Path(args.out), suffix=".pt") as tmp:
            torch.save(logits, tmp)
        print(json.dumps({"rows": len(logits), "world_size": here.size, "out": args.out}))
    shutdown()


def _build(state: dict) -> torch.nn.Module:
    from asc_lib.models import build_cp_mobile

    builders = {"cp_mobile": build_cp_mobile}
    if state["builder"] not in builders:
        raise ValueError(f"unknown teacher builder {state['builder']!r} (known: {sorted(builders)})")
    model = builders[state["builder"]](**state.get("kwargs", {}))
    model.load_state_dict(state["model"], strict=True)
    return model.eval()


def save_teacher_file(path: str | Path, model: torch.nn.Module, frontend: str, builder: str = "cp_mobile",
                      kwargs: dict | None = None) -> Path:
    """Write a teacher in the form the ``logits`` command reads (builder name, kwargs, state dict, front end)."""
    with atomic_path(Path(path), suffix=".pt") as tmp:
        torch.save({"builder": builder, "kwargs": kwargs or {}, "model": model.state_dict(),
                    "frontend": frontend}, tmp)
    return Path(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Training and teacher-logit extraction under torchrun "
                    "(torchrun --nproc_per_node N -m asc_lib.training.distributed {train,logits} ...).")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the DCASE2024 baseline with DistributedDataParallel")
    train.add_argument("--profile", default="mini")
    train.add_argument("--split", type=int, default=5)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, help="global batch (split evenly across the ranks)")
    train.add_argument("--min-steps", type=int)
    train.add_argument("--final-eval-only", action="store_true",
                       help="test accuracy once at the end instead of at the recipe's eval points")
    train.add_argument("--run-dir", help="default: data/runs/<profile>/baseline_ddp/split<N>-seed<S>")
    logits = sub.add_parser("logits", help="a teacher's logits on one split, sharded across the ranks")
    logits.add_argument("--teacher", required=True, help="a file written by save_teacher_file")
    logits.add_argument("--profile", default="mini")
    logits.add_argument("--split", type=int, default=5)
    logits.add_argument("--out", required=True, help="where to write the merged logits (.pt)")
    logits.add_argument("--cache-dir", help="teacher-output cache (default data/cache/teacher_outputs)")
    logits.add_argument("--batch-size", type=int, default=64)
    for p in (train, logits):
        p.add_argument("--device", default="auto", help="auto (GPU per rank when there are GPUs), cpu or cuda")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    {"train": _train, "logits": _logits}[args.command](args)


if __name__ == "__main__":
    main()
