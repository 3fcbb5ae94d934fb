"""The report runner: plan validation, one run per parameter set, resume, index.html."""
import os
import re

import nbformat
import pytest

from asc_lib import config
from asc_lib.config import paths
from asc_lib.models import pretrained
from asc_lib.study import report


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_run_names():
    assert report.run_name("04_kd", {"split": 5}, "mini") == "04_kd_split5"
    assert report.run_name("00_data_exploration", {"split": 5, "frontend": "x"}, "real") == \
        "00_data_exploration_split5_frontend-x_real"


def test_plan_of_every_profile_is_valid():
    for profile in config.available_profiles():
        runs = report.plan(profile)
        assert runs and all(r["notebook"].is_file() for r in runs)
        assert len({r["name"] for r in runs}) == len(runs)


def test_list_parameters_expand_to_one_run_each():
    assert report.expand({"split": [5, 100], "seed": [0, 1], "profile": "mini"}) == [
        {"split": 5, "seed": 0, "profile": "mini"}, {"split": 5, "seed": 1, "profile": "mini"},
        {"split": 100, "seed": 0, "profile": "mini"}, {"split": 100, "seed": 1, "profile": "mini"}]
    names = [r["name"] for r in report.plan("mini", "full") if r["notebook"].stem == "00b_baseline"]
    assert set(names[:5]) == {f"00b_baseline_split{s}" for s in config.SPLITS}
    assert "00b_baseline_split100_seed-2" in names


def test_plan_rejects_unknown_parameter(monkeypatch):
    monkeypatch.setattr(report, "load_profile",
                        lambda p: {"report": [{"notebook": "00_data_exploration", "parameters": {"splt": 5}}]})
    with pytest.raises(ValueError, match="splt"):
        report.plan("mini")


def test_build_runs_once_then_resumes(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, x]);\nprint('value', x)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "nb"
    src.mkdir()
    nbformat.write(nb, src / "toy.ipynb")
    runs = [dict(notebook=src / "toy.ipynb", parameters={"x": 3}, name="toy_x3")]
    monkeypatch.setattr(report, "plan", lambda profile, which=None: runs)
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", src)
    out = tmp_path / "reports"
    assert report.build("mini", out)
    executed = nbformat.read(out / "toy_x3.ipynb", as_version=4)
    assert "value 3" in _printed(executed)
    page = (out / "html" / "toy_x3.html").read_text()
    assert "data:image/png;base64" in page, "figures are embedded in the HTML"
    index = (out / "index.html").read_text()
    assert "href='html/toy_x3.html'" in index
    links = re.findall(r"href='([^']+)'", index)
    assert links and all((out / link).is_file() for link in links), "no broken link in index.html"
    stamp = (out / "toy_x3.ipynb").stat().st_mtime_ns
    assert report.build("mini", out)
    assert (out / "toy_x3.ipynb").stat().st_mtime_ns == stamp, "an unchanged finished run is not redone"
    runs[0]["parameters"] = {"x": 4}
    runs.append(dict(notebook=src / "toy.ipynb", parameters={"x": 5}, name="toy_x5"))
    assert report.build("mini", out)
    assert "value 4" in _printed(nbformat.read(out / "toy_x3.ipynb", as_version=4))
    del runs[0]
    assert report.build("mini", out)
    index = (out / "index.html").read_text()
    assert index.index("toy_x5") < index.index("Other runs") < index.index("toy_x3"), \
        "runs outside the current plan stay listed, below it"


def test_failed_run_is_kept_and_reported(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('bad data')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "bad.ipynb")
    monkeypatch.setattr(report, "plan", lambda p, which=None: [dict(notebook=tmp_path / "bad.ipynb", parameters={}, name="bad")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    assert not report.build("mini", tmp_path / "out")
    assert "FAILED" in (tmp_path / "out" / "index.html").read_text()
    assert (tmp_path / "out" / "html" / "bad.html").is_file()


def test_quick_plan_runs_every_notebook_and_method_on_splits_5_and_100():
    quick, full = report.plan("mini", "quick"), report.plan("mini", "full")
    assert report.default_plan("mini") == "quick" and report.default_plan("real") == "full"
    assert {r["name"] for r in quick} < {r["name"] for r in full}
    ablation = "02b_mean_teacher_ablations"  # 42 EfficientAT runs: the full plan's alone (PLAN=full)
    cross = "04b_cross_selection"  # 18 runs: the full plan's alone too
    assert {r["notebook"].stem for r in quick} == set(config.NOTEBOOK_PARAMETERS) - {ablation, cross}
    for notebook in ("00b_baseline", "02_mean_teacher", "04_kd", "03_domain_pruning", "03b_pruned_kd", ablation, cross):
        assert {r["parameters"].get("split") for r in full if r["notebook"].stem == notebook} >= {5, 100}, notebook
        if notebook not in (ablation, cross):
            assert {r["parameters"].get("split") for r in quick if r["notebook"].stem == notebook} == {5, 100}
    for notebook in ("00b_baseline", "02_mean_teacher", "04_kd", "03_domain_pruning", "03b_pruned_kd", cross):
        for split in (5, 100):  # three seeds wherever a comparison is stated with its interval
            seeds = {r["parameters"].get("seed", 0) for r in full
                     if r["notebook"].stem == notebook and r["parameters"].get("split") == split}
            assert seeds >= {0, 1, 2}, (notebook, split)
    assert len(full) == 87  # 79, and seeds 1 and 2 of plain fine-tuning and of the large subset on splits 5 and 100
    with pytest.raises(ValueError, match="unknown plan"):
        report.plan("mini", "medium")


def test_dependencies_follow_prerequisites_and_barriers():
    runs = report.plan("mini", "full")
    after = report.dependencies(runs)
    index = {r["name"]: i for i, r in enumerate(runs)}
    kd5 = after[index["04_kd_split5"]]
    assert index["02_mean_teacher_split5"] in kd5 and index["02_mean_teacher_split100"] not in kd5
    ablation5 = after[index["02b_mean_teacher_ablations_split5"]]  # shares 02's runs: waits for every 02 run of its split
    assert index["02_mean_teacher_split5"] in ablation5 and index["02_mean_teacher_split5_mode-supervised"] in ablation5
    assert index["01_audioset_label_filtering"] in after[index["02_mean_teacher_split5"]]
    assert index["03_domain_pruning_split100_threshold-0.1"] in after[index["03b_pruned_kd_split100_threshold-0.1"]]
    assert after[index["00b_baseline_split5"]] == set()
    assert after[index["05_results"]] == set(range(index["05_results"]))
    assert report.prerequisites("04_kd") == ["01_audioset_label_filtering", "02_mean_teacher"]
    cross = after[index["04b_cross_selection_split5_seed-1"]]  # compares with 04's and 03b's runs of its split
    assert {index["04_kd_split5_seed-1"], index["03b_pruned_kd_split5_seed-1_selection-pruned"]} <= cross
    assert index["04_kd_split100"] not in cross


def _toy_notebook(path, source):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("name = 'x'\nother = 'y'\nfolder = '.'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_changed_code_or_data_reruns_and_says_why(tmp_path, monkeypatch, capsys):
    src = _toy_notebook(tmp_path / "toy.ipynb", "print('ran', name)")
    runs = [dict(notebook=src, parameters={"name": "a"}, name="toy_a")]
    monkeypatch.setattr(report, "plan", lambda profile, which=None: runs)
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    out = tmp_path / "reports"
    assert report.build("mini", out, jobs=1)
    assert "running (not run yet)" in capsys.readouterr().out
    assert report.build("mini", out, jobs=1)
    assert "toy_a: reused (same notebook, parameters, code and data)" in capsys.readouterr().out
    monkeypatch.setattr(report.provenance, "package_digest", lambda: "another-library")
    assert report.build("mini", out, jobs=1)
    assert "running (changed: code)" in capsys.readouterr().out
    monkeypatch.setattr(report, "data_signature", lambda profile: "other-audio")
    assert report.build("mini", out, jobs=1)
    assert "running (changed: data)" in capsys.readouterr().out
    assert report.build("mini", out, jobs=1, force=True)
    assert "running (--force)" in capsys.readouterr().out


def test_independent_runs_execute_at_the_same_time_with_their_share_of_threads(tmp_path, monkeypatch):
    # each notebook waits for the other's file: they can only both finish if they run concurrently
    src = _toy_notebook(tmp_path / "meet.ipynb", "\n".join([
        "import os, pathlib, time",
        "pathlib.Path(folder, name).touch()",
        "deadline = time.time() + 120",
        "while not pathlib.Path(folder, other).exists():",
        "    assert time.time() < deadline, 'the other notebook never started'",
        "    time.sleep(0.2)",
        "print('threads', os.environ.get('OMP_NUM_THREADS'))"]))
    meet = str(tmp_path / "meet")
    (tmp_path / "meet").mkdir()
    runs = [dict(notebook=src, parameters={"name": "a", "other": "b", "folder": meet}, name="meet_a"),
            dict(notebook=src, parameters={"name": "b", "other": "a", "folder": meet}, name="meet_b")]
    monkeypatch.setattr(report, "plan", lambda profile, which=None: runs)
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    assert report.build("mini", tmp_path / "reports", jobs=2)
    printed = _printed(nbformat.read(tmp_path / "reports" / "meet_a.ipynb", as_version=4))
    assert f"threads {max(1, (os.cpu_count() or 1) // 2)}" in printed


def test_force_retrains_in_the_kernels_without_touching_this_process(tmp_path, monkeypatch):
    src = _toy_notebook(tmp_path / "env.ipynb", "import os\nprint('retrain', os.environ.get('ASC_RETRAIN'))")
    runs = [dict(notebook=src, parameters={"name": "a"}, name="env_a")]
    monkeypatch.setattr(report, "plan", lambda profile, which=None: runs)
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    assert report.build("mini", tmp_path / "reports", jobs=1, force=True)
    assert "retrain 1" in _printed(nbformat.read(tmp_path / "reports" / "env_a.ipynb", as_version=4))
    assert "ASC_RETRAIN" not in os.environ


def test_the_stand_in_tagger_is_one_shared_set_up_job(tmp_path, monkeypatch):
    quick = report.plan("mini", "quick")
    # mn04_as cannot be had (no shared folder, offline): the stand-in replaces it, trained once first
    monkeypatch.setenv("ASC_SHARED_DATA", str(tmp_path / "no-shared"))
    monkeypatch.setenv("ASC_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path / "no-weights")
    command = report.shared_setup("mini", quick)
    assert command[-4:] == ["asc_lib.methods.tagger", "--profile", "mini", "--quiet"]
    assert report.shared_setup("mini", [r for r in quick if r["notebook"].stem == "00b_baseline"]) is None
    # the real profile uses the official weights: nothing to train first
    assert report.shared_setup("real", report.plan("real")) is None


@pytest.mark.skipif(not (paths.shared_data_dir() / "weights" / "mn04_as_mAP_432.pt").is_file(),
                    reason="needs ../shared/data/weights/mn04_as_mAP_432.pt (the released EfficientAT mn04_as)")
def test_no_stand_in_is_trained_when_the_real_weights_are_there():
    assert report.shared_setup("mini", report.plan("mini", "quick")) is None
