"""Every path of the study, resolved from the package location (never the working directory), and the name of
every file and folder it writes (runs, teachers, subsets, caches, weights).

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


def shown_beside(path: str | os.PathLike) -> str:
    """A file as a committed output shows it: as :func:`shown`, or ``../<path>`` when it lies beside the project
    (the shared reference folder), so that the output does not name the machine it ran on. (Not :func:`shown`
    itself: training's error messages use that, so its source is part of every run's key.)"""
    text = shown(path)
    if Path(text).is_absolute() and ROOT.parent != Path(ROOT.anchor):
        try:
            return "../" + str(Path(path).resolve().relative_to(ROOT.parent))
        except ValueError:
            pass
    return text


# --- the on-disk names ------------------------------------------------------------------------------------
CHECKPOINT, HISTORY = "checkpoint.pt", "history.json"   # a run's resumable state, its record per epoch
METRICS, OUTPUT = "metrics.json", "output.csv"          # a run's results: the record, the test split's predictions
TEACHER_FILE = "teacher.pt"                             # a fine-tuned teacher, beside its run's files
STANDIN_FILE = "mn10_standin.pt"                        # the mini stand-in tagger (official EfficientAT format)


def profile_runs_dir(profile: str) -> Path:
    """Root of one profile's runs (``<runs>/<profile>``)."""
    return runs_dir() / profile


def run_dir(profile: str, method: str, split: int, seed: int) -> Path:
    """The folder of one run: ``<runs>/<profile>/<method>/split<N>-seed<S>``."""
    return profile_runs_dir(profile) / method / f"split{split}-seed{seed}"


def subset_path(profile: str, name: str) -> Path:
    """The segment list of Surkov's subset ``name`` (small / large) that ``01_audioset_label_filtering`` writes."""
    return profile_runs_dir(profile) / "audioset_subsets" / f"{name}_segments.csv"


def pruned_subsets_dir(profile: str) -> Path:
    """Werning's selections and their pruning summaries (``03_domain_pruning``)."""
    return profile_runs_dir(profile) / "pruned_subsets"


def pruned_subset_path(profile: str, split: int, selection: str, threshold: float, seed: int) -> Path:
    """One pruning (or its random control), in the official segment-list format."""
    return pruned_subsets_dir(profile) / f"split{split}-{selection}-t{threshold:g}-seed{seed}_segments.csv"


def pruning_report_path(profile: str, split: int, threshold: float, seed: int) -> Path:
    return pruned_subsets_dir(profile) / f"split{split}-t{threshold:g}-seed{seed}-pruning.json"


def selection_path(profile: str, split: int, name: str, seed: int) -> Path:
    """A cross selection of ``04b_cross_selection`` (official segment-list format, with its ``list`` column)."""
    return profile_runs_dir(profile) / "cross_selections" / f"split{split}-{name}-seed{seed}_segments.csv"


def standin_dir(profile: str, seed: int = 0) -> Path:
    """The mini stand-in tagger's run (weights, metrics)."""
    return profile_runs_dir(profile) / "audioset_tagger" / f"seed{seed}"


def choices_dir(profile: str) -> Path:
    """The runs and tables of the mini recipe choices on a validation part (``asc_lib.methods.choices``)."""
    return profile_runs_dir(profile) / "choices"


def diagnostics_dir(profile: str) -> Path:
    """Diagnostic runs (``asc_lib.methods.kd_gap``)."""
    return profile_runs_dir(profile) / "diagnostics"


def teacher_outputs_dir() -> Path:
    return cache_dir() / "teacher_outputs"


def waveforms_dir() -> Path:
    return cache_dir() / "waveforms"


def weights_dir() -> Path:
    """Released checkpoints found or downloaded here (``data/weights``)."""
    return data_dir() / "weights"
