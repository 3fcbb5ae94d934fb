"""Training recipes: the papers' settings (``paper:``), the named mini and smoke deviations, and any
overrides, from ``params/training.yaml``, ``params/surkov.yaml`` and ``params/werning.yaml``.
"""
from __future__ import annotations

import pandas as pd

from asc_lib.config import paths
from asc_lib.config.profiles import load_profile, load_yaml

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
