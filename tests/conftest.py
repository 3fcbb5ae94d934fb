"""Shared fixtures and the test session's isolation.

Isolation: before anything is imported, the session points runs, caches and reports at a temporary
folder (``ASC_RUNS_DIR``, ``ASC_CACHE_DIR``, ``ASC_REPORTS_DIR``, inherited by the nbval kernels), so
`make test` never reads or writes what `make report` made; at the end the session fails if
``data/runs`` or ``reports/`` of the checkout changed.

Two tiers: `make test` (its target: 10 minutes on a 2-core machine) and `make test-full` (``pytest --full``), which adds the
checks marked ``full``: learned properties on the mini data and the smoke profile's full plan (splits 5 and 100);
each has a fast equivalent in `make test`, named in its docstring.

Notebooks: `make test` runs the smoke profile's quick plan (every notebook but the benchmark once;
tests/test_notebooks.py) and nbval
over the notebooks that do not train (``testpaths``); ``make nbval`` runs nbval over every notebook at its
committed defaults. There a notebook that needs another's output (``04_kd`` needs the teacher of
``02_mean_teacher``, ...; :data:`asc_lib.study.report.PREREQUISITES`) gets it from a hook that runs the
prerequisite with papermill, unless nbval already ran it in full in this session. So any notebook can
be tested alone, in any order.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="asc-test-"))
_ISOLATED = {"ASC_RUNS_DIR": _SESSION_DIR / "runs", "ASC_CACHE_DIR": _SESSION_DIR / "cache",
             "ASC_REPORTS_DIR": _SESSION_DIR / "reports"}
os.environ.update({k: str(v) for k, v in _ISOLATED.items()})
os.environ.pop("ASC_RETRAIN", None)
os.environ["ASC_OFFLINE"] = "1"  # no test downloads a checkpoint: a missing one is the shared folder's absence

from asc_lib import config
from asc_lib.config import paths, provenance
from asc_lib.data import minidata
from asc_lib.study import report  # noqa: E402  (after the isolation)

_GUARDED = (paths.ROOT / "data" / "runs", paths.ROOT / "reports")
_BEFORE = {str(p): provenance.tree_signature(p) for p in _GUARDED}


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = paths.shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real reference file {path} is absent (only in the study's development checkout)")
    return path


@pytest.fixture(scope="session")
def mini_data() -> config.DataPaths:
    """The embedded mini dataset (generated on first use, as `make data` does)."""
    minidata.ensure("mini")
    return config.data_paths("mini")


@pytest.fixture(scope="session")
def smoke_data() -> config.DataPaths:
    """The smoke profile's smaller generated dataset (`make test` generates it first)."""
    minidata.ensure("smoke")
    return config.data_paths("smoke")


@pytest.fixture(scope="session")
def shared_data() -> config.DataPaths:
    """The real split lists and metadata of ../shared/data (no audio)."""
    shared_file("dcase2024_task1", "split5.csv")
    shared_file("tau22", "meta_train_test.csv")
    return config.data_paths("shared")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also the slow checks marked 'full' and the smoke profile's full plan (make test-full)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: a slow check run by `make test-full` (pytest --full) only; a fast "
                                       "equivalent stays in `make test`")
    _SMOKE["plan"] = "full" if config.getoption("--full") else "quick"


# --- the smoke report: the smoke profile's plan through the workflow, beside the other tests -------------

SMOKE_TESTS = "test_notebooks.py"
_SMOKE: dict = {}


def _executed(out: Path) -> dict[str, int]:
    """The finished notebooks of a reports folder and their modification times."""
    return {p.stem: p.stat().st_mtime_ns for p in out.glob("*.ipynb") if not p.name.startswith(".")}


def _smoke_report(out: Path, log: Path) -> None:
    """`make report PROFILE=smoke` (quick plan; full with --full) through the workflow, killed once: the first start is killed
    (its whole process group, SIGKILL) while a notebook runs after the first one finished; the second start
    must redo only the unfinished runs (tests/test_notebooks.py checks it)."""
    cmd = [sys.executable, "-m", "asc_lib.study.workflow", "--profile", "smoke", "--plan", _SMOKE["plan"], "--jobs", "1",
           "--threads", "1", "--out", str(out)]
    with log.open("w") as handle:
        first = _SMOKE["process"] = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                                                     start_new_session=True)
        while first.poll() is None and not (_executed(out) and list(out.glob(".*.tmp.ipynb"))):
            time.sleep(0.5)  # until one notebook is done and the next one is being written
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended by itself (then the second start finds everything done)
            pass
        first.wait()
        _SMOKE["before_kill"] = _executed(out)
        handle.write(f"\n--- killed after {sorted(_SMOKE['before_kill'])}; started again ---\n")
        handle.flush()
        _SMOKE["process"] = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        _SMOKE["code"] = _SMOKE["process"].wait()


def _start_smoke_report() -> None:
    """Start the smoke report into the session folder in a background thread, one notebook at a time with
    one CPU thread: it runs on one core while the other tests use the other, and the tests of
    tests/test_notebooks.py (collected last) wait for it. (Two at a time were tried: then the kill can land
    after a notebook's file is written but before Snakemake recorded the job as finished, and the engine
    rightly redoes it, so the kill-and-resume test could not tell a finished run from an unfinished one.)"""
    minidata.ensure("smoke")
    out = _SESSION_DIR / "smoke-report"
    log = _SESSION_DIR / "smoke-report.log"
    thread = threading.Thread(target=_smoke_report, args=(out, log), daemon=True)
    _SMOKE.update(thread=thread, out=out, log=log)
    thread.start()
    # the other tests get one thread (and their subprocesses too): two threads here beside the report's
    # one oversubscribe two cores (measured: the suite took 8.3 min instead of 6.7)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_report_build() -> tuple[Path, int, str, dict]:
    """Wait for the background smoke report; return its output folder, exit code, log and the notebooks that
    had finished when the first start was killed (with their modification times)."""
    if "thread" not in _SMOKE:
        _start_smoke_report()
    _SMOKE["thread"].join(timeout=3600)
    return _SMOKE["out"], _SMOKE.get("code", -1), _SMOKE["log"].read_text(), _SMOKE.get("before_kill", {})


@pytest.fixture(scope="session")
def smoke_plan() -> str:
    """The smoke profile's plan this session builds: ``quick`` (make test) or ``full`` (make test-full)."""
    return _SMOKE["plan"]


# --- notebooks: stderr never compared, prerequisites built on demand -------------------------------------

_CELLS: dict[str, int] = {}      # notebook name -> number of nbval items
_PASSED: dict[str, int] = {}     # notebook name -> items passed so far
_BUILT: set[str] = set()         # prerequisites run by the fixture in this session


def _notebook_of(item) -> str | None:
    path = Path(str(getattr(item, "fspath", "")))
    return path.stem if path.suffix == ".ipynb" else None


def pytest_collection_modifyitems(session, config, items):
    """nbval: never compare stderr. Progress bars and library warnings go there, and whether they appear
    depends on what is already cached (a fresh clone trains, a warm checkout reads results back).
    The smoke report's tests go last: their report starts in the background now and runs beside the others."""
    if not config.getoption("--full"):
        slow = pytest.mark.skip(reason="a slow check of `make test-full` (pytest --full); its fast equivalent runs here")
        for item in items:
            if "full" in item.keywords:
                item.add_marker(slow)
    smoke = [item for item in items if Path(str(item.fspath)).name == SMOKE_TESTS]
    if smoke:
        items[:] = [item for item in items if item not in smoke] + smoke
        _start_smoke_report()
    for item in items:
        notebook = getattr(item, "parent", None)
        skip = getattr(notebook, "skip_compare", None)
        if skip is not None and "stderr" not in skip:
            notebook.skip_compare = skip + ("stderr",)
        name = _notebook_of(item)
        if name:
            _CELLS[name] = _CELLS.get(name, 0) + 1


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    name = Path(path).stem if path.endswith(".ipynb") else None
    if name and report.when == "call" and report.passed:
        _PASSED[name] = _PASSED.get(name, 0) + 1


def _done(name: str) -> bool:
    return name in _BUILT or (_CELLS.get(name, 0) > 0 and _PASSED.get(name, 0) >= _CELLS[name])


def build_prerequisites(notebook: str) -> list[str]:
    """Run (with papermill, default parameters) every notebook ``notebook`` needs that has not run in full
    in this session; returns the names run."""
    ran = []
    for needed in report.prerequisites(notebook):
        if _done(needed):
            continue
        out = _SESSION_DIR / "prerequisites" / f"{needed}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        quiet = ["-p", "progress", "False"] if "progress" in config.NOTEBOOK_PARAMETERS[needed] else []
        cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS_DIR / f"{needed}.ipynb"), str(out), *quiet,
               "--cwd", str(paths.NOTEBOOKS_DIR), "--no-progress-bar"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"prerequisite {needed} of {notebook} failed:\n{result.stderr[-3000:]}")
        _BUILT.add(needed)
        ran.append(needed)
    return ran


_STARTED: set[str] = set()


def pytest_runtest_setup(item):
    """Before the first cell of a notebook runs, build what it needs."""
    name = _notebook_of(item)
    if name and name not in _STARTED and name in config.NOTEBOOK_PARAMETERS:
        _STARTED.add(name)
        build_prerequisites(name)


def pytest_sessionfinish(session, exitstatus):
    """Fail the session if it touched the checkout's runs or reports; remove the session folder."""
    if _SMOKE.get("process") is not None and _SMOKE["process"].poll() is None:  # ended early (-x, ^C)
        os.killpg(_SMOKE["process"].pid, signal.SIGKILL)
    changed = [p for p in _GUARDED if provenance.tree_signature(p) != _BEFORE[str(p)]]
    if changed:
        print(f"\nERROR: the test session changed {', '.join(map(str, changed))}: tests must write only under "
              "temporary folders", file=sys.stderr)
        session.exitstatus = 1
    if os.environ.get("ASC_KEEP_TEST_DIR", "") in ("", "0"):
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)
