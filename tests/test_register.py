"""The deviation register: generated from params/, complete, with a reason for every deviation, and the
README's copy current."""
import re
from pathlib import Path

import pytest

from asc_lib.config import RECIPE_SETS, load_recipe, load_yaml, paths, register


def test_reasons_are_data_and_a_deviation_without_one_is_refused(tmp_path, monkeypatch):
    """A deviation's reason is its own ``why:`` or its level's; none at all is an error naming the file."""
    from asc_lib.config import recipes

    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    (tmp_path / "r.yaml").write_text("kd:\n  paper: {lr: 1.0e-3, epochs: 750}\n"
                                     "  mini:\n    lr: {value: 5.0e-3, why: '300 steps: a larger rate'}\n"
                                     "  smoke: {why: a few steps, epochs: 1}\n")
    deviations = recipes.load_recipe("kd", "smoke", "r")["deviations"]
    assert deviations["lr"]["why"] == "300 steps: a larger rate" and deviations["epochs"]["why"] == "a few steps"
    (tmp_path / "r.yaml").write_text("kd:\n  paper: {lr: 1.0e-3}\n  mini: {lr: 5.0e-3}\n")
    with pytest.raises(ValueError, match=r"r\.yaml: recipe kd: .*lr changes the paper's value without a reason"):
        recipes.load_recipe("kd", "mini", "r")


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
    from asc_lib.config import recipes

    for source, name in register.recipes():
        entry = recipes.entries(source)[name]
        assert set(entry.sources) <= set(entry.paper), (source, name)
        for level in RECIPE_SETS[1:]:
            assert set(getattr(entry, level).changes) <= set(entry.paper), (source, name, level)
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


def test_prose_columns_read_left_aligned_and_print_as_the_data_frame():
    """Jupyter right-aligns every cell; a table's reasons read left-aligned, with the same element ids in every
    run (a committed output does not change when nothing did), and print as the data frame does."""
    from asc_lib.config import profile_recipe, recipe_table
    table = recipe_table(profile_recipe("mini", "mean_teacher", source="surkov"))
    html = table._repr_html_()
    column = list(table.frame.columns).index("why it differs")
    assert re.search(rf"_row0_col{column}\b[^{{]*{{\s*text-align: left", html)
    assert not re.search(r"_col0\b[^{]*{\s*text-align", html)  # the values keep Jupyter's alignment
    assert html == recipe_table(profile_recipe("mini", "mean_teacher", source="surkov"))._repr_html_()
    assert repr(table) == repr(table.frame) and table.frame.index[0] == "model"  # deviations first


def test_paths_shown_in_outputs_do_not_name_the_machine():
    assert paths.shown(paths.ROOT / "data" / "x.pt") == paths.shown_beside(paths.ROOT / "data" / "x.pt") == "data/x.pt"
    if paths.ROOT.parent != Path(paths.ROOT.anchor):
        assert paths.shown_beside(paths.ROOT.parent / "shared" / "w.pt") == "../shared/w.pt"
