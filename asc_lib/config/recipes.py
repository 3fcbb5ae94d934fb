"""Training recipes as typed data: the papers' settings (``paper:``), where a value the report does not state
comes from (``sources:``) and the named mini and smoke deviations, each with its reason (``why:``), from
``params/training.yaml``, ``params/surkov.yaml`` and ``params/werning.yaml``.

Two schemas (pydantic): :class:`RecipeEntry` is the shape of a recipe's section (every deviation carries a
``why:``, its own or its level's); :func:`schema` is the typed model of one recipe, its fields and types
those of the ``paper:`` settings, so a misspelled key, a value of another type or a NaN is refused, naming
the file and the recipe. Adding a setting means adding it to ``paper:``.
"""
from __future__ import annotations

import difflib
import hashlib
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from asc_lib.config import paths
from asc_lib.config.profiles import load_profile, load_yaml

# paper: the reports' settings; mini: minutes per run on the embedded data (each deviation named);
# smoke: the mini settings cut to a few steps, to check every code path in seconds (the test suite's).
RECIPE_SETS = ("paper", "mini", "smoke")
# params/<source>.yaml -> whose settings they are
PAPERS = {"training": "DCASE2024 baseline", "surkov": "Surkov", "werning": "Werning"}


class Deviation(BaseModel):
    """A setting a profile changes: the value it uses and why."""

    model_config = ConfigDict(extra="forbid")
    value: Any
    why: str = Field(min_length=1)


class Level(BaseModel):
    """``mini:`` or ``smoke:``: the settings it changes, each ``{value, why}`` or a bare value that the
    level's own ``why`` covers."""

    model_config = ConfigDict(extra="forbid")
    why: str | None = None
    changes: dict[str, Deviation] = {}

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        data = dict(data or {})
        why = data.pop("why", None)
        changes = {}
        for key, value in data.items():
            if not (isinstance(value, dict) and set(value) == {"value", "why"}):
                if not why:
                    raise ValueError(f"{key} changes the paper's value without a reason: write it as "
                                     f"{{value: ..., why: ...}} or give the level a why:")
                value = {"value": value, "why": why}
            changes[key] = value
        return {"why": why, "changes": changes}


class RecipeEntry(BaseModel):
    """One recipe's section of a parameter file."""

    model_config = ConfigDict(extra="forbid")
    paper: dict[str, Any]
    sources: dict[str, str] = {}
    mini: Level = Level()
    smoke: Level = Level()
    labels: dict[str, str] = {}     # a label filter's AudioSet labels (Surkov's Table 1)

    @model_validator(mode="after")
    def _known_settings(self) -> "RecipeEntry":
        for part, keys in (("sources", self.sources), ("mini", self.mini.changes), ("smoke", self.smoke.changes)):
            for key in keys:
                if key not in self.paper:
                    close = difflib.get_close_matches(key, list(self.paper), n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"settings: {', '.join(self.paper)}"
                    raise ValueError(f"{part}: {key!r} is not a setting of paper: ({hint})")
        return self


def problems(err: ValidationError) -> str:
    """A pydantic error in one line: ``where: what`` per problem."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in err.errors())


def _field(value: Any) -> tuple[Any, Any]:
    if value is None:
        return Any, None
    if isinstance(value, (list, dict)):
        return Annotated[type(value), Field(strict=False)], value
    return type(value), value


def entries(source: str) -> dict[str, RecipeEntry]:
    """Every recipe of ``params/<source>.yaml`` (sections with a ``paper:`` part), checked."""
    path = paths.PARAMS_DIR / f"{source}.yaml"
    out = {}
    for name, section in load_yaml(path).items():
        if isinstance(section, dict) and "paper" in section:
            try:
                out[name] = RecipeEntry.model_validate(section)
            except ValidationError as err:
                raise ValueError(f"{path}: recipe {name}: {problems(err)}") from None
    return out


def schema(name: str, paper: dict[str, Any]) -> type[BaseModel]:
    """The typed model of recipe ``name``: one field per ``paper:`` setting, of its type, defaulting to it."""
    fields = {key: _field(value) for key, value in paper.items()}
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    return create_model(name, __config__=config, **fields)


def entry(name: str, source: str = "training") -> RecipeEntry:
    table = entries(source)
    if name not in table:
        raise ValueError(f"{paths.PARAMS_DIR / f'{source}.yaml'}: no recipe {name!r}; recipes: {', '.join(table)}")
    return table[name]


def recipe_names(source: str = "training") -> list[str]:
    """Names of the recipes in ``params/<source>.yaml``."""
    return sorted(entries(source))


def load_recipe(name: str, recipes: str = "paper", source: str = "training", **overrides) -> dict:
    """Recipe ``name`` from ``params/<source>.yaml``: the paper's settings, updated by the ``mini``
    deviations when ``recipes`` is ``mini`` or ``smoke``, by the ``smoke`` ones when it is ``smoke``, then
    by any non-None ``overrides``; checked by the recipe's :func:`schema`.

    The returned dict carries ``deviations``: every key whose value differs from the paper's, with the
    paper's value, the value used and why (empty for an override).
    """
    if recipes not in RECIPE_SETS:
        raise ValueError(f"unknown recipe set {recipes!r}; choose from {RECIPE_SETS}")
    section = entry(name, source)
    values, why = dict(section.paper), {}
    for level in RECIPE_SETS[1:RECIPE_SETS.index(recipes) + 1]:
        for key, change in getattr(section, level).changes.items():
            values[key], why[key] = change.value, change.why
    for key in overrides:
        if key not in section.paper:
            close = difflib.get_close_matches(key, list(section.paper), n=1)
            raise ValueError(f"{paths.PARAMS_DIR / f'{source}.yaml'}: recipe {name} ({recipes}): override {key!r} is "
                             f"not a setting" + (f" (did you mean {close[0]!r}?)" if close else ""))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        recipe = schema(f"{source}.{name}", section.paper).model_validate(values).model_dump()
    except ValidationError as err:
        raise ValueError(f"{paths.PARAMS_DIR / f'{source}.yaml'}: recipe {name} ({recipes}): {problems(err)}") from None
    paper = section.paper
    recipe["deviations"] = {k: {"paper": paper[k], "used": recipe[k], "why": why.get(k, "")}
                            for k in paper if recipe[k] != paper[k]}
    return recipe


def profile_recipe(profile: str, name: str, source: str = "training", **overrides) -> dict:
    """Recipe ``name`` with the set the data ``profile`` selects (mini deviations or the paper's)."""
    return load_recipe(name, load_profile(profile).get("recipes", "paper"), source, **overrides)


class TextTable:
    """A table whose prose columns (``left``) read left-aligned in HTML, where Jupyter right-aligns every
    cell; as text it prints as the data frame does. ``.frame`` is the data frame."""

    def __init__(self, frame: pd.DataFrame, left):
        self.frame, self.left = frame, [c for c in left if c in frame.columns]

    def _repr_html_(self) -> str:
        ids = hashlib.sha256(repr(list(self.frame.columns)).encode()).hexdigest()[:8]  # the same in every run
        return (self.frame.style.format(str).set_properties(subset=self.left, **{"text-align": "left"})
                .set_uuid(ids).to_html())

    def __repr__(self) -> str:
        return repr(self.frame)


def recipe_table(recipe: dict) -> TextTable:
    """The recipe as a table, its deviations first: each setting, the paper's value, the value used and why."""
    rows = []
    for key, value in recipe.items():
        if key == "deviations":
            continue
        dev = recipe["deviations"].get(key)
        rows.append({"setting": key, "paper": str(dev["paper"] if dev else value), "used": str(value),
                     "why it differs": dev["why"] if dev else ""})  # str first: pandas reads None as NaN
    frame = pd.DataFrame(rows).set_index("setting")
    return TextTable(frame.sort_values("why it differs", key=lambda c: c == "", kind="stable"), ["why it differs"])


def table1_labels() -> dict[str, str]:
    """The 14 AudioSet labels (mid -> display name) of Surkov's Table 1 (``params/surkov.yaml``): what his
    label filter selects, and what the mini generator plants in its in-domain AudioSet clips."""
    return dict(entry("audioset_filter", "surkov").labels)
