"""Recipe choices made on a validation part of the training split, never on the test split.

The mini recipes' settings that changed with the real pretrained start (Surkov's mean-teacher learning rate,
EMA decay, BatchNorm momentum and consistency weight; his distillation's learning rate) are chosen here, one
setting at a time around the recipe: each candidate trains on the split without its validation part
(:func:`asc_lib.data.dcase.validation_mask`: whole recording locations per scene, seeded) and is scored on
that part, over several seeds. The rule: the candidate with the highest mean validation accuracy over the
seeds is the recipe's value. The runs live in ``data/runs/<profile>/choices/``; the tables they give are what
``params/surkov.yaml`` cites.

    python -m asc_lib.methods.choices --profile mini --split 5 --stage teacher --start consistency_weight=100
    python -m asc_lib.methods.choices --profile mini --split 5 --stage kd

(the first as the mini teacher's choice was made: around the recipe as it stood, consistency weight 100; the
second distils the validation teachers of the recipe that choice gave).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from asc_lib.config import data_paths, profile_recipe
from asc_lib.config.atomic import write_csv
from asc_lib.methods import surkov
from asc_lib.training.distill import teacher_outputs
from asc_lib.config.paths import METRICS, OUTPUT, TEACHER_FILE, choices_dir
from asc_lib.training.experiment import RunSpec, SceneTask, read_metrics

VALIDATION = (0.2, 0)  # (fraction of each scene's clips, at least; seed of the locations drawn)
# the values tried per setting, one setting at a time around the start (the profile's recipe, or --start):
# the mini recipe's values and the paper's where the mini recipe departs from them (EMA decay 0.999,
# BatchNorm momentum 0.01), the learning rates of the mini recipes, the weights of 02b's sweep
TEACHER_CANDIDATES = {"lr": (1.0e-3, 5.0e-3), "ema_decay": (0.99, 0.999), "bn_momentum": (0.1, 0.01),
                      "consistency_weight": (1.0, 10.0, 100.0)}
KD_CANDIDATES = {"lr": (1.0e-3, 5.0e-3, 1.0e-2)}
START = "start"  # the ``setting`` of the start's own runs in the tables


def values_name(values: dict) -> str:
    """A candidate's folder name from the values of every swept setting (``lr0.001-ema_decay0.99-...``), so
    that a run keeps its folder when the recipe around it changes."""
    return "-".join(f"{k}{v:g}" for k, v in values.items())


def teacher_dir(profile: str, values: dict, split: int, seed: int) -> Path:
    return choices_dir(profile) / f"teacher-{values_name(values)}" / f"split{split}-seed{seed}"


def kd_dir(profile: str, teacher_values: dict, values: dict, split: int, seed: int) -> Path:
    """A distillation candidate's run, beside the validation teachers it distils."""
    return (choices_dir(profile) / f"teacher-{values_name(teacher_values)}" / f"kd-{values_name(values)}"
            / f"split{split}-seed{seed}")


def candidates(start: dict, tried: dict) -> list[tuple[str, float | None]]:
    """(setting, value) pairs to run: the start itself, then every tried value that differs from the start's,
    one setting at a time."""
    return [(START, None)] + [(s, v) for s, values in tried.items() for v in values if v != start[s]]


def teacher_runs(profile: str, split: int, seeds, tried=TEACHER_CANDIDATES, start: dict | None = None) -> pd.DataFrame:
    """Mean-teacher fine-tuning of every candidate (:func:`candidates` around the profile's recipe changed by
    ``start``): the EMA teacher's and its student's accuracy on the validation part, per seed."""
    data = data_paths(profile)
    base = profile_recipe(profile, "mean_teacher", source="surkov", **(start or {}))
    rows = []
    for setting, value in candidates(base, tried):
        recipe = base if setting == START else profile_recipe(profile, "mean_teacher", source="surkov",
                                                              **{**(start or {}), setting: value})
        values = {s: recipe[s] for s in tried}
        task = SceneTask(data, split, recipe["frontend"], validation=VALIDATION)
        extra = surkov.unlabeled_waves(profile, data, recipe["unlabeled"], task.frontend.sample_rate, task.device)
        weights = surkov.resolve_weights(None, recipe, profile, data)
        for seed in seeds:
            spec = RunSpec(profile, "efficientat_mt", split, seed, directory=teacher_dir(profile, values, split, seed))
            run = surkov.train_teacher(task, spec, "mean_teacher", recipe, weights, extra)
            rows.append({"stage": "mean teacher", "setting": setting, "value": value, **values, "seed": seed,
                         "weights": weights.name, "scored on": task.scored_on,
                         "validation accuracy (%)": 100 * run.metrics["test"]["accuracy"],
                         "its student (%)": 100 * run.metrics["student"]["test"]["accuracy"],
                         "train clips": len(task.train), "validation clips": len(task.test)})
    return pd.DataFrame(rows)


def kd_runs(profile: str, split: int, seeds, tried=KD_CANDIDATES) -> pd.DataFrame:
    """Distillation of the validation teachers of the profile's mean-teacher recipe (its values of
    :data:`TEACHER_CANDIDATES`' settings, run by :func:`teacher_runs`) into CP-Mobile, every candidate
    around the profile's KD recipe: the student's validation accuracy beside its teacher's, per seed."""
    data = data_paths(profile)
    teacher_recipe = profile_recipe(profile, "mean_teacher", source="surkov")
    teacher_values = {s: teacher_recipe[s] for s in TEACHER_CANDIDATES}
    base = profile_recipe(profile, "kd", source="surkov")
    rows = []
    for setting, value in candidates(base, tried):
        recipe = base if setting == START else profile_recipe(profile, "kd", source="surkov", **{setting: value})
        values = {s: recipe[s] for s in tried}
        task = SceneTask(data, split, recipe["frontend"], validation=VALIDATION)
        extra = surkov.unlabeled_waves(profile, data, "small", task.frontend.sample_rate, task.device)
        items = surkov.with_unlabeled(task.train_data(), extra)
        for seed in seeds:
            teacher_run = teacher_dir(profile, teacher_values, split, seed)
            if not (teacher_run / TEACHER_FILE).is_file():
                raise FileNotFoundError(f"{teacher_run / TEACHER_FILE}: no validation teacher of the recipe "
                                        f"({values_name(teacher_values)}) yet: run the teacher stage first "
                                        f"(python -m asc_lib.methods.choices --stage teacher)")
            teacher, path = surkov.load_teacher_file(teacher_run / TEACHER_FILE)
            key = {**surkov.teacher_key(path, task.train["filename"], profile, "small", recipe["frontend"]),
                   "validation": list(VALIDATION)}
            probs = teacher_outputs(teacher, items.waves, key, frontend=task.frontend, device=task.device, precision=recipe["teacher_precision"]).softmax(-1)
            student, cost = surkov.kd_student(recipe, seed)
            spec = RunSpec(profile, "kd_small", split, seed,
                           directory=kd_dir(profile, teacher_values, values, split, seed))
            metrics, _ = surkov.train_student(task, spec, student, cost, items, probs, recipe)
            rows.append({"stage": "distillation", "setting": setting, "value": value, **values, "seed": seed,
                         "teacher": values_name(teacher_values), "scored on": task.scored_on,
                         "validation accuracy (%)": 100 * metrics["test"]["accuracy"],
                         "its teacher (%)": 100 * read_metrics(teacher_run / METRICS)["test"]["accuracy"],
                         "agrees with its teacher (%)": agreement(teacher_run, spec.path),
                         "train clips": len(task.train), "validation clips": len(task.test)})
    return pd.DataFrame(rows)


def agreement(teacher_dir: Path, student_dir: Path) -> float:
    """Share of the validation clips on which the student predicts its teacher's scene (their ``output.csv``)."""
    teacher, student = (pd.read_csv(d / OUTPUT, sep="\t").set_index("filename")["scene_label"]
                        for d in (teacher_dir, student_dir))
    return float(100 * (student.loc[teacher.index] == teacher).mean())


def label(row) -> str:
    """A candidate's name in the tables: the start with its values, or the one setting it changes."""
    if row["setting"] == START:
        swept = [c for c in row.index if c in TEACHER_CANDIDATES or c in KD_CANDIDATES]
        return "start: " + ", ".join(f"{c} {row[c]:g}" for c in swept if pd.notna(row[c]))
    return f"{row['setting']} = {row['value']:g}"


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per stage and candidate."""
    value = "validation accuracy (%)"
    return (runs.assign(candidate=runs.apply(label, axis=1))
            .groupby(["stage", "candidate"], sort=False)[value].agg(["mean", "std", "count"]).round(2)
            .rename(columns={"mean": f"{value}, mean", "std": "std over seeds", "count": "seeds"}))


def refuse_test_rows(runs: pd.DataFrame) -> None:
    """Raise unless every row of ``runs`` was scored on the validation part of its training split."""
    scored = runs["scored on"] if "scored on" in runs else pd.Series("unrecorded", index=runs.index)
    wrong = sorted(set(scored[scored != "validation"].astype(str)))
    if wrong:
        raise ValueError(f"{int((scored != 'validation').sum())} of {len(runs)} runs were scored on {', '.join(wrong)}, "
                         "not on the validation part: a choice never reads the test split")


def chosen(runs: pd.DataFrame) -> dict[str, float]:
    """The rule: per swept setting, the value with the highest mean validation accuracy over the seeds, among
    that setting's candidates and the start's own runs (each candidate changes one setting of the start).
    Refuses runs not scored on the validation part (``scored on``): no choice of the study reads the test split."""
    refuse_test_rows(runs)
    best = {}
    for setting in runs.loc[runs["setting"] != START, "setting"].unique():
        rows = runs[runs["setting"].isin([setting, START])]
        best[setting] = float(rows.groupby(setting)["validation accuracy (%)"].mean().idxmax())
    return best


def saved(profile: str, stage: str, split: int = 5) -> pd.DataFrame | None:
    """The runs a stage's choice was made on (the CSV :func:`main` writes), or None before it ran."""
    path = choices_dir(profile) / f"{stage}-split{split}.csv"
    return pd.read_csv(path, index_col=0) if path.is_file() else None


def seed_table(runs: pd.DataFrame, columns=("validation accuracy (%)", "its teacher (%)",
                                            "agrees with its teacher (%)")) -> pd.DataFrame:
    """Per candidate: each seed's numbers side by side, and their mean."""
    present = [c for c in columns if c in runs]
    runs = runs.assign(candidate=runs.apply(label, axis=1))
    order = list(dict.fromkeys(runs["candidate"]))
    table = runs.pivot_table(index="candidate", columns="seed", values=present).round(1)
    for c in present:
        table[(c, "mean")] = runs.groupby("candidate")[c].mean().round(1)
    columns = [(c, s) for c in present for s in [*sorted(runs["seed"].unique()), "mean"]]
    return table.reindex(index=order, columns=pd.MultiIndex.from_tuples(columns))


def markdown(profile: str, split: int = 5) -> str:
    """The choices as a Markdown table (docs/findings.md's copy): per stage and candidate, the validation accuracy
    of each seed and their mean (the chosen values in bold), the teachers' mean and the student's agreement
    with its teacher."""
    lines = ["| stage | candidate | validation accuracy per seed (%) | mean (%) | its teacher, mean (%) | agrees with its teacher, mean (%) |",
             "|---|---|---|---|---|---|"]
    for stage in ("teacher", "kd"):
        runs = saved(profile, stage, split)
        if runs is None:
            continue
        best = chosen(runs)
        runs = runs.assign(candidate=runs.apply(label, axis=1))
        for name, rows in runs.groupby("candidate", sort=False):
            rows = rows.sort_values("seed")
            first = rows.iloc[0]
            won = (all(first[s] == v for s, v in best.items()) if first["setting"] == START
                   else best[first["setting"]] == first["value"])
            name = f"**{name}**" if won else name
            per_seed = " / ".join(f"{v:.1f}" for v in rows["validation accuracy (%)"])
            teacher = f"{rows['its teacher (%)'].mean():.1f}" if "its teacher (%)" in rows else ""
            agree = f"{rows['agrees with its teacher (%)'].mean():.1f}" if "agrees with its teacher (%)" in rows else ""
            lines.append(f"| {first['stage']} | {name} | {per_seed} | {rows['validation accuracy (%)'].mean():.1f} "
                         f"| {teacher} | {agree} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Choose the mini recipes' settings on a validation part of the split.")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--split", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stage", choices=["teacher", "kd", "both"], default="both")
    parser.add_argument("--start", nargs="*", default=[], metavar="SETTING=VALUE",
                        help="mean teacher: vary around the recipe with these values instead of its own (e.g. the "
                             "recipe as it was before a choice changed it: consistency_weight=100)")
    args = parser.parse_args(argv)
    start = {}
    for item in args.start:
        setting, _, value = item.partition("=")
        if setting not in TEACHER_CANDIDATES or not value:
            parser.error(f"--start {item!r}: expected SETTING=VALUE with SETTING one of {sorted(TEACHER_CANDIDATES)}")
        start[setting] = float(value)
    out = choices_dir(args.profile)
    frames = []
    if args.stage in ("teacher", "both"):
        frames.append(teacher_runs(args.profile, args.split, args.seeds, start=start))
        write_csv(out / f"teacher-split{args.split}.csv", frames[-1])
    if args.stage in ("kd", "both"):
        frames.append(kd_runs(args.profile, args.split, args.seeds))
        write_csv(out / f"kd-split{args.split}.csv", frames[-1])
    runs = pd.concat(frames, ignore_index=True)
    print(runs.to_string(index=False))
    print(summary(runs).to_string())
    for frame in frames:
        print(f"{frame['stage'].iloc[0]}: chosen {chosen(frame)}")


if __name__ == "__main__":
    main()
