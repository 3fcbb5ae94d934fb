"""Which component of Surkov's stage 1 does what: the mean-teacher ablation and the sweep of the consistency
weight (``notebooks/02b_mean_teacher_ablations.ipynb``; settings in ``params/surkov.yaml``, ``ablation:``).

Every variant is ``02_mean_teacher``'s run with one thing changed (:data:`VARIANTS`), trained on the same
split, unlabeled pieces and seeds, so that a difference to the mean teacher is that component's. Runs
live beside ``02``'s (``data/runs/<profile>/<variant>/split<N>-seed<S>/``); the unchanged mean teacher
and plain fine-tuning are ``02``'s own runs, reused when ``02`` trained them already.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from asc_lib.config import DataPaths, load_yaml, paths, profile_recipe
from asc_lib.methods import surkov
from asc_lib.config.paths import METRICS
from asc_lib.training.experiment import RunSpec, SceneTask, finished_runs, read_metrics
from asc_lib.training.uncertainty import Comparison, compare_directories, holm, p_text


@dataclass(frozen=True)
class Variant:
    name: str                 # run folder (method name)
    label: str                # row of the tables
    mode: str                 # mean_teacher or supervised
    changes: str              # what differs from 02's mean teacher, in words
    overrides: dict = field(default_factory=dict)   # recipe settings changed from 02's recipe


REFERENCE = "efficientat_mt"
DELTA = "Δ model vs first"  # summary column: mean difference to the first variant (points)
VARIANTS: tuple[Variant, ...] = (
    Variant("efficientat_mt", "mean teacher (02)", "mean_teacher", "nothing: the method as 02 runs it"),
    Variant("efficientat_ft", "plain fine-tuning, same labeled presentations", "supervised",
            "no unlabeled clips, no teacher; the same labeled clips per step and the same steps"),
    Variant("efficientat_mt_w0", "mean teacher, consistency weight 0", "mean_teacher",
            "no consistency term: unlabeled clips only in the batch statistics; the EMA of a plainly "
            "fine-tuned student", {"consistency_weight": 0.0}),
    Variant("efficientat_mt_nomixstyle", "mean teacher without Freq-MixStyle", "mean_teacher",
            "Freq-MixStyle off", {"mixstyle_p": 0.0}),
    Variant("efficientat_ft_nomixstyle", "plain fine-tuning without Freq-MixStyle", "supervised",
            "the control of the row above: whether Freq-MixStyle costs plain fine-tuning as much",
            {"mixstyle_p": 0.0}),
    Variant("efficientat_mt_pooled", "mean teacher, pooled batches", "mean_teacher",
            "one shuffle of labeled and unlabeled items (the labeled share of a batch is the pool's)",
            {"labeled_per_batch": 0}),
    Variant("efficientat_mt_rawinput", "mean teacher, unnormalised input", "mean_teacher",
            "log-mels fed as they are, not scaled as the checkpoint was pretrained", {"input_norm": "none"}),
    Variant("efficientat_mt_32k", "mean teacher, the pretraining front end (32 kHz)", "mean_teacher",
            "EfficientAT's own 32 kHz front end (AugmentMelSTFT: 128 mels, 25 ms window, 10 ms hop, its random "
            "f_min/f_max, its (x + 4.5) / 5 inside), the one the checkpoint was pretrained on, instead of Surkov's "
            "16 kHz one: what the report's front end costs",
            {"frontend": "efficientat", "input_norm": "none", "feature_cache": False}),
)


def settings() -> dict:
    """``ablation:`` of ``params/surkov.yaml`` (seeds, consistency weights of the sweep)."""
    return dict(load_yaml(paths.PARAMS_DIR / "surkov.yaml")["ablation"])


def weight_name(weight: float) -> str:
    return f"efficientat_mt_cw{weight:g}"


def sweep_variants(weights, default: float) -> list[Variant]:
    """Mean teacher at each consistency weight of ``weights``, the recipe's own weight (``default``, the
    reference run itself) first, so that :func:`summary` measures the others against it."""
    ordered = sorted(weights, key=lambda w: float(w) != float(default))
    return [Variant(REFERENCE, f"mean teacher, consistency weight {w:g} (02)", "mean_teacher", "nothing")
            if float(w) == float(default) else
            Variant(weight_name(w), f"mean teacher, consistency weight {w:g}", "mean_teacher",
                    f"consistency weight {w:g}", {"consistency_weight": float(w)})
            for w in ordered]


def variants(names=None) -> list[Variant]:
    """The ablation's variants, all or those named (run folders)."""
    if names is None:
        return list(VARIANTS)
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; known: {list(known)}")
    return [known[n] for n in names]


def labels() -> dict[str, str]:
    """Run folder -> label of every ablation variant (the registry's labels for them)."""
    return {v.name: f"EfficientAT, {v.label}" for v in VARIANTS if v.name not in (REFERENCE, "efficientat_ft")}


def recipe(profile: str, variant: Variant, **overrides) -> dict:
    """``02``'s mean-teacher recipe of ``profile`` with the notebook's ``overrides`` and the variant's changes."""
    return profile_recipe(profile, "mean_teacher", source="surkov", **{**overrides, **variant.overrides})


def changes_table(chosen: list[Variant]) -> pd.DataFrame:
    """What each variant changes, in words and as settings."""
    return pd.DataFrame({"changes": [v.changes for v in chosen],
                         "settings": [", ".join([f"mode = {v.mode}"] * (v.mode != "mean_teacher")
                                                + [f"{k} = {x}" for k, x in v.overrides.items()]) or "as 02"
                                      for v in chosen]}, index=[v.label for v in chosen])


def run(task: SceneTask, profile: str, chosen: list[Variant], seeds, weights: str | None,
        unlabeled: torch.Tensor | None, subset: str, data: DataPaths | None = None,
        **overrides) -> pd.DataFrame:
    """Train (or reuse) every variant on every seed; one row per run: how it was obtained. ``task`` and
    ``unlabeled`` are at ``02``'s front end; a variant with another front end (the pretraining one) gets the
    same split and pieces decoded at its own sample rate (from ``data``)."""
    rows, inputs = [], {recipe(profile, VARIANTS[0], **overrides)["frontend"]: (task, unlabeled)}
    for variant in chosen:
        settings = recipe(profile, variant, **overrides)
        if settings["frontend"] not in inputs:
            if data is None:
                raise ValueError(f"variant {variant.name} uses the {settings['frontend']} front end: pass the data")
            own = SceneTask(data, task.split, settings["frontend"], task.device)
            inputs[settings["frontend"]] = (own, surkov.unlabeled_waves(profile, data, subset, own.frontend.sample_rate,
                                                                        own.device))
        here, pieces = inputs[settings["frontend"]]
        for seed in seeds:
            spec = RunSpec(profile, variant.name, task.split, seed)
            result = surkov.train_teacher(here, spec, variant.mode, settings, weights, pieces,
                                          info={"unlabeled": subset if variant.mode == "mean_teacher" else "none",
                                                "ablation": variant.label})
            rows.append({"variant": variant.label, "seed": seed, "status": result.history.status})
    return pd.DataFrame(rows)


def accuracies(profile: str, split: int, chosen: list[Variant], seeds) -> pd.DataFrame:
    """Test accuracy (%) of every finished run on the current test split (:func:`finished_runs`, as
    :func:`ablation_comparisons` reads): the evaluated model (the EMA teacher for mean teacher) and, where there is one,
    the student; one row per variant and seed."""
    rows = []
    for variant in chosen:
        for seed, directory in finished_runs(profile, variant.name, split, seeds).items():
            m = read_metrics(directory / METRICS)
            rows.append({"variant": variant.label, "seed": seed, "model": m["test"]["accuracy"] * 100,
                         "student": m["student"]["test"]["accuracy"] * 100 if "student" in m else float("nan")})
    return pd.DataFrame(rows, columns=["variant", "seed", "model", "student"])


def ablation_comparisons(profile: str, split: int, chosen: list[Variant], seeds, family: str = "ablation") -> dict[str, Comparison]:
    """Each variant minus the first (the mean teacher, or the recipe's weight in the sweep) on the same test
    clips, over the seeds each has: test recordings and seeds (:func:`asc_lib.training.uncertainty.compare_directories`),
    by variant label, Holm-adjusted as one ``family`` (:func:`asc_lib.training.uncertainty.holm`); variants without
    runs left out."""
    reference = list(finished_runs(profile, chosen[0].name, split, seeds).values())
    out = {}
    for variant in chosen[1:]:
        found = list(finished_runs(profile, variant.name, split, seeds).values())
        result = compare_directories(found, reference) if reference else None
        if result is not None:
            out[variant.label] = result
    return holm(out, family)


def summary(runs: pd.DataFrame, chosen: list[Variant], compared: dict[str, Comparison] | None = None) -> pd.DataFrame:
    """Mean ± std over seeds per variant, the difference of its mean to the first variant's (the mean
    teacher) and, from ``compared`` (:func:`ablation_comparisons`), that difference's 95 % interval and verdict."""
    order = [v.label for v in chosen]
    g = runs.groupby("variant", sort=False)
    table = pd.DataFrame({"seeds": g.size(), "model mean": g["model"].mean(), "model std": g["model"].std(),
                          "student mean": g["student"].mean(), "student std": g["student"].std()}).reindex(order)
    table[DELTA] = table["model mean"] - table.loc[order[0], "model mean"]
    compared = compared or {}
    table["low"] = [100 * compared[n].low if n in compared else float("nan") for n in table.index]
    table["high"] = [100 * compared[n].high if n in compared else float("nan") for n in table.index]
    table["p"] = [compared[n].p_value if n in compared else float("nan") for n in table.index]
    table["p (Holm)"] = [compared[n].p_adjusted if n in compared and compared[n].p_adjusted is not None
                         else float("nan") for n in table.index]
    table["verdict"] = [compared[n].verdict if n in compared else "" for n in table.index]
    return table.round({c: 2 for c in table.columns if c not in ("p", "p (Holm)")})


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary` for reading: ``mean ± std`` cells (%), the difference to the first row in points with its
    95 % interval, and the verdict."""
    def pm(mean, std):
        return "" if pd.isna(mean) else f"{mean:.1f} ± {std:.1f}" if not pd.isna(std) else f"{mean:.1f}"
    return pd.DataFrame({"seeds": table["seeds"].astype("Int64"),
                         "accuracy (%)": [pm(m, s) for m, s in zip(table["model mean"], table["model std"])],
                         "its student (%)": [pm(m, s) for m, s in zip(table["student mean"], table["student std"])],
                         f"Δ to {table.index[0]} (points)": [
                             "" if pd.isna(d) or pd.isna(lo) else f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                             for d, lo, hi in zip(table[DELTA], table["low"], table["high"])],
                         "p / Holm": ["" if pd.isna(p) else f"{p_text(p)} / {p_text(h)}"
                                      for p, h in zip(table.get("p", pd.Series(float("nan"), index=table.index)),
                                                      table.get("p (Holm)", pd.Series(float("nan"), index=table.index)))],
                         "verdict": table["verdict"]},
                        index=table.index).rename_axis(None)


WORDS = {"better": "above", "worse": "below", "not distinguishable at this budget": "not distinguishable from"}  # other verdicts: runs only


def ablation_findings(table: pd.DataFrame) -> list[str]:
    """Plain sentences from :func:`summary`: each variant above, below or not distinguishable from the first
    row (the mean teacher), by the verdict of the paired comparison, Holm-adjusted within the table (:func:`ablation_comparisons`)."""
    reference = table.index[0]
    out = []
    for name, row in table.drop(index=reference).iterrows():
        if not row["verdict"]:
            continue
        if row["verdict"] not in WORDS:  # fewer than 3 seeds a side: these runs only
            out.append(f"{name}: {row['model mean']:.1f} %, {row['verdict']}.")
            continue
        out.append(f"{name}: {row['model mean']:.1f} ± {row['model std']:.1f} %, {WORDS[row['verdict']]} the "
                   f"{reference} ({row[DELTA]:+.1f} points, 95 % interval [{row['low']:+.1f}, {row['high']:+.1f}]).")
    return out


def weight_reading(runs: pd.DataFrame, swept: list[Variant], used: float,
                   compared: dict[str, Comparison] | None = None) -> str:
    """The sweep read on the test split, as a description only: which weight did best (mean over seeds) and,
    by the paired comparison of each weight against the recipe's ``used`` (``swept[0]``, :func:`ablation_comparisons`),
    whether any is distinguishable from it. The recipe's weight is chosen on a validation part of the
    training split (:mod:`asc_lib.methods.choices`), never from this."""
    table = summary(runs, swept, compared)
    if table["model mean"].isna().all():
        return "no finished run of the sweep yet"
    weight_of = {v.label: v.overrides.get("consistency_weight", used) for v in swept}
    best = table["model mean"].idxmax()
    text = (f"On the test split (a description, not the choice): best mean at consistency weight "
            f"{weight_of[best]:g} ({table.loc[best, 'model mean']:.1f} ± {table.loc[best, 'model std']:.1f} %).")
    better = [f"{weight_of[n]:g}" for n in table.index[1:] if table.loc[n, "verdict"] == "better"]
    if better:
        return text + (f" Above the recipe's {used:g} (Holm-adjusted within the sweep): weight(s) "
                       f"{', '.join(better)}; the validation choice (python -m asc_lib.methods.choices) did not "
                       f"pick it, and the test split does not overrule it.")
    return text + (f" No other weight is distinguishable from the recipe's {used:g} at this budget, or all are "
                   f"worse (paired over test recordings and seeds, Holm within the sweep).")


def conclusion(table: pd.DataFrame) -> str:
    """The ablation's answer in plain words, from :func:`summary` (first row the mean teacher, then plain
    fine-tuning and the variants that each remove one component), by the paired comparisons' Holm-adjusted verdicts:
    whether mean teacher holds up against plain fine-tuning, and which removals lift or lower it."""
    reference = table.index[0]
    labels_of = {v.label: v for v in VARIANTS}
    plain = [n for n in table.index if n in labels_of and labels_of[n].mode == "supervised"]
    mt = table.loc[reference, "model mean"]
    parts = []
    if plain and table.loc[plain[0], "verdict"] in WORDS:
        row = table.loc[plain[0]]
        interval = f"difference {-row[DELTA]:+.1f} points, 95 % interval [{-row['high']:+.1f}, {-row['low']:+.1f}]"
        if row["verdict"] == "better":
            parts.append(f"Mean teacher falls short of plain fine-tuning: {mt:.1f} % against {row['model mean']:.1f} % "
                         f"({interval}).")
        elif row["verdict"] == "worse":
            parts.append(f"Mean teacher beats plain fine-tuning: {mt:.1f} % against {row['model mean']:.1f} % ({interval}).")
        else:
            parts.append(f"Mean teacher holds up: {mt:.1f} % against {row['model mean']:.1f} % for plain fine-tuning, "
                         f"not distinguishable at this budget ({interval}).")
    others = [n for n in table.index[1:] if n not in plain]
    lifted = [(n, table.loc[n, DELTA]) for n in others if table.loc[n, "verdict"] == "better"]
    hurt = [(n, table.loc[n, DELTA]) for n in others if table.loc[n, "verdict"] == "worse"]
    if lifted:
        parts.append("Above it (Holm-adjusted within the ablation): " + "; ".join(f"{n} ({d:+.1f})" for n, d in lifted)
                     + ". What each of these removes holds mean teacher back here.")
    if hurt:
        parts.append("Below it (Holm-adjusted within the ablation): " + "; ".join(f"{n} ({d:+.1f})" for n, d in hurt)
                     + ". Mean teacher needs what each of these removes.")
    if not lifted and not hurt:
        parts.append("No single change moves it distinguishably at this budget.")
    return " ".join(parts)
