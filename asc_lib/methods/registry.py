"""Every method the study trains, in one table: its run name, label, paper and notebook, the rule that
names a notebook's run, and the comparisons the notebooks print.

The run name is the ``<method>`` folder of ``data/runs/<profile>/<method>/split<N>-seed<S>/``. Labels
are what tables, plots and comparisons show; ``paper`` is the report the method reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from asc_lib.methods import cross_selection, mt_ablation, surkov, werning
from asc_lib.training import uncertainty
from asc_lib.training.experiment import METRICS, finished_runs, read_metrics, run_dir


@dataclass(frozen=True)
class Method:
    name: str        # run folder
    label: str       # display name in tables, plots and comparisons
    paper: str       # "DCASE2024 baseline", "Surkov" or "Werning"
    notebook: str    # the notebook that trains it


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("baseline", "DCASE2024 baseline (CP-Mobile)", "DCASE2024 baseline", "00b_baseline"),
    Method("efficientat_mt", "EfficientAT, mean teacher", "Surkov", "02_mean_teacher"),
    Method("efficientat_ft", "EfficientAT, plain fine-tuning", "Surkov", "02_mean_teacher"),
    *(Method(name, text, "Surkov", "02b_mean_teacher_ablations") for name, text in mt_ablation.labels().items()),
    Method("kd_none", "CP-Mobile KD, labeled clips only", "Surkov", "04_kd"),
    Method("kd_small", "CP-Mobile KD + small AudioSet subset", "Surkov", "04_kd"),
    Method("kd_large", "CP-Mobile KD + large AudioSet subset", "Surkov", "04_kd"),
    Method("kd_small_from_ft", "CP-Mobile KD (fine-tuned teacher) + small subset", "Surkov", "04_kd"),
    Method("werning", "Pruned-AudioSet KD + fine-tuning (Werning)", "Werning", "03b_pruned_kd"),
    Method("werning_random", "Random-AudioSet KD + fine-tuning (control)", "Werning", "03b_pruned_kd"),
    Method("werning_pieces", "Pruned-AudioSet KD on 1 s pieces + fine-tuning (alternative)", "Werning", "03b_pruned_kd"),
    Method("werning_random_pieces", "Random-AudioSet KD on 1 s pieces + fine-tuning", "Werning", "03b_pruned_kd"),
    Method(cross_selection.SURKOV_TEACHER, "EfficientAT, mean teacher on pruned clips (cross)", "Surkov",
           "04b_cross_selection"),
    Method(cross_selection.SURKOV_STUDENT, "CP-Mobile KD on pruned clips (cross)", "Surkov", "04b_cross_selection"),
    Method(cross_selection.WERNING, "Label-filtered AudioSet KD + fine-tuning (cross)", "Werning", "04b_cross_selection"),
)}


def label(method: str) -> str:
    """Display name of a method (threshold-sweep runs ``werning_t0.1`` get theirs from ``werning``, the
    consistency-weight sweep's ``efficientat_mt_cw10`` theirs from the weight)."""
    if method in METHODS:
        return METHODS[method].label
    prefix = mt_ablation.weight_name(0.0)[:-1]
    if method.startswith(prefix):
        return f"{METHODS['efficientat_mt'].label}, consistency weight {method[len(prefix):]}"
    base, _, threshold = method.rpartition("_t")
    return f"{METHODS[base].label}, threshold {threshold}" if base in METHODS else method


def method_for(notebook: str, parameters: dict) -> str | None:
    """The run (method name) a notebook produces with ``parameters``, or None for notebooks without one."""
    if notebook == "00b_baseline":
        return "baseline"
    if notebook == "02_mean_teacher":
        return "efficientat_mt" if parameters.get("mode", "mean_teacher") == "mean_teacher" else "efficientat_ft"
    if notebook == "04_kd":
        return surkov.kd_method(parameters.get("subset", "small"), parameters.get("teacher", "efficientat_mt"))
    if notebook == "03b_pruned_kd":
        return werning.finetune_method(parameters.get("selection", "pruned"), parameters.get("threshold"),
                                       parameters.get("kd_input"))
    return None


def methods_for(notebook: str, parameters: dict) -> list[str]:
    """Every run (method name) a notebook produces with ``parameters``: :func:`method_for`'s, or the three of
    the cross-selection experiment."""
    if notebook == "04b_cross_selection":
        return [cross_selection.SURKOV_TEACHER, cross_selection.SURKOV_STUDENT, cross_selection.WERNING]
    method = method_for(notebook, parameters)
    return [method] if method else []


def compare_runs(profile: str, split: int, seed: int, methods) -> pd.DataFrame:
    """Test accuracy (%) of the finished runs of ``methods`` for one split and seed, one row per method
    under its label; runs not found show NaN."""
    rows = {}
    for method in methods:
        path = run_dir(profile, method, split, seed) / METRICS
        if path.is_file():
            test = read_metrics(path)["test"]
            rows[label(method)] = {"accuracy": test["accuracy"] * 100,
                                   **{g: v * 100 for g, v in test["per_group"].items()}}
        else:
            rows[label(method)] = {"accuracy": float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def correctness(profile: str, method: str, split: int, seeds) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """:func:`asc_lib.training.uncertainty.run_correctness` of the finished runs of ``method`` (split,
    ``seeds``), with the seeds found."""
    found = finished_runs(profile, method, split, seeds)
    return (*uncertainty.run_correctness(list(found.values())), list(found))


def comparison_sentence(profile: str, split: int, seeds, method: str, reference: str) -> str:
    """One sentence comparing two methods on one split (:func:`asc_lib.training.uncertainty.paired_comparison`):
    both accuracies, the difference with its 95 % interval over test recordings and seeds, the p-value and the
    verdict: better, worse or not distinguishable at this budget, or none with fewer than 3 seeds a side."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    used = {m: correctness(profile, m, split, seeds) for m in (method, reference)}  # each run read once
    missing = [label(m) for m, (correct, _, _, _) in used.items() if not len(correct)]
    if missing:
        return f"Not compared yet: no finished run for {', '.join(missing)} (split {split})."
    (a, labels, files, seeds_a), (b, _, files_b, seeds_b) = used[method], used[reference]
    if files != files_b:
        raise ValueError(f"{method} and {reference} were scored on different test clips (split {split})")
    result = uncertainty.paired_comparison(a, b, labels, files)
    acc = {m: 100 * uncertainty.macro_accuracy(c.mean(0), lab) for m, (c, lab, _, _) in used.items()}
    return (f"{label(method)} (seed {', '.join(map(str, seeds_a))}) vs {label(reference)} "
            f"(seed {', '.join(map(str, seeds_b))}), split {split}: {acc[method]:.1f} % vs {acc[reference]:.1f} %, "
            f"{result.text()} (paired: a bootstrap over test recordings plus the seeds' spread, "
            f"{100 * result.level:.0f} % interval from Student's t).")


def compare_seeds(profile: str, split: int, seeds, methods) -> pd.DataFrame:
    """Test accuracy (%) of ``methods`` on one split over ``seeds``: one row per method (its label), one
    column per seed (NaN where the run is missing), then mean and std over the seeds found."""
    table = pd.DataFrame({f"seed {s}": compare_runs(profile, split, s, methods)["accuracy"] for s in seeds})
    table["mean"], table["std"] = table.mean(axis=1), table.std(axis=1)
    return table.round(2)

