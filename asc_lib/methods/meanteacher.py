"""Mean teacher (Tarvainen & Valpola), as Surkov fine-tunes EfficientAT with it.

The teacher is an exponential moving average of the student, ``ema = a·ema + (1 - a)·param`` after every
step with ``a = min(1 - 1/(step + 1), decay)``, over parameters only: the teacher runs in training mode
and keeps its own BatchNorm statistics, as in Tarvainen's code and the DCASE2024 Task 4 baseline (PyTorch's
``AveragedModel`` would copy the student's statistics into it, or average them). The loss is
``L_sup + α(t)·L_cons``: cross-entropy averaged over the labeled items, plus the mean squared error between
the student's and the (detached) teacher's softmax outputs on all items, each model seeing its own random
augmentation of the batch, as Tarvainen's code does (``TransformTwice``; the DCASE2024 Task 4 baseline
feeds both the same features). Tarvainen's code divides the summed cross-entropy by the whole batch
instead, so his consistency weight is 2-4x stronger relative to it (``params/surkov.yaml``). ``α(t)`` ramps up as ``exp(-5(1 - t)²)`` over the first 10 % of the
steps, stays constant for 10 %, then decays linearly to 0; its maximum is the recipe's
``consistency_weight``. How many labeled items each batch holds is the sampler's business
(:class:`asc_lib.training.loop.ComposedPlan`, the recipe's ``labeled_per_batch``).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from asc_lib.training.loop import Objective, logits_of


def ema_decay(step: int, max_decay: float) -> float:
    """The EMA factor at ``step`` (0-based): ``min(1 - 1/(step + 1), max_decay)``."""
    return min(1.0 - 1.0 / (step + 1), max_decay)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher = decay·teacher + (1 - decay)·student`` for parameters; buffers are the teacher's own."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)


def consistency_weight(step: int, total_steps: int, max_weight: float = 1.0, rampup: float = 0.1,
                       constant: float = 0.1) -> float:
    """Surkov's schedule of α: exponential ramp-up over ``rampup`` of the steps, constant for
    ``constant``, then linear decay to zero at the last step."""
    t = step / max(1, total_steps)
    if t < rampup:
        return max_weight * math.exp(-5.0 * (1.0 - t / rampup) ** 2)
    if t < rampup + constant:
        return max_weight
    return max_weight * max(0.0, (1.0 - t) / (1.0 - rampup - constant))


def consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """MSE between softmax outputs (teacher detached), averaged over items and classes."""
    return nn.functional.mse_loss(student_logits.float().softmax(-1), teacher_logits.detach().float().softmax(-1))


class MeanTeacher(Objective):
    """Mean-teacher objective; ``self.teacher`` (a copy of the student, updated by EMA) is checkpointed
    with the objective and is what :meth:`eval_model` returns. With a maximum weight of 0
    the teacher is not run (its term would be multiplied by 0): the student then trains exactly as plain
    fine-tuning on the same batches, and the teacher only averages it."""

    name = "mean_teacher"

    def __init__(self, augment: nn.Module, student: nn.Module, decay: float = 0.999, max_weight: float = 1.0,
                 rampup: float = 0.1, constant: float = 0.1):
        super().__init__(augment)
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.decay, self.max_weight, self.rampup, self.constant = decay, max_weight, rampup, constant

    def loss(self, model, batch, step):
        waves, labels = batch["waves"], batch["labels"]
        student = logits_of(model(self.inputs(waves)))
        labeled = (labels >= 0).float()  # the mean over the labeled items, 0 without any: no host synchronisation
        per_item = nn.functional.cross_entropy(student.float(), labels.clamp(min=0), reduction="none")
        sup = (per_item * labeled).sum() / labeled.sum().clamp(min=1.0)
        weight = consistency_weight(step, self.total_steps, self.max_weight, self.rampup, self.constant)
        if self.max_weight == 0:
            return sup, {"alpha": 0.0}
        with torch.no_grad():
            self.teacher.train(model.training)
            teacher = logits_of(self.teacher(self.inputs(waves)))
        return sup + weight * consistency_loss(student, teacher), {"alpha": weight}

    def after_step(self, model, step):
        ema_update(self.teacher, model, ema_decay(step, self.decay))

    def eval_model(self, model):
        return self.teacher


class EMAWithoutConsistency(MeanTeacher):
    """Mean teacher at consistency weight 0 as the reference code runs it (the ablation's variant): the
    teacher still runs, in training mode, on its own augmentation of every batch, so that its BatchNorm
    statistics follow its averaged weights (a teacher that never runs keeps the starting network's
    statistics and scores at chance), but nothing of it enters the loss. Its augmentation is drawn inside
    ``torch.random.fork_rng`` from a generator seeded by the epoch's seed and the step: deterministic, and
    the student's draws are exactly those of plain fine-tuning on the same batches."""

    name = "mean_teacher_w0"

    def loss(self, model, batch, step):
        loss, info = super().loss(model, batch, step)  # max_weight 0: the supervised term, teacher not run
        waves = batch["waves"]
        with torch.no_grad(), torch.random.fork_rng(devices=[waves.device] if waves.device.type == "cuda" else []):
            torch.manual_seed((torch.initial_seed() + _TEACHER_STREAM * (step + 1)) % 2**63)
            self.teacher.train(model.training)
            self.teacher(self.inputs(waves))
        return loss, info


_TEACHER_STREAM = 1_000_033  # the teacher's augmentation seeds, apart from the student's
