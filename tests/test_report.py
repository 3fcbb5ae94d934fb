"""The plan and its execution through Snakemake: plan validation, one run per parameter set, reruns for the
reasons the engine gives, failures kept, concurrency and one GPU per job, the full plan's dry run, index.html."""
import os
import re

import nbformat
import pytest

from asc_lib import config
from asc_lib.config import paths
from asc_lib.models import pretrained
from asc_lib.study import report, workflow


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


def test_the_plans_are_nested_quick_runs_every_notebook_and_method_on_splits_5_and_100():
    quick, full, extended = (report.plan("mini", w) for w in ("quick", "full", "extended"))
    assert report.default_plan("mini") == "quick" and report.default_plan("real") == "full"
    assert {r["name"] for r in quick} < {r["name"] for r in full} < {r["name"] for r in extended}
    ablation = "02b_mean_teacher_ablations"  # 42 EfficientAT runs: the extended plan's alone
    cross = "04b_cross_selection"  # 18 runs: the extended plan's alone too
    assert {r["notebook"].stem for r in quick} == {r["notebook"].stem for r in full} == \
        set(config.NOTEBOOK_PARAMETERS) - {ablation, cross}
    for notebook in ("00b_baseline", "02_mean_teacher", "04_kd", "03_domain_pruning", "03b_pruned_kd", ablation, cross):
        assert {r["parameters"].get("split") for r in extended if r["notebook"].stem == notebook} >= {5, 100}, notebook
        if notebook not in (ablation, cross):
            assert {r["parameters"].get("split") for r in quick if r["notebook"].stem == notebook} == {5, 100}
    for plan, notebooks in ((full, ("00b_baseline", "02_mean_teacher", "04_kd", "03_domain_pruning", "03b_pruned_kd")),
                            (extended, ("04b_cross_selection",))):
        for notebook in notebooks:
            for split in (5, 100):  # three seeds wherever a comparison is stated with its interval
                seeds = {r["parameters"].get("seed", 0) for r in plan
                         if r["notebook"].stem == notebook and r["parameters"].get("split") == split}
                assert seeds >= {0, 1, 2}, (notebook, split)
    # the full plan: the baseline on every split; the extended plan: every method on every split (the old full plan)
    assert {r["parameters"]["split"] for r in full if r["notebook"].stem == "00b_baseline"} == set(config.SPLITS)
    assert {r["parameters"]["split"] for r in extended if r["notebook"].stem == "03b_pruned_kd"} == set(config.SPLITS)
    assert (len(quick), len(full), len(extended)) == (14, 46, 87)
    with pytest.raises(ValueError, match="unknown plan"):
        report.plan("mini", "medium")


def test_a_plan_entry_with_an_unknown_key_or_plan_is_refused(monkeypatch):
    entry = {"notebook": "00_data_exploration", "parameters": {"split": 5}}
    monkeypatch.setattr(report, "load_profile", lambda p: {"report": [{**entry, "plans": ["full"]}]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['plans'\]"):
        report.plan("mini", "full")
    monkeypatch.setattr(report, "load_profile", lambda p: {"report": [{**entry, "plan": "ful"}]})
    with pytest.raises(ValueError, match="unknown plan 'ful'"):
        report.plan("mini", "full")


def test_dependencies_follow_prerequisites_and_barriers():
    runs = report.plan("mini", "extended")
    after = report.dependencies(runs)
    index = {r["name"]: i for i, r in enumerate(runs)}
    kd5 = after[index["04_kd_split5"]]
    assert index["02_mean_teacher_split5"] in kd5 and index["02_mean_teacher_split100"] not in kd5
    ablation5 = after[index["02b_mean_teacher_ablations_split5_sweep-True_variants-None"]]  # shares 02's runs: waits for every 02 run of its split
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
        nbformat.v4.new_code_cell("name = 'x'\nother = 'y'\nfolder = '.'\nx = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _said(capfd) -> str:
    """What the workflow printed (Snakemake logs to stderr)."""
    captured = capfd.readouterr()
    return captured.out + captured.err


def _plan(monkeypatch, runs):
    """The workflow runs ``runs`` (toy notebooks) as the mini profile's plan."""
    monkeypatch.setattr(report, "plan", lambda profile, which=None: runs)


@pytest.mark.full
def test_build_runs_once_then_reruns_what_changed(tmp_path, monkeypatch):
    """A changed parameter reruns that run and a new run is added, the unchanged one is kept. (make test-full;
    fast equivalents in make test: the engine's rerun reason for changed code in the next test, a second build
    that reuses every run and a killed build resumed in tests/test_notebooks.py.)"""
    src = _toy_notebook(tmp_path / "toy.ipynb", "print('value', x)")
    runs = [dict(notebook=src, parameters={"x": 3}, name="toy_x3"), dict(notebook=src, parameters={"x": 1}, name="toy_x1")]
    _plan(monkeypatch, runs)
    out = tmp_path / "reports"
    assert workflow.build("mini", out, jobs=2)
    assert "value 3" in _printed(nbformat.read(out / "toy_x3.ipynb", as_version=4))
    assert "href='html/toy_x3.html'" in (out / "index.html").read_text()
    stamp = (out / "toy_x1.ipynb").stat().st_mtime_ns
    runs[0]["parameters"] = {"x": 4}
    runs.append(dict(notebook=src, parameters={"x": 5}, name="toy_x5"))
    assert workflow.build("mini", out, jobs=2)
    assert "value 4" in _printed(nbformat.read(out / "toy_x3.ipynb", as_version=4))
    assert "value 5" in _printed(nbformat.read(out / "toy_x5.ipynb", as_version=4))
    assert (out / "toy_x1.ipynb").stat().st_mtime_ns == stamp, "an unchanged finished run is not redone"
    assert set(workflow.times(out)) == {"toy_x1", "toy_x3", "toy_x5"}


def test_on_two_fake_gpus_runs_share_the_devices_a_failure_is_kept_force_retrains_and_changed_code_reruns(
        tmp_path, monkeypatch, capfd):
    """One build on a fake list of two devices (no GPU here), forced: two runs of a notebook that trains (so its
    rule takes ``gpu=1``) start together, as ``--resources gpu=2`` allows (each waits for the other's file: they
    can only both finish if they run at the same time), each kernel sees one device of its own and its share of
    the CPU threads, and ``ASC_RETRAIN`` (fit retrains) in the kernels only; a third run fails: its notebook
    and page are kept in ``failed/``, the index says FAILED, the others finish. Then a dry run after the
    library's code changed names the engine's reason."""
    (tmp_path / "nb").mkdir()
    src = _toy_notebook(tmp_path / "nb" / "00b_baseline.ipynb", _MEET)  # a training notebook's rule
    bad = _toy_notebook(tmp_path / "bad.ipynb", "raise RuntimeError('bad data')")
    (tmp_path / "meet").mkdir()
    _plan(monkeypatch, _meeting(src, tmp_path / "meet") + [dict(notebook=bad, parameters={}, name="bad")])
    out = tmp_path / "reports"
    assert not workflow.build("mini", out, gpus="3,5", force=True)
    printed = _said(capfd)
    assert "Forced execution" in printed and "rule data" not in printed, "--force never regenerates the data"
    seen = [_printed(nbformat.read(out / f"meet_{n}.ipynb", as_version=4)) for n in "ab"]
    assert sorted(re.search(r"devices (\S+)", text).group(1) for text in seen) == ["3", "5"]
    assert all(f"threads {max(1, (os.cpu_count() or 1) // 2)}" in text and "retrain 1" in text for text in seen)
    assert "ASC_RETRAIN" not in os.environ
    assert "--resources" in workflow.command(report.table("mini", "quick"), out, 2, 1, ["3", "5"])
    index = (out / "index.html").read_text()
    assert "<td>FAILED</td>" in index and "<td>ok</td>" in index
    assert "bad data" in (out / "failed" / "bad.html").read_text() and "href='failed/bad.html'" in index
    assert (out / "failed" / "bad.ipynb").is_file() and not (out / "bad.ipynb").exists()
    monkeypatch.setattr(report.provenance, "package_digest", lambda: "another-library")
    workflow.build("mini", out, gpus="3,5", dry_run=True)
    assert "Params have changed since last execution" in _said(capfd)


@pytest.mark.full
def test_changed_code_or_data_reruns_and_the_engine_says_why(tmp_path, monkeypatch, capfd):
    """make test-full; its fast equivalent in make test: the changed-code dry run of the previous test."""
    src = _toy_notebook(tmp_path / "toy.ipynb", "print('ran', name)")
    _plan(monkeypatch, [dict(notebook=src, parameters={"name": "a"}, name="toy_a")])
    out = tmp_path / "reports"
    assert workflow.build("mini", out, jobs=1)
    assert "Missing output files: " in _said(capfd)
    assert workflow.build("mini", out, jobs=1, dry_run=True)  # what would run now, and why (nothing runs)
    assert "Nothing to be done" in _said(capfd)
    monkeypatch.setattr(report.provenance, "package_digest", lambda: "another-library")
    assert workflow.build("mini", out, jobs=1, dry_run=True)
    assert "Params have changed since last execution" in _said(capfd)
    monkeypatch.undo()
    _plan(monkeypatch, [dict(notebook=src, parameters={"name": "a"}, name="toy_a")])
    monkeypatch.setattr(report, "data_signature", lambda profile: "other-audio")
    assert workflow.build("mini", out, jobs=1, dry_run=True)
    assert "Params have changed since last execution" in _said(capfd)
    assert workflow.build("mini", out, jobs=1, force=True, dry_run=True)
    printed = _said(capfd)
    assert "Forced execution" in printed and "rule data" not in printed, "--force never regenerates the data"


_MEET = "\n".join([
    "import os, pathlib, time",
    "pathlib.Path(folder, name).touch()",
    "deadline = time.time() + 120",
    "while not pathlib.Path(folder, other).exists():",
    "    assert time.time() < deadline, 'the other notebook never started'",
    "    time.sleep(0.2)",
    "print('threads', os.environ.get('OMP_NUM_THREADS'))",
    "print('devices', os.environ.get('CUDA_VISIBLE_DEVICES'))",
    "print('retrain', os.environ.get('ASC_RETRAIN'))"])


def _meeting(src, folder):
    return [dict(notebook=src, parameters={"name": "a", "other": "b", "folder": str(folder)}, name="meet_a"),
            dict(notebook=src, parameters={"name": "b", "other": "a", "folder": str(folder)}, name="meet_b")]


def test_a_cpu_runs_two_notebooks_at_once_with_half_the_cores_each_and_a_gpu_server_one_per_device():
    assert workflow.jobs_and_threads(2, [], None, None) == (2, 1)
    assert workflow.jobs_and_threads(8, [], None, None) == (2, 4)
    assert workflow.jobs_and_threads(1, [], None, None) == (1, 1)
    assert workflow.jobs_and_threads(16, ["0", "1", "2", "3"], None, None) == (4, 4)
    assert workflow.jobs_and_threads(2, [], 1, 1) == (1, 1)  # JOBS=1 and --threads as given


def test_the_extended_plans_dry_run_lists_every_run_with_its_prerequisites(tmp_path, capfd):
    full = report.plan("mini", "extended")
    assert workflow.build("mini", tmp_path / "reports", "extended", dry_run=True)
    printed = _said(capfd)
    jobs = re.findall(r"rule (nb_\w+):\n    input: ([^\n]*)\n    output: (\S+)\.ipynb", printed)
    assert len(jobs) == len(full) == 87
    inputs = {name: needed for _, needed, name in jobs}
    assert "02_mean_teacher_split5.ipynb" in inputs["04_kd_split5"]
    assert "02_mean_teacher_split100.ipynb" not in inputs["04_kd_split5"]
    assert "03_domain_pruning_split100_threshold-0.1.ipynb" in inputs["03b_pruned_kd_split100_threshold-0.1"]
    before = [r["name"] for r in full].index("05_results")
    assert inputs["05_results"].count(".ipynb") == 1 + before  # its notebook and every run before it
    assert not list((tmp_path / "reports").glob("*.ipynb")), "a dry run runs nothing"


def test_the_stand_in_tagger_is_one_shared_set_up_job(tmp_path, monkeypatch):
    quick = report.plan("mini", "quick")
    # mn04_as cannot be had (no shared folder, offline): the stand-in replaces it, trained once first
    monkeypatch.setenv("ASC_SHARED_DATA", str(tmp_path / "no-shared"))
    monkeypatch.setenv("ASC_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path / "no-weights")
    assert report.uses_standin("mini", quick)
    assert not report.uses_standin("mini", [r for r in quick if r["notebook"].stem == "00b_baseline"])
    # the real profile uses the official weights: nothing to train first
    assert not report.uses_standin("real", report.plan("real"))


@pytest.mark.skipif(not (paths.shared_data_dir() / "weights" / "mn04_as_mAP_432.pt").is_file(),
                    reason="needs ../shared/data/weights/mn04_as_mAP_432.pt (the released EfficientAT mn04_as)")
def test_no_stand_in_is_trained_when_the_real_weights_are_there():
    assert not report.uses_standin("mini", report.plan("mini", "quick"))
