"""The baseline on the mini data behaves like the real task (more data helps; unseen devices are harder),
and its notebook refuses a misspelled parameter. (The notebook's headless runs on splits 5 and 100 are
in tests/test_notebooks.py.)"""
import subprocess
import sys

import pytest

from asc_lib.config import paths, profile_recipe
from asc_lib.training import experiment


def test_papermill_typo_is_refused(tmp_path):
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / "00b_baseline.ipynb"),
           str(tmp_path / "out.ipynb"), "-p", "splitt", "5", "--cwd", str(paths.NOTEBOOKS_DIR), "--no-progress-bar"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode != 0 and "did you mean 'split'" in result.stderr + result.stdout


def _train(data, split, tmp_path, steps=0, epochs=1):
    recipe = profile_recipe("mini", "baseline", epochs=epochs, min_steps=steps, eval_points=1)
    task = experiment.SceneTask(data, split, recipe["frontend"], "cpu")
    model, objective, cost = experiment.baseline_setup(task, recipe, seed=0)
    spec = experiment.RunSpec("mini", "baseline", split, 0, directory=tmp_path / f"split{split}")
    metrics, _ = experiment.train_and_evaluate(task, spec, model, objective, recipe, cost=cost, evaluate_during=False)
    return {"accuracy": metrics["test"]["accuracy"], **{f"acc_{g}": v for g, v in metrics["test"]["per_group"].items()}}


@pytest.mark.full
def test_more_data_helps_and_unseen_devices_are_harder(mini_data, tmp_path):
    """`make test-full` only (2 minutes); its fast equivalent in `make test` is
    tests/test_minidata.py::test_mini_task_is_learnable_but_not_trivial (the task's devices and scenes are
    learnable, not trivial). About the same number of optimizer steps: split 5 (3 batches per epoch) for 102, split 100 for 2 epochs
    (116). Measured with the feature cache (2 CPU cores): split 5 over seeds 0-2 gave 50.2 / 50.7 / 53.2 %
    (std 1.6), split 100 gave 58.4 % (seed 0; 60.2 and 60.7 % on two other CPUs before the cache), so the gap
    is 7-9 points, about three standard deviations of a one-seed difference: the test asks only that more
    data is better, not by how much. Unseen against real devices on split 100: 48.8 against 65.8 %, a
    17-point gap against a few points of spread; the test asks only for the order."""
    small = _train(mini_data, 5, tmp_path, steps=100)
    full = _train(mini_data, 100, tmp_path, epochs=2)
    assert full["accuracy"] > small["accuracy"], (small, full)
    assert full["acc_unseen"] < full["acc_real"], full
