"""Papermill parameters of the notebooks, declared and validated.

Each notebook declares its parameters and defaults in :data:`NOTEBOOK_PARAMETERS`; each parameter name
has one rule in :data:`RULES` (what values it accepts). The notebook's first cell after the parameters
calls :func:`notebook_params`, which rejects unknown names (papermill only warns about a misspelled
``-p``) and bad values, and returns the resolved configuration with the profile's data paths.
"""
from __future__ import annotations

import difflib
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from asc_lib.config.profiles import available_profiles, check_split, data_paths, frontend_presets

# Names IPython and papermill put in a notebook's namespace that are not parameters.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

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
        "progress": None,             # None: bars only when someone watches (see watched())
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
        "progress": None,             # None: bars only when someone watches (see watched())
        **_DATA_OVERRIDES,
    },
    "02b_mean_teacher_ablations": {
        "profile": "mini",
        "split": 5,
        "seeds": None,                # None: params/surkov.yaml ablation.seeds (0, 1, 2)
        "device": "auto",
        "variants": None,             # run folders of the variants to train (None: all of them)
        "sweep": True,                # also sweep the consistency weight (params/surkov.yaml ablation.consistency_weights)
        "weights": None,              # as 02_mean_teacher
        "progress": None,             # None: bars only when someone watches (see watched())
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
        "progress": None,             # None: bars only when someone watches (see watched())
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
        "kd_input": None,             # clips (Werning's code) or pieces (1 s); None: the profile's recipe (clips)
        "epochs": None,               # fine-tuning overrides
        "batch_size": None,
        "min_steps": None,
        "progress": None,             # None: bars only when someone watches (see watched())
        **_DATA_OVERRIDES,
    },
    "04b_cross_selection": {
        "profile": "mini",
        "split": 5,
        "seed": 0,
        "device": "auto",
        "weights": None,
        "progress": None,             # None: bars only when someone watches (see watched())
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
        "progress": None,             # None: bars only when someone watches (see watched())
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
        "progress": None,             # None: bars only when someone watches (see watched())
        **_DATA_OVERRIDES,
    },
}


def check_device(value: Any) -> str:
    """``auto``, ``cpu`` or a CUDA device that exists on this machine (``cuda`` or ``cuda:N``)."""
    match = re.fullmatch(r"cuda(?::(\d+))?", value) if isinstance(value, str) else None
    if not isinstance(value, str) or not (value in ("auto", "cpu") or match):
        raise ValueError(f"parameter device must be 'auto', 'cpu' or 'cuda[:N]', got {value!r}")
    if match:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(match.group(1) or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (torch sees no GPU)"
            raise ValueError(f"parameter device={value!r}, but this machine has {have}; use 'auto' or 'cpu'")
    return value


def _check_profile(value: Any) -> Any:
    if value not in available_profiles():
        raise ValueError(f"unknown profile {value!r}; available: {', '.join(available_profiles())}")
    return value


def _check_frontend(value: Any) -> Any:
    if value not in frontend_presets():
        raise ValueError(f"unknown front end {value!r}; presets: {', '.join(frontend_presets())}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"parameter progress must be True, False or None, got {value!r}")
    return value


def watched() -> bool:
    """Whether someone watches the run, so that progress bars help rather than clutter the saved outputs:
    in a kernel, whether the current request lets the kernel ask for input (JupyterLab does; papermill and
    nbval, which save the outputs, do not); outside a kernel, whether stderr is a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    return sys.stderr.isatty()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """What one parameter accepts: ``accepts(value)`` is true for a good value, ``expected`` says what a
    good value is (in the error); ``check`` instead validates (and may convert) by itself, raising."""

    expected: str = ""
    accepts: Callable[[Any], bool] | None = None
    check: Callable[[Any], Any] | None = None

    def __call__(self, name: str, value: Any) -> Any:
        if self.check is not None:
            return self.check(value)
        if not self.accepts(value):
            raise ValueError(f"parameter {name} must be {self.expected}, got {value!r}")
        return value


def one_of(*choices) -> Rule:
    return Rule(f"one of {choices}", lambda v: v in choices)


def int_at_least(low: int, expected: str) -> Rule:
    return Rule(expected, lambda v: _is_int(v) and v >= low)


_POSITIVE = int_at_least(1, "a positive int")
_POSITIVE_OR_NONE = Rule("a positive int or None", lambda v: v is None or (_is_int(v) and v >= 1))
_FOLDER = Rule("a folder path or None", lambda v: isinstance(v, (str, Path)))
_FLAG = Rule("True or False", lambda v: isinstance(v, bool))
_FLAG_OR_NONE = Rule("True, False or None", lambda v: v is None or isinstance(v, bool))
_SIZES = Rule("a non-empty list of positive ints or None",
              lambda v: isinstance(v, (list, tuple)) and bool(v) and all(_is_int(x) and x > 0 for x in v))
_SUBSETS = one_of("none", "small", "large")

# One rule per parameter name, shared by every notebook that declares it.
RULES: dict[str, Rule] = {
    "profile": Rule(check=_check_profile),
    "split": Rule(check=check_split),
    "focus_split": Rule(check=check_split),
    "frontend": Rule(check=_check_frontend),
    "device": Rule(check=check_device),
    "seed": int_at_least(0, "a non-negative int"),
    "n_examples": int_at_least(0, "a non-negative int"),
    "epochs": _POSITIVE_OR_NONE,
    "batch_size": _POSITIVE_OR_NONE,
    "min_steps": Rule("a non-negative int or None", lambda v: v is None or (_is_int(v) and v >= 0)),
    "kd_steps": _POSITIVE,
    "kd_input": Rule("clips, pieces or None", lambda v: v in (None, "clips", "pieces")),
    "seeds": Rule("a non-empty list of non-negative ints or None",
                  lambda v: isinstance(v, (list, tuple)) and bool(v) and all(_is_int(x) and x >= 0 for x in v)),
    "variants": Rule("a non-empty list of variant names (asc_lib.methods.mt_ablation.VARIANTS) or None",
                     lambda v: isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, str) for x in v)),
    "sweep": _FLAG,
    "progress": Rule(check=_flag),
    "mode": one_of("mean_teacher", "supervised"),
    "unlabeled": _SUBSETS,
    "subset": _SUBSETS,
    "teacher": one_of("efficientat_mt", "efficientat_ft"),
    "selection": one_of("pruned", "random"),
    "weights": Rule("a checkpoint path or name", lambda v: isinstance(v, (str, Path))),
    "include_descendants": _FLAG_OR_NONE,
    "allow_smaller": _FLAG_OR_NONE,
    "small": _POSITIVE,
    "large": _POSITIVE,
    "threshold": Rule("a number in (0, 1) or None",
                      lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1),
    "steps": _POSITIVE,
    "teacher_clips": _POSITIVE,
    "passt_clips": _POSITIVE,
    "loader_workers": int_at_least(0, "a non-negative int"),
    "scaling_max": int_at_least(1000, "an int of at least 1000 or None"),
    "cache_sizes": _SIZES,
    "streaming_sizes": _SIZES,
    "plan": one_of("quick", "full"),
    "runs_dir": _FOLDER,
    "tables_dir": _FOLDER,
    "output_dir": _FOLDER,
    "tau22_dir": _FOLDER,
    "meta_csv": _FOLDER,
    "splits_dir": _FOLDER,
    "audioset_dir": _FOLDER,
}


# The type papermill shows for each parameter (``papermill --help-notebook``); ``<type> or None`` where the
# notebook's default is None.
TYPES: dict[str, str] = {
    "profile": "str", "split": "int", "focus_split": "int", "frontend": "str", "device": "str", "seed": "int",
    "n_examples": "int", "epochs": "int", "batch_size": "int", "min_steps": "int", "kd_steps": "int", "kd_input": "str",
    "seeds": "list", "variants": "list", "sweep": "bool", "progress": "bool", "mode": "str", "unlabeled": "str",
    "subset": "str", "teacher": "str", "selection": "str", "weights": "str", "include_descendants": "bool",
    "allow_smaller": "bool", "small": "int", "large": "int", "threshold": "float", "steps": "int",
    "teacher_clips": "int", "passt_clips": "int", "loader_workers": "int", "scaling_max": "int",
    "cache_sizes": "list", "streaming_sizes": "list", "plan": "str", "runs_dir": "str", "tables_dir": "str",
    "output_dir": "str", "tau22_dir": "str", "meta_csv": "str", "splits_dir": "str", "audioset_dir": "str",
}

# What each parameter means (``papermill --help-notebook``), shared by the notebooks that declare it;
# ``HELP_OF[notebook][name]`` where a notebook means something of its own.
HELP: dict[str, str] = {
    "profile": "data profile: mini (embedded default) or real (params/<profile>.yaml)",
    "split": "training split: 5, 10, 25, 50 or 100 (% of the TAU22 training data)",
    "seed": "training seed: one seed makes a run repeatable on the same machine",
    "device": "auto (the GPU when there is one), cpu or cuda[:N]",
    "epochs": "None: the profile's recipe; an int overrides its epochs",
    "batch_size": "None: the profile's recipe; an int overrides its batch size",
    "min_steps": "None: the profile's recipe; an int overrides its floor on optimizer steps",
    "progress": "tqdm progress bars; None: only when someone watches (JupyterLab, a terminal), not under papermill or nbval",
    "tau22_dir": "None: the profile's TAU22 folder; a path overrides it",
    "meta_csv": "None: the profile's meta.csv; a path overrides it",
    "splits_dir": "None: the profile's folder of split lists; a path overrides it",
    "audioset_dir": "None: the profile's AudioSet folder; a path overrides it",
    "weights": "EfficientAT checkpoint: mn04_as, mn10_as (params/models.yaml pretrained), a file name or path, 'standin', 'none' (random init); None: params/surkov.yaml",
    "threshold": "domain-classifier score a clip must reach to be kept; None: params/werning.yaml (0.3)",
}
HELP_OF: dict[str, dict[str, str]] = {
    "00_data_exploration": {
        "profile": "data profile: mini (embedded default), shared (real lists, no audio) or real",
        "split": "training split looked at in detail: 5, 10, 25, 50 or 100",
        "frontend": "front end of the learnability probe: baseline, surkov16k or efficientat",
        "seed": "choice of example clips and the probe's initialisation",
        "n_examples": "example clips to show",
    },
    "01_audioset_label_filtering": {
        "profile": "data profile: mini (embedded default), shared (real lists, no audio) or real",
        "seed": "seed of the subset draws; None: params/surkov.yaml",
        "include_descendants": "also match the labels' ontology descendants; None: params/surkov.yaml",
        "small": "size of the small subset; None: params/surkov.yaml (10K on real data)",
        "large": "size of the large subset; None: params/surkov.yaml (20K on real data)",
        "allow_smaller": "a pool smaller than a subset size gives the whole pool (reported)",
    },
    "02_mean_teacher": {
        "mode": "mean_teacher, or supervised (plain fine-tuning on the labeled split)",
        "unlabeled": "unlabeled AudioSet subset: none, small or large; None: params/surkov.yaml (small)",
    },
    "02b_mean_teacher_ablations": {
        "seeds": "seeds of every variant; None: params/surkov.yaml ablation.seeds (0, 1, 2)",
        "variants": "run folders of the variants to train (asc_lib.methods.mt_ablation); None: all",
        "sweep": "also sweep the consistency weight (params/surkov.yaml ablation)",
        "weights": "as 02_mean_teacher: checkpoint, 'standin', 'none'; None: params/surkov.yaml",
    },
    "03_domain_pruning": {
        "seed": "seed of the domain classifier and of the random control selection",
        "epochs": "None: the profile's domain-classifier recipe; an int overrides its epochs",
        "batch_size": "None: the profile's domain-classifier recipe; an int overrides its batch size",
    },
    "03b_pruned_kd": {
        "selection": "pruned (Werning) or random (the control of the same size)",
        "threshold": "which pruning of 03_domain_pruning; None: params/werning.yaml (0.3)",
        "kd_steps": "distillation iterations, exactly; None: the profile's recipe",
        "kd_input": "whole clips with clip-level teacher logits (Werning's code) or 1 s pieces; None: the recipe's (clips)",
        "epochs": "None: the profile's fine-tuning recipe; an int overrides its epochs",
        "batch_size": "None: the profile's fine-tuning recipe; an int overrides its batch size",
        "min_steps": "None: the profile's fine-tuning recipe; an int overrides its floor on optimizer steps",
    },
    "04b_cross_selection": {
        "seed": "training seed (and which pruning of 03_domain_pruning: the one of this seed)",
    },
    "04_kd": {
        "subset": "unlabeled AudioSet subset: none, small or large",
        "teacher": "which 02_mean_teacher run to distil: efficientat_mt or efficientat_ft",
    },
    "05_results": {
        "runs_dir": "None: the profile's runs (data/runs/<profile>); or a folder of runs",
        "focus_split": "split of the per-device plots and confusion matrices",
        "tables_dir": "None: reports/tables/<profile>; or a folder for the CSV tables",
        "plan": "report plan whose runs are expected: quick or full; None: the profile's default",
    },
    "06_benchmarks": {
        "profile": "data profile of the clips the throughput is measured on",
        "split": "training split those clips come from",
        "batch_size": "None: 256 (the papers') on a GPU, 64 (the mini recipe's) on the CPU",
        "steps": "timed optimizer steps per data path and round (3 alternating rounds)",
        "loader_workers": "DataLoader workers of the reference path",
        "teacher_clips": "clips per teacher measurement (EfficientAT mn10, 1 s)",
        "passt_clips": "PaSST-S clips per measurement (10 s)",
        "scaling_max": "largest label-filtering / domain-scoring size; None: 2e6 on a GPU, 1e5 on the CPU",
        "cache_sizes": "clips of the cache-build measurement; None: 10, 100, 1000",
        "streaming_sizes": "clips on disk for the streamed-training memory rehearsal; None: 2,000 and 8,000",
        "output_dir": "None: reports/benchmarks; or a folder for the measurements",
    },
}


def parameter_help(notebook: str, name: str) -> str:
    """What parameter ``name`` of ``notebook`` means."""
    return HELP_OF.get(notebook, {}).get(name) or HELP[name]


def parameter_type(notebook: str, name: str) -> str:
    """The type papermill shows for parameter ``name`` of ``notebook``."""
    base = TYPES[name]
    return f"{base} or None" if NOTEBOOK_PARAMETERS[notebook][name] is None else base


def parameters_source(notebook: str) -> str:
    """The source of ``notebook``'s parameters cell, rendered from :data:`NOTEBOOK_PARAMETERS`, :data:`TYPES`
    and the help texts: ``name: "type" = default  # help`` per line (papermill reads type and help from it;
    the quoted annotation costs nothing at run time)."""
    heads = [f'{name}: "{parameter_type(notebook, name)}" = {value!r}'.replace("'", '"')
             for name, value in NOTEBOOK_PARAMETERS[notebook].items()]
    width = max(map(len, heads)) + 2
    return "\n".join(f"{head:<{width}}# {parameter_help(notebook, name)}"
                     for head, name in zip(heads, NOTEBOOK_PARAMETERS[notebook]))


def validate(name: str, value: Any, default: Any = None) -> Any:
    """``value`` checked by the rule of ``name``; None where the default is None means "the parameter
    file's value" and is passed through."""
    if value is None and default is None:
        return None
    if name not in RULES:
        raise KeyError(f"parameter {name!r} has no validation rule in asc_lib.config.parameters.RULES")
    return RULES[name](name, value)


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
    values = {name: validate(name, candidates.get(name, default), default) for name, default in spec.items()}
    if "progress" in values and values["progress"] is None:
        values["progress"] = watched()
    cfg = types.SimpleNamespace(**values)
    if "profile" in values:
        overrides = {k: values.get(k) for k in _DATA_OVERRIDES if k in values}
        cfg.data = data_paths(values["profile"], **overrides)
    return cfg
