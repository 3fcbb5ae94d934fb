"""The baseline end to end on the mini data: the notebook lands its metrics for any split, and the
mini task behaves like the real one (more data helps; unseen devices are harder)."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from asc_lib import experiment, paths
from asc_lib.dcase import load_split
from asc_lib.augment import Augment, AugmentConfig
from asc_lib.models import build_cp_mobile
from asc_lib.params import profile_recipe
from asc_lib.train import Supervised, fit


@pytest.fixture(scope="module")
def split100_run(mini_data, tmp_path_factory):
    """The baseline notebook run headless on split 100 for 2 epochs (116 steps of 64): shared by the tests
    below so that the largest split is trained once."""
    tmp = tmp_path_factory.mktemp("split100")
    out = tmp / "00b_split100.ipynb"
    env = {**os.environ, "ASC_RUNS_DIR": str(tmp / "runs")}
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / "00b_baseline.ipynb"), str(out),
           "-p", "split", "100", "-p", "epochs", "2", "-p", "min_steps", "0",
           "-p", "progress", "False", "--cwd", str(paths.NOTEBOOKS_DIR), "--no-progress-bar"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "runs" / "mini" / "baseline" / "split100-seed0"


def test_notebook_runs_headless_for_split_100_and_lands_metrics(mini_data, split100_run):
    run = split100_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == 100 and metrics["method"] == "baseline" and metrics["epochs_trained"] == 2
    assert metrics["recipe"]["deviations"]["epochs"] == {"paper": 150, "used": 2}
    assert metrics["complexity"]["params"] == 61148 and metrics["complexity"]["passes"]
    assert metrics["test"]["n_clips"] == 1800 and set(metrics["test"]["per_group"]) == {"real", "seen", "unseen"}
    # the submission file and the metrics agree (learning itself is asserted below)
    output = pd.read_csv(run / "output.csv", sep="\t")
    test = load_split(mini_data, "test")
    assert list(output["filename"]) == list(test["filename"])
    hits = (output["scene_label"] == test["scene_label"]).groupby(test["scene_label"]).mean()
    assert hits.mean() == pytest.approx(metrics["test"]["accuracy"])


def test_papermill_typo_is_refused(tmp_path):
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / "00b_baseline.ipynb"),
           str(tmp_path / "out.ipynb"), "-p", "splitt", "5", "--cwd", str(paths.NOTEBOOKS_DIR), "--no-progress-bar"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode != 0 and "did you mean 'split'" in result.stderr + result.stdout


def _train(data, split, tmp_path, steps):
    recipe = profile_recipe("mini", "baseline", epochs=1, min_steps=steps, eval_points=1)
    task = experiment.SceneTask(data, split, recipe["frontend"], "cpu", progress=False)
    torch.manual_seed(0)
    model = build_cp_mobile()
    objective = Supervised(Augment(task.frontend, AugmentConfig.from_recipe(recipe)))
    history = fit(model, objective, task.train_data(), recipe, tmp_path / f"split{split}", seed=0,
                  device="cpu", evaluate=task.evaluator(), progress=False)
    return history[-1]


def test_more_data_helps_and_unseen_devices_are_harder(mini_data, split100_run, tmp_path):
    """About the same number of optimizer steps: split 5 (3 batches per epoch) for 102, split 100 for 2 epochs
    (116). Measured with the feature cache (2 CPU cores): split 5 over seeds 0-2 gave 50.2 / 50.7 / 53.2 %
    (std 1.6), split 100 gave 58.4 % (seed 0; 60.2 and 60.7 % on two other CPUs before the cache), so the gap
    is 7-9 points, about three standard deviations of a one-seed difference: the test asks only that more
    data is better, not by how much. Unseen against real devices on split 100: 48.8 against 65.8 %, a
    17-point gap against a few points of spread; the test asks only for the order."""
    small = _train(mini_data, 5, tmp_path, steps=100)
    full = json.loads((split100_run / "metrics.json").read_text())["test"]
    assert full["accuracy"] > small["accuracy"], (small, full["accuracy"])
    groups = full["per_group"]
    assert groups["unseen"] < groups["real"], groups
