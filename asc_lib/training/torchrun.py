"""The study under ``torchrun``: training the baseline and extracting a teacher's logits on several ranks.

``torchrun --nproc_per_node N -m asc_lib.training.torchrun train …`` trains the DCASE2024 baseline with
DistributedDataParallel through the same :func:`asc_lib.training.experiment.train_and_evaluate` as
``notebooks/00b_baseline.ipynb`` (rank 0 evaluates and writes the run). ``… logits …`` computes a
teacher's logits sharded across the ranks (:func:`asc_lib.training.distill.teacher_outputs` is rank-aware)
and merges them in the original order. The process-group helpers are :mod:`asc_lib.training.distributed`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from asc_lib.config import data_paths, profile_recipe
from asc_lib.config.provenance import load_torch, save_torch
from asc_lib.models import build_cp_mobile
from asc_lib.training import experiment
from asc_lib.training.distill import teacher_outputs
from asc_lib.training.distributed import init, main_first, shutdown

METHOD = "baseline_ddp"
BUILDERS = {"cp_mobile": build_cp_mobile}   # what a teacher file may name as its builder


def train(args) -> None:
    """The DCASE2024 baseline on one split, as ``notebooks/00b_baseline.ipynb`` trains it, on every rank."""
    here, device = init(args.device)
    recipe = profile_recipe(args.profile, "baseline", epochs=args.epochs, batch_size=args.batch_size,
                            min_steps=args.min_steps)
    if recipe["batch_size"] % here.size:
        raise ValueError(f"batch size {recipe['batch_size']} is not divisible by {here.size} ranks")
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, recipe["frontend"], str(device),
                                    progress=False)
    spec = experiment.RunSpec(args.profile, METHOD, args.split, args.seed, args.run_dir)
    model, objective, cost = experiment.baseline_setup(task, recipe, args.seed)
    metrics, history = experiment.train_and_evaluate(task, spec, model, objective, recipe, cost=cost,
                                                     evaluate_during=not args.final_eval_only,
                                                     progress=here.main and not args.quiet)
    if here.main:
        print(json.dumps({"accuracy": metrics["test"]["accuracy"], "loss": history[-1]["loss"],
                          "world_size": here.size, "replicas_in_sync": metrics.get("replicas_in_sync", True),
                          "run_dir": str(spec.path)}))
    shutdown()


def logits(args) -> None:
    """A teacher's logits on one split, sharded across the ranks and merged (cached like one process)."""
    here, device = init(args.device)
    state = load_torch(args.teacher, "teacher file")
    if not isinstance(state, dict) or "model" not in state or "builder" not in state:
        raise ValueError(f"{args.teacher}: expected a dict with 'builder' and 'model' (see save_teacher_file)")
    teacher = build_teacher(state)
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, state["frontend"], "cpu", progress=False)
    key = {"teacher": str(Path(args.teacher).resolve()), "profile": args.profile, "split": args.split,
           "frontend": state["frontend"], "purpose": "torchrun logits"}
    out = teacher_outputs(teacher, task.train_waves, key, frontend=task.frontend, device=device,
                          cache_dir=args.cache_dir, progress=here.main and not args.quiet, batch_size=args.batch_size)
    if here.main:
        if not isinstance(out, torch.Tensor):
            raise SystemExit(f"the logits exceed the memory budget; they are on disk in {out.path} "
                             "(np.load it with mmap_mode='r')")
        save_torch(out, args.out)
        print(json.dumps({"rows": len(out), "world_size": here.size, "out": args.out}))
    shutdown()


def build_teacher(state: dict) -> torch.nn.Module:
    """The teacher a file of :func:`save_teacher_file` describes, its weights loaded strictly."""
    if state["builder"] not in BUILDERS:
        raise ValueError(f"unknown teacher builder {state['builder']!r} (known: {sorted(BUILDERS)})")
    model = BUILDERS[state["builder"]](**state.get("kwargs", {}))
    model.load_state_dict(state["model"], strict=True)
    return model.eval()


def save_teacher_file(path: str | Path, model: torch.nn.Module, frontend: str, builder: str = "cp_mobile",
                      kwargs: dict | None = None) -> Path:
    """Write a teacher in the form the ``logits`` command reads (builder name, kwargs, state dict, front end)."""
    return save_torch({"builder": builder, "kwargs": kwargs or {}, "model": model.state_dict(),
                       "frontend": frontend}, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Training and teacher-logit extraction under torchrun "
                    "(torchrun --nproc_per_node N -m asc_lib.training.torchrun {train,logits} ...).")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the DCASE2024 baseline with DistributedDataParallel")
    tr.add_argument("--profile", default="mini")
    tr.add_argument("--split", type=int, default=5)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int, help="global batch (split evenly across the ranks)")
    tr.add_argument("--min-steps", type=int)
    tr.add_argument("--final-eval-only", action="store_true",
                    help="test accuracy once at the end instead of at the recipe's eval points")
    tr.add_argument("--run-dir", help=f"default: data/runs/<profile>/{METHOD}/split<N>-seed<S>")
    lg = sub.add_parser("logits", help="a teacher's logits on one split, sharded across the ranks")
    lg.add_argument("--teacher", required=True, help="a file written by save_teacher_file")
    lg.add_argument("--profile", default="mini")
    lg.add_argument("--split", type=int, default=5)
    lg.add_argument("--out", required=True, help="where to write the merged logits (.pt)")
    lg.add_argument("--cache-dir", help="teacher-output cache (default data/cache/teacher_outputs)")
    lg.add_argument("--batch-size", type=int, default=64)
    for p in (tr, lg):
        p.add_argument("--device", default="auto", help="auto (GPU per rank when there are GPUs), cpu or cuda")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    {"train": train, "logits": logits}[args.command](args)


if __name__ == "__main__":
    main()
