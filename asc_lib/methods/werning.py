"""Werning's stages 2 and 3: the selected AudioSet clips with the teacher's logits (whole clips with the
clip-level logits the pruning computed, as his code; or 1 s pieces, the alternative), the multi-label
distillation objective with his MixUp, the 527-class CP-Mobile student and its fine-tuning with a new
10-class head; how the runs are named. Settings: ``params/werning.yaml`` (``kd``, ``finetune``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asc_lib.config import DataPaths
from asc_lib.config.provenance import save_torch
from asc_lib.data.rows import DiskRows, memory_budget
from asc_lib.features.augment import Augment, AugmentConfig, mixup
from asc_lib.features.frontend import build_frontend, output_shape
from asc_lib.methods.domain_selection import (
    SELECTIONS,
    audioset_embedding,
    embed,
    embedding_key,
    paper_threshold,
    teacher_for,
    teacher_sample_rate,
)
from asc_lib.methods.tagger import class_index, class_logits, tagging_data
from asc_lib.models import complexity
from asc_lib.models.cpmobile import CPMobile, build_cp_mobile
from asc_lib.training import distributed
from asc_lib.config.paths import run_dir
from asc_lib.training.experiment import RunSpec, SceneTask, train_and_evaluate
from asc_lib.training.loop import Objective, Supervised, TrainData, fit, logits_of

STUDENT_FILE = "student527.pt"


# --- distillation on the selected clips ----------------------------------------------------------------

def frontend(recipe: dict, device="cpu") -> nn.Module:
    """The recipe's front end on ``device``."""
    return build_frontend(recipe["frontend"]).to(device)


KD_INPUTS = ("clips", "pieces")
MIXUPS = ("werning", "efficientat")


def kd_data(segments: pd.DataFrame, data: DataPaths, recipe: dict, device="cpu") -> tuple[TrainData, pd.DataFrame]:
    """The selected clips at the recipe's sample rate as its ``input`` says (``clips``: each whole clip padded
    or cut to the nominal length, one item; ``pieces``: consecutive 1 s pieces), with their AudioSet targets
    (``extras["targets"]``), and the clips they come from (absent ones dropped)."""
    if recipe["input"] not in KD_INPUTS:
        raise ValueError(f"unknown kd input {recipe['input']!r}; choose from {KD_INPUTS}")
    rate = frontend(recipe).sample_rate
    return tagging_data(segments, data, class_index(data), rate, device,
                        piece_seconds=None if recipe["input"] == "clips" else 1.0)


def piece_logits(teacher: nn.Module, data: TrainData, segments: pd.DataFrame, embedding: str, teacher_id: str,
                 device="cpu", precision: str = "auto") -> torch.Tensor:
    """Teacher logits for every 1 s piece of ``data`` (the ``pieces`` alternative: a second teacher pass,
    over the pieces; computed once, then read from disk)."""
    rate = teacher_sample_rate(teacher)
    key = embedding_key(embedding, f"kd-pieces-{len(data)}@{rate}", segments["YTID"], teacher_id)
    if data.waves.shape[1] != rate:
        raise ValueError(f"the teacher takes {rate} Hz but the pieces have {data.waves.shape[1]} samples per second; "
                         "Werning's student and teacher both run at 32 kHz")
    return embed(teacher, data.waves, key, device, precision=precision)


def clip_logits(teacher: nn.Module, prune: dict, segments: pd.DataFrame, data: DataPaths, teacher_id: str,
                device="cpu", budget: int | None = None):
    """The clip-level teacher logits of the selected ``segments``: their rows of the pool's embedding, the one
    teacher pass over the whole clips that ``03_domain_pruning`` scores (read from its cache, as Werning's
    ``apply_filter.py`` copies them into the pruned set). A tensor, or a view of the rows on disk when the
    selection exceeds ``budget`` bytes (default :func:`asc_lib.data.rows.memory_budget`)."""
    pool, pool_segments = audioset_embedding(teacher, prune, prune["pool"], data, teacher_id, device)
    rows = pool_rows(segments, pool_segments)
    budget = memory_budget(device) if budget is None else budget
    if isinstance(pool, DiskRows) and len(rows) * pool.shape[1] * 4 > budget:
        return DiskRows(pool.path, pool.identity, pieces=(rows, np.zeros(len(rows)), pool.shape[1]))
    return pool[torch.from_numpy(rows)]


def pool_rows(segments: pd.DataFrame, pool_segments: pd.DataFrame) -> np.ndarray:
    """Where each of ``segments`` lies in the pool (by YTID and start time)."""
    keys = ["YTID", "start_seconds"]
    where = pd.Series(np.arange(len(pool_segments)), index=pd.MultiIndex.from_frame(pool_segments[keys]))
    if not where.index.is_unique:
        raise ValueError("the AudioSet pool lists a segment twice (same YTID and start); cannot match its logits")
    found = where.reindex(pd.MultiIndex.from_frame(segments[keys]))
    if found.isna().any():
        missing = segments.loc[found.isna().to_numpy(), "YTID"]
        raise ValueError(f"{len(missing)} selected segments are not in the pool the domain classifier scored "
                         f"(e.g. {missing.iloc[0]}); rerun 03_domain_pruning for this selection")
    return found.to_numpy().astype(np.int64)


def distillation_data(segments: pd.DataFrame, prune: dict, kd: dict, profile: str, data: DataPaths, device="cpu") -> tuple[TrainData, pd.DataFrame]:
    """Werning's distillation set: the selected ``segments`` as ``kd["input"]`` says, with their AudioSet targets
    and the embedding teacher's logits of the profile's classes (``extras["teacher_logits"]``; a released
    527-class tagger's columns of the mini classes on the mini data), and the clips found. Whole clips take
    the clip-level logits the pruning already computed (no second teacher pass); pieces take their own."""
    teacher, teacher_id = teacher_for(prune, profile, data, device)
    items, segments = kd_data(segments, data, kd, device)
    if kd["input"] == "clips":
        logits = clip_logits(teacher, prune, segments, data, teacher_id, device)
    else:
        logits = piece_logits(teacher, items, segments, prune["embedding"], teacher_id, device,
                              precision=prune["teacher_precision"])
    if isinstance(logits, DiskRows):
        if logits.shape[1] != items.extras["targets"].shape[1]:
            raise ValueError("teacher logits on disk must cover the profile's classes as they are (527 on the real data)")
        items.extras["teacher_logits"] = logits
    else:
        items.extras["teacher_logits"] = class_logits(teacher, logits, class_index(data)).to(device)
    return items, segments


def distil(pieces: TrainData, kd: dict, directory: Path, seed: int, device="cpu"):
    """Distil the teacher's logits into a CP-Mobile with one output per AudioSet class of ``pieces`` (initialised
    from ``seed``), by the recipe, into ``directory`` (resumed or reused); saves the student. Returns the
    student and the history."""
    torch.manual_seed(seed)
    student = build_cp_mobile(n_classes=pieces.extras["targets"].shape[1])
    objective = MultiLabelDistillation(Augment(frontend(kd, device), AugmentConfig.from_recipe(kd)),
                                       kd["distillation_weight"], kd["mixup_alpha"], kd["mixup"], kd["mixup_p"])
    history = fit(student, objective, pieces, kd, directory, seed=seed, device=device)
    if distributed.world().main:  # under torchrun rank 0 writes
        save_student(directory, student)
    return student, history


def finetune(task: SceneTask, spec: RunSpec, student: CPMobile, recipe: dict, info: dict | None = None):
    """Werning's stage 3: the distilled student with a new 10-class head (drawn from the run's seed), trained on
    the task's split by the fine-tuning recipe (the baseline's settings); returns metrics, history and cost."""
    model = finetune_student(student.cpu(), 10, seed=spec.seed)
    cost = complexity.measure(model, (1, 1, *output_shape(recipe["frontend"])))
    if not cost.passes:
        raise ValueError(f"the fine-tuned student breaks the DCASE limits: {cost}")
    metrics, history = train_and_evaluate(task, spec, model, Supervised(Augment(task.frontend,
                                                                                AugmentConfig.from_recipe(recipe))),
                                          recipe, cost=cost, info=info)
    return metrics, history, cost


def kd_summary(segments: pd.DataFrame, data: TrainData, recipe: dict) -> pd.DataFrame:
    """Clips, training items (whole clips or pieces), their length and labels of the distillation set."""
    targets = data.extras["targets"]
    return pd.DataFrame([{"AudioSet clips": len(segments), "training items": len(data), "input": recipe["input"],
                          "seconds per item": round(data.waves.shape[1] / frontend(recipe).sample_rate, 2),
                          "classes (student head)": targets.shape[1],
                          "labels per item (mean)": round(float(targets.float().sum(1).mean()), 2)}])


class MultiLabelDistillation(Objective):
    """Werning's loss: ``λ·BCE(student, sigmoid(teacher)) + (1 - λ)·BCE(student, AudioSet labels)``, both
    multi-label, SpecAugment on the student input only, and MixUp as ``mixup`` says:

    - ``werning`` (his code, ``data/utils.py``): each item is mixed with probability ``mixup_p`` with a partner
      from the batch, on the zero-mean *waveforms*, with ``λ ~ Beta(α, α)`` folded to ``max(λ, 1 - λ)``; the
      teacher *logits* are mixed linearly (then the sigmoid), the labels are the union of both clips' (his code
      keeps only the first clip's, a bug not copied);
    - ``efficientat``: every item, on the log-mels, ``λ ~ Beta(α, α)`` folded; teacher probabilities and labels
      mixed linearly.

    Needs ``batch["teacher_logits"]`` and ``batch["targets"]``."""

    name = "multilabel_kd"

    def __init__(self, augment: nn.Module, distillation_weight: float = 0.9, mixup_alpha: float = 0.3,
                 mixup_kind: str = "efficientat", mixup_p: float = 1.0):
        super().__init__(augment)
        if not 0 <= distillation_weight <= 1:
            raise ValueError(f"distillation_weight must be in [0, 1], got {distillation_weight}")
        if mixup_kind not in MIXUPS:
            raise ValueError(f"unknown mixup {mixup_kind!r}; choose from {MIXUPS}")
        if not 0 <= mixup_p <= 1:
            raise ValueError(f"mixup_p must be a probability, got {mixup_p}")
        self.weight, self.mixup_alpha, self.mixup_kind, self.mixup_p = distillation_weight, mixup_alpha, mixup_kind, mixup_p

    def loss(self, model, batch, step):
        teacher, hard = batch["teacher_logits"].float(), batch["targets"].float()
        if self.mixup_kind == "werning" and self.mixup_alpha > 0 and self.mixup_p > 0:
            if getattr(self.augment, "precomputed", False):
                raise ValueError("Werning's MixUp mixes waveforms; it cannot run on cached log-mels (set feature_cache: "
                                 "false, or mixup: efficientat)")
            waves, teacher, hard = werning_mixup(batch["waves"].float(), teacher, hard, self.mixup_alpha, self.mixup_p)
            x, soft = self.inputs(waves), torch.sigmoid(teacher)
        else:
            x, soft = self.inputs(batch["waves"]), torch.sigmoid(teacher)
            if self.mixup_alpha > 0:
                x, perm, lam = mixup(x, self.mixup_alpha)
                lam = lam.view(-1, 1).float()
                soft, hard = lam * soft + (1 - lam) * soft[perm], lam * hard + (1 - lam) * hard[perm]
        logits = logits_of(model(x)).float()
        return distillation_loss(logits, soft, hard, self.weight)


def werning_mixup(waves: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, alpha: float = 2.0,
                  p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Werning's MixUp on a batch: each item, with probability ``p``, becomes ``λ·x + (1 - λ)·x'`` of its own and
    a partner's zero-mean waveform (the mix zero-mean again), ``λ ~ Beta(alpha, alpha)`` folded to
    ``max(λ, 1 - λ)``; its teacher logits ``λ·l + (1 - λ)·l'``, its labels the union. Items not mixed are
    returned as they were. The partner is another item of the batch (his code draws it from a second pass over
    the data: the same distribution)."""
    n = waves.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((n,)).to(waves.device)
    lam = torch.maximum(lam, 1 - lam)
    mixed = torch.rand(n, device=waves.device) < p
    perm = torch.randperm(n, device=waves.device)
    centred = waves - waves.mean(dim=-1, keepdim=True)
    mix = lam.view(-1, 1) * centred + (1 - lam.view(-1, 1)) * centred[perm]
    mix = mix - mix.mean(dim=-1, keepdim=True)
    lam_l = lam.view(-1, 1)
    out_waves = torch.where(mixed.view(-1, 1), mix, waves)
    out_logits = torch.where(mixed.view(-1, 1), lam_l * teacher_logits + (1 - lam_l) * teacher_logits[perm],
                             teacher_logits)
    out_targets = torch.where(mixed.view(-1, 1), torch.maximum(targets, targets[perm]), targets)
    return out_waves, out_logits, out_targets


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, targets: torch.Tensor,
                      weight: float) -> tuple[torch.Tensor, dict]:
    """``weight·BCE(logits, teacher_probs) + (1 - weight)·BCE(logits, targets)`` and both terms."""
    bce = nn.functional.binary_cross_entropy_with_logits
    kd, cls = bce(logits, teacher_probs), bce(logits, targets)
    return weight * kd + (1 - weight) * cls, {"kd": kd.detach(), "cls": cls.detach()}  # tensors: no host sync per step


def save_student(directory: Path, model: CPMobile) -> Path:
    """The distilled 527-class (or mini-class) student, atomically."""
    return save_torch({k: v.cpu() for k, v in model.state_dict().items()}, Path(directory) / STUDENT_FILE)


def finetune_student(student: CPMobile, n_classes: int = 10, seed: int | None = None) -> CPMobile:
    """The distilled student with its head replaced by a randomly initialised ``n_classes`` head (drawn
    from ``seed`` when given, so that it does not depend on what ran before)."""
    if seed is not None:
        torch.manual_seed(seed)
    return student.replace_head(n_classes)


def _threshold_suffix(threshold: float | None) -> str:
    return "" if threshold is None or float(threshold) == paper_threshold() else f"_t{threshold:g}"


def finetune_method(selection: str, threshold: float | None = None, kd_input: str | None = None) -> str:
    """Run name of the fine-tuned student: ``werning`` (pruned, the paper's threshold, whole clips),
    ``werning_random`` (the control), with ``_pieces`` for the 1 s-piece alternative and ``_t<threshold>``
    for the other thresholds of the Table-1 sweep."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    if kd_input not in (None, *KD_INPUTS):
        raise ValueError(f"unknown kd input {kd_input!r}; choose from {KD_INPUTS}")
    return (("werning" if selection == "pruned" else "werning_random") + ("_pieces" if kd_input == "pieces" else "")
            + _threshold_suffix(threshold))


def kd_run_dir(profile: str, split: int, seed: int, selection: str, threshold: float | None = None,
               kd_input: str | None = None) -> Path:
    """Directory of the distillation stage (``werning_kd...``, named like :func:`finetune_method`)."""
    method = finetune_method(selection, threshold, kd_input).replace("werning", "werning_kd", 1)
    return run_dir(profile, method, split, seed)
