"""The training loop every notebook of the study shares.

Data live as one waveform tensor on the training device (see :mod:`asc_lib.data.audio`); batches are
gathered by index there, and roll, front end and augmentation run batched on the same device. What a
method optimises is an :class:`Objective` (supervised cross-entropy here; mean teacher and distillation
in their own modules). :func:`fit` checkpoints after every epoch (and every ``checkpoint_every`` optimizer
steps when the recipe sets it, for runs whose epochs are long) and resumes exactly: each epoch's shuffling
is seeded from ``(seed, epoch)`` and each step's augmentation from ``(seed, step)``, so a run killed and
restarted from its last checkpoint ends with the same weights as an uninterrupted one (on the CPU; CUDA's
scatter and gather backward passes are not bitwise deterministic).

A run is identified by its *fingerprint*: the recipe, the seed, the training data (their bytes), the
model's and the objective's configuration and initial weights, and the source of the study's code they
use (:mod:`asc_lib.config.provenance`). A checkpoint with another fingerprint is stale: the run is retrained,
and :class:`History` says whether a call trained, resumed or reused a run. ``ASC_RETRAIN=1`` in the
environment retrains every run (``python -m asc_lib.study.workflow --force`` sets it).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from asc_lib.config.progress import bar as progress_bar
from asc_lib.config.paths import CHECKPOINT, HISTORY, METRICS, OUTPUT

from asc_lib.config import paths, provenance
from asc_lib.config.atomic import atomic_path, exclusive, write_json
from asc_lib.data.rows import is_resident, loader_workers, memory_budget, moved, placement, read_ahead
from asc_lib.training import distributed
from asc_lib.training.device import configure, resolve_device

STALE_OUTPUTS = (METRICS, OUTPUT)  # results of a run that no longer matches its checkpoint
RETRAIN_ENV = "ASC_RETRAIN"
_UNLABELED_STREAM = 104_729  # the unlabeled stream's permutations are seeded apart from the labeled ones


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_fraction: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then cosine decay to ``min_fraction``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    return max(1, math.ceil(n_items / batch_size))


def total_epochs(recipe: dict, n_items: int) -> int:
    """``recipe['epochs']``, raised where needed so that training makes at least ``min_steps`` steps,
    and cut where ``max_steps`` ends training earlier (the last epoch then stops part-way). ``n_items``
    is what an epoch visits: all items, or the labeled ones under a fixed batch composition
    (:func:`epoch_items`)."""
    return math.ceil(total_steps(recipe, n_items) / steps_per_epoch(n_items, epoch_batch(recipe)))


def total_steps(recipe: dict, n_items: int) -> int:
    """Optimizer steps of a run: whole epochs (``epochs``, at least ``min_steps`` steps), capped at
    ``max_steps`` when the recipe sets one (0 or absent: no cap)."""
    per_epoch = steps_per_epoch(n_items, epoch_batch(recipe))
    epochs = max(int(recipe["epochs"]), math.ceil(recipe.get("min_steps", 0) / per_epoch))
    cap = int(recipe.get("max_steps", 0) or 0)
    return min(epochs * per_epoch, cap) if cap > 0 else epochs * per_epoch


def labeled_per_batch(recipe: dict) -> int:
    """Labeled items in every batch under a fixed composition (``labeled_per_batch``); 0: one pooled
    shuffle of all items. Checked against the batch size."""
    k = int(recipe.get("labeled_per_batch", 0) or 0)
    if not 0 <= k <= recipe["batch_size"]:
        raise ValueError(f"labeled_per_batch {k} must be between 0 (pooled batches) and the batch size "
                         f"{recipe['batch_size']}")
    return k


def epoch_batch(recipe: dict) -> int:
    """Items of the kind an epoch counts in each batch: the labeled ones under a fixed composition, else all."""
    return labeled_per_batch(recipe) or recipe["batch_size"]


def epoch_items(recipe: dict, labels: torch.Tensor) -> int:
    """How many items an epoch visits: the labeled ones (label >= 0) under a fixed composition, else all."""
    return int((_cpu(labels) >= 0).sum()) if labeled_per_batch(recipe) else len(labels)


def _cpu(labels) -> torch.Tensor:
    return labels.cpu() if is_resident(labels) else labels[torch.arange(len(labels))]


def warmup_steps(recipe: dict, total_steps: int) -> int:
    """Warm-up length: ``warmup_fraction`` of all steps when the recipe gives one, else ``warmup_steps``."""
    fraction = float(recipe.get("warmup_fraction", 0) or 0)
    return int(round(fraction * total_steps)) if fraction > 0 else int(recipe.get("warmup_steps", 0))


def eval_epochs(epochs: int, eval_points: int) -> list[int]:
    """Epochs (1-based) after which to evaluate: all of them when ``eval_points`` is 0, else that many,
    evenly spaced and always including the last."""
    if eval_points <= 0 or eval_points >= epochs:
        return list(range(1, epochs + 1))
    return sorted({round(epochs * (i + 1) / eval_points) for i in range(eval_points)})


@dataclass
class TrainData:
    """Training items: ``waves (n, samples)``, ``labels (n,)`` (-1 = unlabeled) and any per-item ``extras``
    (e.g. cached teacher outputs), all indexed alike. Each is a tensor on the training device or, when the
    data exceed the memory budget, rows read from disk batch by batch (:mod:`asc_lib.data.rows`)."""

    waves: torch.Tensor
    labels: torch.Tensor
    extras: dict = field(default_factory=dict)
    names: list | None = None   # what each item is (e.g. its clip's file name), for error messages

    def __post_init__(self):
        n = len(self.waves)
        for name, t in [("labels", self.labels), *self.extras.items(), *([("names", self.names)] * bool(self.names))]:
            if len(t) != n:
                raise ValueError(f"TrainData: {name} has {len(t)} rows, waves has {n}")

    def describe(self, index: torch.Tensor, most: int = 8) -> str:
        """The items ``index`` in words: their names where known, else their row numbers."""
        rows = [int(i) for i in index.flatten().tolist()]
        shown = [self.names[i] if self.names else f"item {i}" for i in rows[:most]]
        return ", ".join(shown) + (f" and {len(rows) - most} more" if len(rows) > most else "")

    def __len__(self) -> int:
        return len(self.waves)

    @property
    def resident(self) -> bool:
        """True when every field is a tensor (nothing is read from disk)."""
        return all(is_resident(t) for t in (self.waves, self.labels, *self.extras.values()))

    def to(self, device, budget: int | None = None) -> "TrainData":
        """Tensors moved to ``device`` as far as they fit its ``budget`` (default
        :func:`asc_lib.data.rows.memory_budget` of the device: on a GPU a share of its free memory), the smallest
        first; the others stay in host memory and rows on disk stay there (their batches are moved)."""
        device = torch.device(device)
        tensors = {k: t for k, t in self.fields().items() if is_resident(t)}
        if device.type == "cpu":
            onto = set(tensors)
        else:
            budget = memory_budget(device) if budget is None else budget
            onto = placement({k: t.nelement() * t.element_size() for k, t in tensors.items()
                              if t.device != device}, budget) | {k for k, t in tensors.items() if t.device == device}
        move = lambda k, t: moved(t, device) if k in onto else t  # noqa: E731
        return TrainData(move("waves", self.waves), move("labels", self.labels),
                         {k: move(k, v) for k, v in self.extras.items()}, self.names)

    def batch(self, index: torch.Tensor, device: torch.device | None = None) -> dict:
        """The items ``index`` of every field, gathered where each lives, then moved to ``device`` if given."""
        out = {k: t[index.to(t.device)] if is_resident(t) else t[index] for k, t in self.fields().items()}
        if device is not None:
            out = {k: t.to(device, non_blocking=True) for k, t in out.items()}
        return {"index": index, **out}


    def fields(self) -> dict:
        return {"waves": self.waves, "labels": self.labels, **self.extras}


class BatchPlan:
    """Which items each optimizer step takes: epoch ``e`` visits the items in the order of a permutation
    seeded by ``(seed, e)``, ``batch_size`` at a time, and under ``torchrun`` each rank takes its share of
    every global batch. Any step's batch can be computed on its own (the epoch's permutation is kept), in
    the training process or in a DataLoader worker."""

    def __init__(self, n: int, batch_size: int, seed: int, here: "distributed.World"):
        self.n, self.batch_size, self.seed, self.here = n, batch_size, seed, here
        self.per_epoch = steps_per_epoch(n, batch_size)
        self._epoch, self._order = None, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_epoch_seed(self.seed, epoch)))
            self._epoch = epoch
        return self._order

    def global_index(self, step: int) -> torch.Tensor:
        """The items of global batch ``step`` (all ranks)."""
        epoch, i = divmod(step, self.per_epoch)
        return self._permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def index(self, step: int) -> torch.Tensor:
        """This rank's items of batch ``step``."""
        return distributed.rank_batch(self.global_index(step), self.here)


class ComposedPlan(BatchPlan):
    """Batches of fixed composition, as mean-teacher code draws them (Tarvainen's two-stream sampler: 31
    labeled of 128; the DCASE2024 Task 4 baseline: 36 of 60): every batch holds ``labeled`` labeled items and ``batch_size - labeled``
    unlabeled ones. An epoch is one pass over the labeled items, in the order of a permutation seeded by
    ``(seed, e)`` (its last batch topped up from the start of the same permutation, so that every batch
    is full); the unlabeled items are an endless stream of permutations of their own. Without unlabeled
    items a batch is its ``labeled`` items alone, ordered as :class:`BatchPlan` orders them."""

    def __init__(self, labels: torch.Tensor, batch_size: int, labeled: int, seed: int, here: "distributed.World"):
        labels = _cpu(labels)
        self.labeled_items = torch.nonzero(labels >= 0).flatten()
        self.unlabeled_items = torch.nonzero(labels < 0).flatten()
        if labeled < 1 or len(self.labeled_items) == 0:
            raise ValueError(f"a fixed batch composition needs labeled items and labeled_per_batch >= 1 "
                             f"(got {len(self.labeled_items)} labeled items, labeled_per_batch {labeled})")
        super().__init__(len(self.labeled_items), labeled, seed, here)
        self.unlabeled = batch_size - labeled if len(self.unlabeled_items) else 0
        self._cycle, self._stream = None, None

    def _labeled(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        order = self._permutation(epoch)
        span = torch.arange(i * self.batch_size, (i + 1) * self.batch_size) % self.n  # top-up wraps round
        return self.labeled_items[order[span]]

    def _unlabeled(self, step: int) -> torch.Tensor:
        n_u = len(self.unlabeled_items)
        positions = torch.arange(step * self.unlabeled, (step + 1) * self.unlabeled)
        out = torch.empty(len(positions), dtype=torch.long)
        for cycle in positions.div(n_u, rounding_mode="floor").unique().tolist():
            if cycle != self._cycle:
                self._stream = torch.randperm(n_u, generator=torch.Generator().manual_seed(
                    _epoch_seed(self.seed, cycle) + _UNLABELED_STREAM))
                self._cycle = cycle
            here = positions.div(n_u, rounding_mode="floor") == cycle
            out[here] = self.unlabeled_items[self._stream[positions[here] % n_u]]
        return out

    def global_index(self, step: int) -> torch.Tensor:
        if not self.unlabeled:
            return self._labeled(step)
        return torch.cat([self._labeled(step), self._unlabeled(step)])


def batch_plan(recipe: dict, labels: torch.Tensor, seed: int, here: "distributed.World") -> BatchPlan:
    """The plan of a run: pooled batches (:class:`BatchPlan`) or, when the recipe names
    ``labeled_per_batch``, batches of fixed composition (:class:`ComposedPlan`)."""
    k = labeled_per_batch(recipe)
    if k:
        return ComposedPlan(labels, recipe["batch_size"], k, seed, here)
    return BatchPlan(len(labels), recipe["batch_size"], seed, here)


class _Steps(torch.utils.data.Dataset):
    """Steps ``first..last-1`` of a plan: the fields that live on disk, read by DataLoader workers ahead of
    the training step, with the batch's index."""

    def __init__(self, fields: dict, plan: BatchPlan, first: int, last: int):
        self.fields, self.plan, self.first, self.last = fields, plan, first, last

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, k: int) -> dict:
        index = self.plan.index(self.first + k)
        return {"index": index, **{name: rows[index] for name, rows in self.fields.items()}}


def step_batches(data: TrainData, plan: BatchPlan, first: int, last: int, device: torch.device,
                 workers: int | None = None):
    """The batches of steps ``first..last-1`` of ``plan`` on ``device``, in order: resident fields gathered
    in place; fields on disk read by ``workers`` DataLoader processes (default
    :func:`asc_lib.data.rows.loader_workers`, started once for the whole run) with prefetch. Either way the
    same tensors, so the same weights."""
    if data.resident:
        for step in range(first, last):
            yield data.batch(plan.index(step).to(device), device)
        return
    fields = data.fields()
    lazy = {name: rows for name, rows in fields.items() if not is_resident(rows)}
    workers = loader_workers() if workers is None else workers
    for read in read_ahead(_Steps(lazy, plan, first, last), workers, pin_memory=device.type == "cuda"):
        index = read["index"]
        batch = {"index": index.to(device)}
        for name, rows in fields.items():
            batch[name] = (read[name] if name in lazy else rows[index.to(rows.device)]).to(device, non_blocking=True)
        yield batch


def logits_of(output) -> torch.Tensor:
    """Logits of a model's output (EfficientAT returns ``(logits, features)``)."""
    return output[0] if isinstance(output, tuple) else output


class Objective(nn.Module):
    """What a method optimises. Subclasses implement :meth:`loss`; state (e.g. an EMA teacher) lives in
    submodules or buffers, so it is checkpointed with ``state_dict``."""

    name = "objective"

    def __init__(self, augment: nn.Module):
        super().__init__()
        self.augment = augment
        self.channels_last = False
        self.total_steps = 1  # set by fit()

    def inputs(self, waves: torch.Tensor) -> torch.Tensor:
        """Augmented spectrograms, channels-last when the recipe asks for it."""
        spec = self.augment(waves)
        return spec.contiguous(memory_format=torch.channels_last) if self.channels_last else spec

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimizer step (mean teacher updates its EMA here)."""

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The model to evaluate (the student by default)."""
        return model


class Supervised(Objective):
    """Cross-entropy on the labeled items of each batch (the DCASE2024 baseline)."""

    name = "supervised"

    def loss(self, model, batch, step):
        labeled = batch["labels"] >= 0
        x = self.inputs(batch["waves"][labeled])
        logits = logits_of(model(x))
        loss = nn.functional.cross_entropy(logits.float(), batch["labels"][labeled])
        return loss, {}


def data_digest(data: TrainData) -> str:
    """Digest of the training items as the loop sees them: waveforms, labels and every extra."""
    extras = [data.extras[k] for k in sorted(data.extras)]
    return provenance.tensor_digest(data.waves, data.labels, *extras) + ":" + ",".join(sorted(data.extras))


def evaluation_identity(evaluate: Callable[[nn.Module], dict] | None, recipe: dict) -> str | None:
    """What the accuracy curve of a run is measured on, when the recipe evaluates during training: the
    evaluator's ``identity`` (the test split's clips, labels and precision: :meth:`SceneTask.evaluator`), or
    the source of an evaluator without one. None when nothing is evaluated along the way."""
    if evaluate is None or not int(recipe.get("eval_points", 0)):
        return None
    return getattr(evaluate, "identity", None) or "code:" + provenance.code_digest(evaluate)


def fingerprint_parts(recipe: dict, seed: int, data: TrainData, model: nn.Module, objective: Objective,
                      evaluation: str | None = None) -> dict:
    """What identifies a run: recipe (without its reporting-only keys), seed, data, the model's and the
    objective's configuration and initial state, the source of the code they and the loop use, and, when
    the run is scored along the way, what it is scored on (``evaluation``: its curve is part of the run)."""
    keys = {k: v for k, v in recipe.items() if k not in ("eval_points", "deviations", "checkpoint_every")}
    return {
        "recipe": json.loads(json.dumps(keys, sort_keys=True, default=str)),
        "seed": int(seed),
        "n_items": len(data),
        "data": data_digest(data),
        "model": provenance.module_digest(model),
        "objective": provenance.module_digest(objective),
        "code": provenance.code_digest(model, objective, fit),
        **({"evaluation": evaluation} if evaluation is not None else {}),
    }


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class History(list):
    """Per-epoch records of a run, and how :func:`fit` obtained them: ``status`` is ``trained`` (from
    scratch), ``resumed`` (from an interrupted run), ``reused`` (a finished run with the same
    fingerprint) or ``retrained`` (the checkpoint was stale; ``reason`` says what differed)."""

    def __init__(self, records=(), status: str = "trained", fingerprint: str = "", reason: str = "",
                 start_epoch: int = 0, start_step: int = 0):
        super().__init__(records)
        self.status, self.fingerprint, self.reason, self.start_epoch = status, fingerprint, reason, start_epoch
        self.start_step = start_step  # steps of epoch start_epoch + 1 already done (a mid-epoch checkpoint)
        self.partial_loss = 0.0       # their summed loss (mean over ranks)

    def summary(self) -> str:
        """One sentence for the notebook: what was done, how long the run is."""
        epochs, steps = len(self), (self[-1]["step"] if self else 0)
        size = f"{epochs} epochs, {steps} steps"
        if self.status == "reused":
            return f"reused the finished run ({size}; same code, data, recipe and seed: fingerprint {self.fingerprint})"
        if self.status == "resumed":
            where = f"epoch {self.start_epoch}" + (f" and {self.start_step} steps" if self.start_step else "")
            return f"resumed an interrupted run after {where} and finished it ({size})"
        if self.status == "retrained":
            return f"retrained: the saved run was stale ({self.reason}); {size}"
        return f"trained from scratch ({size})"

    def info(self) -> dict:
        """The run's provenance for ``metrics.json``."""
        return {"status": self.status, "fingerprint": self.fingerprint, "reason": self.reason,
                "epochs": len(self), "steps": self[-1]["step"] if self else 0}


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _step_seed(seed: int, step: int, rank: int) -> int:
    """The global RNG's seed for optimizer step ``step`` (augmentation, MixUp, noise): a run resumed at any
    step draws what the uninterrupted run drew; each of up to 64 ranks draws its own."""
    return (seed * 2_000_029 + step) * 64 + rank % 64


def load_checkpoint(run_dir: str | Path) -> dict | None:
    """The checkpoint of ``run_dir``, or None; a damaged or unsafe file raises an error naming it
    (loaded with ``weights_only=True``: only tensors and plain containers)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return provenance.load_torch(path, "checkpoint")
    except ValueError as err:
        raise RuntimeError(f"{err}; delete it to start over") from err


def _stale_reason(saved: dict | None, parts: dict) -> str:
    if os.environ.get(RETRAIN_ENV, "") not in ("", "0"):
        return f"{RETRAIN_ENV} is set"
    if not saved:
        return "the checkpoint predates run fingerprints"
    changed = [k for k in parts if saved.get(k) != parts[k]]
    return "changed: " + ", ".join(changed) if changed else "fingerprint differs"


def train_step(net: nn.Module, model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer,
               scheduler, batch: dict, step: int, device: torch.device, amp: bool) -> torch.Tensor:
    """One optimizer step of ``objective`` on ``batch`` (``net`` is ``model`` or its DDP wrapper); returns
    the detached loss. :func:`fit` and the benchmark's reference data path both train through it."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss, _ = objective.loss(net, batch, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    objective.after_step(model, step)
    return loss.detach()


@dataclass
class Session:
    """Everything one call of :func:`fit` set up: the model, objective and data on the device, the
    optimizer and schedule, the step and epoch counts and the run's fingerprint."""

    model: nn.Module
    objective: Objective
    data: TrainData
    recipe: dict
    run_dir: Path
    seed: int
    device: torch.device
    here: distributed.World
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_epoch: int
    steps: int
    epochs: int
    evals: set
    use_amp: bool
    parts: dict
    fingerprint: str


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}  # a recipe's ``optimizer:``


def build_optimizer(params, recipe: dict) -> torch.optim.Optimizer:
    """The recipe's ``optimizer`` (``adamw``: decoupled weight decay; ``adam``: weight decay as an L2 term)
    with its ``lr`` and ``weight_decay`` (0 when the recipe has none)."""
    name = recipe.get("optimizer", "adamw")
    if name not in OPTIMIZERS:
        raise ValueError(f"recipe optimizer {name!r} is not one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=recipe["lr"], weight_decay=recipe.get("weight_decay", 0.0))


def setup(model: nn.Module, objective: Objective, data: TrainData, recipe: dict, run_dir: str | Path, seed: int = 0,
          device: str | torch.device | None = None, evaluation: str | None = None) -> Session:
    """Move model, objective and data to the device; build the recipe's optimizer and the warm-up-cosine schedule; count
    steps and epochs; fingerprint the run."""
    device = resolve_device(device)
    configure(device)  # TF32 matmuls and cuDNN's autotuner on CUDA
    channels_last = bool(recipe.get("channels_last", False))
    objective.channels_last = channels_last
    model.to(device)
    objective.to(device)
    if channels_last:  # the objective's models too (a mean teacher's EMA copy): one memory format per forward
        model.to(memory_format=torch.channels_last)
        objective.to(memory_format=torch.channels_last)
    data = data.to(device)
    n = epoch_items(recipe, data.labels)
    steps, epochs = total_steps(recipe, n), total_epochs(recipe, n)
    objective.total_steps = steps
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, recipe)
    warmup = warmup_steps(recipe, steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(
        s, steps, warmup, float(recipe.get("min_lr_fraction", 0.0))))
    parts = fingerprint_parts(recipe, seed, data, model, objective, evaluation)
    return Session(model, objective, data, recipe, Path(run_dir), seed, device, distributed.world(), optimizer,
                   scheduler, steps_per_epoch(n, epoch_batch(recipe)), steps, epochs,
                   set(eval_epochs(epochs, int(recipe.get("eval_points", 0)))),
                   bool(recipe.get("amp", False)) and device.type == "cuda", parts, _fingerprint(parts))


def resume(session: Session) -> History:
    """The run's history so far: a checkpoint with the session's fingerprint is loaded (model, objective,
    optimizer, schedule; ``history.start_epoch`` says where training continues); one with another
    fingerprint is stale and removed, with its results, so that the run trains from scratch."""
    history = History(fingerprint=session.fingerprint)
    state = load_checkpoint(session.run_dir)
    if state is None:
        return history
    if state.get("fingerprint") != session.fingerprint or os.environ.get(RETRAIN_ENV, "") not in ("", "0"):
        history.status, history.reason = "retrained", _stale_reason(state.get("fingerprint_parts"), session.parts)
        if session.here.main:
            for name in STALE_OUTPUTS + (CHECKPOINT,):
                (session.run_dir / name).unlink(missing_ok=True)
        return history
    session.model.load_state_dict(state["model"])
    session.objective.load_state_dict(state["objective"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    history[:], history.start_epoch = state["history"], state["epoch"]
    history.start_step, history.partial_loss = int(state.get("step_in_epoch", 0)), float(state.get("loss_sum", 0.0))
    history.status = "reused" if history.start_epoch >= session.epochs else "resumed"
    return history


def run_epoch(session: Session, net: nn.Module, batches, epoch: int,
              evaluate: Callable[[nn.Module], dict] | None = None,
              on_step_end: Callable[[int], None] | None = None, first: int = 0, partial_loss: float = 0.0,
              save: Callable[[int, float], None] | None = None) -> dict:
    """Train one epoch (each step's augmentations seeded from ``(seed, step)`` and the rank) on the next
    batches of ``batches``, from its step ``first`` (a mid-epoch checkpoint's, whose summed loss is
    ``partial_loss``); every ``checkpoint_every`` steps within the epoch ``save(steps_done, loss_sum)``;
    score the test split when the epoch is an evaluation point; return the epoch's record (mean loss over
    ranks, learning rate, test metrics)."""
    s = session
    s.model.train()
    s.objective.train()
    loss_sum = torch.full((), partial_loss, device=s.device)
    every = int(s.recipe.get("checkpoint_every", 0) or 0)
    in_epoch = min(s.per_epoch, s.steps - epoch * s.per_epoch)  # the last epoch stops part-way under max_steps
    for i in range(first, in_epoch):
        step = epoch * s.per_epoch + i
        torch.manual_seed(_step_seed(s.seed, step, s.here.rank))
        batch = next(batches)
        loss = train_step(net, s.model, s.objective, s.optimizer, s.scheduler, batch, step, s.device, s.use_amp)
        if not bool(torch.isfinite(loss)):  # stop at once: a non-finite loss poisons every later step
            raise FloatingPointError(f"{paths.shown(s.run_dir)}: the loss is {float(loss)} at step {step} (epoch "
                                     f"{epoch + 1}); the run stops unfinished (nothing stored as trained). Items of "
                                     f"that batch: {s.data.describe(batch['index'])}")
        loss_sum += loss
        if save is not None and every > 0 and (step + 1) % every == 0 and i + 1 < in_epoch:
            save(i + 1, float(distributed.mean_over_ranks(loss_sum)))
        if on_step_end is not None:
            on_step_end(step)
    record = {"epoch": epoch + 1, "step": epoch * s.per_epoch + in_epoch,
              "loss": float(distributed.mean_over_ranks(loss_sum)) / in_epoch,
              "lr": s.optimizer.param_groups[0]["lr"]}
    if evaluate is not None and epoch + 1 in s.evals:
        record.update(distributed.broadcast(_evaluate_models(s, evaluate) if s.here.main else None))
    return record


def _evaluate_models(s: Session, evaluate: Callable[[nn.Module], dict]) -> dict:
    """The evaluated model's scores and, when the objective evaluates another model than the one it trains
    (a mean teacher's EMA), the trained student's scores as ``student_<name>``."""
    evaluated = s.objective.eval_model(s.model)
    scores = evaluate(evaluated)
    if evaluated is not s.model:
        scores.update({f"student_{k}": v for k, v in evaluate(s.model).items()})
    return scores


def fit(
    model: nn.Module,
    objective: Objective,
    data: TrainData,
    recipe: dict,
    run_dir: str | Path,
    seed: int = 0,
    device: str | torch.device | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    on_step_end: Callable[[int], None] | None = None,
) -> History:
    """Train ``model`` on ``data`` with ``objective`` under ``recipe``; return the per-epoch :class:`History`.

    Resumes from ``run_dir/checkpoint.pt`` when one exists with the same fingerprint (recipe, seed, data,
    model, objective and code); a finished one is reused at once. A checkpoint with another fingerprint
    is stale: its run's results are removed and the run is trained again from scratch.
    Whatever happened, the global RNG ends in the state that ``(seed, epochs)`` determines, so what a
    notebook draws after ``fit`` does not depend on whether the run was trained or reused.
    ``evaluate(model)`` runs at the recipe's ``eval_points`` and its dict joins the history;
    ``on_step_end(step)`` and ``on_epoch_end(epoch, record)`` are called after each step and epoch.
    Under ``torchrun`` (see :mod:`asc_lib.training.distributed`) the model is wrapped in DistributedDataParallel,
    each rank trains on its share of every global batch, and rank 0 alone evaluates and checkpoints.
    """
    s = setup(model, objective, data, recipe, run_dir, seed, device, evaluation_identity(evaluate, recipe))
    # one process per run folder (rank 0 holds it under torchrun): a second would delete this one's checkpoint
    with exclusive(s.run_dir, "run folder") if s.here.main else contextlib.nullcontext():
        return _fit(s, model, objective, recipe, seed, evaluate, on_epoch_end, on_step_end)


def _fit(s: "Session", model, objective, recipe, seed, evaluate, on_epoch_end, on_step_end) -> History:
    """:func:`fit` once the run folder is held."""
    history = resume(s)
    start_epoch = history.start_epoch
    if start_epoch < s.epochs:
        if recipe.get("feature_cache", False):  # the front end once for all epochs (the recipe's named deviation)
            if not s.data.resident:
                raise ValueError("feature_cache needs the training data resident, but they exceed the memory budget "
                                 f"and stream from disk ({s.data.waves!r}); set feature_cache: false in the recipe "
                                 "or raise ASC_MEMORY_BUDGET_GB")
            s.data = TrainData(objective.augment.features(s.data.waves), s.data.labels, s.data.extras, s.data.names)
            objective.augment.precomputed = True
        # Under torchrun every rank takes an equal share of each global batch; DDP averages the gradients.
        net = model if s.here.size == 1 else nn.parallel.DistributedDataParallel(
            model, device_ids=[s.device.index] if s.device.type == "cuda" else None)
        bar = progress_bar(total=s.epochs, initial=start_epoch, desc=f"{objective.name} {len(s.data)} items", unit="epoch",
                           disable=not s.here.main, mininterval=2.0)
        batches = step_batches(s.data, batch_plan(recipe, s.data.labels, seed, s.here),
                               start_epoch * s.per_epoch + history.start_step, s.steps, s.device)
        for epoch in range(start_epoch, s.epochs):
            def save(done: int, loss_sum: float, epoch=epoch) -> None:  # a mid-epoch checkpoint
                if s.here.main:
                    _save(s.run_dir, model, objective, s.optimizer, s.scheduler, epoch, list(history), s.fingerprint,
                          s.parts, recipe, seed, step_in_epoch=done, loss_sum=loss_sum)
                distributed.barrier()
            first, partial = (history.start_step, history.partial_loss) if epoch == start_epoch else (0, 0.0)
            record = run_epoch(s, net, batches, epoch, evaluate, on_step_end, first, partial, save)
            history.append(record)
            if s.here.main:
                _save(s.run_dir, model, objective, s.optimizer, s.scheduler, epoch + 1, list(history), s.fingerprint,
                      s.parts, recipe, seed)
            distributed.barrier()
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k in ("loss", "accuracy")}, refresh=False)
            bar.update(1)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record)
        bar.close()
        objective.augment.precomputed = False
    model.eval()
    torch.manual_seed(_epoch_seed(seed, s.epochs))
    return history


def _save(run_dir, model, objective, optimizer, scheduler, epoch, history, fingerprint, parts, recipe, seed,
          step_in_epoch: int = 0, loss_sum: float = 0.0) -> None:
    """The run's checkpoint after ``epoch`` whole epochs and ``step_in_epoch`` steps of the next one."""
    state = {
        "model": model.state_dict(), "objective": objective.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "epoch": epoch, "step_in_epoch": step_in_epoch, "loss_sum": loss_sum,
        "history": history, "fingerprint": fingerprint, "fingerprint_parts": parts,
        "recipe": json.loads(json.dumps(recipe, default=str)), "seed": int(seed),
    }
    with atomic_path(Path(run_dir) / CHECKPOINT, suffix=".pt") as tmp:
        torch.save(state, tmp)
    write_json(Path(run_dir) / HISTORY, history)
