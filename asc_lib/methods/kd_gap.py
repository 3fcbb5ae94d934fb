"""Why the distilled CP-Mobile stays below its teacher: Surkov's distillation (``04_kd``'s runs, small
subset) beside the same distillation with three times the optimizer steps and beside ``04_kd -p subset
large`` (twice the AudioSet clips that carry the teacher's knowledge), three seeds, on the test split. A
description, not a choice: the recipe's values are chosen on the validation part
(:mod:`asc_lib.methods.choices`), and nothing here changes them. Per run: the student's accuracy, its
teacher's, the gap, and the share of test clips on which the two predict the same scene; split by devices
seen in training and unseen.

    python -m asc_lib.methods.kd_gap --profile mini --split 5 --seeds 0 1 2
"""
from __future__ import annotations

import argparse

import pandas as pd

from asc_lib.config import data_paths, profile_recipe
from asc_lib.config.atomic import write_csv
from asc_lib.methods import surkov
from asc_lib.config.paths import METRICS, OUTPUT, diagnostics_dir, run_dir
from asc_lib.training.experiment import RunSpec, SceneTask, read_metrics
from asc_lib.training.uncertainty import compare_directories, holm

STEPS = 900  # the longer run: three times the mini recipe's 300 steps
UNSEEN = ("s4", "s5", "s6")  # TAU22's devices found only in the test split


def longer_dir(profile: str, steps: int, split: int, seed: int):
    return diagnostics_dir(profile) / f"kd_small-steps{steps}" / f"split{split}-seed{seed}"


def train_longer(profile: str, split: int, seed: int, steps: int = STEPS):
    """``04_kd``'s run (small subset, the ``efficientat_mt`` teacher of the same split and seed) with exactly
    ``steps`` optimizer steps, in its own folder; returns the run's folder."""
    data = data_paths(profile)
    recipe = profile_recipe(profile, "kd", source="surkov", min_steps=steps, max_steps=steps)
    task = SceneTask(data, split, recipe["frontend"])
    extra = surkov.unlabeled_waves(profile, data, "small", task.frontend.sample_rate, task.device)
    items = surkov.with_unlabeled(task.train_data(), extra)
    probs, _ = surkov.kd_teacher_probs(task, items, profile, "efficientat_mt", seed, "small", recipe)
    student, cost = surkov.kd_student(recipe, seed)
    spec = RunSpec(profile, "kd_small", split, seed, directory=longer_dir(profile, steps, split, seed))
    surkov.train_student(task, spec, student, cost, items, probs, recipe)
    return spec.path


def gap_row(student_dir, teacher_dir, meta: pd.DataFrame) -> dict:
    """Student against teacher on the test split: macro accuracies (all devices, seen, unseen) and agreement."""
    student, teacher = (pd.read_csv(d / OUTPUT, sep="\t").set_index("filename")["scene_label"]
                        for d in (student_dir, teacher_dir))
    truth = meta.loc[student.index]
    unseen = truth["source_label"].isin(UNSEEN)
    row = {}
    for name, mask in (("all", slice(None)), ("seen devices", ~unseen), ("unseen devices", unseen)):
        for who, pred in (("student", student), ("teacher", teacher.loc[student.index])):
            right = (pred[mask] == truth["scene_label"][mask])
            row[f"{who}, {name} (%)"] = 100 * right.groupby(truth["scene_label"][mask]).mean().mean()
        row[f"gap, {name} (points)"] = row[f"student, {name} (%)"] - row[f"teacher, {name} (%)"]
    row["agrees with its teacher (%)"] = 100 * float((student == teacher.loc[student.index]).mean())
    row["student steps"] = read_metrics(student_dir / METRICS)["fit"]["steps"]
    return row


def students(profile: str, split: int, seed: int, steps: int = STEPS) -> dict:
    """The students set beside their teacher: name -> run folder."""
    return {"04_kd (small subset, the recipe's steps)": run_dir(profile, "kd_small", split, seed),
            f"small subset, {steps} steps": longer_dir(profile, steps, split, seed),
            "04_kd -p subset large (twice the clips)": run_dir(profile, "kd_large", split, seed)}


def table(profile: str, split: int, seeds, steps: int = STEPS) -> pd.DataFrame:
    """Per seed and student, :func:`gap_row` against the ``efficientat_mt`` teacher of the same split and seed,
    for the runs that exist."""
    meta = pd.read_csv(data_paths(profile).meta_csv, sep="\t").set_index("filename")
    rows = []
    for seed in seeds:
        teacher = run_dir(profile, "efficientat_mt", split, seed)
        for name, student in students(profile, split, seed, steps).items():
            if (student / OUTPUT).is_file() and (teacher / OUTPUT).is_file():
                rows.append({"student": name, "seed": seed, **gap_row(student, teacher, meta)})
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per student (with the number of seeds)."""
    if runs.empty:
        return runs
    out = runs.drop(columns="seed").groupby("student", sort=False).mean().round(1)
    out.insert(0, "seeds", runs.groupby("student", sort=False).size())
    return out


def paired_gaps(profile: str, split: int, seeds, steps: int = STEPS) -> pd.Series:
    """Per student, student minus teacher with its 95 % interval (paired over test recordings and
    the seeds both have, :func:`asc_lib.training.uncertainty.compare_directories`), Holm-adjusted as one family."""
    found = {}
    for name in students(profile, split, seeds[0], steps):
        pairs = [(students(profile, split, s, steps)[name], run_dir(profile, "efficientat_mt", split, s)) for s in seeds]
        pairs = [(a, b) for a, b in pairs if (a / OUTPUT).is_file() and (b / OUTPUT).is_file()]
        if pairs:
            found[name] = compare_directories([a for a, _ in pairs], [b for _, b in pairs])
    out = {name: f"{c.text()} ({c.seeds[0]} vs {c.seeds[1]} seeds)" for name, c in holm(found, "diagnostic").items()}
    return pd.Series(out, name="student − teacher, paired 95 % interval (points)", dtype=object)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Distillation with more steps beside 04_kd's runs (a description).")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--split", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    for seed in args.seeds:
        train_longer(args.profile, args.split, seed, args.steps)
    runs = table(args.profile, args.split, args.seeds, args.steps)
    write_csv(diagnostics_dir(args.profile) / f"kd_gap-split{args.split}.csv", runs)
    print(summary(runs).T.to_string())
    print(paired_gaps(args.profile, args.split, args.seeds, args.steps).to_string())


if __name__ == "__main__":
    main()
