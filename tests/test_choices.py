"""Recipe choices are read back from the validation runs and laid out per learning rate and seed."""
import pandas as pd

from asc_lib.methods import choices


def test_choices_are_read_back_and_tabled(tmp_path, monkeypatch):
    monkeypatch.setattr(choices, "runs_dir", lambda profile: tmp_path / profile)
    assert choices.saved("mini", "kd") is None
    runs = pd.DataFrame({"stage": "distillation", "lr": [1e-3, 1e-3, 1e-2, 1e-2], "seed": [0, 1, 0, 1],
                         "validation accuracy (%)": [50.0, 60.0, 70.0, 80.0], "its teacher (%)": [72.0, 74.0, 72.0, 74.0],
                         "agrees with its teacher (%)": [40.0, 50.0, 70.0, 72.0]})
    (tmp_path / "mini" / "choices").mkdir(parents=True)
    runs.to_csv(tmp_path / "mini" / "choices" / "kd-split5.csv")
    table = choices.seed_table(choices.saved("mini", "kd"))
    assert table.loc[0.01, ("validation accuracy (%)", "mean")] == 75.0
    assert table.loc[0.001, ("agrees with its teacher (%)", "mean")] == 45.0
    text = choices.markdown("mini")
    assert "| distillation | 0.01 | 70.0 / 80.0 | 75.0 | 73.0 | 71.0 |" in text
