"""Surkov's glue: where the label-filtered subsets live, the EfficientAT teacher to fine-tune,
and labeled + unlabeled training data. Settings: ``params/surkov.yaml``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from asc_lib.config import DataPaths, paths, profile_recipe, provenance
from asc_lib.config.provenance import load_state, load_torch, save_torch
from asc_lib.data import audioset
from asc_lib.data.rows import concat
from asc_lib.data.unlabeled import subset_pieces
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import load_preset, output_shape
from asc_lib.methods.labelfilter import draw_subset
from asc_lib.methods.meanteacher import EMAWithoutConsistency, MeanTeacher
from asc_lib.methods.tagger import framed_banner, starting_weights
from asc_lib.models import complexity
from asc_lib.models.cpmobile import build_cp_mobile
from asc_lib.models.efficientat import build_efficientat, load_efficientat
from asc_lib.models.pretrained import Checkpoint, catalogue_entry
from asc_lib.models.layers import set_bn_momentum
from asc_lib.training import loop
from asc_lib.training.distill import distillation_objective, teacher_outputs
from asc_lib.config.paths import METRICS, TEACHER_FILE, run_dir, subset_path
from asc_lib.training.experiment import RunSpec, SceneTask, read_metrics, train_and_evaluate
from asc_lib.training.loop import History, Objective, Supervised, TrainData

SUBSETS = ("none", "small", "large")


def load_subset(profile: str, name: str) -> pd.DataFrame:
    """A label-filtered subset; a clear error says which notebook writes it when it is missing."""
    if name not in SUBSETS[1:]:
        raise ValueError(f"unknown subset {name!r}; choose from {SUBSETS}")
    return audioset.read_subset(subset_path(profile, name),
                                made_by=f"notebooks/01_audioset_label_filtering.ipynb with profile {profile!r}")


def source_lists(data: DataPaths, names) -> dict[str, pd.DataFrame]:
    """The segment lists ``names`` that exist under the profile's AudioSet folder (at least one)."""
    found = {n: audioset.read_segments(data.audioset_dir / f"{n}.csv")
             for n in names if (data.audioset_dir / f"{n}.csv").is_file()}
    if not found:
        raise FileNotFoundError(f"none of {list(names)} exists in {data.audioset_dir}")
    return found


INPUT_NORMS = ("efficientat", "none")


def input_norm(recipe: dict) -> tuple[float, float] | None:
    """The recipe's ``input_norm``: ``efficientat`` is the normalisation the checkpoints were pretrained
    with, ``(x + 4.5) / 5`` (``norm_shift`` and ``norm_scale`` of the ``efficientat`` front end); ``none``
    feeds the log-mels as they are."""
    choice = recipe.get("input_norm", "none")
    if choice not in INPUT_NORMS:
        raise ValueError(f"unknown input_norm {choice!r}; choose from {INPUT_NORMS}")
    if choice == "none":
        return None
    preset = load_preset("efficientat")
    return preset["norm_shift"], preset["norm_scale"]


def efficientat_teacher(model: str, weights: str | Path | None, n_classes: int = 10,
                        bn_momentum: float | None = None, seed: int | None = None,
                        input_norm: tuple[float, float] | None = None) -> torch.nn.Module:
    """EfficientAT ``model`` with a fresh ``n_classes`` head (initialised from ``seed`` when given), from an
    official checkpoint file when given (:func:`resolve_weights` finds it); ``bn_momentum`` replaces the BatchNorm momentum (EfficientAT's is
    0.01) when not None; ``input_norm`` normalises its input (see :func:`input_norm`)."""
    if seed is not None:
        torch.manual_seed(seed)
    net = (load_efficientat(weights, model, n_classes, input_norm) if weights
           else build_efficientat(model, n_classes, input_norm))
    return set_bn_momentum(net, bn_momentum)


def with_unlabeled(labeled: TrainData, unlabeled_waves: torch.Tensor | None) -> TrainData:
    """Labeled items followed by unlabeled ones (label -1)."""
    if unlabeled_waves is None or len(unlabeled_waves) == 0:
        return labeled
    waves = concat([labeled.waves, unlabeled_waves], dtype=labeled.waves.dtype)
    labels = torch.cat([labeled.labels, torch.full((len(unlabeled_waves),), -1, dtype=torch.long,
                                                   device=labeled.labels.device)])
    names = (list(labeled.names) + [f"unlabeled AudioSet piece {i}" for i in range(len(unlabeled_waves))]
             if labeled.names else None)
    return TrainData(waves, labels, names=names)


def unlabeled_waves(profile: str, data: DataPaths, subset: str, sample_rate: int, device="cpu") -> torch.Tensor | None:
    """The 1 s pieces of a label-filtered subset (None for ``"none"``)."""
    if subset == "none":
        return None
    return subset_pieces(load_subset(profile, subset), data, sample_rate, device).waves


def subset_sizes(settings: dict, small: int | None = None, large: int | None = None) -> dict[str, int]:
    """The subset sizes of the recipe (``settings["subsets"]``), each replaced by a given override."""
    return {**settings["subsets"], **{k: v for k, v in {"small": small, "large": large}.items() if v}}


def write_subsets(profile: str, pool: pd.DataFrame, sizes: dict[str, int], seed: int,
                  allow_smaller: bool = True) -> pd.DataFrame:
    """Draw each subset (``{"small": n, "large": m}``) from ``pool`` with ``seed`` and write it with
    :func:`asc_lib.data.audioset.write_subset`; return what was asked, drawn and where it went."""
    rows = []
    for name, size in sizes.items():
        subset = draw_subset(pool, size, seed, allow_smaller)
        path = audioset.write_subset(subset_path(profile, name), subset,
                            f"by asc_lib (Surkov {name} subset: {len(subset)} of {len(pool)} filtered segments, seed {seed})")
        rows.append({"subset": name, "asked": size, "drawn": len(subset), "pool": len(pool),
                     "capped": "yes" if len(subset) < size else "", **subset["list"].value_counts().to_dict(),
                     "file": path.name})
    return pd.DataFrame(rows).set_index("subset").fillna(0)




def resolve_weights(choice: str | None, recipe: dict, profile: str, data: DataPaths) -> Checkpoint:
    """What the teacher starts from (the notebook's ``weights`` parameter, else the recipe's): a released
    checkpoint (``mn04_as``, ``mn10_as``, a file name or a path), ``"standin"`` (the mini stand-in AudioSet
    tagger, trained on first use) or ``"none"`` (random initialisation); the recipe's ``fallback: standin``
    lets the stand-in replace a checkpoint that cannot be had, with a warning
    (:func:`asc_lib.methods.tagger.starting_weights`)."""
    name = recipe.get("weights") if choice is None else choice
    return starting_weights(name, profile, data, recipe.get("fallback"))


def network(recipe: dict, checkpoint: Checkpoint, profile: str) -> str:
    """The EfficientAT network the teacher is: the checkpoint's (``mn04`` for ``mn04_as``, the stand-in's
    own), else the recipe's ``model`` (random initialisation)."""
    if checkpoint.origin == "standin":
        return profile_recipe(profile, "audioset_tagger")["model"]
    if checkpoint.origin == "random":
        return recipe["model"]
    try:
        return catalogue_entry(checkpoint.name)["model"]
    except KeyError:
        return recipe["model"]  # a checkpoint given by path: the recipe says which network it is


def weights_summary(checkpoint: Checkpoint) -> pd.DataFrame:
    """One row on the starting weights: file, SHA-256, origin and, for the stand-in, its AudioSet mAP and
    training size (read from its ``metrics.json``)."""
    row = {"starts from": checkpoint.name, "origin": checkpoint.origin,
           "file": paths.shown_beside(checkpoint.path) if checkpoint.path else "",
           "sha256": (checkpoint.sha256 or "")[:16], "real AudioSet pretraining": "yes" if checkpoint.pretrained else "NO"}
    metrics_file = Path(checkpoint.path).parent / METRICS if checkpoint.origin == "standin" else None
    if metrics_file is not None and metrics_file.is_file():
        m = json.loads(metrics_file.read_text())
        row.update({"AudioSet classes": m["n_classes"], "training pieces (1 s)": m["train_pieces"],
                    "eval mAP (mini)": round(m["mAP"], 3)})
    return pd.DataFrame([row])


def print_start(checkpoint: Checkpoint) -> None:
    """The notebook's first words on the starting weights, with the stand-in's banner when it applies."""
    text = framed_banner(checkpoint)
    if text:
        print(text)


def save_teacher(directory: Path, model: torch.nn.Module, name: str) -> Path:
    """Save a fine-tuned EfficientAT (state dict + architecture name) atomically."""
    path = Path(directory) / TEACHER_FILE
    norm = list(model.input_norm) if getattr(model, "input_norm", None) else None
    return save_torch({"model": name, "input_norm": norm,
                       "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, path)


def teacher_metrics(profile: str, method: str, split: int, seed: int) -> dict:
    """The ``metrics.json`` of the ``02_mean_teacher`` run a distillation uses as its teacher."""
    return read_metrics(run_dir(profile, method, split, seed) / METRICS)


def load_teacher(profile: str, method: str, split: int, seed: int) -> tuple[torch.nn.Module, Path]:
    """The fine-tuned teacher of a ``02_mean_teacher`` run, with the path of its file."""
    path = run_dir(profile, method, split, seed) / TEACHER_FILE
    if not path.is_file():
        mode = "mean_teacher" if method == "efficientat_mt" else "supervised"
        raise FileNotFoundError(f"{path} is missing: run notebooks/02_mean_teacher.ipynb with -p split {split} "
                                f"-p seed {seed} -p mode {mode} (profile {profile!r}) first")
    return load_teacher_file(path)


def load_teacher_file(path: Path) -> tuple[torch.nn.Module, Path]:
    """A fine-tuned teacher saved by :func:`save_teacher`, loaded strictly, with its path."""
    saved = load_torch(path, "fine-tuned teacher")
    if not isinstance(saved, dict) or not {"model", "state_dict"} <= set(saved):
        raise ValueError(f"{path}: not a fine-tuned teacher saved by 02_mean_teacher (it needs 'model' and "
                         f"'state_dict'; found {sorted(saved) if isinstance(saved, dict) else type(saved).__name__})")
    model = build_efficientat(saved["model"], 10, saved.get("input_norm"))
    load_state(model, saved["state_dict"], path, f"a fine-tuned EfficientAT {saved['model']}")
    return model.eval(), path


def item_summary(labeled: int, unlabeled: torch.Tensor | None, subset: str) -> pd.DataFrame:
    """How many labeled clips and unlabeled 1 s AudioSet pieces a run trains on."""
    n_unl = 0 if unlabeled is None else len(unlabeled)
    return pd.DataFrame({"items": [labeled, n_unl]},
                        index=["labeled TAU22 clips", f"unlabeled AudioSet pieces ({subset})"])


def batching(recipe: dict, labeled: int, unlabeled: int) -> pd.DataFrame:
    """How a run batches ``labeled`` clips and ``unlabeled`` pieces under the recipe: items of each kind per
    batch, steps per epoch and in all, and how often each labeled clip is seen."""
    k = loop.labeled_per_batch(recipe)
    data_labels = torch.cat([torch.zeros(labeled, dtype=torch.long), torch.full((unlabeled,), -1)])
    n = loop.epoch_items(recipe, data_labels)
    steps = loop.total_steps(recipe, n)
    if k:
        per_batch = {"labeled per batch": k, "unlabeled per batch": recipe["batch_size"] - k if unlabeled else 0}
        presentations = steps * k
    else:
        share = labeled / max(1, labeled + unlabeled)
        per_batch = {"labeled per batch": round(recipe["batch_size"] * share, 1),
                     "unlabeled per batch": round(recipe["batch_size"] * (1 - share), 1)}
        presentations = round(steps * recipe["batch_size"] * share)
    rows = {"batches": "fixed composition" if k else "pooled shuffle (labeled share on average)", **per_batch,
            "epoch = one pass over": "the labeled clips" if k else "all items",
            "steps per epoch": loop.steps_per_epoch(n, loop.epoch_batch(recipe)), "steps": steps,
            "labeled presentations": presentations, "passes over the labeled clips": round(presentations / max(1, labeled), 1)}
    return pd.DataFrame({"value": rows})


def digest_strings(items) -> str:
    """Short content hash of a sequence of strings (identifies data in cache keys)."""
    h = hashlib.sha256()
    for item in items:
        h.update(str(item).encode() + b"\0")
    return h.hexdigest()[:20]


def teacher_key(teacher_path: Path, train_files, profile: str, subset: str | pd.DataFrame, frontend: str) -> dict:
    """Cache key of teacher outputs: which teacher (file content), which data (``subset``: a label-filtered
    subset's name, or the segments themselves), which front end."""
    if isinstance(subset, pd.DataFrame):
        unlabeled = digest_strings(subset["YTID"])
    else:
        unlabeled = "none" if subset == "none" else digest_strings(load_subset(profile, subset)["YTID"])
    return {"teacher": provenance.file_digest(teacher_path), "labeled": digest_strings(train_files),
            "unlabeled": unlabeled, "frontend": frontend, "pieces_seconds": 1.0}


def teacher_agreement(teacher_probs: torch.Tensor, labels: torch.Tensor, test: dict | None = None) -> pd.DataFrame:
    """How good the teacher is and how its cached outputs look: its test accuracy (``test``, the teacher
    run's ``metrics.json``, when given), its accuracy on the labeled training items and its mean confidence
    on labeled and unlabeled items."""
    labeled = labels >= 0
    conf = teacher_probs.max(1).values
    rows = {"teacher accuracy on the test split (%)": test["test"]["accuracy"] * 100} if test else {}
    if test and "student" in test:
        rows["its mean-teacher student on the test split (%)"] = test["student"]["test"]["accuracy"] * 100
    rows.update({"teacher accuracy on labeled training clips (%)": float((teacher_probs[labeled].argmax(1) == labels[labeled]).float().mean() * 100),
                 "mean top probability, labeled (%)": float(conf[labeled].mean() * 100)})
    if (~labeled).any():
        rows["mean top probability, unlabeled (%)"] = float(conf[~labeled].mean() * 100)
    return pd.DataFrame({"value": rows}).round(2)


def kd_method(subset: str, teacher: str) -> str:
    """Run name of a distillation: ``kd_<subset>`` from the mean-teacher teacher (the report's method),
    ``kd_<subset>_from_ft`` from the plain fine-tuned one."""
    if teacher not in ("efficientat_mt", "efficientat_ft"):
        raise ValueError(f"unknown teacher run {teacher!r}; choose efficientat_mt or efficientat_ft")
    return f"kd_{subset}" if teacher == "efficientat_mt" else f"kd_{subset}_from_ft"


def training_objective(mode: str, recipe: dict, augment: Augment, model: torch.nn.Module) -> Objective:
    """What ``02_mean_teacher`` optimises: mean teacher (cross-entropy on labeled clips plus the ramped
    consistency between the student and its EMA teacher), or plain fine-tuning (``supervised``)."""
    if mode == "supervised":
        return Supervised(augment)
    if mode != "mean_teacher":
        raise ValueError(f"unknown mode {mode!r}; choose mean_teacher or supervised")
    if recipe["consistency_weight"] == 0:  # the ablation's variant: the teacher runs, its term is left out
        return EMAWithoutConsistency(augment, model, recipe["ema_decay"], 0.0, recipe["rampup_fraction"],
                                     recipe["constant_fraction"])
    return MeanTeacher(augment, model, recipe["ema_decay"], recipe["consistency_weight"], recipe["rampup_fraction"],
                       recipe["constant_fraction"])


@dataclass
class TeacherRun:
    """One fine-tuning run of ``02_mean_teacher``: its metrics (the evaluated model's and, for mean
    teacher, the student's under ``"student"``), history, student model, objective and cost."""

    metrics: dict | None
    history: History
    model: torch.nn.Module
    objective: Objective
    cost: complexity.Complexity

    @property
    def teacher(self) -> torch.nn.Module:
        """The model Surkov distils: the EMA teacher of mean teacher, the model itself otherwise."""
        return self.objective.eval_model(self.model)


def train_teacher(task: SceneTask, spec: RunSpec, mode: str, recipe: dict, weights: Checkpoint,
                  unlabeled: torch.Tensor | None, info: dict | None = None) -> TeacherRun:
    """Fine-tune EfficientAT on the task's labeled split (plus ``unlabeled`` pieces for mean teacher) by the
    recipe: the network from ``weights`` with its head initialised from the seed, the recipe's input
    normalisation and augmentation, :func:`training_objective` of ``mode``. Writes the run (reused when
    finished) with the teacher and, for mean teacher, the student scored side by side, and saves the
    fine-tuned teacher for ``04_kd``."""
    name = network(recipe, weights, spec.profile)
    model = efficientat_teacher(name, weights.path, seed=spec.seed, bn_momentum=recipe["bn_momentum"],
                                input_norm=input_norm(recipe))
    spec_shape = output_shape(recipe["frontend"])
    cost = complexity.measure(model, (1, 1, *spec_shape))
    objective = training_objective(mode, recipe, Augment(task.frontend, AugmentConfig.from_recipe(recipe, spec_shape)),
                                   model)
    data = with_unlabeled(task.train_data(), unlabeled if mode == "mean_teacher" else None)
    companions = {"student": lambda m: m} if mode == "mean_teacher" else None
    metrics, history = train_and_evaluate(task, spec, model, objective, recipe, data=data, cost=cost,
                                          final_model=objective.eval_model, companions=companions,
                                          info={"weights": weights.info(), "network": name, "mode": mode, **(info or {})})
    run = TeacherRun(metrics, history, model, objective, cost)
    save_teacher(spec.path, run.teacher, name)
    return run


def kd_teacher_probs(task: SceneTask, data: TrainData, profile: str, teacher: str, seed: int,
                     subset: str | pd.DataFrame, recipe: dict) -> tuple[torch.Tensor, Path]:
    """The fine-tuned ``teacher`` run's (same split and seed) class probabilities for every item of ``data``
    (labeled clips, then the unlabeled pieces of ``subset``), computed once and cached under a key of the
    teacher file, the clips and the front end; with the teacher file."""
    model, path = load_teacher(profile, teacher, task.split, seed)
    key = teacher_key(path, task.train["filename"], profile, subset, recipe["frontend"])
    logits = teacher_outputs(model, data.waves, key, frontend=task.frontend, device=task.device,
                             precision=recipe["teacher_precision"])
    return logits.softmax(-1), path


def kd_student(recipe: dict, seed: int) -> tuple[torch.nn.Module, complexity.Complexity]:
    """Surkov's CP-Mobile student, initialised from ``seed``, with its DCASE complexity on the recipe's input."""
    torch.manual_seed(seed)
    student = build_cp_mobile()
    return student, complexity.measure(student, (1, 1, *output_shape(recipe["frontend"])))


def train_student(task: SceneTask, spec: RunSpec, student: torch.nn.Module, cost: complexity.Complexity,
                  data: TrainData, teacher_probs: torch.Tensor, recipe: dict, info: dict | None = None):
    """Distil ``teacher_probs`` into ``student`` (the recipe's ``loss``: Surkov's MSE on probabilities; its
    augmentation and batches) and write the run; returns its metrics and history."""
    augment = Augment(task.frontend, AugmentConfig.from_recipe(recipe, output_shape(recipe["frontend"])))
    objective = distillation_objective(recipe, augment)
    train = TrainData(data.waves, data.labels, {"teacher_probs": teacher_probs.to(task.device)}, data.names)
    return train_and_evaluate(task, spec, student, objective, recipe, data=train, cost=cost, info=info)


def teacher_and_student(metrics: dict) -> pd.DataFrame:
    """Test accuracy (%) of a fine-tuning run's evaluated model and, for mean teacher, its student."""
    rows = {"EMA teacher" if "student" in metrics else "fine-tuned model": metrics["test"]}
    if "student" in metrics:
        rows["student"] = metrics["student"]["test"]
    return (pd.DataFrame({name: {"accuracy": t["accuracy"], **t["per_group"]} for name, t in rows.items()}).T
            * 100).round(2)
