"""Knowledge distillation with teacher outputs computed once and read back from disk.

:func:`teacher_outputs` runs a teacher over a waveform tensor once per ``(teacher, data, front end)``
key and caches the logits under ``data/cache/teacher_outputs/``; a changed key computes anew. The key
always holds the teacher's and the front end's code, configuration and weights and a digest of the
data (:mod:`asc_lib.provenance`), besides what the caller names.
:class:`ProbabilityMSE` is Surkov's loss: the mean squared error between the student's and the teacher's
class probabilities.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from . import distributed, paths, provenance
from .atomic import atomic_path, write_json
from .train import Objective, logits_of


def cache_path(key: dict, cache_dir: str | Path | None = None) -> Path:
    """Where the outputs of ``key`` (a JSON-able dict naming teacher, data and front end) are cached."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir else paths.cache_dir() / "teacher_outputs"
    return root / f"logits-{digest}.pt"


def full_key(teacher: nn.Module, key: dict, frontend: nn.Module | None = None, waves: torch.Tensor | None = None,
             data_id: str | None = None) -> dict:
    """The cache key of teacher outputs: the caller's ``key`` plus the teacher's and front end's identity
    (code, configuration, weights) and the data's (``data_id`` when given, e.g. a waveform cache key,
    else a digest of ``waves``)."""
    if data_id is None:
        if waves is None:
            raise ValueError("teacher outputs need the waves or a data_id to be keyed")
        data_id = provenance.tensor_digest(waves)
    return {**key, "teacher_identity": provenance.identity(teacher),
            "frontend_identity": provenance.identity(frontend) if frontend is not None else None,
            "data_identity": data_id, "code": provenance.code_digest(compute_logits)}


def is_cached(key: dict, cache_dir: str | Path | None = None) -> bool:
    """Whether the outputs of a :func:`full_key` are in the cache."""
    return cache_path(key, cache_dir).is_file()


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, waves: torch.Tensor, key: dict, frontend: nn.Module | None = None,
                    batch_size: int = 128, device: str | torch.device | None = None,
                    cache_dir: str | Path | None = None, progress: bool = True,
                    data_id: str | None = None) -> torch.Tensor:
    """Teacher logits ``(n, classes)`` (float32, CPU) for ``waves``: read from the cache when the
    :func:`full_key` was computed before, else computed in batches (``frontend`` first, if given) and
    cached atomically. ``data_id`` names the data when ``waves`` is only a placeholder of the right length.

    Under ``torchrun`` each rank computes a contiguous shard, the shards are gathered in order on every
    rank, and rank 0 writes the cache (:mod:`asc_lib.distributed`)."""
    key = full_key(teacher, key, frontend, waves, data_id)
    path = cache_path(key, cache_dir)
    if path.is_file():
        cached = provenance.load_torch(path, "cached teacher outputs")
        if cached.shape[0] != len(waves):
            raise ValueError(f"{path}: cached outputs have {cached.shape[0]} rows, data has {len(waves)}")
        return cached
    here = distributed.world()
    if len(waves) < here.size:  # too few rows to shard: every rank computes all of them
        here = distributed.World()
    start, stop = distributed.shard_bounds(len(waves), here.rank, here.size)
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    local = compute_logits(teacher, waves[start:stop], frontend, batch_size, device, progress and here.main)
    logits = distributed.gather_rows(local.to(device), len(waves)).cpu() if here.size > 1 else local
    if distributed.world().main:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(logits, tmp)
        write_json(path.with_suffix(".json"), key)
    distributed.barrier()
    return logits


@torch.no_grad()
def compute_logits(teacher: nn.Module, waves: torch.Tensor, frontend: nn.Module | None, batch_size: int,
                   device: torch.device, progress: bool = True) -> torch.Tensor:
    """Teacher logits (float32, CPU) of ``waves`` in batches, without caching."""
    teacher = teacher.eval().to(device)
    if frontend is not None:
        frontend = frontend.eval().to(device)
    out = []
    for begin in tqdm(range(0, len(waves), batch_size), desc="teacher outputs", unit="batch",
                      disable=not progress, mininterval=2.0):
        x = waves[begin:begin + batch_size].to(device).float()
        logits = teacher(frontend(x) if frontend is not None else x)
        out.append((logits[0] if isinstance(logits, tuple) else logits).float().cpu())
    return torch.cat(out) if out else torch.zeros((0,), dtype=torch.float32)


def probability_mse(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Surkov's distillation loss: MSE between student and teacher class probabilities."""
    return nn.functional.mse_loss(student_logits.float().softmax(-1), teacher_probs.float())


class ProbabilityMSE(Objective):
    """Distillation on every item (labeled or not) towards cached teacher probabilities
    (``batch["teacher_probs"]``, an extra of :class:`asc_lib.train.TrainData`)."""

    name = "kd_mse"

    def loss(self, model, batch, step):
        logits = logits_of(model(self.inputs(batch["waves"])))
        return probability_mse(logits, batch["teacher_probs"]), {}
