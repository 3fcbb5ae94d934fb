"""Papermill parameters of the notebooks: one typed schema (a pydantic model) per notebook.

Each field is a parameter: its type, its default and its help text. From the schema come the validation
(:func:`notebook_params`, the first cell after a notebook's parameters: unknown names are refused with the
closest declared one, since papermill only warns about a misspelled ``-p``), the parameters cell itself
(:func:`parameters_source`) and what ``papermill --help-notebook`` prints. ``None`` where the default is
None means "the parameter file's value" (``params/``).
"""
from __future__ import annotations

import difflib
import re
import types
import warnings
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import pandas as pd
import torch
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from asc_lib.config import progress
from asc_lib.config.profiles import available_profiles, check_split, data_paths, frontend_presets

# Names IPython and papermill put in a notebook's namespace that are not parameters.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
DATA_OVERRIDES = ("tau22_dir", "meta_csv", "splits_dir", "audioset_dir")


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


def _check_profile(value: str) -> str:
    if value not in available_profiles():
        raise ValueError(f"unknown profile {value!r}; available: {', '.join(available_profiles())}")
    return value


def _check_frontend(value: str) -> str:
    if value not in frontend_presets():
        raise ValueError(f"unknown front end {value!r}; presets: {', '.join(frontend_presets())}")
    return value


Profile = Annotated[str, AfterValidator(_check_profile)]
Split = Annotated[int, BeforeValidator(check_split)]
Device = Annotated[str, AfterValidator(check_device)]
Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Folder = str | Path
Subset = Literal["none", "small", "large"]
Sizes = Annotated[list[Positive], Field(min_length=1, strict=False)]

PROFILE_HELP = "data profile: mini (embedded default), shared (real lists, no audio) or real"


class Notebook(BaseModel):
    """Every notebook: a data profile."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    profile: Profile = Field("mini", description="data profile: mini (embedded default) or real (params/<profile>.yaml)")


class Scenes(Notebook):
    """Notebooks on the challenge data: a split, the device, progress bars and the data folders."""

    split: Split = Field(5, description="training split: 5, 10, 25, 50 or 100 (% of the TAU22 training data)")
    device: Device = Field("auto", description="auto (the GPU when there is one), cpu or cuda[:N]")
    progress: bool | None = Field(None, description="tqdm progress bars; None: only when someone watches (JupyterLab, "
                                                    "a terminal), not under papermill or nbval")
    tau22_dir: Folder | None = Field(None, description="None: the profile's TAU22 folder; a path overrides it")
    meta_csv: Folder | None = Field(None, description="None: the profile's meta.csv; a path overrides it")
    splits_dir: Folder | None = Field(None, description="None: the profile's folder of split lists; a path overrides it")
    audioset_dir: Folder | None = Field(None, description="None: the profile's AudioSet folder; a path overrides it")


class Seeded(Scenes):
    seed: Count = Field(0, description="training seed: one seed makes a run repeatable on the same machine")


class Training(Seeded):
    """Notebooks that train one run: the recipe's length and batch may be overridden."""

    epochs: Positive | None = Field(None, description="None: the profile's recipe; an int overrides its epochs")
    batch_size: Positive | None = Field(None, description="None: the profile's recipe; an int overrides its batch size")
    min_steps: Count | None = Field(None, description="None: the profile's recipe; an int overrides its floor on optimizer steps")


WEIGHTS_HELP = ("EfficientAT checkpoint: mn04_as, mn10_as (params/models.yaml pretrained), a file name or path, "
                "'standin', 'none' (random init); None: params/surkov.yaml")
THRESHOLD_HELP = "domain-classifier score a clip must reach to be kept; None: params/werning.yaml (0.3)"
Threshold = Annotated[float, Field(gt=0, lt=1)]


class DataExploration(Notebook):
    profile: Profile = Field("mini", description=PROFILE_HELP)
    split: Split = Field(5, description="training split looked at in detail: 5, 10, 25, 50 or 100")
    tau22_dir: Folder | None = Scenes.model_fields["tau22_dir"]
    meta_csv: Folder | None = Scenes.model_fields["meta_csv"]
    splits_dir: Folder | None = Scenes.model_fields["splits_dir"]
    audioset_dir: Folder | None = Scenes.model_fields["audioset_dir"]
    seed: Count = Field(0, description="choice of example clips and the probe's initialisation")
    frontend: Annotated[str, AfterValidator(_check_frontend)] = Field(
        "baseline", description="front end of the learnability probe: baseline, surkov16k or efficientat")
    n_examples: Count = Field(3, description="example clips to show")


class Baseline(Training):
    pass


class LabelFiltering(Notebook):
    profile: Profile = Field("mini", description=PROFILE_HELP)
    seed: Count | None = Field(None, description="seed of the subset draws; None: params/surkov.yaml")
    include_descendants: bool | None = Field(None, description="also match the labels' ontology descendants; None: params/surkov.yaml")
    small: Positive | None = Field(None, description="size of the small subset; None: params/surkov.yaml (10K on real data)")
    large: Positive | None = Field(None, description="size of the large subset; None: params/surkov.yaml (20K on real data)")
    allow_smaller: bool = Field(True, description="a pool smaller than a subset size gives the whole pool (reported)")
    audioset_dir: Folder | None = Field(None, description="None: the profile's AudioSet folder; a path overrides it")


class MeanTeacher(Training):
    mode: Literal["mean_teacher", "supervised"] = Field(
        "mean_teacher", description="mean_teacher, or supervised (plain fine-tuning on the labeled split)")
    unlabeled: Subset | None = Field(None, description="unlabeled AudioSet subset: none, small or large; None: params/surkov.yaml (small)")
    weights: Folder | None = Field(None, description=WEIGHTS_HELP)


class MeanTeacherAblations(Scenes):
    seeds: Annotated[list[Count], Field(min_length=1, strict=False)] | None = Field(
        None, description="seeds of every variant; None: params/surkov.yaml ablation.seeds (0, 1, 2)")
    variants: Annotated[list[str], Field(min_length=1, strict=False)] | None = Field(
        ["efficientat_mt", "efficientat_ft", "efficientat_mt_w0"],
        description="run folders of the variants to train (asc_lib.methods.mt_ablation); default: the mean teacher, "
                    "plain fine-tuning and consistency weight 0 (02's runs and 3 more); None: all")
    sweep: bool = Field(False, description="also sweep the consistency weight (params/surkov.yaml ablation)")
    weights: Folder | None = Field(None, description="as 02_mean_teacher: checkpoint, 'standin', 'none'; None: params/surkov.yaml")


class DomainPruning(Seeded):
    seed: Count = Field(0, description="seed of the domain classifier and of the random control selection")
    epochs: Positive | None = Field(None, description="None: the profile's domain-classifier recipe; an int overrides its epochs")
    batch_size: Positive | None = Field(None, description="None: the profile's domain-classifier recipe; an int overrides its batch size")
    threshold: Threshold | None = Field(None, description=THRESHOLD_HELP)


class PrunedKD(Training):
    epochs: Positive | None = Field(None, description="None: the profile's fine-tuning recipe; an int overrides its epochs")
    batch_size: Positive | None = Field(None, description="None: the profile's fine-tuning recipe; an int overrides its batch size")
    min_steps: Count | None = Field(None, description="None: the profile's fine-tuning recipe; an int overrides its floor on optimizer steps")
    selection: Literal["pruned", "random"] = Field("pruned", description="pruned (Werning) or random (the control of the same size)")
    threshold: Threshold | None = Field(None, description="which pruning of 03_domain_pruning; None: params/werning.yaml (0.3)")
    kd_steps: Positive | None = Field(None, description="distillation iterations, exactly; None: the profile's recipe")
    kd_input: Literal["clips", "pieces"] | None = Field(
        None, description="whole clips with clip-level teacher logits (Werning's code) or 1 s pieces; None: the recipe's (clips)")


class KD(Training):
    subset: Subset = Field("small", description="unlabeled AudioSet subset: none, small or large")
    teacher: Literal["efficientat_mt", "efficientat_ft"] = Field(
        "efficientat_mt", description="which 02_mean_teacher run to distil: efficientat_mt or efficientat_ft")


class CrossSelection(Seeded):
    seed: Count = Field(0, description="training seed (and which pruning of 03_domain_pruning: the one of this seed)")
    weights: Folder | None = Field(None, description=WEIGHTS_HELP)


class Results(Notebook):
    runs_dir: Folder | None = Field(None, description="None: the profile's runs (data/runs/<profile>); or a folder of runs")
    focus_split: Split = Field(100, description="split of the per-device plots and confusion matrices")
    tables_dir: Folder | None = Field(None, description="None: reports/tables/<profile>; or a folder for the CSV tables")
    plan: Literal["quick", "full", "extended"] | None = Field(
        None, description="report plan whose runs are expected: quick, full or extended; None: the profile's default")


class Benchmarks(Notebook):
    profile: Profile = Field("mini", description="data profile of the clips the throughput is measured on")
    split: Split = Field(5, description="training split those clips come from")
    device: Device = Field("auto", description="auto (the GPU when there is one), cpu or cuda[:N]")
    batch_size: Positive | None = Field(None, description="None: 256 (the papers') on a GPU, 64 (the mini recipe's) on the CPU")
    steps: Positive = Field(4, description="timed optimizer steps per data path and round (3 alternating rounds)")
    loader_workers: Count = Field(2, description="DataLoader workers of the reference path")
    teacher_clips: Positive = Field(16, description="clips per teacher measurement (EfficientAT mn10, 1 s)")
    passt_clips: Positive = Field(1, description="PaSST-S clips per measurement (10 s)")
    scaling_max: Annotated[int, Field(ge=1000)] | None = Field(
        None, description="largest label-filtering / domain-scoring size; None: 2e6 on a GPU, 1e5 on the CPU")
    cache_sizes: Sizes | None = Field(None, description="clips of the cache-build measurement; None: 10, 100, 1000")
    streaming_sizes: Sizes | None = Field(
        None, description="clips on disk for the streamed-training memory rehearsal; None: 2,000 and 8,000")
    output_dir: Folder | None = Field(None, description="None: reports/benchmarks; or a folder for the measurements")
    progress: bool | None = Scenes.model_fields["progress"]


SCHEMAS: dict[str, type[Notebook]] = {
    "00_data_exploration": DataExploration, "00b_baseline": Baseline, "01_audioset_label_filtering": LabelFiltering,
    "02_mean_teacher": MeanTeacher, "02b_mean_teacher_ablations": MeanTeacherAblations,
    "03_domain_pruning": DomainPruning, "03b_pruned_kd": PrunedKD, "04_kd": KD, "04b_cross_selection": CrossSelection,
    "05_results": Results, "06_benchmarks": Benchmarks,
}


def _defaults(schema: type[Notebook]) -> dict[str, Any]:
    """``{parameter: default}`` in the order of the parameters cell: the data folders last."""
    fields = sorted(schema.model_fields.items(), key=lambda item: item[0] in DATA_OVERRIDES)
    return {key: field.default for key, field in fields}


# notebook -> {parameter: default}
NOTEBOOK_PARAMETERS: dict[str, dict[str, Any]] = {name: _defaults(schema) for name, schema in SCHEMAS.items()}


def _type_name(annotation: Any) -> str:
    """The type papermill shows for an annotation: its base type's name, ``or None`` when it admits None."""
    names = []
    for arg in (typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType)
                else (annotation,)):
        while typing.get_origin(arg) is Annotated:
            arg = typing.get_args(arg)[0]
        origin = typing.get_origin(arg)
        name = ("str" if origin is Literal or arg is Path else "None" if arg is type(None)
                else (origin or arg).__name__)
        if name not in names:
            names.append(name)
    base = [n for n in names if n != "None"][0]
    return f"{base} or None" if "None" in names else base


def parameter_type(notebook: str, name: str) -> str:
    """The type papermill shows for parameter ``name`` of ``notebook``."""
    return _type_name(SCHEMAS[notebook].model_fields[name].annotation)


def parameter_help(notebook: str, name: str) -> str:
    """What parameter ``name`` of ``notebook`` means."""
    return SCHEMAS[notebook].model_fields[name].description


def parameters_source(notebook: str) -> str:
    """The source of ``notebook``'s parameters cell, rendered from its schema: ``name: "type" = default  # help``
    per line (papermill reads type and help from it; the quoted annotation costs nothing at run time)."""
    spec = NOTEBOOK_PARAMETERS[notebook]
    heads = [f'{name}: "{parameter_type(notebook, name)}" = {value!r}'.replace("'", '"') for name, value in spec.items()]
    width = max(map(len, heads)) + 2
    return "\n".join(f"{head:<{width}}# {parameter_help(notebook, name)}" for head, name in zip(heads, spec))


def _message(notebook: str, err: ValidationError, given: Mapping[str, Any]) -> str:
    """One line per parameter: its value and what it should be (a union's alternatives joined by "or")."""
    said: dict[str, list[str]] = {}
    for problem in err.errors():
        message = problem["msg"].removeprefix("Value error, ")
        said.setdefault(str(problem["loc"][0]), []).append(message)
    return f"{notebook}: " + "; ".join(f"parameter {name} = {given.get(name)!r}: {' or '.join(dict.fromkeys(m))}"
                                       for name, m in said.items())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"Note ({category.__name__}): {message}")


def notebook_params(notebook: str, namespace: Mapping[str, Any]) -> types.SimpleNamespace:
    """Validate a notebook's parameters (taken from its global namespace) against its schema, switch progress
    bars on or off (:mod:`asc_lib.config.progress`), show warnings as notes in the cells' output (in a kernel)
    and resolve its data paths.

    Any public, non-module, non-callable global that is not a declared parameter is reported as an
    unknown parameter, with the closest declared name: this catches a misspelled ``papermill -p``.
    """
    if notebook not in SCHEMAS:
        raise KeyError(f"no parameters declared for notebook {notebook!r}")
    spec = NOTEBOOK_PARAMETERS[notebook]
    candidates = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in _IPYTHON_NAMES
                  and not isinstance(v, types.ModuleType) and not callable(v)}
    unknown = sorted(set(candidates) - set(spec))
    if unknown:
        hints = [f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, spec, 1)) else "")
                 for u in unknown]
        raise ValueError(f"{notebook}: unknown parameter(s) {', '.join(hints)}; declared: {sorted(spec)}")
    try:
        values = SCHEMAS[notebook].model_validate(candidates).model_dump()
    except ValidationError as err:
        raise ValueError(_message(notebook, err, candidates)) from None
    if "progress" in values:
        values["progress"] = progress.show(values["progress"])
    if progress.kernel() is not None:  # a warning reads as a note in the cell's output, not as a stderr box with a source line
        warnings.showwarning = _show_warning
        # tables shown whole: the recipes' reasons and the findings are meant to be read, not cut at 50 characters
        pd.set_option("display.max_rows", 500)
        pd.set_option("display.max_colwidth", None)
    cfg = types.SimpleNamespace(**values)
    cfg.data = data_paths(values["profile"], **{k: values[k] for k in DATA_OVERRIDES if k in values})
    return cfg
