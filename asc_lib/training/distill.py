"""Knowledge distillation with teacher outputs computed once and read back from disk.

:func:`teacher_outputs` runs a teacher over waveform rows once per ``(teacher, data, front end)`` key and
caches the logits under ``data/cache/teacher_outputs/`` as an on-disk array, written batch by batch so that
an interrupted computation over AudioSet resumes where it stopped; a changed key computes anew. The key
always holds the teacher's and the front end's code, configuration and weights and a digest of the
data (:mod:`asc_lib.config.provenance`), besides what the caller names.
:class:`ProbabilityMSE` is Surkov's loss: the mean squared error between the student's and the teacher's
class probabilities.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from asc_lib.config.progress import bar as progress_bar

from asc_lib.config import paths, provenance
from asc_lib.config.atomic import CorruptCache, exclusive, quarantine, seal, verify, write_json
from asc_lib.data.rows import DiskRows, memory_budget
from asc_lib.training import distributed
from asc_lib.training.device import precision as device_precision
from asc_lib.training.evaluate import compute_logits
from asc_lib.training.loop import Objective, logits_of


def cache_path(key: dict, cache_dir: str | Path | None = None) -> Path:
    """Where the outputs of ``key`` (a JSON-able dict naming teacher, data and front end) are cached."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir else paths.teacher_outputs_dir()
    return root / f"logits-{digest}.npy"


def full_key(teacher: nn.Module, key: dict, frontend: nn.Module | None = None, waves: torch.Tensor | None = None,
             data_id: str | None = None, autocast: torch.dtype | None = None) -> dict:
    """The cache key of teacher outputs: the caller's ``key`` plus the teacher's and front end's identity
    (code, configuration, weights), the data's (``data_id`` when given, e.g. a waveform cache key,
    else a digest of ``waves``) and the autocast dtype of the pass when it is not float32."""
    if autocast is not None:
        key = {**key, "precision": str(autocast)}
    if data_id is None:
        if waves is None:
            raise ValueError("teacher outputs need the waves or a data_id to be keyed")
        data_id = provenance.tensor_digest(waves)
    return {**key, "teacher_identity": provenance.identity(teacher),
            "frontend_identity": provenance.identity(frontend) if frontend is not None else None,
            "data_identity": data_id, "code": provenance.code_digest(compute_logits, _compute_to_disk)}


def is_cached(key: dict, cache_dir: str | Path | None = None) -> bool:
    """Whether the outputs of a :func:`full_key` are in the cache, whole (a damaged file is moved aside with a
    warning: not cached)."""
    path = cache_path(key, cache_dir)
    if not path.is_file():
        return False
    try:
        verify(path)
        return True
    except CorruptCache as err:
        quarantine(path, str(err))
        return False


def teacher_outputs(teacher: nn.Module, waves: torch.Tensor, key: dict, frontend: nn.Module | None = None,
                    batch_size: int = 128, device: str | torch.device | None = None,
                    cache_dir: str | Path | None = None,
                    data_id: str | None = None, budget: int | None = None,
                    save_every: int = 64, precision: str = "auto") -> torch.Tensor:
    """Teacher logits ``(n, classes)`` (float32) for ``waves``: read from the cache when the
    :func:`full_key` was computed before, else computed in batches (``frontend`` first, if given) and
    written batch by batch into an on-disk array; an interrupted computation resumes after the last
    ``save_every`` batches it saved. Returned as a CPU tensor when it fits ``budget`` bytes (default
    :func:`asc_lib.data.rows.memory_budget`), else as rows read from disk. ``data_id`` names the data when
    ``waves`` is only a placeholder of the right length. ``precision`` is the recipe's ``teacher_precision``
    (:func:`asc_lib.training.device.precision`: ``auto`` is autocast on a GPU, float32 on the CPU); the
    precision used is part of the key.

    Under ``torchrun`` each rank computes a contiguous shard into the same array; rank 0 publishes it once
    every rank has finished (:mod:`asc_lib.training.distributed`)."""
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    dtype = device_precision(precision, device)
    key = full_key(teacher, key, frontend, waves, data_id, dtype)
    path = cache_path(key, cache_dir)
    if path.is_file():
        try:
            verify(path)
        except CorruptCache as err:  # named, moved aside, computed again
            quarantine(path, str(err))
    if not path.is_file():
        if len(waves) and waves.shape[-1] == 0:
            raise ValueError(f"{path}: the cached teacher outputs are gone and only placeholders of the waves were "
                             "given; run the stage that computes them again")
        # one process computes them (two notebooks needing the same outputs at once: the second waits, then reads)
        with exclusive(path, "teacher-output cache", wait=True) if distributed.world().main else contextlib.nullcontext():
            if not path.is_file():
                _compute_to_disk(teacher, waves, key, path, frontend, batch_size, device, save_every, dtype)
    return _open_outputs(path, len(waves), memory_budget() if budget is None else budget)


def _open_outputs(path: Path, n: int, budget: int):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: unreadable cached teacher outputs ({err}); delete it to compute them again") from err
    if array.shape[0] != n:
        raise ValueError(f"{path}: cached outputs have {array.shape[0]} rows, data has {n}")
    rows = DiskRows(path, path.stem)
    return rows.resident() if rows.nbytes <= budget else rows


def _progress_file(partial: Path, here: distributed.World) -> Path:
    return partial.with_name(f"{partial.stem}.rank{here.rank}-of-{here.size}.json")


def _compute_to_disk(teacher, waves, key, path: Path, frontend, batch_size, device, save_every,
                     dtype=None) -> None:
    """Fill ``path`` with the teacher's logits of every row: each rank its shard, resumable."""
    here = distributed.world()
    if len(waves) < here.size:  # too few rows to shard: rank 0 computes all of them
        here = distributed.World(0, 1) if here.main else None
    partial = path.with_name(f"{path.stem}.partial.npy")
    if here is not None:
        classes = compute_logits(teacher, waves, frontend, 1, device, 0, min(1, len(waves)),
                                 autocast=dtype).shape[-1] \
            if len(waves) else 0
        with distributed.main_first():
            if distributed.world().main:
                _prepare(partial, (len(waves), classes))
        start, stop = distributed.shard_bounds(len(waves), here.rank, here.size)
        marker = _progress_file(partial, here)
        done = json.loads(marker.read_text()).get("done", 0) if marker.is_file() else 0
        out = np.load(partial, mmap_mode="r+")
        bar = progress_bar(total=stop - start, initial=done, desc="teacher outputs", unit="row", mininterval=2.0,
                           disable=not here.main)
        for k, begin in enumerate(range(start + done, stop, batch_size)):
            end = min(begin + batch_size, stop)
            out[begin:end] = compute_logits(teacher, waves, frontend, batch_size, device, begin, end,
                                            autocast=dtype).numpy()
            bar.update(end - begin)
            if (k + 1) % save_every == 0 or end == stop:
                out.flush()
                write_json(marker, {"done": end - start, "rows": [start, stop]})
        bar.close()
        del out
    else:
        distributed.barrier()  # the main rank's main_first
    distributed.barrier()
    if distributed.world().main:
        os.replace(partial, path)
        write_json(path.with_suffix(".json"), key)
        seal(path)
        for marker in path.parent.glob(f"{partial.stem}.rank*.json"):
            marker.unlink(missing_ok=True)
    distributed.barrier()


def _prepare(partial: Path, shape: tuple) -> None:
    """The partial array of an interrupted computation when its shape matches, else a new one."""
    if partial.is_file():
        try:
            if np.load(partial, mmap_mode="r").shape == shape:
                return
        except (ValueError, OSError):
            pass
        for marker in partial.parent.glob(f"{partial.stem}.rank*.json"):
            marker.unlink()
    partial.parent.mkdir(parents=True, exist_ok=True)
    np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape).flush()


def probability_mse(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Surkov's distillation loss: MSE between student and teacher class probabilities."""
    return nn.functional.mse_loss(student_logits.float().softmax(-1), teacher_probs.float())


def probability_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """The usual alternative: KL divergence from the teacher's to the student's class probabilities."""
    return nn.functional.kl_div(student_logits.float().log_softmax(-1), teacher_probs.float(), reduction="batchmean")


class ProbabilityMSE(Objective):
    """Distillation on every item (labeled or not) towards cached teacher probabilities
    (``batch["teacher_probs"]``, an extra of :class:`asc_lib.training.loop.TrainData`)."""

    name = "kd_mse"

    def loss(self, model, batch, step):
        logits = logits_of(model(self.inputs(batch["waves"])))
        return probability_mse(logits, batch["teacher_probs"]), {}


class ProbabilityKL(Objective):
    """As :class:`ProbabilityMSE`, with the KL divergence instead of the squared error."""

    name = "kd_kl"

    def loss(self, model, batch, step):
        logits = logits_of(model(self.inputs(batch["waves"])))
        return probability_kl(logits, batch["teacher_probs"]), {}


DISTILLATION_LOSSES = {"mse_probabilities": ProbabilityMSE, "kl_probabilities": ProbabilityKL}  # a recipe's ``loss:``


def distillation_objective(recipe: dict, augment: nn.Module) -> Objective:
    """The recipe's ``loss`` (Surkov's: ``mse_probabilities``) as an objective over ``augment``'s inputs."""
    if recipe["loss"] not in DISTILLATION_LOSSES:
        raise ValueError(f"recipe loss {recipe['loss']!r} is not one of {sorted(DISTILLATION_LOSSES)}")
    return DISTILLATION_LOSSES[recipe["loss"]](augment)
