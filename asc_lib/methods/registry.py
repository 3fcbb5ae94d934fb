"""Every method the study trains and every comparison its findings make (``params/methods.yaml``), the rule
that names a notebook's run, and the comparisons the notebooks print.

The run name is the ``<method>`` folder of ``data/runs/<profile>/<method>/split<N>-seed<S>/``. Labels
are what tables, plots and comparisons show; ``paper`` is the report the method reproduces. A comparison is
method A against reference B, in a family (Holm's adjustment runs within it) with the question it answers.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from asc_lib.config import load_yaml, paths
from asc_lib.config.paths import METRICS, run_dir
from asc_lib.config.recipes import problems
from asc_lib.methods import mt_ablation, surkov, werning
from asc_lib.training import uncertainty
from asc_lib.training.experiment import finished_runs, read_metrics


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str        # run folder
    label: str       # display name in tables, plots and comparisons
    paper: str       # "DCASE2024 baseline", "Surkov", "Werning" or the study's own
    notebook: str    # the notebook that trains it


class Comparison(NamedTuple):
    what: str        # its name in the findings
    method: str      # A
    reference: str   # B
    family: str = "exploratory"
    claim: str = ""  # the question it answers ("claim: ..." for a paper's, "control: ..." for the study's)


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")
    methods: dict[str, dict]
    comparisons: list[Comparison]


def _declared() -> tuple[dict[str, Method], list[Comparison]]:
    path = paths.PARAMS_DIR / "methods.yaml"
    try:
        declared = _Declared.model_validate(load_yaml(path))
    except ValidationError as err:
        raise ValueError(f"{path}: {problems(err)}") from None
    methods = {}
    for name, row in declared.methods.items():
        try:
            methods[name] = Method(name=name, **row)
        except ValidationError as err:
            raise ValueError(f"{path}: method {name}: {problems(err)}") from None
    unknown = {m for c in declared.comparisons for m in c[1:3]} - set(methods) - set(mt_ablation.labels())
    if unknown:
        raise ValueError(f"{path}: comparisons name methods it does not declare: {sorted(unknown)}")
    # 02b's ablation variants, generated from their settings, right after plain fine-tuning
    ablations = {name: Method(name=name, label=text, paper="Surkov", notebook="02b_mean_teacher_ablations")
                 for name, text in mt_ablation.labels().items()}
    order = list(methods)
    at = order.index("efficientat_ft") + 1 if "efficientat_ft" in order else len(order)
    order[at:at] = list(ablations)
    return {name: {**methods, **ablations}[name] for name in order}, declared.comparisons


METHODS, COMPARISONS = _declared()


def comparisons_of(family: str) -> list[Comparison]:
    """The comparisons of one family, in the findings' order."""
    return [c for c in COMPARISONS if c.family == family]


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
    """The run (method name) a notebook produces with ``parameters``, or None for notebooks without one: the
    rules of the notebooks that train several methods, else the one method it trains."""
    if notebook == "02_mean_teacher":
        return "efficientat_mt" if parameters.get("mode", "mean_teacher") == "mean_teacher" else "efficientat_ft"
    if notebook == "04_kd":
        return surkov.kd_method(parameters.get("subset", "small"), parameters.get("teacher", "efficientat_mt"))
    if notebook == "03b_pruned_kd":
        return werning.finetune_method(parameters.get("selection", "pruned"), parameters.get("threshold"),
                                       parameters.get("kd_input"))
    mine = [m.name for m in METHODS.values() if m.notebook == notebook]
    return mine[0] if len(mine) == 1 else None


def methods_for(notebook: str, parameters: dict) -> list[str]:
    """Every run (method name) a notebook produces with ``parameters``: :func:`method_for`'s, or the three of
    the cross-selection experiment."""
    if notebook == "04b_cross_selection":
        return [m.name for m in METHODS.values() if m.notebook == notebook]
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

