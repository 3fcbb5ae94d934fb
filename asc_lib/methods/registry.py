"""Every method the study trains, in one table: its run name, label, paper and notebook, the rule that
names a notebook's run, and the comparisons the notebooks print.

The run name is the ``<method>`` folder of ``data/runs/<profile>/<method>/split<N>-seed<S>/``. Labels
are what tables, plots and comparisons show; ``paper`` is the report the method reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from asc_lib.methods import mt_ablation, surkov, werning
from asc_lib.training.experiment import METRICS, read_metrics, run_dir


@dataclass(frozen=True)
class Method:
    name: str        # run folder
    label: str       # display name in tables, plots and comparisons
    paper: str       # "DCASE2024 baseline", "Surkov" or "Werning"
    notebook: str    # the notebook that trains it


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("baseline", "DCASE2024 baseline (CP-Mobile)", "DCASE2024 baseline", "00b_baseline"),
    Method("efficientat_mt", "EfficientAT mn10, mean teacher", "Surkov", "02_mean_teacher"),
    Method("efficientat_ft", "EfficientAT mn10, plain fine-tuning", "Surkov", "02_mean_teacher"),
    *(Method(name, text, "Surkov", "02b_mean_teacher_ablations") for name, text in mt_ablation.labels().items()),
    Method("kd_none", "CP-Mobile KD, labeled clips only", "Surkov", "04_kd"),
    Method("kd_small", "CP-Mobile KD + small AudioSet subset", "Surkov", "04_kd"),
    Method("kd_large", "CP-Mobile KD + large AudioSet subset", "Surkov", "04_kd"),
    Method("kd_small_from_ft", "CP-Mobile KD (fine-tuned teacher) + small subset", "Surkov", "04_kd"),
    Method("werning", "Pruned-AudioSet KD + fine-tuning (Werning)", "Werning", "03b_pruned_kd"),
    Method("werning_random", "Random-AudioSet KD + fine-tuning (control)", "Werning", "03b_pruned_kd"),
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
        return werning.finetune_method(parameters.get("selection", "pruned"), parameters.get("threshold"))
    return None


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


def verdict(comparison: pd.DataFrame, method: str, reference: str) -> str:
    """One sentence comparing the rows of two methods of :func:`compare_runs` (or saying which is missing)."""
    method, reference = label(method), label(reference)
    a, b = comparison.loc[method, "accuracy"], comparison.loc[reference, "accuracy"]
    if pd.isna(a) or pd.isna(b):
        missing = [m for m, v in ((method, a), (reference, b)) if pd.isna(v)]
        return f"Not compared yet: no finished run for {', '.join(missing)}."
    diff = a - b
    word = "beats" if diff > 0 else "does not beat"
    return f"{method} {word} {reference} on this run: {a:.2f} % vs {b:.2f} % ({diff:+.2f} points)."


def compare_seeds(profile: str, split: int, seeds, methods) -> pd.DataFrame:
    """Test accuracy (%) of ``methods`` on one split over ``seeds``: one row per method (its label), one
    column per seed (NaN where the run is missing), then mean and std over the seeds found."""
    table = pd.DataFrame({f"seed {s}": compare_runs(profile, split, s, methods)["accuracy"] for s in seeds})
    table["mean"], table["std"] = table.mean(axis=1), table.std(axis=1)
    return table.round(2)


def seed_verdict(table: pd.DataFrame, method: str, reference: str) -> str:
    """One sentence comparing two rows of :func:`compare_seeds` over the seeds both have: the mean
    difference and the spread of the per-seed differences (no test: three seeds are too few for one)."""
    a, b = table.loc[label(method)].filter(like="seed "), table.loc[label(reference)].filter(like="seed ")
    diff = (a - b).dropna()
    if diff.empty:
        return f"Not compared yet: no seed with finished runs of both {label(method)} and {label(reference)}."
    spread = f" ± {diff.std():.2f}" if len(diff) > 1 else ""
    return (f"{label(method)} vs {label(reference)} on seed(s) {', '.join(s.removeprefix('seed ') for s in diff.index)}: "
            f"{a[diff.index].mean():.2f} % vs {b[diff.index].mean():.2f} %, difference {diff.mean():+.2f}{spread} points "
            f"(mean ± std over {len(diff)} seed(s)).")
