"""`make test` works in temporary folders only: runs, caches and reports of the session (and of the notebook
kernels it starts) live under a temporary folder, never in the checkout's `data/runs` or `reports/`; the
session fails if those change (see conftest.py)."""
import subprocess
import sys

import conftest
import nbformat

from asc_lib.config import paths, provenance


def test_runs_caches_and_reports_are_temporary():
    for folder in (paths.runs_dir(), paths.cache_dir(), paths.reports_dir()):
        assert folder.is_relative_to(conftest._SESSION_DIR), folder
        assert not folder.is_relative_to(paths.ROOT), folder


def test_notebook_kernels_inherit_the_temporary_folders(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from asc_lib.config import paths\nprint(paths.runs_dir(), paths.cache_dir(), paths.reports_dir())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "where.ipynb")
    subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "where.ipynb"), str(tmp_path / "out.ipynb"),
                    "--no-progress-bar"], check=True, capture_output=True)
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"]
    assert out.split() == [str(paths.runs_dir()), str(paths.cache_dir()), str(paths.reports_dir())]


def test_the_guard_notices_a_changed_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "metrics.json").write_text("{}")
    before = provenance.tree_signature(tmp_path / "runs")
    assert provenance.tree_signature(tmp_path / "runs") == before
    (tmp_path / "runs" / "new").mkdir()
    (tmp_path / "runs" / "new" / "checkpoint.pt").write_bytes(b"x")
    assert provenance.tree_signature(tmp_path / "runs") != before
    assert set(conftest._GUARDED) == {paths.ROOT / "data" / "runs", paths.ROOT / "reports"}
