"""The deviation register: every difference between this study and the papers, in one table generated from
``params/`` (never written by hand).

A row is a recipe setting whose ``paper:`` value the report does not state (the recipe's ``sources:`` say
where it comes from: the authors' code, a reference implementation or the study's choice), or whose value
under a profile differs from the ``paper:`` one, with the ``why:`` the ``mini:`` / ``smoke:`` level gives.
The DCASE2024 baseline has no report: its ``paper:`` values are its official code's; the mini stand-in
tagger is the study's own. The study's own settings (evaluation points, step floors, caches) say where their
paper value comes from once, in ``implementation:`` of ``params/training.yaml``.

``python -m asc_lib.config.register`` prints the register as Markdown (docs/deviations.md's copy is checked
against it by ``tests/test_register.py``).
"""
from __future__ import annotations

import argparse

import pandas as pd

from asc_lib.config import paths
from asc_lib.config.profiles import load_profile, load_yaml
from asc_lib.config.recipes import PAPERS, entries, load_recipe

SKIPPED = {("training", "audioset_tagger")}  # the mini data's stand-in: no paper, every value the study's
COLUMNS = ["paper", "recipe", "setting", "paper value", "where the paper value comes from"]


def _show(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def recipes() -> list[tuple[str, str]]:
    """``(source, recipe)`` of every recipe the register covers, in file order."""
    return [(source, name) for source in PAPERS for name in entries(source) if (source, name) not in SKIPPED]


def register(profile: str = "mini") -> pd.DataFrame:
    """The register for ``profile``: one row per setting whose paper value the report does not state or whose
    value here differs from the paper's, with the paper's value, where it comes from, the value the profile
    uses and why it differs."""
    recipe_set = load_profile(profile).get("recipes", "paper")
    used, why = f"{profile} value", f"why {profile} differs"
    own = dict(load_yaml(paths.PARAMS_DIR / "training.yaml").get("implementation") or {})
    rows = []
    for source, name in recipes():
        entry = entries(source)[name]
        recipe = load_recipe(name, recipe_set, source)
        for key, paper_value in entry.paper.items():
            change = recipe["deviations"].get(key)
            if key not in entry.sources and not change:
                continue
            origin = entry.sources.get(key) or own.get(key) or ("the report" if source != "training"
                                                                else "the official code")
            rows.append({"paper": PAPERS[source], "recipe": name, "setting": key, "paper value": _show(paper_value),
                         "where the paper value comes from": origin, used: _show(recipe[key]),
                         why: change["why"] if change else ""})
    return pd.DataFrame(rows, columns=COLUMNS + [used, why])


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` (its columns, not its index) as a Markdown table; ``|`` in cells escaped."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [str(v).replace("|", "\\|") if str(v) else "" for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(profile: str = "mini") -> str:
    """The register as a Markdown table (docs/deviations.md's copy)."""
    return markdown_table(register(profile))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Print the deviation register (Markdown) of a profile.")
    parser.add_argument("--profile", default="mini")
    print(markdown(parser.parse_args(argv).profile), end="")


if __name__ == "__main__":
    main()
