"""Recipe choices made on a validation part of the training split, never on the test split.

The mini recipes' learning rates (Surkov's mean-teacher fine-tuning and his distillation) are chosen here:
each candidate trains on the split without its validation part (:func:`asc_lib.data.dcase.validation_mask`:
whole recording locations per scene, seeded) and is scored on that part, over several seeds. The runs live
in ``data/runs/<profile>/choices/``; the table they give is what ``params/surkov.yaml`` cites.

    python -m asc_lib.methods.choices --profile mini --split 5 --seeds 0 1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from asc_lib.config import data_paths, profile_recipe
from asc_lib.config.atomic import write_csv
from asc_lib.methods import surkov
from asc_lib.training.distill import teacher_outputs
from asc_lib.training.experiment import METRICS, RunSpec, SceneTask, read_metrics, runs_dir

VALIDATION = (0.2, 0)  # (fraction of each scene's clips, at least; seed of the locations drawn)
TEACHER_LRS = (1.0e-3, 5.0e-3)
KD_LRS = (1.0e-3, 5.0e-3, 1.0e-2)


def choice_dir(profile: str, stage: str, lr: float, split: int, seed: int) -> Path:
    return runs_dir(profile) / "choices" / f"{stage}-lr{lr:g}" / f"split{split}-seed{seed}"


def teacher_runs(profile: str, split: int, seeds, lrs=TEACHER_LRS, progress: bool = False) -> pd.DataFrame:
    """Mean-teacher fine-tuning at each learning rate in ``lrs``: the EMA teacher's and its student's
    accuracy on the validation part, per seed."""
    data = data_paths(profile)
    rows = []
    for lr in lrs:
        recipe = profile_recipe(profile, "mean_teacher", source="surkov", lr=lr)
        task = SceneTask(data, split, recipe["frontend"], progress=False, validation=VALIDATION)
        extra = surkov.unlabeled_waves(profile, data, recipe["unlabeled"], task.frontend.sample_rate, task.device,
                                       progress=False)
        weights = surkov.resolve_weights(None, recipe, profile, data, progress=False)
        for seed in seeds:
            spec = RunSpec(profile, "efficientat_mt", split, seed, directory=choice_dir(profile, "teacher", lr, split, seed))
            run = surkov.train_teacher(task, spec, "mean_teacher", recipe, weights, extra, progress=progress)
            rows.append({"stage": "mean teacher", "lr": lr, "seed": seed, "weights": weights.name,
                         "validation accuracy (%)": 100 * run.metrics["test"]["accuracy"],
                         "its student (%)": 100 * run.metrics["student"]["test"]["accuracy"],
                         "train clips": len(task.train), "validation clips": len(task.test)})
    return pd.DataFrame(rows)


def kd_runs(profile: str, split: int, seeds, teacher_lr: float, lrs=KD_LRS, progress: bool = False) -> pd.DataFrame:
    """Distillation of the validation teachers (fine-tuned at ``teacher_lr``) into CP-Mobile at each learning
    rate in ``lrs``: the student's validation accuracy beside its teacher's, per seed."""
    data = data_paths(profile)
    rows = []
    for lr in lrs:
        recipe = profile_recipe(profile, "kd", source="surkov", lr=lr)
        task = SceneTask(data, split, recipe["frontend"], progress=False, validation=VALIDATION)
        extra = surkov.unlabeled_waves(profile, data, "small", task.frontend.sample_rate, task.device, progress=False)
        items = surkov.with_unlabeled(task.train_data(), extra)
        for seed in seeds:
            teacher_dir = choice_dir(profile, "teacher", teacher_lr, split, seed)
            teacher, path = surkov.load_teacher_file(teacher_dir / surkov.TEACHER_FILE)
            key = {**surkov.teacher_key(path, task.train["filename"], profile, "small", recipe["frontend"]),
                   "validation": list(VALIDATION)}
            probs = teacher_outputs(teacher, items.waves, key, frontend=task.frontend, device=task.device,
                                    progress=False).softmax(-1)
            student, cost = surkov.kd_student(recipe, seed)
            spec = RunSpec(profile, "kd_small", split, seed, directory=choice_dir(profile, "kd", lr, split, seed))
            metrics, _ = surkov.train_student(task, spec, student, cost, items, probs, recipe, progress=progress)
            teacher_acc = read_metrics(teacher_dir / METRICS)["test"]["accuracy"]
            rows.append({"stage": "distillation", "lr": lr, "seed": seed, "teacher lr": teacher_lr,
                         "validation accuracy (%)": 100 * metrics["test"]["accuracy"],
                         "its teacher (%)": 100 * teacher_acc,
                         "agrees with its teacher (%)": agreement(teacher_dir, spec.path),
                         "train clips": len(task.train), "validation clips": len(task.test)})
    return pd.DataFrame(rows)


def agreement(teacher_dir: Path, student_dir: Path) -> float:
    """Share of the validation clips on which the student predicts its teacher's scene (their ``output.csv``)."""
    teacher, student = (pd.read_csv(d / "output.csv", sep="\t").set_index("filename")["scene_label"]
                        for d in (teacher_dir, student_dir))
    return float(100 * (student.loc[teacher.index] == teacher).mean())


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per stage and learning rate."""
    value = "validation accuracy (%)"
    return (runs.groupby(["stage", "lr"])[value].agg(["mean", "std", "count"]).round(2)
            .rename(columns={"mean": f"{value}, mean", "std": "std over seeds", "count": "seeds"}))


def saved(profile: str, stage: str, split: int = 5) -> pd.DataFrame | None:
    """The runs a stage's choice was made on (the CSV :func:`main` writes), or None before it ran."""
    path = runs_dir(profile) / "choices" / f"{stage}-split{split}.csv"
    return pd.read_csv(path, index_col=0) if path.is_file() else None


def seed_table(runs: pd.DataFrame, columns=("validation accuracy (%)", "its teacher (%)",
                                            "agrees with its teacher (%)")) -> pd.DataFrame:
    """Per learning rate: each seed's numbers side by side, and their mean."""
    present = [c for c in columns if c in runs]
    table = runs.pivot_table(index="lr", columns="seed", values=present).round(1)
    for c in present:
        table[(c, "mean")] = runs.groupby("lr")[c].mean().round(1)
    order = [(c, s) for c in present for s in [*sorted(runs["seed"].unique()), "mean"]]
    return table.reindex(columns=pd.MultiIndex.from_tuples(order))


def markdown(profile: str, split: int = 5) -> str:
    """The choices as a Markdown table (the README's copy): per stage and learning rate, the validation accuracy
    of each seed and their mean, the teachers' mean and the student's agreement with its teacher."""
    lines = ["| stage | lr | validation accuracy per seed (%) | mean (%) | its teacher, mean (%) | agrees with its teacher, mean (%) |",
             "|---|---|---|---|---|---|"]
    for stage in ("teacher", "kd"):
        runs = saved(profile, stage, split)
        if runs is None:
            continue
        for lr, rows in runs.groupby("lr"):
            rows = rows.sort_values("seed")
            per_seed = " / ".join(f"{v:.1f}" for v in rows["validation accuracy (%)"])
            teacher = f"{rows['its teacher (%)'].mean():.1f}" if "its teacher (%)" in rows else ""
            agree = f"{rows['agrees with its teacher (%)'].mean():.1f}" if "agrees with its teacher (%)" in rows else ""
            lines.append(f"| {rows['stage'].iloc[0]} | {lr:g} | {per_seed} | {rows['validation accuracy (%)'].mean():.1f} "
                         f"| {teacher} | {agree} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Choose the mini learning rates on a validation part of the split.")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--split", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--stage", choices=["teacher", "kd", "both"], default="both")
    parser.add_argument("--teacher-lr", type=float, default=None, help="the teachers KD distils (default: the recipe's)")
    args = parser.parse_args(argv)
    out = runs_dir(args.profile) / "choices"
    frames = []
    if args.stage in ("teacher", "both"):
        frames.append(teacher_runs(args.profile, args.split, args.seeds))
        write_csv(out / f"teacher-split{args.split}.csv", frames[-1])
    if args.stage in ("kd", "both"):
        teacher_lr = args.teacher_lr or profile_recipe(args.profile, "mean_teacher", source="surkov")["lr"]
        frames.append(kd_runs(args.profile, args.split, args.seeds, teacher_lr))
        write_csv(out / f"kd-split{args.split}.csv", frames[-1])
    runs = pd.concat(frames, ignore_index=True)
    print(runs.to_string(index=False))
    print(summary(runs).to_string())


if __name__ == "__main__":
    main()
