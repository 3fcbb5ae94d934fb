"""Result tables: read back from a small fixed set of metrics files, averaged over seeds, laid out beside
the papers' numbers; and the results notebook run on those files."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from asc_lib import config
from asc_lib.data import dcase
from asc_lib.methods import registry
from asc_lib.study import plots, results
from asc_lib.training.evaluate import write_output_csv


def write_run(root, method, split, seed, accuracy, params_=61148, macs=21896340, **extra):
    """A metrics.json as the training notebooks write it (groups and devices offset from ``accuracy``)."""
    groups = {"real": accuracy + 0.1, "seen": accuracy, "unseen": accuracy - 0.1}
    devices = {d: groups[dcase.GROUP_OF_DEVICE[d]] for d in dcase.DEVICES}
    confusion = (np.eye(10, dtype=int) * 8 + 1).tolist()
    metrics = {"method": method, "split": split, "seed": seed,
               "test": {"accuracy": accuracy, "per_group": groups, "per_device": devices, "log_loss": 1.0,
                        "confusion": confusion, "per_class": {}, "n_clips": 100},
               "complexity": {"params": params_, "macs": macs, "passes": params_ < 128000}, **extra}
    directory = root / method / f"split{split}-seed{seed}"
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    # output.csv: 10 recordings of 10 s per scene; clip k of a scene (recording k // 10) right iff k < 100 * accuracy
    files, pred = [], []
    for c, scene in enumerate(dcase.SCENES):
        for k in range(100):
            files.append(f"audio/{scene}-city-{k // 10}-{k // 10}-{k % 10}-a.wav")
            pred.append(c if k < round(100 * accuracy) else (c + 1) % 10)
    write_output_csv(directory / "output.csv", files, np.eye(10)[pred])


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "baseline", 5, 0, 0.50, macs=29419156)
    write_run(root, "baseline", 5, 1, 0.52, macs=29419156)
    write_run(root, "efficientat_mt", 5, 0, 0.40, params_=4214554, macs=62721522)
    write_run(root, "werning", 100, 0, 0.70, selection="pruned", threshold=0.3)
    write_run(root, "werning_t0.1", 100, 0, 0.65, selection="pruned", threshold=0.1)
    write_run(root, "werning_random", 100, 0, 0.60, selection="random", threshold=0.3)
    subsets = root / "pruned_subsets"
    subsets.mkdir()
    sweep = [{"threshold": t, "kept clips": n, "relative size of pruned set (%)": s}
             for t, n, s in [(0.1, 80, 40.0), (0.3, 50, 25.0)]]
    selections = [{"selection": "pruned", "selected": 50, "share of pool (%)": 25.0, "in-domain precision": 0.8,
                   "in-domain recall": 0.9, "pool in-domain share": 0.3},
                  {"selection": "random", "selected": 50, "share of pool (%)": 25.0, "in-domain precision": 0.3,
                   "in-domain recall": 0.25, "pool in-domain share": 0.3}]
    (subsets / "split100-t0.3-seed0-pruning.json").write_text(
        json.dumps({"split": 100, "threshold": 0.3, "seed": 0, "sweep": sweep, "selections": selections}))
    return root


def test_runs_table_reads_every_run_in_percent(runs_root):
    runs = results.runs_table(runs_root)
    assert len(runs) == 6
    base = runs[(runs["method"] == "baseline") & (runs["seed"] == 1)].iloc[0]
    assert base["accuracy"] == pytest.approx(52.0)
    assert base["unseen"] == pytest.approx(42.0) and base["s5"] == pytest.approx(42.0)
    assert runs.loc[runs["method"] == "werning_t0.1", "threshold"].item() == 0.1


def test_runs_table_leaves_out_runs_scored_on_another_test_split(runs_root):
    current = sorted(pd.read_csv(runs_root / "baseline" / "split5-seed0" / "output.csv", sep="\t")["filename"])
    stale = runs_root / "werning_t0.1" / "split100-seed0" / "output.csv"
    output = pd.read_csv(stale, sep="\t")
    output["filename"] = output["filename"].str.replace("-a.wav", "-b.wav")  # the data were regenerated since
    output.to_csv(stale, sep="\t", index=False)
    assert len(results.runs_table(runs_root)) == 6  # without the test split: every run
    with pytest.warns(UserWarning, match=r"1 run\(s\) .* werning_t0\.1 split 100 seed 0"):
        runs = results.runs_table(runs_root, current)
    assert len(runs) == 5 and "werning_t0.1" not in set(runs["method"])


def test_seed_summary_mean_and_sample_std(runs_root):
    summary = results.seed_summary(results.runs_table(runs_root))
    row = summary.loc[("baseline", 5)]
    assert row["accuracy"] == pytest.approx(51.0)
    assert row["accuracy_std"] == pytest.approx(math.sqrt(2))  # sample std of 50, 52
    assert row["seeds"] == 2
    assert math.isnan(summary.loc[("efficientat_mt", 5), "accuracy_std"])


def test_intervals_and_paired_comparisons_from_the_runs_predictions(runs_root):
    """Per method and split the bootstrap interval over test recordings; each comparison the papers make
    with its paired interval and verdict (pruned 70 % vs random 60 %: right on one more recording per scene)."""
    runs = results.runs_table(runs_root)
    intervals = results.interval_table(runs).set_index(["method", "split"])
    base = intervals.loc[(registry.label("baseline"), 5)]
    assert base["seeds"] == 2 and base["accuracy %"] == 51.0
    low, high = (float(v) for v in base["95 % interval"].strip("[]").split(","))
    assert low < 51.0 < high
    table = results.comparison_table(runs).set_index("comparison")
    row = table.loc["Werning: pruned vs random AudioSet selection"]
    assert (row["split"], row["A %"], row["B %"], row["A − B (points)"]) == (100, 70.0, 60.0, 10.0)
    assert row["verdict"] == "no verdict: these runs only (1 vs 1 seeds)"  # one seed a side: about these runs
    for seed, (a, b) in enumerate([(0.71, 0.61), (0.69, 0.59)], start=1):  # two more seeds a side
        write_run(runs_root, "werning", 100, seed, a, selection="pruned", threshold=0.3)
        write_run(runs_root, "werning_random", 100, seed, b, selection="random", threshold=0.3)
    table = results.comparison_table(results.runs_table(runs_root)).set_index("comparison")
    row = table.loc["Werning: pruned vs random AudioSet selection"]
    assert (row["seeds"], row["family"], row["verdict"]) == ("3 vs 3", "controls", "better")
    assert row["p"] == row["p (Holm)"]  # the only comparison of its family with 3 seeds a side
    assert table.loc["Surkov: mean-teacher EfficientAT (teacher) vs baseline", "verdict"].startswith("no verdict")
    assert "Surkov: distilled CP-Mobile (small subset) vs baseline" not in table.index  # no kd_small run


def test_cell_formatting():
    assert results.cell(51.0, math.sqrt(2), 2) == "51.0 ± 1.4 (2 seeds)"
    assert results.cell(51.0) == "51.0"
    assert results.cell(math.nan) == "–"
    assert results.as_reported(42.40) == "42.4" and results.as_reported(46.47) == "46.47"
    assert results.as_reported(57) == "57.0" and results.as_reported(None) == "–"
    assert results.count(61148) == "61,148" and results.count(None) == "–"


def test_surkov_table3_puts_paper_above_study_in_each_splits_column(runs_root):
    table = results.surkov_table3(results.runs_table(runs_root), config.paper_results())
    assert list(table.columns) == ["split 5 %", "split 10 %", "split 25 %", "split 50 %", "split 100 %", "params", "MACs"]
    assert table.loc[("Baseline", "paper"), "split 5 %"] == "42.4"
    assert table.loc[("Baseline", "study"), "split 5 %"] == "51.0 ± 1.4 (2 seeds)"
    assert table.loc[("Efficient-AT (teacher)", "study"), "split 5 %"] == "40.0"
    assert table.loc[("Efficient-AT (teacher)", "study"), "MACs"] == "62,721,522"
    assert table.loc[("CP-Mobile KD, large subset", "study"), "split 100 %"] == "–"
    assert table.loc[("CP-Mobile KD, large subset", "paper"), "split 100 %"] == "55.82"
    widest = max(len(v) for v in table.to_numpy().ravel())
    assert widest <= len("51.0 ± 1.4 (10 seeds)")  # short cells: no wrapping at a normal page width


def test_werning_tables(runs_root):
    runs, paper = results.runs_table(runs_root), config.paper_results()
    table2 = results.werning_table2(runs, paper)
    assert table2.loc[("Werning et al.", "paper"), "split 100 %"] == "60.0"
    assert table2.loc[("Werning et al.", "study"), "split 100 %"] == "70.0"
    assert table2.loc[("Random selection (control)", "study"), "split 100 %"] == "60.0"
    assert ("Random selection (control)", "paper") not in table2.index  # the study's control only
    table1 = results.werning_table1(runs, results.pruning_reports(runs_root), paper)
    assert table1.loc[0.1, ("accuracy split 100 %", "study")] == "65.0"
    assert table1.loc[0.1, ("kept share of AudioSet %", "study")] == "40.0"
    assert table1.loc[0.3, ("kept share of AudioSet %", "paper")] == "14.2"
    assert table1.loc[0.5, ("accuracy split 100 %", "study")] == "–"
    quality = results.pruning_quality(results.pruning_reports(runs_root))
    assert quality.loc[(100, 0.3, 0, "pruned"), "in-domain precision %"] == 80.0
    # another seed's pruning (its own domain classifier) is its own summary: seed 0's is not overwritten
    other = json.loads((runs_root / "pruned_subsets" / "split100-t0.3-seed0-pruning.json").read_text())
    other["seed"], other["sweep"][0]["relative size of pruned set (%)"] = 1, 99.0
    other["selections"][0]["in-domain precision"] = 0.5
    other["validation"] = {"roc_auc": 0.9123, "thresholds": [{"threshold": 0.1, "precision": 0.5, "recall": 1.0},
                                                             {"threshold": 0.3, "precision": 0.8, "recall": 0.95}]}
    (runs_root / "pruned_subsets" / "split100-t0.3-seed1-pruning.json").write_text(json.dumps(other))
    reports = results.pruning_reports(runs_root)
    quality = results.pruning_quality(reports)
    assert quality.loc[(100, 0.3, 0, "pruned"), "in-domain precision %"] == 80.0
    assert quality.loc[(100, 0.3, 1, "pruned"), "in-domain precision %"] == 50.0
    # the classifier's held-out measure, at the pruning's threshold, on the pruned row only
    assert quality.loc[(100, 0.3, 1, "pruned"), ["held-out ROC-AUC", "held-out precision %", "held-out recall %"]
                       ].tolist() == [0.912, 80.0, 95.0]
    assert np.isnan(quality.loc[(100, 0.3, 1, "random"), "held-out ROC-AUC"])
    markdown = results.pruning_markdown(runs, reports, paper)
    assert "| 100 | 0.3 | 1 | pruned |" in markdown and "| 0.912 | 80.0 | 95.0 |" in markdown and "nan" not in markdown
    assert results.werning_table1(runs, reports, paper).loc[0.1, ("kept share of AudioSet %", "study")] == "40.0"


def test_group_and_device_tables(runs_root):
    runs = results.runs_table(runs_root)
    groups = results.group_table(runs)
    assert groups.loc[(5, registry.label("baseline")), "unseen"] == pytest.approx(41.0)
    devices = results.device_table(runs, 100)
    assert devices.loc[registry.label("werning"), "a"] == pytest.approx(80.0)
    assert registry.label("werning_t0.1").endswith("threshold 0.1")
    assert list(results.confusions(runs, 5)) == [registry.label("baseline"), registry.label("efficientat_mt")]
    assert results.groups_at(groups, 5).loc[registry.label("baseline"), "unseen"] == pytest.approx(41.0)


def test_focus_split_without_runs_draws_a_note_not_an_error(runs_root):
    """A focus split nobody trained on (e.g. a partial report) gives empty tables and 'no runs' figures."""
    from asc_lib.study import plots

    runs = results.runs_table(runs_root)
    at_25 = results.groups_at(results.group_table(runs), 25)
    assert at_25.empty and list(at_25.columns) == list(results.GROUPS)
    assert results.device_table(runs, 25).empty
    for fig in (plots.group_accuracy(at_25, "split 25"), plots.confusion_grid(results.confusions(runs, 25), "25")):
        assert "no runs to show" in [t.get_text() for t in fig.axes[0].texts]


def test_missing_runs_follow_the_report_plan():
    planned = results.planned_runs("mini", "full")
    assert {"baseline", "efficientat_mt", "efficientat_ft", "kd_small", "werning", "werning_random"} <= \
        set(planned["method"])
    runs = pd.DataFrame({"method": ["baseline"], "split": [5], "seed": [0]})
    missing = results.missing_runs(runs, planned)
    assert len(missing) == len(planned) - 1
    assert not ((missing["method"] == "baseline") & (missing["split"] == 5) & (missing["seed"] == 0)).any()
    text = results.provenance("mini", "mini data", runs, missing)
    assert f"Did not run ({len(missing)} of the plan)" in text


def test_runs_root_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs folder"):
        results.runs_root("mini", tmp_path / "nowhere")


def test_results_notebook_on_fixed_metrics(runs_root, tmp_path):
    """The results notebook, run headless on the fixed metrics, writes the tables this test reads."""
    import papermill as pm

    from asc_lib.config import paths

    tables = tmp_path / "tables"
    pm.execute_notebook(str(paths.NOTEBOOKS_DIR / "05_results.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"runs_dir": str(runs_root), "tables_dir": str(tables), "focus_split": 100},
                        kernel_name="python3", cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
    table3 = pd.read_csv(tables / "surkov_table3.csv", index_col=[0, 1], dtype=str)
    assert table3.loc[("Baseline", "study"), "split 5 %"] == "51.0 ± 1.4 (2 seeds)"
    assert table3.loc[("Baseline", "paper"), "split 5 %"] == "42.4"
    table1 = pd.read_csv(tables / "werning_table1.csv", header=[0, 1], index_col=0, dtype=str)
    assert table1.loc["0.1", ("accuracy split 100 %", "study")] == "65.0"
    runs = pd.read_csv(tables / "runs.csv", index_col=0)
    assert len(runs) == 6
    comparisons = pd.read_csv(tables / "comparisons.csv", index_col=0)
    assert comparisons.loc[comparisons["comparison"] == "Werning: pruned vs random AudioSet selection",
                           "verdict"].tolist() == ["no verdict: these runs only (1 vs 1 seeds)"]
    findings = pd.read_csv(tables / "findings.csv", index_col=0)
    assert findings["reading"].tolist()[-1] == "runs only: fewer than 3 seeds a side, no verdict (no paper reports it)"
    assert "<div class='findings'>" in (tables / "findings.html").read_text()


def test_the_split_plot_labels_methods_as_the_tables_and_keeps_its_legend_off_the_curves(runs_root):
    runs = results.runs_table(runs_root)
    curve = results.intervals(runs, results.CURVE_METHODS)
    assert set(curve["method"]) == {"baseline", "efficientat_mt", "werning", "werning_random"}
    assert (curve["low"] <= curve["accuracy"]).all() and (curve["accuracy"] <= curve["high"]).all()
    paper = config.paper_results()
    fig = plots.accuracy_vs_split(curve, results.paper_series(paper), paper["splits"], registry.label,
                                  results.CURVE_METHODS)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == [registry.label(m) for m in results.CURVE_METHODS]  # each once, as in the tables
    colours = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert len(set(map(str, colours.values()))) == len(colours)


def test_findings_put_each_claim_of_the_papers_beside_the_studys_verdict(tmp_path):
    """The summary at the top of 05 and of index.html, per split: agrees when the paper's difference lies inside
    the study's interval, contradicts when outside, not testable here where the profile's world lacks the
    mechanism, runs only with fewer than 3 seeds a side; a comparison no paper reports reads its verdict."""
    root = tmp_path / "runs"
    for method, split, accuracies in [("baseline", 5, (0.50, 0.52, 0.51)), ("efficientat_mt", 5, (0.40, 0.41, 0.39)),
                                      ("baseline", 100, (0.60, 0.61, 0.59)), ("werning", 100, (0.63, 0.62, 0.64)),
                                      ("werning_random", 100, (0.50, 0.51, 0.49)), ("werning", 5, (0.55,)),
                                      ("kd_small", 5, (0.45, 0.46, 0.44)), ("kd_large", 5, (0.55, 0.56, 0.54))]:
        for seed, accuracy in enumerate(accuracies):
            write_run(root, method, split, seed, accuracy)
    compared = results.comparisons(results.runs_table(root))
    paper = config.paper_results()
    found = results.findings(compared, paper, "mini").set_index("comparison")
    werning = "Werning: pruned-AudioSet KD vs baseline"      # +3 points on split 100, as the paper's +3.0
    teacher = "Surkov: mean-teacher EfficientAT (teacher) vs baseline"  # 40 vs 51 %, the paper +1.1 on split 5
    control = "Werning: pruned vs random AudioSet selection"   # no paper number
    subsets = "Surkov: large vs small AudioSet subset"         # the mini world cannot test it (params/mini.yaml)
    assert found.loc[werning, "reading"] == ("agrees on 1 of 1 nested split with 3 seeds a side; "
                                             "runs only (fewer seeds) on 1")
    assert found.loc[teacher, "reading"] == "contradicts on 1 of 1 nested split with 3 seeds a side"
    assert found.loc[control, "reading"] == "better on 1 of 1 nested split with 3 seeds a side (no paper reports it)"
    assert found.loc[subsets, "reading"] == "not testable here on 1 of 1 nested split with 3 seeds a side"
    assert found.loc[werning, "family"] == "Werning's claims" and found.loc[control, "family"] == "controls"
    assert "split 100 +3.0" in found.loc[werning, "paper A − B (points)"]
    assert found.loc[control, "paper A − B (points)"] == "not reported"
    assert "split 100: +3.0 [" in found.loc[werning, "study A − B (points) [95 % interval]"]
    assert list(found.index) == [c for c, m, r in results.COMPARISONS if c in found.index]  # the papers' order
    table = results.findings_markdown(found.reset_index(), compared, paper, "mini")
    assert "| **Werning: pruned-AudioSet KD vs baseline** (Werning's claims) | agrees on 1 of 1" in table
    assert "| 5 | 1 vs 3 | +3.4 | +4.0 [" in table and "| no verdict: these runs only (1 vs 3 seeds) | runs only |" in table
    surkov = compared[compared["family"] == "Surkov's claims"]  # teacher and subsets: Holm over the two
    assert (surkov["p_holm"] >= surkov["p"]).all() and surkov["p_holm"].notna().all()
    fragment = results.findings_html(found.reset_index(), compared, paper, "mini")
    assert fragment.count("<table>") == len(found) and "contradicts on 1 of 1 nested split" in fragment
    assert "not about the papers&#x27; numbers on TAU22" in fragment  # the mini profile says what its verdicts mean


def test_index_opens_with_the_findings_05_wrote(tmp_path, monkeypatch):
    from asc_lib.config import paths
    from asc_lib.study import report

    monkeypatch.setenv("ASC_REPORTS_DIR", str(tmp_path / "reports"))
    records = {"05_results": {"ok": True, "parameters": {}}}
    assert "Findings" not in report.write_index(tmp_path, "mini", records).read_text()  # nothing written yet
    results.save_findings(pd.DataFrame({"comparison": ["x"]}), "<div class='findings'>FOUND</div>",
                          paths.tables_dir("mini"))
    page = report.write_index(tmp_path, "mini", records).read_text()
    assert page.index("Findings") < page.index("FOUND") < page.index("Every notebook run")
    failed = {"05_results": {"ok": False, "parameters": {}, "error": "x"}}
    assert "FOUND" not in report.write_index(tmp_path, "mini", failed).read_text()  # a stale summary is not shown
    # the runs' table stays within the page: fixed layout, long notebook names and parameters wrap
    assert "<table class='runs'>" in page and "table.runs{width:100%;table-layout:fixed}" in page
    assert ".runs td{overflow-wrap:anywhere" in page


def test_readme_block_is_replaced_between_its_markers_only():
    text = f"intro\n{results.README_START}\nold\n{results.README_END}\nrest\n"
    assert results.replace_block(text, "new\n") == f"intro\n{results.README_START}\nnew\n{results.README_END}\nrest\n"
    with pytest.raises(ValueError, match="findings:start"):
        results.replace_block("no markers", "new\n")


def test_every_methods_accuracy_with_its_interval_for_the_readme(runs_root):
    table = results.accuracy_markdown(results.runs_table(runs_root))
    lines = table.splitlines()
    assert lines[0] == "| method | split 5 % | split 100 % |"
    base = next(line for line in lines if line.startswith("| DCASE2024 baseline"))
    accuracy, low, high = re.match(r"\| [^|]+ \| ([\d.]+) \[([\d.]+), ([\d.]+)\] \(2 seeds\) \| – \|$", base).groups()
    assert float(low) < float(accuracy) == 51.0 < float(high)
    assert lines.index(base) < next(i for i, line in enumerate(lines) if "Werning" in line)  # registry order


def test_make_findings_writes_each_generated_block_into_its_page(monkeypatch, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    for page in set(results.BLOCK_PAGES.values()):
        text = "".join(f"{name} {results.markers(name)[0]}\nold\n{results.markers(name)[1]}\n"
                       for name, where in results.BLOCK_PAGES.items() if where == page)
        (tmp_path / page).write_text("# page\n" + text)
    monkeypatch.setattr(results.paths, "ROOT", tmp_path)
    monkeypatch.setattr(results, "readme_blocks", lambda profile: {n: f"new {n}\n" for n in results.README_BLOCKS})
    results.main(["--readme"])
    written = {page: (tmp_path / page).read_text() for page in set(results.BLOCK_PAGES.values())}
    assert not any("old" in text for text in written.values())
    assert sum(text.count("new ") for text in written.values()) == len(results.README_BLOCKS) == 4
    assert f"findings {results.markers('findings')[0]}\nnew findings\n" in written["README.md"]
    assert f"accuracies {results.markers('accuracies')[0]}\nnew accuracies\n" in written["docs/findings.md"]
    assert "wrote findings, accuracies, ablation, pruning" in capsys.readouterr().out


def test_each_page_holds_its_generated_blocks():
    for name, page in results.BLOCK_PAGES.items():
        text = (results.paths.ROOT / page).read_text(encoding="utf-8")
        start, end = results.markers(name)
        assert text.count(start) == text.count(end) == 1 and text.index(start) < text.index(end), (name, page)


def test_werning_pruning_for_the_readme(runs_root):
    runs = results.runs_table(runs_root)
    text = results.pruning_markdown(runs, results.pruning_reports(runs_root), config.paper_results())
    lines = text.splitlines()
    assert lines[0].startswith("| split | threshold | seed | selection | kept | share of pool % | in-domain precision % |")
    assert "| 100 | 0.3 | 0 | pruned | 50 | 25.0 | 80.0 | 90.0 |" in lines
    assert "| 0.1 | 30.9 | 40.0 | 57.8 | 65.0 |" in lines  # Table 1: paper beside study


def test_training_curves_keep_their_legend_beside_the_accuracy_panel():
    history = [{"epoch": e, "step": 10 * e, "loss": 2.0 / e, "lr": 1e-3, "accuracy": a, "student_accuracy": a + 0.05,
                "acc_real": a + 0.1, "acc_seen": a, "acc_unseen": a - 0.1} for e, a in [(1, 0.3), (2, 0.5)]]
    fig = plots.training_curves(history, "x")
    fig.canvas.draw()
    panel = fig.axes[2]
    legend = panel.get_legend().get_window_extent()
    assert legend.x0 >= panel.get_window_extent().x1  # right of the panel: no curve under it
    assert [t.get_text() for t in panel.get_legend().get_texts()] == ["teacher", "student", "teacher real",
                                                                      "teacher seen", "teacher unseen"]


def test_bar_charts_keep_their_legends_off_the_bars():
    per_device = {d: 0.99 for d in dcase.DEVICES}  # bars up to the top of the panel
    groups = pd.DataFrame({"real": [99.0], "seen": [98.0], "unseen": [97.0]}, index=pd.Index(["m"], name="model"))
    for fig in (plots.device_accuracy(per_device), plots.group_accuracy(groups, "x")):
        fig.canvas.draw()
        ax = fig.axes[0]
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_every_comparison_says_whether_the_mini_world_holds_its_mechanism():
    for _, method, reference in results.COMPARISONS:
        here = results.mechanism("mini", method, reference)
        assert here.startswith(("tests the mechanism: ", "exercises the code only: ")), (method, reference)
    assert results.mechanism("mini", "efficientat_mt", "baseline").startswith("tests the mechanism")
    assert results.mechanism("mini", "kd_large", "kd_small").startswith("exercises the code only")
    assert results.mechanism("smoke", "werning", "baseline").startswith("exercises the code only")
    assert results.mechanism("real", "werning", "baseline") == "tests the mechanism: the real data"
    assert results.mechanism_kind("mini", "kd_large", "kd_small")[0] == "exercises"


def _readme_findings() -> list[tuple]:
    from asc_lib.config import paths
    text = (paths.ROOT / "README.md").read_text(encoding="utf-8")
    start, end = results.markers("findings")
    block = text.split(start, 1)[1].split(end, 1)[0]
    table = [line for line in block.splitlines() if line.startswith("|")][2:]  # after the header and its rule
    return [tuple(c.strip() for c in line.strip().strip("|").split("|"))[3:] for line in table]


def _notebook_findings() -> list[tuple]:
    import html as html_module

    import nbformat

    from asc_lib.config import paths
    notebook = nbformat.read(paths.NOTEBOOKS_DIR / "05_results.ipynb", as_version=4)
    fragment = next(o["data"]["text/html"] for c in notebook.cells if c.cell_type == "code"
                    for o in c.get("outputs", []) if "class='findings'" in str(o.get("data", {}).get("text/html", "")))
    fragment = "".join(fragment) if isinstance(fragment, list) else fragment
    rows = []
    for row in re.findall(r"<tr><td>(.*?)</tr>", fragment):
        cells = [html_module.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.split(r"</td>", row)[:-1]]
        split, seeds, paper, study, interval, ps, verdict, how = cells
        rows.append((split, seeds, paper, f"{study} {interval}", ps, verdict, how))
    return rows


def test_the_readme_shows_the_findings_05_shows():
    """The README's findings block and the committed 05_results come from the same runs: every split row
    (seeds, the paper's difference, the study's with its interval, p-values, verdict, agreement) is the same."""
    readme, notebook = _readme_findings(), _notebook_findings()
    assert readme, "no findings rows in the README's findings block"
    assert readme == notebook


def test_the_full_plan_runs_three_seeds_on_both_sides_of_every_comparison_where_verdicts_are_drawn():
    """Splits 5 and 100 carry the verdicts: every comparison the mini profile's full plan trains has seeds 0, 1
    and 2 on both sides there (the other splits show their runs, without a verdict); the large subset (two of
    Surkov's claims) and the exploratory experiment (04b) only in the extended plan, where every comparison
    has them; the random-selection control on split 5 only (its split-100 side, the plan's longest runs, in the
    extended plan). A comparison the full plan does not train has no row in its findings."""
    extended_only = {"kd_large"} | {m for _, m, r in results.COMPARISONS
                                    if results.family_of(m, r).startswith(results.EXPLORATORY)}
    for plan in ("full", "extended"):
        planned = results.planned_runs("mini", plan)
        for what, method, reference in results.COMPARISONS:
            if plan == "full" and method in extended_only:
                assert not (planned["method"] == method).any(), what  # not trained: no finding, no row
                continue
            splits = (5,) if plan == "full" and reference == "werning_random" else (5, 100)
            if splits == (5,):
                assert not ((planned["method"] == reference) & (planned["split"] == 100)).any(), what
            for side in (method, reference):
                for split in splits:
                    seeds = set(planned[(planned["method"] == side) & (planned["split"] == split)]["seed"])
                    assert {0, 1, 2} <= seeds, (plan, what, side, split, seeds)
