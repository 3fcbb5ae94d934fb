"""The report runner: plan validation, one run per parameter set, resume, index.html."""
import re

import nbformat
import pytest

from asc_lib import params, paths, report


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_run_names():
    assert report.run_name("04_kd", {"split": 5}, "mini") == "04_kd_split5"
    assert report.run_name("00_data_exploration", {"split": 5, "frontend": "x"}, "real") == \
        "00_data_exploration_split5_frontend-x_real"


def test_plan_of_every_profile_is_valid():
    for profile in params.available_profiles():
        runs = report.plan(profile)
        assert runs and all(r["notebook"].is_file() for r in runs)
        assert len({r["name"] for r in runs}) == len(runs)


def test_list_parameters_expand_to_one_run_each():
    assert report.expand({"split": [5, 100], "seed": [0, 1], "profile": "mini"}) == [
        {"split": 5, "seed": 0, "profile": "mini"}, {"split": 5, "seed": 1, "profile": "mini"},
        {"split": 100, "seed": 0, "profile": "mini"}, {"split": 100, "seed": 1, "profile": "mini"}]
    names = [r["name"] for r in report.plan("mini") if r["notebook"].stem == "00b_baseline"]
    assert names[:5] == [f"00b_baseline_split{s}" for s in params.SPLITS]
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
    monkeypatch.setattr(report, "plan", lambda profile: runs)
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
    monkeypatch.setattr(report, "plan", lambda p: [dict(notebook=tmp_path / "bad.ipynb", parameters={}, name="bad")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    assert not report.build("mini", tmp_path / "out")
    assert "FAILED" in (tmp_path / "out" / "index.html").read_text()
    assert (tmp_path / "out" / "html" / "bad.html").is_file()
