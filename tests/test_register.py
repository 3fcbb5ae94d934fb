"""The deviation register: generated from params/, complete, with a reason for every deviation, and the
README's copy current."""
import re

import pytest

from asc_lib.config import RECIPE_SETS, load_recipe, load_yaml, paths, register


def test_comments_are_read_with_their_continuation_lines(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("kd:                  # stage 2\n"
                    "  paper:\n"
                    "    lr: 1.0e-3       # the report's\n"
                    "    url: \"https://x/#a\"   # not a comment inside quotes\n"
                    "  mini:\n"
                    "    lr: 5.0e-3       # 300 steps: a larger rate\n"
                    "                     # (measured on split 5)\n"
                    "    epochs: 3\n"
                    "# a loose comment\n")
    comments = register.yaml_comments(path)
    assert comments[("kd",)] == "stage 2"
    assert comments[("kd", "paper", "lr")] == "the report's"
    assert comments[("kd", "paper", "url")] == "not a comment inside quotes"
    assert comments[("kd", "mini", "lr")] == "300 steps: a larger rate (measured on split 5)"
    assert ("kd", "mini", "epochs") not in comments


@pytest.mark.parametrize("profile", ["mini", "smoke", "real"])
def test_every_setting_that_differs_from_the_paper_is_listed_with_a_reason(profile):
    table = register.register(profile)
    listed = set(zip(table["recipe"], table["setting"], table["paper"]))
    recipe_set = load_yaml(paths.PARAMS_DIR / f"{profile}.yaml")["recipes"]
    for source, name in register.recipes():
        recipe = load_recipe(name, recipe_set, source)
        for key, change in recipe["deviations"].items():
            assert (name, key, register.PAPERS[source]) in listed, (source, name, key)
            row = table[(table["recipe"] == name) & (table["setting"] == key)
                        & (table["paper"] == register.PAPERS[source])].iloc[0]
            assert row[f"{profile} value"] == register._show(change["used"])
            assert row[f"why {profile} differs"].strip(), f"params/{source}.yaml: {name}.{key} differs without a reason"
    if recipe_set == "paper":
        assert (table[f"why {profile} differs"] == "").all()


def test_every_named_source_is_a_setting_and_the_silent_choices_are_listed():
    for source, name in register.recipes():
        section = load_yaml(paths.PARAMS_DIR / f"{source}.yaml")[name]
        assert set(section.get("sources") or {}) <= set(section["paper"]), (source, name)
        for level in RECIPE_SETS[1:]:
            assert set(section.get(level) or {}) <= set(section["paper"]), (source, name, level)
    table = register.register("real").set_index(["paper", "recipe", "setting"])
    for paper, recipe, key in [("Surkov", "mean_teacher", "consistency_weight"),
                               ("Surkov", "mean_teacher", "labeled_per_batch"),
                               ("Surkov", "mean_teacher", "mask_widths"), ("Surkov", "kd", "mask_fill"),
                               ("Werning", "domain_classifier", "classifier"), ("Werning", "kd", "mixup_alpha")]:
        assert table.loc[(paper, recipe, key), "where the paper value comes from"] != "the report"


def test_the_docs_hold_the_current_register():
    text = (paths.ROOT / "docs" / "deviations.md").read_text()
    found = re.search(r"<!-- register:start -->\n(.*?)<!-- register:end -->", text, re.S)
    assert found, "docs/deviations.md has no register block"
    assert found.group(1) == register.markdown("mini"), \
        "docs/deviations.md's register is stale: paste `python -m asc_lib.config.register` between its markers"
