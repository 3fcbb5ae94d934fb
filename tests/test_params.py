"""Profiles, split validation and notebook-parameter validation."""
import ast

import nbformat
import pytest

from asc_lib import params, paths


def test_profiles_resolve_inside_project():
    assert {"mini", "shared", "real"} <= set(params.available_profiles())
    mini = params.data_paths("mini")
    assert mini.tau22_dir == paths.ROOT / "data" / "mini" / "tau22"
    assert mini.meta_csv == mini.tau22_dir / "meta.csv"
    shared = params.data_paths("shared")
    assert shared.meta_csv.name == "meta_train_test.csv" and not shared.audio_available


def test_data_path_override_and_typo():
    p = params.data_paths("mini", splits_dir="/tmp/somewhere")
    assert str(p.splits_dir) == "/tmp/somewhere"
    with pytest.raises(ValueError, match="splitsdir"):
        params.data_paths("mini", splitsdir="/tmp")


@pytest.mark.parametrize("bad", [0, 7, 101, "ten", None, 5.5])
def test_unknown_split_is_rejected(bad):
    with pytest.raises(ValueError, match="unknown split"):
        params.check_split(bad)


def test_known_splits_accepted():
    assert [params.check_split(s) for s in ("5", 10, 25.0, 50, 100)] == [5, 10, 25, 50, 100]


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        params.load_profile("nope")


def test_notebook_params_rejects_misspelled_parameter():
    ns = {**params.NOTEBOOK_PARAMETERS["00_data_exploration"], "splt": 5, "In": [], "_": None}
    with pytest.raises(ValueError, match=r"'splt' \(did you mean 'split'\?\)"):
        params.notebook_params("00_data_exploration", ns)


def test_notebook_params_validates_values_and_resolves_paths():
    ns = dict(params.NOTEBOOK_PARAMETERS["00_data_exploration"], split=25, profile="shared")
    cfg = params.notebook_params("00_data_exploration", ns)
    assert cfg.split == 25 and cfg.data.splits_dir.name == "dcase2024_task1"
    with pytest.raises(ValueError, match="unknown front end"):
        params.notebook_params("00_data_exploration", dict(ns, frontend="mfcc"))
    with pytest.raises(ValueError, match="unknown split"):
        params.notebook_params("00_data_exploration", dict(ns, split=3))


def _parameters_cell(nb):
    return next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("notebook", sorted(params.NOTEBOOK_PARAMETERS))
def test_notebook_parameters_cell_matches_declaration(notebook):
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    tree = ast.parse(_parameters_cell(nb).source)
    defaults = {t.id: ast.literal_eval(node.value) for node in tree.body
                for t in node.targets if isinstance(node, ast.Assign)}
    assert defaults == params.NOTEBOOK_PARAMETERS[notebook]


def test_every_notebook_is_declared():
    names = {p.stem for p in paths.NOTEBOOKS_DIR.glob("*.ipynb")}
    assert names == set(params.NOTEBOOK_PARAMETERS)
