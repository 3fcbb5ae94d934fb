"""Werning's stages 2 and 3: the selected AudioSet clips cut into pieces with the teacher's logits, the
multi-label distillation objective, the 527-class CP-Mobile student and its fine-tuning with a new
10-class head; how the runs are named. Settings: ``params/werning.yaml`` (``kd``, ``finetune``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from asc_lib.config import DataPaths
from asc_lib.config.provenance import save_torch
from asc_lib.features.augment import Augment, AugmentConfig, mixup
from asc_lib.features.frontend import build_frontend, output_shape
from asc_lib.methods.domain_selection import (
    SELECTIONS,
    embed,
    embedding_key,
    paper_threshold,
    teacher_for,
    teacher_sample_rate,
)
from asc_lib.methods.tagger import class_index, class_logits, tagging_data
from asc_lib.models import complexity
from asc_lib.models.cpmobile import CPMobile, build_cp_mobile
from asc_lib.training.experiment import RunSpec, SceneTask, run_dir, train_and_evaluate
from asc_lib.training.loop import Objective, Supervised, TrainData, fit, logits_of

STUDENT_FILE = "student527.pt"


# --- distillation on the selected clips ----------------------------------------------------------------

def frontend(recipe: dict, device="cpu") -> nn.Module:
    """The recipe's front end on ``device``."""
    return build_frontend(recipe["frontend"]).to(device)


def kd_data(segments: pd.DataFrame, data: DataPaths, recipe: dict, device="cpu",
            progress: bool = True) -> tuple[TrainData, pd.DataFrame]:
    """1 s pieces of the selected clips at the recipe's sample rate, with their AudioSet targets
    (``extras["targets"]``), and the clips they come from (absent ones dropped)."""
    rate = frontend(recipe).sample_rate
    return tagging_data(segments, data, class_index(data), rate, device, progress)


def piece_logits(teacher: nn.Module, data: TrainData, segments: pd.DataFrame, embedding: str, teacher_id: str,
                 device="cpu", progress: bool = True) -> torch.Tensor:
    """Teacher logits for every 1 s piece of ``data`` (offline KD): computed once, then read from disk."""
    rate = teacher_sample_rate(teacher)
    key = embedding_key(embedding, f"kd-pieces-{len(data)}@{rate}", segments["YTID"], teacher_id)
    if data.waves.shape[1] != rate:
        raise ValueError(f"the teacher takes {rate} Hz but the pieces have {data.waves.shape[1]} samples per second; "
                         "Werning's student and teacher both run at 32 kHz")
    return embed(teacher, data.waves, key, device, progress)


def distillation_data(segments: pd.DataFrame, prune: dict, kd: dict, profile: str, data: DataPaths, device="cpu",
                      progress: bool = True) -> tuple[TrainData, pd.DataFrame]:
    """Werning's distillation set: the 1 s pieces of the selected ``segments`` with their AudioSet targets
    and the embedding teacher's logits of the profile's classes (``extras["teacher_logits"]``, cached; a
    released 527-class tagger's columns of the mini classes on the mini data), and the clips found."""
    teacher, teacher_id = teacher_for(prune, profile, data, device, progress=False)
    pieces, segments = kd_data(segments, data, kd, device, progress=False)
    logits = piece_logits(teacher, pieces, segments, prune["embedding"], teacher_id, device, progress=progress)
    pieces.extras["teacher_logits"] = class_logits(teacher, logits, class_index(data)).to(device)
    return pieces, segments


def distil(pieces: TrainData, kd: dict, directory: Path, seed: int, device="cpu", progress: bool = True):
    """Distil the teacher's logits into a CP-Mobile with one output per AudioSet class of ``pieces`` (initialised
    from ``seed``), by the recipe, into ``directory`` (resumed or reused); saves the student. Returns the
    student and the history."""
    torch.manual_seed(seed)
    student = build_cp_mobile(n_classes=pieces.extras["targets"].shape[1])
    objective = MultiLabelDistillation(Augment(frontend(kd, device), AugmentConfig.from_recipe(kd)),
                                       kd["distillation_weight"], kd["mixup_alpha"])
    history = fit(student, objective, pieces, kd, directory, seed=seed, device=device, progress=progress)
    save_student(directory, student)
    return student, history


def finetune(task: SceneTask, spec: RunSpec, student: CPMobile, recipe: dict, info: dict | None = None,
             progress: bool = True):
    """Werning's stage 3: the distilled student with a new 10-class head (drawn from the run's seed), trained on
    the task's split by the fine-tuning recipe (the baseline's settings); returns metrics, history and cost."""
    model = finetune_student(student.cpu(), 10, seed=spec.seed)
    cost = complexity.measure(model, (1, 1, *output_shape(recipe["frontend"])))
    if not cost.passes:
        raise ValueError(f"the fine-tuned student breaks the DCASE limits: {cost}")
    metrics, history = train_and_evaluate(task, spec, model, Supervised(Augment(task.frontend,
                                                                                AugmentConfig.from_recipe(recipe))),
                                          recipe, cost=cost, info=info, progress=progress)
    return metrics, history, cost


def kd_summary(segments: pd.DataFrame, data: TrainData) -> pd.DataFrame:
    """Clips, pieces and labels of the distillation set."""
    targets = data.extras["targets"]
    return pd.DataFrame([{"AudioSet clips": len(segments), "1 s pieces": len(data),
                          "classes (student head)": targets.shape[1],
                          "labels per piece (mean)": round(float(targets.sum(1).mean()), 2)}])


class MultiLabelDistillation(Objective):
    """Werning's loss: ``λ·BCE(student, sigmoid(teacher)) + (1 - λ)·BCE(student, AudioSet labels)``, both
    multi-label, with MixUp (targets and teacher outputs mixed alike) and SpecAugment on the student input
    only. Needs ``batch["teacher_logits"]`` and ``batch["targets"]``."""

    name = "multilabel_kd"

    def __init__(self, augment: nn.Module, distillation_weight: float = 0.9, mixup_alpha: float = 0.3):
        super().__init__(augment)
        if not 0 <= distillation_weight <= 1:
            raise ValueError(f"distillation_weight must be in [0, 1], got {distillation_weight}")
        self.weight, self.mixup_alpha = distillation_weight, mixup_alpha

    def loss(self, model, batch, step):
        x = self.inputs(batch["waves"])
        soft, hard = torch.sigmoid(batch["teacher_logits"].float()), batch["targets"].float()
        if self.mixup_alpha > 0:
            x, perm, lam = mixup(x, self.mixup_alpha)
            lam = lam.view(-1, 1).float()
            soft, hard = lam * soft + (1 - lam) * soft[perm], lam * hard + (1 - lam) * hard[perm]
        logits = logits_of(model(x)).float()
        return distillation_loss(logits, soft, hard, self.weight)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, targets: torch.Tensor,
                      weight: float) -> tuple[torch.Tensor, dict]:
    """``weight·BCE(logits, teacher_probs) + (1 - weight)·BCE(logits, targets)`` and both terms."""
    bce = nn.functional.binary_cross_entropy_with_logits
    kd, cls = bce(logits, teacher_probs), bce(logits, targets)
    return weight * kd + (1 - weight) * cls, {"kd": float(kd.detach()), "cls": float(cls.detach())}


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


def finetune_method(selection: str, threshold: float | None = None) -> str:
    """Run name of the fine-tuned student: ``werning`` (pruned, the paper's threshold), ``werning_random``
    (the control), with ``_t<threshold>`` appended for the other thresholds of the Table-1 sweep."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    return ("werning" if selection == "pruned" else "werning_random") + _threshold_suffix(threshold)


def kd_run_dir(profile: str, split: int, seed: int, selection: str, threshold: float | None = None) -> Path:
    """Directory of the distillation stage (``werning_kd...``, named like :func:`finetune_method`)."""
    method = finetune_method(selection, threshold).replace("werning", "werning_kd", 1)
    return run_dir(profile, method, split, seed)
