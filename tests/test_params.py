"""Profiles, split validation and notebook-parameter validation."""
import ast
import sys
import types

import nbformat
import papermill.inspection
import pytest

from asc_lib import config
from asc_lib.config import paths
from asc_lib.study import notebooks, report


def test_profiles_resolve_inside_project():
    assert {"mini", "shared", "real"} <= set(config.available_profiles())
    mini = config.data_paths("mini")
    assert mini.tau22_dir == paths.ROOT / "data" / "mini" / "tau22"
    assert mini.meta_csv == mini.tau22_dir / "meta.csv"
    shared = config.data_paths("shared")
    assert shared.meta_csv.name == "meta_train_test.csv" and not shared.audio_available


def test_data_path_override_and_typo():
    p = config.data_paths("mini", splits_dir="/tmp/somewhere")
    assert str(p.splits_dir) == "/tmp/somewhere"
    with pytest.raises(ValueError, match="splitsdir"):
        config.data_paths("mini", splitsdir="/tmp")


@pytest.mark.parametrize("bad", [0, 7, 101, "ten", None, 5.5])
def test_unknown_split_is_rejected(bad):
    with pytest.raises(ValueError, match="unknown split"):
        config.check_split(bad)


def test_known_splits_accepted():
    assert [config.check_split(s) for s in ("5", 10, 25.0, 50, 100)] == [5, 10, 25, 50, 100]


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        config.load_profile("nope")


def test_notebook_params_rejects_misspelled_parameter():
    ns = {**config.NOTEBOOK_PARAMETERS["00_data_exploration"], "splt": 5, "In": [], "_": None}
    with pytest.raises(ValueError, match=r"'splt' \(did you mean 'split'\?\)"):
        config.notebook_params("00_data_exploration", ns)


def test_notebook_params_validates_values_and_resolves_paths():
    ns = dict(config.NOTEBOOK_PARAMETERS["00_data_exploration"], split=25, profile="shared")
    cfg = config.notebook_params("00_data_exploration", ns)
    assert cfg.split == 25 and cfg.data.splits_dir.name == "dcase2024_task1"
    with pytest.raises(ValueError, match="unknown front end"):
        config.notebook_params("00_data_exploration", dict(ns, frontend="mfcc"))
    with pytest.raises(ValueError, match="unknown split"):
        config.notebook_params("00_data_exploration", dict(ns, split=3))


def _parameters_cell(nb):
    return next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("notebook", sorted(config.NOTEBOOK_PARAMETERS))
def test_notebook_parameters_cell_matches_declaration(notebook):
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"] == notebooks.kernelspec("python3")  # as installed: JupyterLab keeps it unmodified
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    tree = ast.parse(_parameters_cell(nb).source)
    defaults = {node.target.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.AnnAssign)}
    assert defaults == config.NOTEBOOK_PARAMETERS[notebook]
    assert _parameters_cell(nb).source == config.parameters.parameters_source(notebook)


@pytest.mark.parametrize("notebook", sorted(config.NOTEBOOK_PARAMETERS))
def test_papermill_help_shows_a_type_and_a_description_for_every_parameter(notebook):
    """``papermill --help-notebook`` reads each parameter's type from its annotation and its description
    from its comment."""
    inferred = papermill.inspection.inspect_notebook(str(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb"))
    assert list(inferred) == list(config.NOTEBOOK_PARAMETERS[notebook])
    for name, p in inferred.items():
        assert p["inferred_type_name"] == config.parameters.parameter_type(notebook, name) and p["help"].strip(), p


def test_every_notebook_is_declared():
    names = {p.stem for p in paths.NOTEBOOKS_DIR.glob("*.ipynb")}
    assert names == set(config.NOTEBOOK_PARAMETERS)


def test_smoke_profile_is_a_smaller_mini_with_four_steps():
    smoke, mini = config.load_profile("smoke"), config.load_profile("mini")
    assert smoke["recipes"] == "smoke"
    # its own plans: every notebook but the benchmark once on split 5 (quick), the mini quick plan's shape and
    # more (full)
    quick, full = report.plan("smoke", "quick"), report.plan("smoke", "full")
    assert {r["notebook"].stem for r in quick} == set(config.NOTEBOOK_PARAMETERS) - {"06_benchmarks"}
    assert {r["notebook"].stem for r in full} == set(config.NOTEBOOK_PARAMETERS)
    assert {r["parameters"].get("split") for r in quick} == {5, None}
    mini_quick = {r["name"] for r in report.plan("mini", "quick")}
    assert {r["name"].removesuffix("_smoke") for r in full if not r["notebook"].stem.startswith("06")} >= \
        {name for name in mini_quick if not name.startswith("06")}
    # the mini generator with fewer recordings and clips, into its own folder
    assert set(smoke["generator"]) == set(mini["generator"]) and smoke["data"] != mini["data"]
    for key in ("train_segments_per_scene", "test_locations_per_scene", "test_segments_per_location"):
        assert smoke["generator"][key] < mini["generator"][key]
    assert smoke["generator"]["clips_per_segment"] == mini["generator"]["clips_per_segment"] == 10
    assert set(smoke["report_parameters"]) == {"06_benchmarks"}
    for name, source in [("baseline", "training"), ("mean_teacher", "surkov"), ("kd", "surkov"), ("kd", "werning"),
                         ("finetune", "werning"), ("audioset_tagger", "training")]:
        cut = config.load_recipe(name, "smoke", source)
        full = config.load_recipe(name, "mini", source)
        assert set(cut) == set(full) and cut["min_steps"] == cut["max_steps"] == 4, name
        assert full["max_steps"] in (0, full["min_steps"]), name  # no cap, or an exact budget (Werning's KD)
        # everything but the length is the mini recipe
        length = {"epochs", "min_steps", "max_steps", "eval_points", "deviations", "checkpoint_every"}
        assert {k: v for k, v in cut.items() if k not in length} == {k: v for k, v in full.items() if k not in length}


def test_smoke_benchmark_parameters_replace_the_plans(monkeypatch):
    runs = [r for r in report.plan("smoke", "full") if r["notebook"].stem == "06_benchmarks"]
    assert [r["parameters"] for r in runs] == [{"profile": "smoke", **config.load_profile("smoke")["report_parameters"]["06_benchmarks"]}]
    real = config.load_profile("mini")
    monkeypatch.setattr(report, "load_profile", lambda name: {**real, "report_parameters": {"07_nothing": {}}})
    with pytest.raises(ValueError, match="report_parameters names unknown notebook '07_nothing'"):
        report.plan("mini", "quick")


def test_a_smoke_setting_the_paper_lacks_is_refused(tmp_path, monkeypatch):
    (tmp_path / "toy.yaml").write_text("r:\n  paper: {epochs: 3}\n  smoke: {why: short, epochs: 1, epochz: 2}\n")
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"toy\.yaml: recipe r: .*smoke: 'epochz' is not a setting of paper: "
                                         r"\(did you mean 'epochs'\?\)"):
        config.load_recipe("r", "smoke", "toy")


@pytest.mark.parametrize("name, bad", [("epochs", 0), ("threshold", 1.5), ("selection", "best"), ("progress", "yes"),
                                       ("cache_sizes", [10, -1]), ("scaling_max", 10), ("plan", "all"),
                                       ("weights", 3), ("seed", -1), ("epochs", True), ("split", 7),
                                       ("device", "gpu"), ("threshold", float("nan"))])
def test_the_schema_refuses_a_bad_value_naming_the_parameter(name, bad):
    notebook = next(nb for nb, spec in config.NOTEBOOK_PARAMETERS.items() if name in spec)
    with pytest.raises(ValueError, match=rf"{notebook}: parameter {name} = "):
        config.notebook_params(notebook, {name: bad})


def test_the_schema_keeps_none_and_good_values():
    cfg = config.notebook_params("03b_pruned_kd", {"threshold": 0.5, "kd_steps": None, "split": "25", "epochs": 2})
    assert (cfg.threshold, cfg.kd_steps, cfg.split, cfg.epochs) == (0.5, None, 25, 2)
    assert config.notebook_params("06_benchmarks", {"cache_sizes": (10, 20)}).cache_sizes == [10, 20]


def test_progress_bars_only_when_someone_watches(monkeypatch):
    """progress=None: bars in JupyterLab (its requests allow input), none under papermill or nbval (theirs do
    not: the saved outputs stay free of bars), and on a terminal outside a kernel."""
    def kernel(allow):
        return types.SimpleNamespace(get_ipython=lambda: types.SimpleNamespace(kernel=types.SimpleNamespace(_allow_stdin=allow)))

    monkeypatch.setattr(config.progress, "_shown", None)  # the switch this test sets is undone after it
    monkeypatch.setitem(sys.modules, "IPython", kernel(True))
    assert config.progress.watched()
    ns = dict(config.NOTEBOOK_PARAMETERS["00b_baseline"])
    assert ns["progress"] is None and config.notebook_params("00b_baseline", ns).progress is True
    monkeypatch.setitem(sys.modules, "IPython", kernel(False))
    assert config.notebook_params("00b_baseline", ns).progress is False
    assert config.notebook_params("00b_baseline", dict(ns, progress=True)).progress is True


def test_a_notebooks_progress_parameter_switches_every_bar_of_the_library(monkeypatch):
    """One switch per process (asc_lib.config.progress): progress=False hides the bars of every library call,
    True shows them, TQDM_DISABLE=1 hides them whatever the switch."""
    from asc_lib.config import progress

    monkeypatch.setattr(progress, "_shown", None)
    config.notebook_params("00b_baseline", {"progress": False})
    assert not progress.shown() and progress.bar(range(3)).disable
    config.notebook_params("00b_baseline", {"progress": True})
    assert progress.shown() and not progress.bar(range(3), file=sys.stderr).disable
    assert progress.bar(range(3), disable=True).disable  # a caller may still hide its own
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress.shown()


def test_in_a_notebook_a_warning_reads_as_a_note_in_the_output(monkeypatch, capsys):
    """In a kernel, notebook_params shows warnings as one line of the cell's output (not a stderr box with the
    library's source line); outside a kernel (tests, command lines) Python's own display stays."""
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # undone after the test
    monkeypatch.setattr(config.progress, "_shown", None)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(
        get_ipython=lambda: types.SimpleNamespace(kernel=types.SimpleNamespace(_allow_stdin=False))))
    config.notebook_params("00b_baseline", {})
    warnings.showwarning(UserWarning("7 of 200 AudioSet clips are absent"), UserWarning, "asc_lib/x.py", 3)
    assert capsys.readouterr().out == "Note (UserWarning): 7 of 200 AudioSet clips are absent\n"
