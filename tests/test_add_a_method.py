"""Adding a method is one small step (docs/architecture.md, "How to add a method"): a toy method, the DCASE2024
baseline trained with label smoothing, is added in four files outside the library (its module, its lines in
``params/methods.yaml``, its notebook; its recipe is the baseline's), trained on 3 seeds and seen in the
findings of ``05_results`` beside the baseline, with a verdict. Everything lives in a temporary folder
(``ASC_PARAMS_DIR`` points at a copy of ``params/``), so the checkout is untouched."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import nbformat
import papermill
import pytest

from asc_lib.config import paths

TOY_MODULE = '''
"""A toy method: the DCASE2024 baseline's CP-Mobile and recipe, cross-entropy with label smoothing."""
from torch import nn

from asc_lib.config import profile_recipe
from asc_lib.training import experiment, loop


class Smoothed(loop.Objective):
    """Cross-entropy against labels smoothed by 0.1 (the algorithm, in full)."""

    name = "smoothed"

    def loss(self, model, batch, step):
        labeled = batch["labels"] >= 0
        logits = loop.logits_of(model(self.inputs(batch["waves"][labeled])))
        return nn.functional.cross_entropy(logits.float(), batch["labels"][labeled], label_smoothing=0.1), {}


def train(profile, split, seed, data, method="toy_smoothed"):
    """One run of the method (or of the baseline it is compared with), on the shared loop and evaluation."""
    recipe = profile_recipe(profile, "baseline")
    task = experiment.SceneTask(data, split, recipe["frontend"], "cpu")
    model, baseline, cost = experiment.baseline_setup(task, recipe, seed)
    objective = baseline if method == "baseline" else Smoothed(baseline.augment)
    spec = experiment.RunSpec(profile, method, split, seed)
    return experiment.train_and_evaluate(task, spec, model, objective, recipe, cost=cost)[0]
'''

METHODS_LINES = '''
  toy_smoothed: {label: "CP-Mobile, label smoothing (toy)", paper: the study's, notebook: toy}
'''
COMPARISON_LINES = '''
  - what: "Toy: label smoothing vs baseline"
    method: toy_smoothed
    reference: baseline
    family: toy
    claim: "question: does label smoothing help CP-Mobile?"
'''
TOY_NOTEBOOK = ["profile = 'smoke'\nsplit = 5\nseed = 0",
                "import toy\nfrom asc_lib.config import data_paths\n\n"
                "metrics = toy.train(profile, split, seed, data_paths(profile))\nprint(metrics['test']['accuracy'])"]

FINDINGS = '''
import json
from asc_lib.config import data_paths, paper_results, paths
from asc_lib.study import results
import toy
for method in ("baseline", "toy_smoothed"):
    for seed in (0, 1, 2):
        toy.train("smoke", 5, seed, data_paths("smoke"), method)
runs = results.runs_table(paths.runs_dir() / "smoke")
findings = results.findings(results.comparisons(runs), paper_results(), "smoke")
print(json.dumps(findings.to_dict("records")))
'''


def _add_the_toy(folder):
    """The four files, written where a user would write them (here: under ``folder``)."""
    params = folder / "params"
    shutil.copytree(paths.PARAMS_DIR, params)
    text = (params / "methods.yaml").read_text()
    text = text.replace("\ncomparisons:", METHODS_LINES.rstrip() + "\n\ncomparisons:", 1)
    (params / "methods.yaml").write_text(text + COMPARISON_LINES)                            # 1. its lines
    (folder / "toy.py").write_text(textwrap.dedent(TOY_MODULE))                              # 2. its module
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in TOY_NOTEBOOK])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "toy.ipynb")                                                 # 3. its notebook
    env = {**os.environ, "ASC_PARAMS_DIR": str(params), "ASC_RUNS_DIR": str(folder / "runs"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
    return env


def test_a_toy_method_in_four_files_is_trained_compared_and_listed_in_the_findings(tmp_path, smoke_data):
    env = _add_the_toy(tmp_path)
    out = subprocess.run([sys.executable, "-c", FINDINGS], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {r["comparison"]: r for r in json.loads(out.stdout.strip().splitlines()[-1])}
    toy = rows["Toy: label smoothing vs baseline"]
    assert toy["family"] == "toy" and toy["claim"] == "question: does label smoothing help CP-Mobile?"
    assert "split 5:" in toy["study A − B (points) [95 % interval]"]
    assert "3 seeds a side" in toy["reading"] and "(no paper reports it)" in toy["reading"]
    assert "exercises the code only" in toy["here"]  # the smoke profile: 4 optimizer steps per run
    assert not (paths.PARAMS_DIR / "toy.py").exists() and "toy_smoothed" not in (paths.PARAMS_DIR / "methods.yaml").read_text()


@pytest.mark.full
def test_the_toy_methods_notebook_runs_and_05_results_lists_it(tmp_path, smoke_data, monkeypatch):
    """The same through the notebooks: the toy's notebook and the baseline's on 3 seeds, then 05_results."""
    env = _add_the_toy(tmp_path)
    for key in ("ASC_PARAMS_DIR", "ASC_RUNS_DIR", "PYTHONPATH"):
        monkeypatch.setenv(key, env[key])  # the kernels papermill starts inherit them
    for seed in (0, 1, 2):
        papermill.execute_notebook(str(tmp_path / "toy.ipynb"), str(tmp_path / f"toy-{seed}.ipynb"),
                                   parameters={"seed": seed}, cwd=str(tmp_path), progress_bar=False)
        papermill.execute_notebook(str(paths.NOTEBOOKS_DIR / "00b_baseline.ipynb"), str(tmp_path / f"b-{seed}.ipynb"),
                                   parameters={"profile": "smoke", "seed": seed, "progress": False},
                                   cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
    papermill.execute_notebook(str(paths.NOTEBOOKS_DIR / "05_results.ipynb"), str(tmp_path / "05.ipynb"),
                               parameters={"profile": "smoke", "runs_dir": str(tmp_path / "runs" / "smoke"),
                                           "tables_dir": str(tmp_path / "tables")},
                               cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
    shown = json.dumps(nbformat.read(tmp_path / "05.ipynb", as_version=4).cells, default=str)
    assert "Toy: label smoothing vs baseline" in shown and "CP-Mobile, label smoothing (toy)" in shown


def test_a_mistake_in_the_methods_file_is_named(tmp_path, monkeypatch):
    from asc_lib.methods import registry

    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    (tmp_path / "methods.yaml").write_text("methods:\n  toy: {label: Toy, paper: the study's}\ncomparisons: []\n")
    with pytest.raises(ValueError, match=r"methods\.yaml: method toy: notebook: Field required"):
        registry._declared()
    (tmp_path / "methods.yaml").write_text("methods:\n  toy: {label: Toy, paper: x, notebook: toy}\ncomparisons:\n"
                                           "  - {what: t, method: toy, reference: baselin}\n")
    with pytest.raises(ValueError, match=r"comparisons name methods it does not declare: \['baselin'\]"):
        registry._declared()
    (tmp_path / "methods.yaml").write_text("methods:\n  toy: {label: Toy, paper: x, notebook: toy}\ncomparisons: []\n")
    methods, comparisons = registry._declared()  # a file of its own methods only: the ablation variants follow them
    assert list(methods)[0] == "toy" and comparisons == []
