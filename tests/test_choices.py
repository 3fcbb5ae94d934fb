"""Recipe choices are read back from the validation runs, laid out per candidate and seed, and chosen by the
stated rule: per setting, the highest mean validation accuracy among its candidates and the start's own runs."""
import pandas as pd
import pytest

from asc_lib.methods import choices

START = {"lr": 1e-3, "ema_decay": 0.99}


def _runs(stage, rows, start=START):
    """One row per (setting, value, seed, accuracy); setting "start" is the start's own run."""
    out = []
    for setting, value, seed, accuracy in rows:
        values = start if setting == choices.START else {**start, setting: value}
        out.append({"stage": stage, "setting": setting, "value": value, **values, "seed": seed,
                    "scored on": "validation", "validation accuracy (%)": accuracy})
    return pd.DataFrame(out)


def test_candidates_vary_one_setting_at_a_time_around_the_start():
    tried = {"lr": (1e-3, 5e-3), "ema_decay": (0.99, 0.999), "consistency_weight": (1.0, 10.0, 100.0)}
    start = {"lr": 1e-3, "ema_decay": 0.99, "consistency_weight": 100.0}
    assert choices.candidates(start, tried) == [("start", None), ("lr", 5e-3), ("ema_decay", 0.999),
                                                ("consistency_weight", 1.0), ("consistency_weight", 10.0)]
    # folders are named by every swept value, so a run keeps its folder when the recipe around it changes
    assert choices.values_name(start) == "lr0.001-ema_decay0.99-consistency_weight100"


def test_choices_are_read_back_and_tabled(tmp_path, monkeypatch):
    monkeypatch.setattr(choices, "choices_dir", lambda profile: tmp_path / profile / "choices")
    assert choices.saved("mini", "kd") is None
    runs = _runs("distillation", [("start", None, 0, 50.0), ("start", None, 1, 60.0), ("lr", 1e-2, 0, 70.0),
                                  ("lr", 1e-2, 1, 80.0)], start={"lr": 1e-3})
    runs["its teacher (%)"] = [72.0, 74.0, 72.0, 74.0]
    runs["agrees with its teacher (%)"] = [40.0, 50.0, 70.0, 72.0]
    (tmp_path / "mini" / "choices").mkdir(parents=True)
    runs.to_csv(tmp_path / "mini" / "choices" / "kd-split5.csv")
    table = choices.seed_table(choices.saved("mini", "kd"))
    assert list(table.index) == ["start: lr 0.001", "lr = 0.01"]
    assert table.loc["lr = 0.01", ("validation accuracy (%)", "mean")] == 75.0
    assert table.loc["start: lr 0.001", ("agrees with its teacher (%)", "mean")] == 45.0
    text = choices.markdown("mini")
    assert "| distillation | **lr = 0.01** | 70.0 / 80.0 | 75.0 | 73.0 | 71.0 |" in text
    assert "| distillation | start: lr 0.001 | 50.0 / 60.0 | 55.0 |" in text


@pytest.mark.parametrize("ema_runs, expected", [((60.0, 61.0), 0.99), ((76.0, 77.0), 0.999)])
def test_a_lone_candidate_must_beat_the_starts_own_runs(ema_runs, expected):
    """A setting swept with one value only is compared with the start's runs, not chosen by default."""
    runs = _runs("mean teacher", [("start", None, 0, 74.0), ("start", None, 1, 72.0), ("lr", 5e-3, 0, 70.0),
                                  ("lr", 5e-3, 1, 71.0), ("ema_decay", 0.999, 0, ema_runs[0]),
                                  ("ema_decay", 0.999, 1, ema_runs[1])])
    assert choices.chosen(runs) == {"lr": 1e-3, "ema_decay": expected}


def test_a_choice_refuses_runs_scored_on_the_test_split():
    """No choice of the study reads the test split: rows scored on it (or not saying) are refused."""
    runs = _runs("mean teacher", [("start", None, 0, 74.0), ("lr", 5e-3, 0, 80.0)])
    assert choices.chosen(runs) == {"lr": 5e-3}
    runs.loc[1, "scored on"] = "test"
    with pytest.raises(ValueError, match="1 of 2 runs were scored on test, not on the validation part"):
        choices.chosen(runs)
    with pytest.raises(ValueError, match="scored on unrecorded"):
        choices.chosen(runs.drop(columns="scored on"))


def test_a_validation_task_scores_on_validation(monkeypatch):
    from asc_lib.training.experiment import SceneTask
    task = SceneTask.__new__(SceneTask)  # the attribute the property reads, without decoding any audio
    task.validation = None
    assert task.scored_on == "test"
    task.validation = choices.VALIDATION
    assert task.scored_on == "validation"


def test_the_student_teacher_gap_is_split_by_devices_seen_in_training(tmp_path):
    """kd_gap reads both runs' output.csv: macro accuracy per device group, the gap and the agreement."""
    import json

    from asc_lib.methods import kd_gap
    scenes = ["bus", "park"]
    files = [f"audio/{s}-x-{i}-{d}.wav" for s in scenes for i, d in enumerate(["a", "a", "s4", "s4"])]
    meta = pd.DataFrame({"filename": files, "scene_label": [f.split("/")[1].split("-")[0] for f in files],
                         "source_label": [f.rsplit("-", 1)[1][:-4] for f in files]}).set_index("filename")
    teacher = list(meta["scene_label"])                        # right everywhere
    student = ["park", "park", "bus", "bus", "park", "park", "park", "park"]  # wrong on the seen device's buses
    for name, pred in (("teacher", teacher), ("student", student)):
        (tmp_path / name).mkdir()
        pd.DataFrame({"filename": files, "scene_label": pred}).to_csv(tmp_path / name / "output.csv", sep="\t", index=False)
    (tmp_path / "student" / "metrics.json").write_text(json.dumps(
        {"method": "kd_small", "split": 5, "seed": 0, "test": {"accuracy": 0.5}, "fit": {"steps": 300}}))
    row = kd_gap.gap_row(tmp_path / "student", tmp_path / "teacher", meta)
    assert row["teacher, all (%)"] == 100.0 and row["agrees with its teacher (%)"] == 75.0
    # seen devices (a): bus wrong twice, park right twice -> macro 50 %; unseen (s4): all right
    assert row["student, seen devices (%)"] == 50.0 and row["gap, seen devices (points)"] == -50.0
    assert row["student, unseen devices (%)"] == 100.0 and row["gap, all (points)"] == -25.0
    assert row["student steps"] == 300
