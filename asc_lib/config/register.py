"""The deviation register: every difference between this study and the papers, in one table generated from
``params/`` (never written by hand).

A row is a recipe setting whose ``paper:`` value the report does not state (the recipe's ``sources:``
section says where it comes from: the authors' code, a reference implementation or the study's choice), or
whose value under a profile differs from the ``paper:`` one (the ``mini:`` / ``smoke:`` sections; the
reason is the YAML comment beside the setting, or the section's own comment). The DCASE2024 baseline has
no report: its ``paper:`` values are its official code's, and the mini stand-in tagger is the study's own.
The study's own settings (evaluation points, step floors, caches) say where their paper value comes from
once, in ``implementation:`` of ``params/training.yaml``.

``python -m asc_lib.config.register`` prints the register as Markdown (docs/deviations.md's copy is checked
against it by ``tests/test_register.py``).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from asc_lib.config import paths
from asc_lib.config.profiles import load_profile, load_yaml
from asc_lib.config.recipes import RECIPE_SETS, load_recipe

# params/<source>.yaml -> whose settings they are
PAPERS = {"training": "DCASE2024 baseline", "surkov": "Surkov", "werning": "Werning"}
SKIPPED = {("training", "audioset_tagger")}  # the mini data's stand-in: no paper, every value the study's
_KEY = re.compile(r"^(\s*)([^\s#-][^:#]*?):(?=\s|$)(.*)$")
COLUMNS = ["paper", "recipe", "setting", "paper value", "where the paper value comes from"]


def _comment_start(rest: str) -> int:
    """Index of the comment's ``#`` in the value part of a YAML line (outside quotes), or -1."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return i
    return -1


def yaml_comments(path: str | Path) -> dict[tuple[str, ...], str]:
    """The comment of every mapping key of a YAML file, by key path (``("kd", "mini", "epochs")``): the text
    after ``#`` on the key's line, joined with the comment-only lines below it aligned on the same ``#``."""
    comments: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    last: tuple[tuple[str, ...], int] | None = None
    for line in Path(path).read_text().splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            column = len(line) - len(stripped)
            if last is not None and column == last[1]:
                comments[last[0]] += " " + stripped[1:].strip()
            else:
                last = None
            continue
        match = _KEY.match(line)
        if not stripped or match is None:
            last = None
            continue
        indent, key, rest = len(match.group(1)), match.group(2).strip(), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        key_path = tuple(k for _, k in stack)
        start = _comment_start(rest)
        if start >= 0:
            comments[key_path] = rest[start + 1:].strip()
            last = (key_path, len(line) - len(rest) + start)
        else:
            last = None
    return comments


def _show(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def recipes() -> list[tuple[str, str]]:
    """``(source, recipe)`` of every recipe the register covers, in file order."""
    out = []
    for source in PAPERS:
        table = load_yaml(paths.PARAMS_DIR / f"{source}.yaml")
        out += [(source, name) for name, section in table.items()
                if isinstance(section, dict) and "paper" in section and (source, name) not in SKIPPED]
    return out


def deviation_reason(source: str, recipe: str, key: str, recipe_set: str,
                     comments: dict | None = None) -> str:
    """Why ``key`` of ``recipe`` differs from the paper under ``recipe_set``: the comment of the most specific
    set that changes it (``smoke`` before ``mini``), else that set's own comment; empty when none is given."""
    table = load_yaml(paths.PARAMS_DIR / f"{source}.yaml")[recipe]
    comments = comments if comments is not None else yaml_comments(paths.PARAMS_DIR / f"{source}.yaml")
    levels = RECIPE_SETS[1:RECIPE_SETS.index(recipe_set) + 1]
    for level in reversed(levels):
        if key in (table.get(level) or {}):
            return comments.get((recipe, level, key)) or comments.get((recipe, level), "")
    return ""


def implementation_sources() -> dict[str, str]:
    """Where the paper value of the study's own settings (evaluation points, step floors, caches) comes from:
    ``implementation:`` of ``params/training.yaml``."""
    return dict(load_yaml(paths.PARAMS_DIR / "training.yaml").get("implementation") or {})


def register(profile: str = "mini") -> pd.DataFrame:
    """The register for ``profile``: one row per setting whose paper value the report does not state or whose
    value here differs from the paper's, with the paper's value, where it comes from, the value the profile
    uses and why it differs."""
    recipe_set = load_profile(profile).get("recipes", "paper")
    used, why = f"{profile} value", f"why {profile} differs"
    rows = []
    own = implementation_sources()
    for source, name in recipes():
        table = load_yaml(paths.PARAMS_DIR / f"{source}.yaml")[name]
        comments = yaml_comments(paths.PARAMS_DIR / f"{source}.yaml")
        recipe = load_recipe(name, recipe_set, source)
        origins = {**own, **(table.get("sources") or {})}
        for key in table["paper"]:
            deviates = key in recipe["deviations"]
            if key not in (table.get("sources") or {}) and not deviates:
                continue
            rows.append({"paper": PAPERS[source], "recipe": name, "setting": key,
                         "paper value": _show(table["paper"][key]),
                         "where the paper value comes from": origins.get(key, "the report" if source != "training"
                                                                         else "the official code"),
                         used: _show(recipe[key]),
                         why: deviation_reason(source, name, key, recipe_set, comments) if deviates else ""})
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
