"""Every path of the study, resolved from the package location (never the working directory).

Environment overrides:
    ``ASC_DATA_DIR``     generated data and caches (default ``<root>/data``)
    ``ASC_REPORTS_DIR``  executed notebooks and ``index.html`` (default ``<root>/reports``)
    ``ASC_RUNS_DIR``     training runs (default ``<data>/runs``)
    ``ASC_CACHE_DIR``    caches: waveforms, teacher outputs, embeddings (default ``<data>/cache``)
    ``ASC_SHARED_DATA``  the real reference files (default ``<root>/../shared/data``)
    ``ASC_PARAMS_DIR``   the parameter files (default ``<root>/params``; read once, at import)
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]   # asc_lib/
ROOT = PACKAGE_DIR.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
RESOURCES_DIR = PACKAGE_DIR / "resources"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


PARAMS_DIR = _env_path("ASC_PARAMS_DIR", ROOT / "params")


def data_dir() -> Path:
    """Root of generated data (the mini dataset) and of every cache."""
    return _env_path("ASC_DATA_DIR", ROOT / "data")


def cache_dir() -> Path:
    """Root of cached intermediates (waveform caches, teacher outputs...); ``ASC_CACHE_DIR`` overrides it."""
    return _env_path("ASC_CACHE_DIR", data_dir() / "cache")


def reports_dir() -> Path:
    """Where executed notebooks, HTML and metrics land."""
    return _env_path("ASC_REPORTS_DIR", ROOT / "reports")


def tables_dir(profile: str) -> Path:
    """Where ``05_results`` writes its tables as CSV and its findings summary (``reports/tables/<profile>``)."""
    return reports_dir() / "tables" / profile


def runs_dir() -> Path:
    """Root of training runs: checkpoints, histories, metrics (``ASC_RUNS_DIR`` overrides ``data/runs``)."""
    return _env_path("ASC_RUNS_DIR", data_dir() / "runs")


def shared_data_dir() -> Path:
    """The real reference files (split lists, ontology, checkpoints); may be absent."""
    return _env_path("ASC_SHARED_DATA", ROOT.parent / "shared" / "data")


def resolve(path: str | os.PathLike | None) -> Path | None:
    """Resolve a path from a parameter file: absolute as is, relative to the project root."""
    if path is None:
        return None
    p = Path(os.path.expandvars(str(path))).expanduser()
    return p if p.is_absolute() else (ROOT / p).resolve()


def shown(path: str | os.PathLike) -> str:
    """``path`` as shown in notebooks and reports: relative to the project root when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)
