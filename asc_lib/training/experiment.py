"""One way to run a method: where a run lives, the task (a split and the test split decoded onto the
training device), training, evaluation on the test split and the files the results notebook reads.

A run is identified by ``(profile, method, split, seed)`` (:class:`RunSpec`) and lives in
``data/runs/<profile>/<method>/split<split>-seed<seed>/`` (checkpoint, history, ``metrics.json``,
``output.csv``). :func:`train_and_evaluate` is what every training notebook, the torchrun command line
and the tests call to train a model and write those files.
"""
from __future__ import annotations

import hashlib
import json
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from asc_lib.config import DataPaths, data_paths, paths, provenance
from asc_lib.config.atomic import write_json
from asc_lib.config.paths import METRICS, OUTPUT, run_dir
from asc_lib.data.audio import build_waveform_cache, describe_conversions
from asc_lib.data.dcase import load_split, validation_mask
from asc_lib.data.rows import hold
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend, evaluate_frontend, output_shape
from asc_lib.models import build_cp_mobile, complexity
from asc_lib.training.device import resolve_device
from asc_lib.training.distributed import parameters_in_sync, world
from asc_lib.training.evaluate import predict, scene_scores, write_output_csv
from asc_lib.training.loop import History, Objective, Supervised, TrainData, fit

def current_test_names(profile: str) -> list[str]:
    """The file names of the profile's current test split, sorted (what a run's ``output.csv`` must hold)."""
    return sorted(load_split(data_paths(profile), "test", check_files=False)["filename"])


def scored_on(directory: Path, test_names: list[str]) -> bool:
    """Whether the run in ``directory`` holds predictions (``output.csv``) for exactly ``test_names`` (sorted).
    Reads only the file-name column: the predictions are read where they are compared."""
    output = Path(directory) / OUTPUT
    return output.is_file() and sorted(pd.read_csv(output, sep="\t", usecols=["filename"])["filename"]) == test_names


def finished_runs(profile: str, method: str, split: int, seeds) -> dict[int, Path]:
    """The run folders of ``method`` on ``split`` among ``seeds`` that hold their test predictions
    (``output.csv``) on the profile's current test split, by seed. A run scored on other test clips (the data
    were regenerated since) is stale: it is left out, with a warning naming it, until its notebook reruns."""
    found = {s: run_dir(profile, method, split, s) for s in seeds if (run_dir(profile, method, split, s) / OUTPUT).is_file()}
    if not found:
        return found
    current = current_test_names(profile)
    stale = [s for s, d in found.items() if not scored_on(d, current)]
    if stale:
        warnings.warn(f"{method} split {split}: seed(s) {stale} left out, scored on other test clips than the "
                      f"current test split of profile {profile!r} (stale: rerun their notebook)", stacklevel=2)
    return {s: d for s, d in found.items() if s not in stale}


def split_cache(frame: pd.DataFrame, data: DataPaths, sample_rate: int, seconds: float = 1.0):
    """The waveform cache of the clips of ``frame`` (decoded once, on disk)."""
    if not data.audio_available:
        raise RuntimeError(f"profile data at {data.tau22_dir} has no audio (audio_available: false)")
    return build_waveform_cache(frame["filename"].tolist(), data.tau22_dir, sample_rate,
                                int(round(sample_rate * seconds)))


def split_waves(frame: pd.DataFrame, data: DataPaths, sample_rate: int, device="cpu", seconds: float = 1.0) -> torch.Tensor:
    """The clips of ``frame`` decoded once (cached on disk) and returned as one tensor on ``device``, or as
    rows read from disk when they exceed the memory budget (:mod:`asc_lib.data.rows`)."""
    return split_cache(frame, data, sample_rate, seconds).load(device)


def scene_train_data(frame: pd.DataFrame, waves: torch.Tensor) -> TrainData:
    """Labeled training items for :func:`asc_lib.training.loop.fit`."""
    labels = torch.as_tensor(frame["label"].to_numpy(copy=True), dtype=torch.long)
    return TrainData(waves, labels, names=frame["filename"].tolist())


EVAL_PRECISIONS = ("fp16", "training")


def half_eval(recipe: dict) -> bool:
    """Whether the recipe evaluates in float16 (``eval_precision: fp16``, the baseline's test step) rather than
    in the training precision (``training``: float32, bfloat16 autocast on a GPU with ``amp``)."""
    value = recipe.get("eval_precision", "training")
    if value not in EVAL_PRECISIONS:
        raise ValueError(f"eval_precision {value!r} unknown; choose from {EVAL_PRECISIONS}")
    return value == "fp16"


def test_evaluator(features, test_frame: pd.DataFrame, batch_size: int = 256, amp: bool = False, half: bool = False):
    """A callable for ``fit(evaluate=...)`` reporting test accuracy, per-group accuracy and log loss on the
    test clips' front-end output (``features()``, computed once by the task)."""
    def evaluate(model: nn.Module) -> dict:
        scores = scene_scores(test_frame, predict(model, nn.Identity(), features(), batch_size, amp=amp, half=half))
        return {"accuracy": scores["accuracy"], "log_loss": scores["log_loss"],
                **{f"acc_{g}": v for g, v in scores["per_group"].items()}}
    return evaluate


def finish_run(directory: Path, model: nn.Module, test_features: torch.Tensor, test_frame: pd.DataFrame,
               info: dict, batch_size: int = 256, amp: bool = False, history=None,
               companions: dict[str, nn.Module] | None = None, half: bool = False) -> dict:
    """Evaluate ``model`` on the test split, write ``output.csv`` and ``metrics.json``; return the metrics.
    With the :class:`asc_lib.training.loop.History` of the run, the metrics say how the run was obtained
    (trained, resumed, reused or retrained) and carry its fingerprint. Each of ``companions`` (e.g. a mean
    teacher's student) is scored too, under its name: ``metrics[name]["test"]``."""
    probs = predict(model, nn.Identity(), test_features, batch_size, amp=amp, half=half)
    if not bool(torch.isfinite(torch.as_tensor(probs)).all()):
        raise FloatingPointError(f"{paths.shown(directory)}: the model gives non-finite probabilities on the test "
                                 "clips; the run is not stored")
    scores = scene_scores(test_frame, probs)
    write_output_csv(directory / OUTPUT, test_frame["filename"], probs)
    metrics = {**info, "test": scores, "torch": torch.__version__, "machine": platform.machine(),
               "device": str(next(model.parameters()).device)}
    for name, other in (companions or {}).items():
        metrics[name] = {"test": scene_scores(test_frame, predict(other, nn.Identity(), test_features, batch_size, amp=amp, half=half))}
    if history is not None and hasattr(history, "info"):
        metrics["fit"] = history.info()
    write_json(directory / METRICS, metrics)
    return metrics


class SceneTask:
    """One training split and the test split of a profile, decoded once onto the training device.

    ``frontend`` is the recipe's front end; waveforms are stored at its sample rate.
    """

    def __init__(self, data: DataPaths, split: int, frontend: str, device: str = "auto",
                 validation: tuple[float, int] | None = None):
        self.split = split
        self.device = resolve_device(device)
        self.frontend = build_frontend(frontend).to(self.device)
        self.train = load_split(data, split)
        self.validation = validation
        if validation is None:
            self.test = load_split(data, "test")
        else:  # recipe choices: train on the split without its validation part, score on that part
            held = validation_mask(self.train, *validation)
            self.train, self.test = (self.train[~held].reset_index(drop=True),
                                     self.train[held].reset_index(drop=True))
        rate = self.frontend.sample_rate
        caches = {name: split_cache(frame, data, rate)
                  for name, frame in (("train", self.train), ("test", self.test))}
        self.conversions = {name: cache.conversions for name, cache in caches.items()}
        self.train_waves = caches["train"].load(self.device)  # resident within the memory budget, else streamed
        self.test_waves = hold(caches["test"].rows(), self.device, disk=False)
        self._test_features: torch.Tensor | None = None

    @property
    def scored_on(self) -> str:
        """What the task scores runs on: ``validation`` (a part of the training split) or ``test``."""
        return "test" if self.validation is None else "validation"

    def summary(self) -> pd.DataFrame:
        """Clips per device group in the training and test splits."""
        return pd.DataFrame({
            f"split {self.split}": self.train["device_group"].value_counts(),
            "test": self.test["device_group"].value_counts(),
        }).reindex(["real", "seen", "unseen"]).fillna(0).astype(int).rename_axis("device group")

    def audio_report(self) -> pd.DataFrame:
        """What decoding did to the clips of each split: resampled, down-mixed, zero-padded or cut."""
        return pd.DataFrame({f"split {self.split}" if name == "train" else name:
                             {"clips": len(frame), "decoding": describe_conversions(self.conversions[name], len(frame))}
                             for name, frame in (("train", self.train), ("test", self.test))}).T

    def train_data(self) -> TrainData:
        return scene_train_data(self.train, self.train_waves)

    def test_features(self) -> torch.Tensor:
        """The front end's (deterministic, evaluation-mode) output of the test clips, computed at the first
        call and shared by every evaluation of the task (along training and at the end)."""
        if self._test_features is None:
            self._test_features = evaluate_frontend(self.frontend, self.test_waves)
        return self._test_features

    def evaluator(self, amp: bool = False, half: bool = False):
        """``fit``'s evaluator on this task's test split; its ``identity`` (the test clips' names, labels and
        waveforms, and the precision) joins the fingerprint of every run it scores along the way."""
        evaluate = test_evaluator(self.test_features, self.test, amp=amp, half=half)
        listed = "\n".join(self.test["filename"] + "\t" + self.test["scene_label"])
        names = hashlib.sha256(listed.encode()).hexdigest()[:16]
        evaluate.identity = f"test {names}:{provenance.tensor_digest(self.test_waves)}:amp {amp}:half {half}"
        return evaluate

    def finish(self, directory: Path, model: nn.Module, info: dict, amp: bool = False, history=None,
               companions: dict[str, nn.Module] | None = None, half: bool = False) -> dict:
        return finish_run(directory, model, self.test_features(), self.test, info, amp=amp, history=history,
                          companions=companions, half=half)


@dataclass(frozen=True)
class RunSpec:
    """Which run: ``(profile, method, split, seed)``; ``directory`` overrides where it is written."""

    profile: str
    method: str
    split: int
    seed: int
    directory: Path | None = None

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory is not None else run_dir(self.profile, self.method, self.split,
                                                                              self.seed)

    def info(self) -> dict:
        return {"method": self.method, "profile": self.profile, "split": self.split, "seed": self.seed}


def train_and_evaluate(task: SceneTask, spec: RunSpec, model: nn.Module, objective: Objective, recipe: dict, *,
                       data: TrainData | None = None, cost: complexity.Complexity | None = None,
                       info: dict | None = None, final_model=None, evaluate_during: bool = True,
                       companions: dict | None = None) -> tuple[dict | None, History]:
    """Train ``model`` with ``objective`` on ``data`` (default: the task's labeled split) by the recipe,
    scoring the test split along the way (``evaluate_during``); then evaluate the final model
    (``final_model(model)`` when given, e.g. a mean teacher's EMA model) on the test split and write
    ``output.csv`` and ``metrics.json`` (the run, its recipe, complexity, ``info`` and the fit's record).
    ``companions`` maps names to ``f(model)``, further models scored into ``metrics.json`` (a mean
    teacher's student: ``{"student": lambda m: m}``).

    Returns the metrics (None on the ranks other than 0 under torchrun, which do not write) and the
    training history. Finished runs are reused and interrupted ones resumed (see :func:`fit`).
    """
    history = fit(model, objective, data if data is not None else task.train_data(), recipe, spec.path,
                  seed=spec.seed, device=task.device,
                  evaluate=task.evaluator(recipe["amp"], half_eval(recipe)) if evaluate_during else None)
    here = world()
    extra = {"world_size": here.size, "replicas_in_sync": parameters_in_sync(model)} if here.size > 1 else {}
    if not here.main:
        return None, history
    record = {**spec.info(), "recipe": recipe, **({"complexity": cost.as_dict()} if cost is not None else {}),
              "epochs_trained": len(history), **extra, **(info or {})}
    final = final_model(model) if final_model is not None else model
    others = {name: pick(model) for name, pick in (companions or {}).items()}
    return task.finish(spec.path, final, record, amp=recipe["amp"], history=history, companions=others,
                       half=half_eval(recipe)), history


def baseline_setup(task: SceneTask, recipe: dict, seed: int) -> tuple[nn.Module, Objective, complexity.Complexity]:
    """The DCASE2024 baseline's model, objective and cost: CP-Mobile initialised from ``seed``, cross-entropy
    with the recipe's augmentation (roll, Freq-MixStyle, frequency masking) on the task's front end."""
    torch.manual_seed(seed)
    model = build_cp_mobile()
    cost = complexity.measure(model, (1, 1, *output_shape(recipe["frontend"])))
    return model, Supervised(Augment(task.frontend, AugmentConfig.from_recipe(recipe))), cost


def headline(metrics: dict) -> pd.DataFrame:
    """Macro accuracy and accuracy per device group of one run, in percent."""
    test = metrics["test"]
    row = {"accuracy": test["accuracy"], **test["per_group"]}
    return (pd.DataFrame([row], index=[f"{metrics['method']} split {metrics['split']}"]) * 100).round(2)


def read_metrics(path: str | Path) -> dict:
    """Read one ``metrics.json``, naming the file when it is not valid."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable metrics file ({err})") from err
    missing = {"method", "split", "seed", "test"} - set(metrics)
    if missing:
        raise ValueError(f"{path}: metrics lack {sorted(missing)}")
    return metrics
