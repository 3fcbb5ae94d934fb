"""Training recipes: the papers' settings (``paper:``), the named mini and smoke deviations, and any
overrides, from ``params/training.yaml``, ``params/surkov.yaml`` and ``params/werning.yaml``.
"""
from __future__ import annotations

import math

import pandas as pd

from asc_lib.config import paths
from asc_lib.config.profiles import check_keys, load_profile, load_yaml

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
        check_keys(changes, paper, f"{source}: {name}.{level} (settings are those of {name}.paper)")
        check_values(changes, paper, f"{source}: {name}.{level}")
        recipe.update(changes)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    check_keys(overrides, paper, f"recipe {name!r} of {source.name}")
    check_values(overrides, paper, f"recipe {name!r} of {source.name}")
    recipe.update(overrides)
    recipe["deviations"] = {k: {"paper": paper[k], "used": recipe[k]} for k in paper if recipe[k] != paper[k]}
    return recipe


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def check_values(changes: dict, paper: dict, where: str) -> None:
    """A ``ValueError`` naming ``where`` and the key when a changed value is not of the paper value's kind
    (number, text, true/false, list, mapping; a paper value of null takes anything) or is a NaN or infinite
    number (YAML reads ``.nan`` and ``.inf`` as numbers)."""
    for key, value in changes.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: {key} = {value!r} is not a finite number")
        want = paper.get(key)
        if want is not None and value is not None and _kind(value) != _kind(want):
            raise ValueError(f"{where}: {key} = {value!r} is {_kind(value)}, but the paper's value {want!r} is "
                             f"{_kind(want)}")


def profile_recipe(profile: str, name: str, source: str = "training", **overrides) -> dict:
    """Recipe ``name`` with the set the data ``profile`` selects (mini deviations or the paper's)."""
    return load_recipe(name, load_profile(profile).get("recipes", "paper"), source, **overrides)


def recipe_table(recipe: dict) -> pd.DataFrame:
    """The recipe as a table: each setting, the paper's value and the value used (deviations marked)."""
    rows = []
    for key, value in recipe.items():
        if key == "deviations":
            continue
        dev = recipe["deviations"].get(key)
        rows.append({"setting": key, "paper": dev["paper"] if dev else value, "used": value,
                     "deviation": "yes" if dev else ""})
    return pd.DataFrame(rows).set_index("setting").astype(str)


def table1_labels() -> dict[str, str]:
    """The 14 AudioSet labels (mid -> display name) of Surkov's Table 1 (``params/surkov.yaml``): what his
    label filter selects, and what the mini generator plants in its in-domain AudioSet clips."""
    return dict(load_yaml(paths.PARAMS_DIR / "surkov.yaml")["audioset_filter"]["labels"])
