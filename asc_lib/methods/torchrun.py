"""The study's expensive stages under ``torchrun``: one process per GPU (or CPU process), the same code as the notebooks.

``torchrun --standalone --nproc_per_node N -m asc_lib.methods.torchrun <stage> …`` with stage

- ``train``    the DCASE2024 baseline with DistributedDataParallel, as ``00b_baseline`` trains it (rank 0
               evaluates and writes the run);
- ``logits``   a teacher's logits on a split, sharded across the ranks and merged in order: a ``02_mean_teacher``
               run's fine-tuned EfficientAT (``--teacher-run efficientat_mt``, or its ``teacher.pt`` as ``--teacher``),
               or a CP-Mobile teacher file (:func:`save_teacher_file`);
- ``embed``    the domain classifier's embeddings (``03_domain_pruning``): the recipe's teacher (the PaSST
               ensemble on the real data) over the challenge split, AudioSet eval and the pool, each sharded;
- ``werning-kd``  Werning's distillation into the 527-class CP-Mobile on ``03``'s selection, as ``03b`` runs it
               (the notebook then reuses the finished run).

Every stage writes where its notebook reads (runs, caches), so a GPU server runs the heavy stage under torchrun
and the notebook afterwards. Teacher passes use the recipe's ``teacher_precision``; the process-group helpers
are :mod:`asc_lib.training.distributed`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from asc_lib.config import data_paths, profile_recipe
from asc_lib.config import paths, progress, provenance
from asc_lib.config.provenance import load_torch, save_torch
from asc_lib.methods import domain_selection, surkov, werning
from asc_lib.models import build_cp_mobile
from asc_lib.training import experiment
from asc_lib.training.distill import teacher_outputs
from asc_lib.training.distributed import init, main_first, parameters_in_sync, shutdown

METHOD = "baseline_ddp"
BUILDERS = {"cp_mobile": build_cp_mobile}   # what a CP-Mobile teacher file may name as its builder


def _say(here, payload) -> None:
    """Rank 0 prints the stage's result (``payload()``, evaluated there only) as one JSON line."""
    if here.main:
        print(json.dumps(payload()), flush=True)


def train(args) -> None:
    """The DCASE2024 baseline on one split, as ``notebooks/00b_baseline.ipynb`` trains it, on every rank."""
    here, device = init(args.device)
    recipe = profile_recipe(args.profile, "baseline", epochs=args.epochs, batch_size=args.batch_size,
                            min_steps=args.min_steps)
    if recipe["batch_size"] % here.size:
        raise ValueError(f"batch size {recipe['batch_size']} is not divisible by {here.size} ranks")
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, recipe["frontend"], str(device))
    spec = experiment.RunSpec(args.profile, METHOD, args.split, args.seed, args.run_dir)
    model, objective, cost = experiment.baseline_setup(task, recipe, args.seed)
    metrics, history = experiment.train_and_evaluate(task, spec, model, objective, recipe, cost=cost,
                                                     evaluate_during=not args.final_eval_only)
    _say(here, lambda: {"accuracy": metrics["test"]["accuracy"], "loss": history[-1]["loss"], "world_size": here.size,
                "replicas_in_sync": metrics.get("replicas_in_sync", True), "run_dir": str(spec.path)})
    shutdown()


def load_any_teacher(path: Path, profile: str) -> tuple[torch.nn.Module, str]:
    """A teacher file and the front end it takes: ``02_mean_teacher``'s fine-tuned EfficientAT (the profile's
    mean-teacher front end) or a CP-Mobile file of :func:`save_teacher_file` (its own front end)."""
    state = load_torch(path, "teacher file")
    if isinstance(state, dict) and {"model", "state_dict"} <= set(state):
        model, _ = surkov.load_teacher_file(path)
        return model, profile_recipe(profile, "mean_teacher", source="surkov")["frontend"]
    if not isinstance(state, dict) or "model" not in state or "builder" not in state:
        raise ValueError(f"{path}: not a teacher file: expected 02_mean_teacher's teacher.pt ('model', 'state_dict') "
                         f"or a CP-Mobile file of save_teacher_file ('builder', 'model', 'frontend')")
    return build_teacher(state), state["frontend"]


def logits(args) -> None:
    """A teacher's logits on one split, sharded across the ranks and merged (cached like one process)."""
    here, device = init(args.device)
    path = Path(args.teacher) if args.teacher else \
        paths.run_dir(args.profile, args.teacher_run, args.split, args.seed) / paths.TEACHER_FILE
    teacher, frontend = load_any_teacher(path, args.profile)
    with main_first():
        task = experiment.SceneTask(data_paths(args.profile), args.split, frontend, "cpu")
    out = teacher_outputs(teacher, task.train_waves, logits_key(path, args.profile, args.split, frontend),
                          frontend=task.frontend, device=device, cache_dir=args.cache_dir, batch_size=args.batch_size, precision=args.precision)
    if here.main:
        if not isinstance(out, torch.Tensor):
            raise SystemExit(f"the logits exceed the memory budget; they are on disk in {out.path} "
                             "(np.load it with mmap_mode='r')")
        save_torch(out, args.out)
    _say(here, lambda: {"rows": len(out), "world_size": here.size, "out": args.out})
    shutdown()


def logits_key(path: Path, profile: str, split: int, frontend: str) -> dict:
    """The cache key of the ``logits`` stage (one process computing the same key reads the ranks' result)."""
    return {"teacher": str(Path(path).resolve()), "profile": profile, "split": split, "frontend": frontend,
            "purpose": "torchrun logits"}


def embed(args) -> None:
    """The domain classifier's embeddings of ``03_domain_pruning`` (cached where the notebook reads them)."""
    here, device = init(args.device)
    data = data_paths(args.profile)
    recipe = profile_recipe(args.profile, "domain_classifier", source="werning")
    teacher, teacher_id = domain_selection.teacher_for(recipe, args.profile, data, device)
    out = domain_selection.domain_embeddings(teacher, recipe, args.profile, data, args.split, teacher_id, device)
    _say(here, lambda: {"world_size": here.size, **{k: len(v) for k, v in out.items() if isinstance(v, torch.Tensor)}})
    shutdown()


def werning_kd(args) -> None:
    """Werning's distillation on ``03``'s selection, into the run folder ``03b_pruned_kd`` reads."""
    here, device = init(args.device)
    data = data_paths(args.profile)
    prune = profile_recipe(args.profile, "domain_classifier", source="werning")
    kd = profile_recipe(args.profile, "kd", source="werning", min_steps=args.steps, max_steps=args.steps)
    if kd["batch_size"] % here.size:
        raise ValueError(f"batch size {kd['batch_size']} is not divisible by {here.size} ranks")
    clips = domain_selection.read_selection(domain_selection.subset_file(args.profile, args.split, args.selection,
                                                                         prune["threshold"], args.seed))
    with main_first():
        items, clips = werning.distillation_data(clips, prune, kd, args.profile, data, device)
    directory = Path(args.run_dir) if args.run_dir else \
        werning.kd_run_dir(args.profile, args.split, args.seed, args.selection, prune["threshold"])
    seed = args.seed if args.kd_seed is None else args.kd_seed
    student, history = werning.distil(items, kd, directory, seed, device)
    in_sync = parameters_in_sync(student)
    _say(here, lambda: {"world_size": here.size, "loss": history[-1]["loss"], "steps": history[-1]["step"],
                "status": history.status, "run_dir": str(directory), "replicas_in_sync": in_sync,
                "weights": provenance.module_digest(student)})
    shutdown()


def build_teacher(state: dict) -> torch.nn.Module:
    """The CP-Mobile teacher a file of :func:`save_teacher_file` describes, its weights loaded strictly."""
    if state["builder"] not in BUILDERS:
        raise ValueError(f"unknown teacher builder {state['builder']!r} (known: {sorted(BUILDERS)})")
    model = BUILDERS[state["builder"]](**state.get("kwargs", {}))
    model.load_state_dict(state["model"], strict=True)
    return model.eval()


def save_teacher_file(path: str | Path, model: torch.nn.Module, frontend: str, builder: str = "cp_mobile",
                      kwargs: dict | None = None) -> Path:
    """Write a CP-Mobile teacher in the form the ``logits`` stage reads (builder name, kwargs, state dict, front end)."""
    return save_torch({"builder": builder, "kwargs": kwargs or {}, "model": model.state_dict(),
                       "frontend": frontend}, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="The study's expensive stages under torchrun "
                    "(torchrun --standalone --nproc_per_node N -m asc_lib.methods.torchrun {train,logits,embed,werning-kd} ...).")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the DCASE2024 baseline with DistributedDataParallel")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int, help="global batch (split evenly across the ranks)")
    tr.add_argument("--min-steps", type=int)
    tr.add_argument("--final-eval-only", action="store_true",
                    help="test accuracy once at the end instead of at the recipe's eval points")
    tr.add_argument("--run-dir", help=f"default: data/runs/<profile>/{METHOD}/split<N>-seed<S>")
    lg = sub.add_parser("logits", help="a teacher's logits on one split, sharded across the ranks")
    which = lg.add_mutually_exclusive_group(required=True)
    which.add_argument("--teacher-run", help="a 02_mean_teacher run (efficientat_mt, efficientat_ft) of this profile, "
                                             "split and seed (not --run: torchrun would take it for its --run-path)")
    which.add_argument("--teacher", help="02_mean_teacher's teacher.pt, or a CP-Mobile file of save_teacher_file")
    lg.add_argument("--out", required=True, help="where to write the merged logits (.pt)")
    lg.add_argument("--cache-dir", help="teacher-output cache (default data/cache/teacher_outputs)")
    lg.add_argument("--batch-size", type=int, default=64)
    lg.add_argument("--precision", default="auto", help="teacher pass precision: auto (autocast on a GPU), float32, "
                                                       "bfloat16, float16")
    em = sub.add_parser("embed", help="03_domain_pruning's embeddings (challenge split, AudioSet eval and pool)")
    kd = sub.add_parser("werning-kd", help="Werning's distillation on 03's selection (03b reuses the run)")
    kd.add_argument("--selection", default="pruned", choices=domain_selection.SELECTIONS)
    kd.add_argument("--steps", type=int, help="distillation iterations, exactly (default: the recipe's)")
    kd.add_argument("--run-dir", help="default: the folder 03b_pruned_kd reads")
    kd.add_argument("--kd-seed", type=int, help="the student's seed (default: --seed, which also names 03's selection)")
    for p in (tr, lg, em, kd):
        p.add_argument("--profile", default="mini")
        p.add_argument("--split", type=int, default=5)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", help="auto (one GPU per rank when there are GPUs), cpu or cuda")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    progress.show(False if args.quiet else None)
    {"train": train, "logits": logits, "embed": embed, "werning-kd": werning_kd}[args.command](args)


if __name__ == "__main__":
    main()
