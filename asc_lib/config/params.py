"""Parameter profiles (``params/*.yaml``) and validation of notebook parameters.

A *profile* (``mini``, ``shared``, ``real``) says where the data lives and how much of it to use.
Each notebook declares its papermill parameters in :data:`NOTEBOOK_PARAMETERS`; its first cell after
the parameters calls :func:`notebook_params`, which rejects unknown names (papermill only warns about a
misspelled ``-p``) and bad values, and returns the resolved configuration.
"""
from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from asc_lib.config import paths

SPLITS = (5, 10, 25, 50, 100)

# Names IPython and papermill put in a notebook's namespace that are not parameters.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def available_profiles() -> list[str]:
    """Names of the data profiles in ``params/`` (files with a top-level ``profile:`` key)."""
    names = []
    for p in sorted(paths.PARAMS_DIR.glob("*.yaml")):
        try:
            if "profile" in load_yaml(p):
                names.append(p.stem)
        except ValueError:
            continue
    return names


def load_profile(profile: str) -> dict:
    """Load ``params/<profile>.yaml`` and check it has a ``data`` section.

    A top-level section given as another profile's name (``generator: mini``, ``report: mini``) is that
    profile's section: the ``smoke`` profile shares the mini report plans (``report: mini``).
    """
    known = available_profiles()
    if profile not in known:
        raise ValueError(f"unknown profile {profile!r}; available: {', '.join(known)}")
    cfg = load_yaml(paths.PARAMS_DIR / f"{profile}.yaml")
    for key in ("data", "generator", "report", "default_plan"):
        if isinstance(cfg.get(key), str) and cfg[key] in known and cfg[key] != profile:
            cfg[key] = load_profile(cfg[key]).get(key)
    missing = {"tau22_dir", "meta_csv", "splits_dir", "audioset_dir"} - set(cfg.get("data", {}))
    if missing:
        raise ValueError(f"params/{profile}.yaml: data section lacks {sorted(missing)}")
    return cfg


def check_split(split: int) -> int:
    """Return ``split`` as an int if it is one of the five DCASE2024 training splits."""
    try:
        value = int(split)
    except (TypeError, ValueError):
        value = None
    if value not in SPLITS or (isinstance(split, float) and split != value):
        raise ValueError(f"unknown split {split!r}: the DCASE2024 training splits are {SPLITS} (percent)")
    return value


@dataclass(frozen=True)
class DataPaths:
    """Where one profile's data lives, all paths absolute."""

    tau22_dir: Path
    meta_csv: Path
    splits_dir: Path
    audioset_dir: Path
    audio_available: bool
    audioset_layout: str = "files"          # files: <audio dir>/<list>/Y<YTID>.wav; hdf5: <audio dir>/<list>_mp3.hdf
    audioset_audio_dir: Path | None = None  # default <audioset_dir>/audio
    audioset_clip_seconds: float = 10.0     # the lists' nominal clip length (shorter clips are padded to it)

    OPTIONAL = ("audio_available", "audioset_layout", "audioset_audio_dir", "audioset_clip_seconds")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> "DataPaths":
        tau22 = paths.resolve(data["tau22_dir"])
        meta = Path(data["meta_csv"])
        audioset = paths.resolve(data["audioset_dir"])
        layout = str(data.get("audioset_layout", "files"))
        if layout not in ("files", "hdf5"):
            raise ValueError(f"data.audioset_layout is {layout!r}; choose files (one audio file per clip) or "
                             "hdf5 (the PaSST / EfficientAT <list>_mp3.hdf files)")
        seconds = float(data.get("audioset_clip_seconds", 10.0))
        if not seconds > 0:
            raise ValueError(f"data.audioset_clip_seconds must be positive, got {seconds}")
        audio_dir = data.get("audioset_audio_dir")
        return cls(
            tau22_dir=tau22,
            meta_csv=meta if meta.is_absolute() else tau22 / meta,
            splits_dir=paths.resolve(data["splits_dir"]),
            audioset_dir=audioset,
            audio_available=bool(data.get("audio_available", True)),
            audioset_layout=layout,
            audioset_audio_dir=paths.resolve(audio_dir) if audio_dir else audioset / "audio",
            audioset_clip_seconds=seconds,
        )


def data_paths(profile: str = "mini", **overrides) -> DataPaths:
    """The data paths of ``profile``, with any non-None override (same keys as the ``data`` section)."""
    data = dict(load_profile(profile)["data"])
    unknown = set(overrides) - set(data) - set(DataPaths.OPTIONAL)
    if unknown:
        raise ValueError(f"unknown data path override(s) {sorted(unknown)}; known: {sorted(data)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return DataPaths.from_config(data)


def paper_results() -> dict:
    """The papers' reported numbers (``params/paper_results.yaml``)."""
    return load_yaml(paths.PARAMS_DIR / "paper_results.yaml")


# --- notebook parameters -------------------------------------------------------------------------

_DATA_OVERRIDES = {"tau22_dir": None, "meta_csv": None, "splits_dir": None, "audioset_dir": None}

NOTEBOOK_PARAMETERS: dict[str, dict[str, Any]] = {
    "00_data_exploration": {
        "profile": "mini",
        "split": 5,
        "frontend": "baseline",
        "seed": 0,
        "n_examples": 3,
        **_DATA_OVERRIDES,
    },
    "00b_baseline": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "epochs": None,        # None: the profile's recipe (params/training.yaml)
        "batch_size": None,
        "min_steps": None,
        "progress": True,
        **_DATA_OVERRIDES,
    },
    "01_audioset_label_filtering": {
        "profile": "mini",
        "seed": None,                 # None: params/surkov.yaml
        "include_descendants": None,
        "small": None,                # subset sizes; None: params/surkov.yaml (10K / 20K on real data)
        "large": None,
        "allow_smaller": True,        # a pool smaller than a subset size gives the whole pool (reported)
        "audioset_dir": None,
    },
    "02_mean_teacher": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "mode": "mean_teacher",       # mean_teacher, or supervised (plain fine-tuning, the comparison)
        "unlabeled": None,            # none / small / large (None: params/surkov.yaml)
        "weights": None,              # official checkpoint file or name; "none": random init; None: params
        "epochs": None,
        "batch_size": None,
        "min_steps": None,
        "progress": True,
        **_DATA_OVERRIDES,
    },
    "03_domain_pruning": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "threshold": None,            # None: params/werning.yaml (0.3)
        "epochs": None,
        "batch_size": None,
        "progress": True,
        **_DATA_OVERRIDES,
    },
    "03b_pruned_kd": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "selection": "pruned",        # pruned (Werning) or random (the same number of random clips: the control)
        "threshold": None,            # which pruning of 03_domain_pruning (None: params/werning.yaml)
        "kd_steps": None,             # distillation iterations, exactly (None: the profile's recipe)
        "epochs": None,               # fine-tuning overrides
        "batch_size": None,
        "min_steps": None,
        "progress": True,
        **_DATA_OVERRIDES,
    },
    "05_results": {
        "profile": "mini",
        "runs_dir": None,             # None: the profile's runs (data/runs/<profile>); a folder of runs otherwise
        "focus_split": 100,           # split of the per-device plots and confusion matrices
        "tables_dir": None,           # None: reports/tables/<profile>; the tables are written there as CSV
        "plan": None,                 # which report plan's runs to expect (quick / full); None: the profile's default
    },
    "06_benchmarks": {
        "profile": "mini",
        "split": 5,                   # clips the training throughput is measured on
        "device": "auto",
        "batch_size": None,           # None: 256 (the papers') on a GPU, the mini recipe's 64 on the CPU
        "steps": 4,                   # timed optimizer steps per data path and round (3 rounds, alternating)
        "loader_workers": 2,          # DataLoader workers of the reference data path
        "teacher_clips": 16,          # clips per teacher inference measurement
        "passt_clips": 1,             # PaSST-S clips (10 s each) per measurement
        "scaling_max": None,          # largest size of label filtering / domain scoring (sizes 1e3, 1e4, … up to it);
                                      # None: AudioSet's 2 million on a GPU, 100,000 on the CPU
        "cache_sizes": None,          # None: 10, 100, 1000 clips (cache build)
        "streaming_sizes": None,      # clips on disk for the streamed-training memory rehearsal (None: 2,000 and 8,000)
        "output_dir": None,           # None: reports/benchmarks
        "progress": True,
    },
    "04_kd": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "subset": "small",            # unlabeled AudioSet subset: none / small / large
        "teacher": "efficientat_mt",  # run of 02_mean_teacher to distil (efficientat_mt or efficientat_ft)
        "epochs": None,
        "batch_size": None,
        "min_steps": None,
        "progress": True,
        **_DATA_OVERRIDES,
    },
}


def check_device(value: Any) -> str:
    """``auto``, ``cpu`` or a CUDA device that exists on this machine (``cuda`` or ``cuda:N``)."""
    match = re.fullmatch(r"cuda(?::(\d+))?", value) if isinstance(value, str) else None
    if not isinstance(value, str) or not (value in ("auto", "cpu") or match):
        raise ValueError(f"parameter device must be 'auto', 'cpu' or 'cuda[:N]', got {value!r}")
    if match:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(match.group(1) or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (torch sees no GPU)"
            raise ValueError(f"parameter device={value!r}, but this machine has {have}; use 'auto' or 'cpu'")
    return value


def _validate_value(name: str, value: Any, default: Any = None) -> Any:
    if value is None and default is None:
        return None  # "use the parameter file's value"
    if name in ("split", "focus_split"):
        return check_split(value)
    if name in ("runs_dir", "tables_dir") and not isinstance(value, (str, Path)):
        raise ValueError(f"parameter {name} must be a folder path or None, got {value!r}")
    if name == "profile":
        if value not in available_profiles():
            raise ValueError(f"unknown profile {value!r}; available: {', '.join(available_profiles())}")
    if name == "frontend":
        from asc_lib.features.frontend import preset_names

        if value not in preset_names():
            raise ValueError(f"unknown front end {value!r}; presets: {', '.join(preset_names())}")
    if name == "device":
        check_device(value)
    if name in ("epochs", "batch_size", "min_steps") and value is not None:
        if not isinstance(value, int) or value < (0 if name == "min_steps" else 1):
            raise ValueError(f"parameter {name} must be a positive int or None, got {value!r}")
    if name == "progress" and not isinstance(value, bool):
        raise ValueError(f"parameter progress must be True or False, got {value!r}")
    choices = {"mode": ("mean_teacher", "supervised"), "unlabeled": ("none", "small", "large"),
               "subset": ("none", "small", "large"), "teacher": ("efficientat_mt", "efficientat_ft"),
               "selection": ("pruned", "random")}
    if name in choices and value not in choices[name]:
        raise ValueError(f"parameter {name} must be one of {choices[name]}, got {value!r}")
    if name in ("include_descendants", "allow_smaller") and value is not None and not isinstance(value, bool):
        raise ValueError(f"parameter {name} must be True, False or None, got {value!r}")
    if name in ("small", "large") and value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"parameter {name} must be a positive int or None, got {value!r}")
    if name == "threshold" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1):
        raise ValueError(f"parameter threshold must be a number in (0, 1) or None, got {value!r}")
    if name == "kd_steps" and (not isinstance(value, int) or value < 1):
        raise ValueError(f"parameter kd_steps must be a positive int or None, got {value!r}")
    if name in ("steps", "teacher_clips", "passt_clips") and (not isinstance(value, int) or value < 1):
        raise ValueError(f"parameter {name} must be a positive int, got {value!r}")
    if name == "loader_workers" and (not isinstance(value, int) or value < 0):
        raise ValueError(f"parameter loader_workers must be a non-negative int, got {value!r}")
    if name == "scaling_max" and (not isinstance(value, int) or isinstance(value, bool) or value < 1000):
        raise ValueError(f"parameter scaling_max must be an int of at least 1000 or None, got {value!r}")
    if name in ("cache_sizes", "streaming_sizes") and (
            not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"parameter {name} must be a non-empty list of positive ints or None, got {value!r}")
    if name == "plan" and value not in ("quick", "full"):
        raise ValueError(f"parameter plan must be 'quick', 'full' or None, got {value!r}")
    if name == "output_dir" and not isinstance(value, (str, Path)):
        raise ValueError(f"parameter output_dir must be a folder path or None, got {value!r}")
    if name in ("seed", "n_examples"):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"parameter {name} must be a non-negative int, got {value!r}")
    return value


def notebook_params(notebook: str, namespace: Mapping[str, Any]) -> types.SimpleNamespace:
    """Validate a notebook's parameters (taken from its global namespace) and resolve its data paths.

    Any public, non-module, non-callable global that is not a declared parameter is reported as an
    unknown parameter, with the closest declared name: this catches a misspelled ``papermill -p``.
    """
    if notebook not in NOTEBOOK_PARAMETERS:
        raise KeyError(f"no parameters declared for notebook {notebook!r}")
    spec = NOTEBOOK_PARAMETERS[notebook]
    candidates = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in _IPYTHON_NAMES
        and not isinstance(v, types.ModuleType)
        and not callable(v)
    }
    unknown = sorted(set(candidates) - set(spec))
    if unknown:
        hints = [
            f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, spec, 1)) else "")
            for u in unknown
        ]
        raise ValueError(f"{notebook}: unknown parameter(s) {', '.join(hints)}; declared: {sorted(spec)}")
    values = {name: _validate_value(name, candidates.get(name, default), default) for name, default in spec.items()}
    cfg = types.SimpleNamespace(**values)
    if "profile" in values:
        overrides = {k: values.get(k) for k in _DATA_OVERRIDES if k in values}
        cfg.data = data_paths(values["profile"], **overrides)
    return cfg


# --- training recipes ----------------------------------------------------------------------------

# paper: the reports' settings; mini: minutes per run on the embedded data (each deviation named);
# smoke: the mini settings cut to a few steps, to check every code path in seconds (the test suite's).
RECIPE_SETS = ("paper", "mini", "smoke")


def recipe_names(source: str = "training") -> list[str]:
    """Names of the recipes (sections with a ``paper:`` part) in ``params/<source>.yaml``."""
    table = load_yaml(paths.PARAMS_DIR / f"{source}.yaml")
    return sorted(k for k, v in table.items() if isinstance(v, dict) and "paper" in v)


def load_recipe(name: str, recipes: str = "paper", source: str = "training", **overrides) -> dict:
    """Recipe ``name`` from ``params/<source>.yaml``: the paper's settings, updated by the ``mini``
    deviations when ``recipes`` is ``mini`` or ``smoke``, by the ``smoke`` ones when it is ``smoke``, then
    by any non-None ``overrides`` (unknown keys rejected).

    The returned dict carries ``deviations``: every key whose value differs from the paper's.
    """
    source = paths.PARAMS_DIR / f"{source}.yaml"
    table = load_yaml(source)
    if name not in table or not isinstance(table[name], dict) or "paper" not in table[name]:
        names = sorted(k for k, v in table.items() if isinstance(v, dict) and "paper" in v)
        raise ValueError(f"{source}: no recipe {name!r}; recipes: {', '.join(names)}")
    if recipes not in RECIPE_SETS:
        raise ValueError(f"unknown recipe set {recipes!r}; choose from {RECIPE_SETS}")
    paper = dict(table[name]["paper"])
    recipe = dict(paper)
    for level in RECIPE_SETS[1:RECIPE_SETS.index(recipes) + 1]:
        changes = table[name].get(level) or {}
        unknown = set(changes) - set(paper)
        if unknown:
            raise ValueError(f"{source}: {name}.{level} sets {sorted(unknown)}, which {name}.paper lacks")
        recipe.update(changes)
    unknown = {k for k, v in overrides.items() if v is not None} - set(paper)
    if unknown:
        raise ValueError(f"recipe {name!r} has no setting(s) {sorted(unknown)}; settings: {sorted(paper)}")
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    recipe["deviations"] = {k: {"paper": paper[k], "used": recipe[k]} for k in paper if recipe[k] != paper[k]}
    return recipe


def profile_recipe(profile: str, name: str, source: str = "training", **overrides) -> dict:
    """Recipe ``name`` with the set the data ``profile`` selects (mini deviations or the paper's)."""
    return load_recipe(name, load_profile(profile).get("recipes", "paper"), source, **overrides)
