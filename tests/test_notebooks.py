"""Every notebook of the report plan runs headless, on splits 5 and 100, and lands what the results read.

The training notebooks are tested the way recommenders tests its notebooks: run with small parameters,
then their recorded metrics are asserted. Here the small parameters are one: ``profile=smoke``, a smaller
generated dataset with the ``smoke:`` recipes of ``params/`` (4 optimizer steps per run). The whole quick plan of
`make report` runs through the workflow (:mod:`asc_lib.study.workflow`, Snakemake; started by tests/conftest.py
in the background beside the other tests, killed once and started again) into the session's temporary folders; nothing here asserts a learned number (tests/test_baseline.py does, with margins from
measured seed spread). nbval runs the notebooks that do not train at their committed defaults
(``testpaths`` in pyproject.toml); ``make nbval`` runs it over every notebook.
"""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from asc_lib import config
from asc_lib.config import paths
from asc_lib.data.dcase import load_split
from asc_lib.study import report, results, workflow

PROFILE = "smoke"
FULL_PLAN_ONLY = {"02b_mean_teacher_ablations", "04b_cross_selection"}  # full plan's runs; each tested below on its own
TRAINED = {  # method -> the notebook that trains it in the quick plan
    "baseline": "00b_baseline", "efficientat_mt": "02_mean_teacher", "kd_small": "04_kd", "werning": "03b_pruned_kd",
}


@pytest.fixture(scope="module")
def smoke_report(smoke_report_build, smoke_data):
    """The quick plan on the smoke profile, built once by the session (tests/conftest.py starts it in the
    background); returns (reports folder, runs folder, the plan's runs by name)."""
    out, code, log, _ = smoke_report_build
    assert code == 0, log[-5000:]
    assert not list((out / "failed").glob("*.ipynb")), log[-5000:]
    records = {run["name"]: run for run in json.loads((out / "plan.json").read_text())["runs"]}
    return out, results.runs_root(PROFILE, None), records


def test_a_killed_report_redoes_only_the_unfinished_runs(smoke_report, smoke_report_build):
    """The session's smoke report was killed (SIGKILL to the workflow and its jobs) while a notebook ran after
    the first had finished, then started again: the finished notebooks were kept as they were, the others
    all ran."""
    out, _, records = smoke_report
    before = smoke_report_build[3]
    assert before and set(before) < set(records), before
    now = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.ipynb") if not p.name.startswith(".")}
    assert set(now) == set(records)
    assert {name: now[name] for name in before} == before, "a finished notebook was run again"


def test_every_notebook_of_the_quick_plan_ran_on_splits_5_and_100(smoke_report):
    out, _, records = smoke_report
    planned = report.plan(PROFILE, "quick")
    assert set(records) == {r["name"] for r in planned}
    assert {r["notebook"].stem for r in planned} == set(config.NOTEBOOK_PARAMETERS) - FULL_PLAN_ONLY
    assert FULL_PLAN_ONLY <= {r["notebook"].stem for r in report.plan(PROFILE, "full")}
    for run in planned:
        executed = nbformat.read(out / f"{run['name']}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, (run["name"], errors)
        assert (out / "html" / f"{run['name']}.html").stat().st_size > 0
    assert "05_results_smoke" in (out / "index.html").read_text()


def test_every_method_lands_its_metrics_for_both_splits(smoke_report, smoke_data):
    _, runs_root, _ = smoke_report
    test = load_split(smoke_data, "test")
    for method, notebook in TRAINED.items():
        for split in (5, 100):
            run = runs_root / method / f"split{split}-seed0"
            metrics = json.loads((run / "metrics.json").read_text())
            assert (metrics["method"], metrics["split"], metrics["profile"]) == (method, split, PROFILE), run
            assert metrics["fit"]["status"] == "trained", (run, metrics["fit"])
            assert metrics["test"]["n_clips"] == len(test) == 900
            assert set(metrics["test"]["per_group"]) == {"real", "seen", "unseen"}
            assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
            # the submission file and the metrics agree
            output = pd.read_csv(run / "output.csv", sep="\t")
            assert list(output["filename"]) == list(test["filename"])
            hits = (output["scene_label"] == test["scene_label"]).groupby(test["scene_label"]).mean()
            assert hits.mean() == pytest.approx(metrics["test"]["accuracy"]), run


def test_every_run_names_the_weights_it_started_from(smoke_report):
    """The teacher's own starting weights, and the students' teachers', with their SHA-256 and origin: the
    released mn04_as when ../shared (or data/weights) holds it, else the stand-in (then not pretrained)."""
    _, runs_root, _ = smoke_report
    teacher = json.loads((runs_root / "efficientat_mt" / "split5-seed0" / "metrics.json").read_text())
    start = teacher["weights"]
    assert set(start) >= {"name", "path", "sha256", "origin", "pretrained"} and len(start["sha256"]) == 64
    assert (start["name"], start["pretrained"]) in {("mn04_as", True), ("standin", False)}
    assert teacher["network"] == ("mn04" if start["pretrained"] else "mn10")
    for method in ("kd_small", "werning"):
        student = json.loads((runs_root / method / "split5-seed0" / "metrics.json").read_text())
        assert student["teacher_weights"]["sha256"] == start["sha256"], method


def test_smoke_recipes_are_the_mini_ones_cut_short(smoke_report):
    _, runs_root, _ = smoke_report
    metrics = json.loads((runs_root / "baseline" / "split100-seed0" / "metrics.json").read_text())
    history = json.loads((runs_root / "baseline" / "split100-seed0" / "history.json").read_text())
    smoke = config.load_yaml(paths.PARAMS_DIR / "training.yaml")["baseline"]["smoke"]
    assert metrics["epochs_trained"] == smoke["epochs"] == 1
    assert history[-1]["step"] == smoke["max_steps"] == 4  # 1,400 clips: the epoch stops after 4 of 22 steps
    assert metrics["recipe"]["deviations"]["epochs"] == {"paper": 150, "used": smoke["epochs"]}
    assert metrics["recipe"]["batch_size"] == config.load_recipe("baseline", "mini")["batch_size"]
    assert metrics["complexity"]["params"] == 61148 and metrics["complexity"]["passes"]


def test_results_notebook_found_every_planned_run(smoke_report):
    out, runs_root, _ = smoke_report
    runs = results.runs_table(runs_root)
    assert results.missing_runs(runs, results.planned_runs(PROFILE, "quick")).empty
    printed = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in
                      nbformat.read(out / "05_results_smoke.ipynb", as_version=4).cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "every training run of the report plan finished" in printed
    tables = paths.reports_dir() / "tables" / PROFILE
    assert (tables / "surkov_table3.csv").is_file() and (tables / "werning_table2.csv").is_file()


def test_second_build_reuses_every_run(smoke_report, capfd):
    out, _, records = smoke_report
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("[!.]*.ipynb")}
    assert workflow.build(PROFILE, out, which="quick", jobs=1, threads=1)
    printed = "".join(capfd.readouterr())
    assert "Nothing to be done" in printed and "rule nb_" not in printed
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("[!.]*.ipynb")} == stamps


def test_the_ablation_notebook_runs_headless_and_shares_the_mean_teacher_run_of_02(smoke_report, tmp_path):
    """02b (full plan only) with ``-p split 5``, one seed: its variants train, the sweep runs, and the
    unchanged mean teacher is 02's run of the quick plan, reused, not trained again."""
    _, runs_root, _ = smoke_report
    out = tmp_path / "02b.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / "02b_mean_teacher_ablations.ipynb"), str(out),
           "-p", "profile", PROFILE, "-p", "split", "5", "-y", "seeds: [0]", "-p", "progress", "False",
           "-y", "variants: [efficientat_mt, efficientat_ft, efficientat_mt_w0]", "--cwd", str(paths.NOTEBOOKS_DIR),
           "--no-progress-bar"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs)
    assert "mean teacher, consistency weight 0" in text and "best mean at consistency weight" in text
    metrics = json.loads((runs_root / "efficientat_mt" / "split5-seed0" / "metrics.json").read_text())
    assert metrics["fit"]["status"] == "reused" and "student" in metrics  # 02's run; teacher and student scored
    for method in ("efficientat_ft", "efficientat_mt_w0", "efficientat_mt_cw1", "efficientat_mt_cw100"):  # sweep around weight 10
        trained = json.loads((runs_root / method / "split5-seed0" / "metrics.json").read_text())
        assert trained["fit"]["status"] == "trained" and trained["fit"]["steps"] == 4, method


def test_the_cross_selection_notebook_runs_headless_beside_the_runs_it_compares_with(smoke_report, tmp_path):
    """04b (full plan only) with ``-p split 5``: Surkov's two stages on pruned clips and Werning's two on
    label-filtered clips train, and each is compared with the quick plan's run of the same method."""
    _, runs_root, _ = smoke_report
    out = tmp_path / "04b.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / "04b_cross_selection.ipynb"), str(out),
           "-p", "profile", PROFILE, "-p", "split", "5", "--cwd", str(paths.NOTEBOOKS_DIR), "--no-progress-bar"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr  # no kernel notice (asc_lib.config.kernel)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs)
    assert "pruned_for_surkov" in text and "labelfilter_for_werning" in text
    assert text.count("(paired: a bootstrap over test recordings") == 3 and "%|" not in text  # verdicts; no bars
    for method in ("efficientat_mt_xpruned", "kd_small_xpruned", "werning_xlabelfilter"):
        trained = json.loads((runs_root / method / "split5-seed0" / "metrics.json").read_text())
        assert trained["fit"]["status"] == "trained" and trained["fit"]["steps"] == 4, method
