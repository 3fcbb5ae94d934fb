"""Shared fixtures: the real reference files (skipped when absent) and the embedded mini dataset."""
from __future__ import annotations

from pathlib import Path

import pytest

from asc_lib import minidata, params, paths


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = paths.shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real reference file {path} is absent (only in the study's development checkout)")
    return path


@pytest.fixture(scope="session")
def mini_data() -> params.DataPaths:
    """The embedded mini dataset (generated on first use, as `make data` does)."""
    minidata.ensure("mini", progress=False)
    return params.data_paths("mini")


@pytest.fixture(scope="session")
def shared_data() -> params.DataPaths:
    """The real split lists and metadata of ../shared/data (no audio)."""
    shared_file("dcase2024_task1", "split5.csv")
    shared_file("tau22", "meta_train_test.csv")
    return params.data_paths("shared")


def pytest_collection_modifyitems(session, config, items):
    """nbval: never compare stderr. Progress bars and library warnings go there, and whether they appear
    depends on what is already cached (a fresh clone trains, a warm checkout reads results back)."""
    for item in items:
        notebook = getattr(item, "parent", None)
        skip = getattr(notebook, "skip_compare", None)
        if skip is not None and "stderr" not in skip:
            notebook.skip_compare = skip + ("stderr",)
