"""The study's result tables beside the papers' (notebook ``05_results``).

Every training notebook writes ``metrics.json`` into its run directory
(``<runs>/<method>/split<N>-seed<S>/``); ``03_domain_pruning`` writes one pruning summary per split and
threshold. This module reads them all back (:func:`runs_table`), averages over seeds (mean ± standard
deviation, sample std, where more than one seed ran) and lays the numbers out like the papers' tables,
with the papers' own numbers (``params/paper_results.yaml``) in the neighbouring column. Each comparison the
papers make is a paired test over test recordings and seeds, Holm-adjusted within its family
(:func:`comparisons`), summed up as findings (:func:`findings`): at the top of ``05_results`` and
``reports/index.html``, and in the README and ``docs/findings.md`` (``python -m asc_lib.study.results --readme``).
"""
from __future__ import annotations

import argparse
import html
import json
import math
import warnings
from pathlib import Path

import pandas as pd

from asc_lib import config
from asc_lib.config import load_profile, paths, register
from asc_lib.config.atomic import write_csv, write_text
from asc_lib.data import dcase
from asc_lib.methods import mt_ablation, registry
from asc_lib.methods.registry import METHODS, label, methods_for
from asc_lib.study.report import FINDINGS, plan
from asc_lib.training import uncertainty
from asc_lib.config.paths import METRICS, OUTPUT
from asc_lib.config.paths import profile_runs_dir as profile_runs
from asc_lib.training.experiment import current_test_names, read_metrics, scored_on
from asc_lib.training.uncertainty import compare_directories, run_correctness

GROUPS = ("real", "seen", "unseen")

RUN_COLUMNS = ["method", "split", "seed", "accuracy", *GROUPS, *dcase.DEVICES, "log_loss", "params", "macs",
               "passes", "selection", "threshold", "starts_from", "path"]


def starts_from(metrics: dict) -> str:
    """What a run's knowledge starts from: ``scratch`` (the baseline), the released checkpoint's name (its
    own weights or its teacher's: ``mn04_as``), ``standin`` or ``random`` (``metrics.json``'s ``weights`` or
    ``teacher_weights``)."""
    start = metrics.get("weights") or metrics.get("teacher_weights")
    if not isinstance(start, dict):
        return "scratch" if metrics.get("method") == "baseline" else "unrecorded"
    return start["name"] if start.get("pretrained") else start.get("origin", "unrecorded")


# --- reading the runs ----------------------------------------------------------------------------------------

def runs_table(runs_root: str | Path, test_names: list[str] | None = None) -> pd.DataFrame:
    """One row per finished run below ``runs_root``: accuracy (macro over scenes), per device group and per
    device (all in %), log loss, complexity and, for Werning's runs, the selection and threshold.

    With ``test_names`` (the current test split's file names, :func:`current_test_names`), runs scored on other
    test clips (the data were regenerated since, or a method left the plan) are stale: they are left out, with
    one warning naming them, so no table mixes scores on two test splits."""
    rows, stale = [], []
    for path in sorted(Path(runs_root).glob(f"*/split*-seed*/{METRICS}")):
        m = read_metrics(path)
        if test_names is not None and not scored_on(path.parent, test_names):
            stale.append(f"{m['method']} split {m['split']} seed {m['seed']}")
            continue
        test, cost = m["test"], m.get("complexity") or {}
        rows.append({
            "method": m["method"], "split": int(m["split"]), "seed": int(m["seed"]),
            "accuracy": 100 * test["accuracy"],
            **{g: 100 * v for g, v in test.get("per_group", {}).items()},
            **{d: 100 * v for d, v in test.get("per_device", {}).items()},
            "log_loss": test.get("log_loss"), "params": cost.get("params"), "macs": cost.get("macs"),
            "passes": cost.get("passes"), "selection": m.get("selection"), "threshold": m.get("threshold"),
            "starts_from": starts_from(m), "path": str(path),
        })
    if stale:
        warnings.warn(f"{len(stale)} run(s) below {runs_root} left out, scored on other test clips than the current "
                      f"test split (stale: rerun their notebook): {', '.join(stale)}", stacklevel=2)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def pruning_reports(runs_root: str | Path) -> list[dict]:
    """The pruning summaries ``03_domain_pruning`` wrote (``pruned_subsets/split*-t*-seed*-pruning.json``), one per
    split, threshold and seed."""
    reports = []
    for path in sorted(Path(runs_root).glob("pruned_subsets/split*-t*-seed*-pruning.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a readable pruning summary ({err})") from err
    return reports


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (method, split): mean and standard deviation over seeds of accuracy and per-group accuracy,
    and the number of seeds (std is NaN for a single seed)."""
    values = ["accuracy", *GROUPS]
    grouped = runs.groupby(["method", "split"])[values]
    summary = grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).join(grouped.size().rename("seeds"))
    return summary


# --- formatting -------------------------------------------------------------------------------------------

def cell(mean: float, std: float = math.nan, n: int = 1) -> str:
    """The study's number: ``"51.0"`` for one seed, ``"51.0 ± 1.4 (3 seeds)"`` for several, ``"–"`` when
    nothing ran (one decimal: the seeds move the numbers by whole points)."""
    if mean is None or pd.isna(mean):
        return "–"
    if n > 1 and not pd.isna(std):
        return f"{mean:.1f} ± {std:.1f} ({n} seeds)"
    return f"{mean:.1f}"


def as_reported(value) -> str:
    """A paper's number with its own decimals, at least one (``57`` → ``"57.0"``, ``46.47`` → ``"46.47"``; a
    float cannot say that Surkov printed ``42.40``: ``"42.4"``), ``"–"`` when the paper has none."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def count(value) -> str:
    """An integer with thousands separators (``"61,148"``), ``"–"`` when missing."""
    return "–" if value is None or pd.isna(value) else f"{int(value):,}"


def _study_cell(summary: pd.DataFrame, method: str, split: int, column: str = "accuracy") -> str:
    if (method, split) not in summary.index:
        return "–"
    row = summary.loc[(method, split)]
    return cell(row[column], row.get(f"{column}_std", math.nan), int(row["seeds"]))


def _complexity(runs: pd.DataFrame, method: str) -> tuple:
    mine = runs[runs["method"] == method].dropna(subset=["params"])
    return (None, None) if mine.empty else (mine["params"].iloc[0], mine["macs"].iloc[0])


# --- uncertainty -------------------------------------------------------------------------------------------

#: The comparisons the papers make, and the study's controls: (what, method, reference), from params/methods.yaml.
COMPARISONS = [c[:3] for c in registry.COMPARISONS]


def run_directories(runs: pd.DataFrame, method: str, split: int) -> list[Path]:
    """The run folders of ``method`` on ``split``, by seed."""
    mine = runs[(runs["method"] == method) & (runs["split"] == split)].sort_values("seed")
    return [Path(p).parent for p in mine["path"] if (Path(p).parent / OUTPUT).is_file()]


#: The methods of the accuracy-against-split figure, in legend order.
CURVE_METHODS = ["baseline", "efficientat_mt", "kd_small", "kd_large", "werning", "werning_random"]


def resampling_unit(profile: str | None) -> str:
    """The unit a profile's intervals resample (``params/<profile>.yaml`` ``resampling_unit``; ``recording``
    where it does not say): the real profile resamples TAU22's 146 test locations, the stricter unit."""
    return (load_profile(profile).get("resampling_unit") if profile else None) or "recording"


def intervals(runs: pd.DataFrame, methods=None, unit: str = "recording") -> pd.DataFrame:
    """Per method and split (runs with their ``output.csv``): macro accuracy (%) over the seeds and its 95 %
    interval over whole test units (``unit``) and the seeds (numbers: ``accuracy``, ``low``, ``high``)."""
    rows = []
    for (method, split), _ in runs.groupby(["method", "split"]):
        if methods is not None and method not in methods:
            continue
        directories = run_directories(runs, method, split)
        if not directories:  # runs without their output.csv (written before the study kept it)
            continue
        correct, labels, files = run_correctness(directories)
        interval = uncertainty.bootstrap_accuracy(correct, labels, files, unit)
        rows.append({"method": method, "split": split, "seeds": interval.seeds, "accuracy": 100 * interval.estimate,
                     "low": 100 * interval.low, "high": 100 * interval.high})
    return pd.DataFrame(rows, columns=["method", "split", "seeds", "accuracy", "low", "high"])


def interval_table(runs: pd.DataFrame, methods=None, unit: str = "recording") -> pd.DataFrame:
    """:func:`intervals` as a table: method label, split, seeds, accuracy % and the interval."""
    frame = intervals(runs, methods, unit)
    return pd.DataFrame({"method": frame["method"].map(label), "split": frame["split"], "seeds": frame["seeds"],
                         "accuracy %": frame["accuracy"].round(1),
                         "95 % interval": [f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(frame["low"], frame["high"])]},
                        columns=["method", "split", "seeds", "accuracy %", "95 % interval"])


#: The family each comparison belongs to: Holm's adjustment runs within a family (each paper's claims, the
#: study's controls); the cross-selection experiment is exploratory (neither paper ran it).
FAMILIES = {(c.method, c.reference): c.family for c in registry.COMPARISONS}
EXPLORATORY = "exploratory"
COMPARED_COLUMNS = ["comparison", "family", "method", "reference", "split", "seeds", "a", "b", "difference", "low",
                    "high", "p", "p_holm", "raw_verdict", "verdict"]


def family_of(method: str, reference: str) -> str:
    """The family of a comparison (:data:`FAMILIES`), :data:`EXPLORATORY` for any other."""
    return FAMILIES.get((method, reference), EXPLORATORY)


def comparisons(runs: pd.DataFrame, which=None, unit: str = "recording") -> pd.DataFrame:
    """Each comparison of :data:`COMPARISONS` (or ``which``) on every split where both methods ran, in numbers:
    both mean accuracies (%), the difference A − B with its 95 % interval over test recordings and seeds
    (points), the p-value, Holm's p-value within the comparison's family (:data:`FAMILIES`, over every split
    with at least 3 seeds a side: splits are comparisons too) and the verdict it gives
    (:class:`asc_lib.training.uncertainty.Comparison`; ``raw_verdict``: the interval's alone); ``unit``: what
    the test term resamples (:func:`resampling_unit`)."""
    found = {}
    for what, method, reference in which or COMPARISONS:
        for split in sorted(set(runs.loc[runs["method"] == method, "split"]) & set(runs.loc[runs["method"] == reference, "split"])):
            a, b = run_directories(runs, method, split), run_directories(runs, reference, split)
            result = compare_directories(a, b, unit)
            if result is not None:
                found[(what, method, reference, int(split))] = result
    for family in {family_of(m, r) for _, m, r, _ in found}:
        mine = {k: c for k, c in found.items() if family_of(k[1], k[2]) == family}
        found.update(uncertainty.holm(mine, family))
    rows = []
    for (what, method, reference, split), result in found.items():
        acc = {m: runs[(runs["method"] == m) & (runs["split"] == split)]["accuracy"].mean() for m in (method, reference)}
        rows.append({"comparison": what, "family": result.family, "method": method, "reference": reference,
                     "split": split, "seeds": f"{result.seeds[0]} vs {result.seeds[1]}", "a": acc[method],
                     "b": acc[reference], "difference": 100 * result.difference, "low": 100 * result.low,
                     "high": 100 * result.high, "p": result.p_value,
                     "p_holm": math.nan if result.p_adjusted is None else result.p_adjusted,
                     "raw_verdict": result.raw_verdict, "verdict": result.verdict})
    return pd.DataFrame(rows, columns=COMPARED_COLUMNS)


def comparison_table(runs: pd.DataFrame, which=None, compared: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`comparisons` as a table (``compared``: its result, when already computed): both accuracies, the
    difference (points) with its 95 % interval, the p-value, Holm's within the family, and the verdict."""
    frame = comparisons(runs, which) if compared is None else compared
    return pd.DataFrame({
        "comparison": frame["comparison"], "family": frame["family"], "split": frame["split"], "seeds": frame["seeds"],
        "A %": frame["a"].round(1), "B %": frame["b"].round(1), "A − B (points)": frame["difference"].round(1),
        "95 % interval": [f"[{lo:+.1f}, {hi:+.1f}]" for lo, hi in zip(frame["low"], frame["high"])],
        "p": [_p_text(p) for p in frame["p"]], "p (Holm)": [_p_text(p) for p in frame["p_holm"]],
        "verdict": frame["verdict"]},
        columns=["comparison", "family", "split", "seeds", "A %", "B %", "A − B (points)", "95 % interval", "p",
                 "p (Holm)", "verdict"])


_p_text = uncertainty.p_text


# --- the findings summary -------------------------------------------------------------------------------------

#: What each comparison asks: the papers' claims, and the questions of the study's controls.
CLAIMS = {(c.method, c.reference): c.claim for c in registry.COMPARISONS}


def paper_difference(paper: dict, method: str, reference: str) -> dict[int, float]:
    """The papers' A − B per split (points) for a comparison they report, empty when they do not."""
    series = paper_series(paper)
    if method not in series or reference not in series:
        return {}
    return {int(s): a - b for s, a, b in zip(paper["splits"], series[method], series[reference])}


NOT_TESTABLE = "not testable here"
TALLY = ("agrees", "contradicts", NOT_TESTABLE, "better", "worse", "not distinguishable", "runs only")


def _reading(counts: dict, reported: bool) -> str:
    """The tally of a comparison over its splits: ``agrees on 1, contradicts on 1 of 2 nested splits with 3
    seeds a side; runs only (fewer seeds) on 3`` (against the paper's difference), or for a comparison no paper
    reports ``better on 1 of 2 nested splits ... (no paper reports it)``. The splits are nested (each holds the
    smaller ones): correlated evidence, not independent repeats."""
    judged, few = sum(counts[k] for k in TALLY if k != "runs only"), counts["runs only"]
    keys = [k for k in TALLY if k != "runs only" and counts[k]]
    if not judged:
        where = {1: "", 2: " on both splits"}.get(few, f" on all {few} splits")
        text = f"runs only: fewer than {uncertainty.MIN_SEEDS} seeds a side{where}, no verdict"
        return text if reported else text + " (no paper reports it)"
    text = (", ".join(f"{k} on {counts[k]}" for k in keys) + f" of {judged} nested split{'s' if judged != 1 else ''}"
            f" with {uncertainty.MIN_SEEDS} seeds a side")
    if few:
        text += f"; runs only (fewer seeds) on {few}"
    return text if reported else text + " (no paper reports it)"


def mechanism_kind(profile: str | None, method: str, reference: str) -> tuple[str, str]:
    """Whether the profile's world holds the mechanism a comparison tests (``params/<profile>.yaml``
    ``mechanisms``): (``tests`` or ``exercises``, why); the real data tests every comparison, the smoke profile
    none; ("", "") when the profile does not say."""
    if profile in (None, "real"):
        return ("tests", "the real data") if profile == "real" else ("", "")
    if profile == "smoke":
        return "exercises", "4 optimizer steps per run"
    table = load_profile(profile).get("mechanisms") or {}
    entry = table.get(f"{method}:{reference}") or table.get("cross")
    return (str(entry[0]), str(entry[1])) if entry else ("", "")


def mechanism(profile: str | None, method: str, reference: str) -> str:
    """:func:`mechanism_kind` in words: ``tests the mechanism: why`` or ``exercises the code only: why``."""
    kind, why = mechanism_kind(profile, method, reference)
    if not kind:
        return ""
    return f"{'tests the mechanism' if kind == 'tests' else 'exercises the code only'}: {why}"


def agreement(claimed: float | None, row, testable: bool) -> str:
    """How one split of a comparison relates to the paper: ``runs only`` with fewer than 3 seeds a side,
    ``not testable here`` where the profile's world lacks the mechanism, else for a difference the paper reports
    ``agrees`` when it lies inside the study's 95 % interval and ``contradicts`` when the interval excludes
    it; for one it does not report, the study's (Holm-adjusted) verdict: better / worse / not distinguishable."""
    if row.verdict.startswith(uncertainty.RUNS_ONLY):
        return "runs only"
    if not testable:
        return NOT_TESTABLE
    if claimed is not None:
        return "agrees" if row.low <= claimed <= row.high else "contradicts"
    return "not distinguishable" if row.verdict == uncertainty.VERDICTS[2] else row.verdict


def findings(compared: pd.DataFrame, paper: dict, profile: str | None = None) -> pd.DataFrame:
    """One row per comparison (:func:`comparisons`): its family, what the paper claims and its own difference per
    split, what this study measured (difference, 95 % interval and verdict per split), and how the two relate
    (``reading``: :func:`agreement` per split, tallied over the nested splits)."""
    rows = []
    order = {(m, r): i for i, (_, m, r) in enumerate(COMPARISONS)}
    for (what, method, reference), mine in compared.groupby(["comparison", "method", "reference"], sort=False):
        reported = paper_difference(paper, method, reference)
        testable = mechanism_kind(profile, method, reference)[0] != "exercises"
        counts = dict.fromkeys(TALLY, 0)
        study = []
        for r in mine.sort_values("split").itertuples():
            study.append(f"split {r.split}: {r.difference:+.1f} [{r.low:+.1f}, {r.high:+.1f}] {r.verdict}")
            counts[agreement(reported.get(r.split), r, testable)] += 1
        paper_text = ", ".join(f"split {s} {d:+.1f}" for s, d in sorted(reported.items())) if reported else "not reported"
        rows.append({"comparison": what, "family": family_of(method, reference),
                     "claim": CLAIMS.get((method, reference), ""),
                     "paper A − B (points)": paper_text, "study A − B (points) [95 % interval]": "; ".join(study),
                     "reading": _reading(counts, bool(reported)), "here": mechanism(profile, method, reference),
                     "order": order.get((method, reference), len(order))})
    frame = pd.DataFrame(rows, columns=["comparison", "family", "claim", "paper A − B (points)",
                                        "study A − B (points) [95 % interval]", "reading", "here", "order"])
    return frame.sort_values("order", kind="stable").drop(columns="order").reset_index(drop=True)


def _per_split(compared: pd.DataFrame, comparison: str, paper: dict, profile: str | None = None):
    """The splits of one comparison, in order: (split, the paper's A − B or None, the study's row, how the split
    relates to the paper: :func:`agreement`)."""
    mine = compared[compared["comparison"] == comparison].sort_values("split")
    method, reference = mine["method"].iloc[0], mine["reference"].iloc[0]
    reported = paper_difference(paper, method, reference)
    testable = mechanism_kind(profile, method, reference)[0] != "exercises"
    return [(s.split, reported.get(s.split), s, agreement(reported.get(s.split), s, testable)) for s in mine.itertuples()]


def _ps(row) -> str:
    return f"{_p_text(row.p)} / {_p_text(row.p_holm)}"


HOW_TO_READ = ("Differences in accuracy points (A − B). The interval is 95 %: the test sample's variance (a bootstrap "
               "over whole test recordings) plus each side's seed variance, its width from Student's t, so 3 seeds a "
               "side give an interval as wide as 3 seeds warrant. p is the comparison's own, Holm the p-value adjusted "
               "within its family (each paper's claims, the controls, the exploratory experiment), over every split "
               "with 3 seeds a side; the verdict (better / worse / not distinguishable) reads the adjusted p. A split "
               "with fewer than 3 seeds a side shows its runs, without a verdict. Against the paper: agrees when the "
               "paper's difference lies inside the interval, contradicts when outside, not testable here when the "
               "world of this profile lacks the mechanism. The splits are nested (each holds the smaller ones): "
               "correlated evidence.")


def findings_html(frame: pd.DataFrame, compared: pd.DataFrame, paper: dict, profile: str) -> str:
    """The findings (:func:`findings` of ``compared``) as an HTML fragment, one small table per comparison (split,
    the paper's A − B, the study's with its interval, p-values, verdict and agreement): the top of
    ``05_results`` and of ``reports/index.html``."""
    if frame.empty:
        return "<p>No comparison could be made: the runs of both sides of each comparison are missing.</p>"
    items = []
    for r in frame.itertuples(index=False):
        rows = "".join(
            f"<tr><td>{split}</td><td>{html.escape(s.seeds)}</td><td>{_points(claimed)}</td><td>{_points(s.difference)}</td>"
            f"<td>[{s.low:+.1f}, {s.high:+.1f}]</td><td>{html.escape(_ps(s))}</td>"
            f"<td class='text'>{html.escape(s.verdict)}</td><td class='text'>{html.escape(how)}</td></tr>"
            for split, claimed, s, how in _per_split(compared, r.comparison, paper, profile))
        items.append(
            f"<li><b>{html.escape(r.comparison)}</b> <small>({html.escape(r.family)})</small>: <i>{html.escape(r.reading)}</i>"
            f"<br>{html.escape(r.claim[:1].upper() + r.claim[1:])}"
            + (f"<br><small>Here: {html.escape(r.here)}</small>" if r.here else "") +
            "<table><tr><th>split</th><th>seeds</th><th>paper A − B</th><th>study A − B</th><th>95 % interval</th>"
            "<th>p / Holm</th><th style='text-align:left'>verdict</th><th style='text-align:left'>against the paper</th></tr>"
            f"{rows}</table></li>")
    note = ("These runs are the mini profile: synthetic audio in the real formats and shortened recipes, so a "
            "verdict here is about the pipeline at this budget, not about the papers' numbers on TAU22."
            if profile != "real" else "Runs of the real data (TAU22, AudioSet).")
    return (f"<div class='findings'><style>.findings th, .findings td {{white-space: nowrap}} "
            f".findings td.text {{white-space: normal; text-align: left}}</style><p>{html.escape(note)}</p>"
            f"<ul>{''.join(items)}</ul><details><summary>How to read these tables</summary>"
            f"<p>{html.escape(HOW_TO_READ)}</p></details></div>")


def findings_markdown(frame: pd.DataFrame, compared: pd.DataFrame, paper: dict, profile: str | None = None) -> str:
    """The findings as a Markdown table, one row per comparison and split (the README's copy, written by
    ``python -m asc_lib.study.results --readme`` from the runs)."""
    lines = ["| comparison (family) | against the paper | what the world of this profile can say | split | seeds | "
             "paper A − B | study A − B [95 % interval] | p / Holm | verdict | this split |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples(index=False):
        for i, (split, claimed, s, how) in enumerate(_per_split(compared, r.comparison, paper, profile)):
            first = (f"**{r.comparison}** ({r.family})", r.reading, r.here) if i == 0 else ("", "", "")
            lines.append(f"| {first[0]} | {first[1]} | {first[2]} | {split} | {s.seeds} | {_points(claimed)} | "
                         f"{_points(s.difference)} [{s.low:+.1f}, {s.high:+.1f}] | {_ps(s)} | {s.verdict} | {how} |")
    return "\n".join(lines) + "\n"


def markers(block: str) -> tuple[str, str]:
    """The start and end markers of a generated block (``findings``, ``accuracies``, ``ablation``,
    ``pruning``)."""
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"


README_START, README_END = markers("findings")
#: The generated blocks ``make findings`` writes (:func:`readme_blocks`) and the page each lives in.
BLOCK_PAGES = {"findings": "README.md", "accuracies": "docs/findings.md", "ablation": "docs/findings.md",
               "pruning": "docs/findings.md"}
README_BLOCKS = tuple(BLOCK_PAGES)


def replace_block(text: str, block: str, start: str = README_START, end: str = README_END) -> str:
    """``text`` with what lies between the markers ``start`` and ``end`` replaced by ``block``."""
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise ValueError(f"no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{block}{end}{rest.split(end, 1)[1]}"


def _points(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:+.1f}"


# --- the papers' tables -----------------------------------------------------------------------------------

#: Rows of Surkov et al.'s Table 3: (row label, this study's method, key in paper_results.yaml).
SURKOV_ROWS = [("Baseline", "baseline", "baseline"),
               ("Efficient-AT (teacher)", "efficientat_mt", "efficientat"),
               ("CP-Mobile KD, small subset", "kd_small", "kd_small"),
               ("CP-Mobile KD, large subset", "kd_large", "kd_large")]


def surkov_table3(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """Surkov's Table 3: one row per model and source (the paper's number, then the study's), one column per
    split, then parameters and MACs."""
    summary = seed_summary(runs)
    splits = paper["splits"]
    rows = {}
    for name, method, key in SURKOV_ROWS:
        numbers = paper["surkov_table3"][key]
        params, macs = _complexity(runs, method)
        rows[(name, "paper")] = {**{f"split {s} %": as_reported(a) for s, a in zip(splits, numbers["accuracy"])},
                                 "params": count(numbers["params"]), "MACs": count(numbers["macs"])}
        rows[(name, "study")] = {**{f"split {s} %": _study_cell(summary, method, s) for s in splits},
                                 "params": count(params), "MACs": count(macs)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["model", "source"])


def werning_table2(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """Werning's Table 2: one row per model and source (the paper's number, then the study's), one column per
    split; the random-selection control is the study's only."""
    summary = seed_summary(runs)
    numbers = paper["werning_table2"]
    rows = {}
    for name, method, key in [("Baseline", "baseline", "baseline"), ("Werning et al.", "werning", "werning"),
                              ("Random selection (control)", "werning_random", None)]:
        if key:
            rows[(name, "paper")] = {f"split {s} %": as_reported(a) for s, a in zip(paper["splits"], numbers[key])}
        rows[(name, "study")] = {f"split {s} %": _study_cell(summary, method, s) for s in paper["splits"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["model", "source"])


def werning_table1(runs: pd.DataFrame, reports: list[dict], paper: dict, split: int = 100) -> pd.DataFrame:
    """Werning's Table 1: per pruning threshold, the kept share of AudioSet and the accuracy on
    ``split`` (the paper's: split 100) after KD on the pruned set and fine-tuning."""
    reported = paper["werning_table1"]
    sweep = {}
    for report in reports:  # the sweep of seed 0's domain classifier (the one every split's first run uses)
        if report["split"] == split and report["seed"] == 0:
            sweep.update({round(r["threshold"], 6): r["relative size of pruned set (%)"] for r in report["sweep"]})
    pruned = runs[(runs["split"] == split) & (runs["selection"] == "pruned")]
    rows = {}
    for threshold, acc, size in zip(reported["threshold"], reported["accuracy"], reported["relative_size"]):
        mine = pruned[(pruned["threshold"] - threshold).abs() < 1e-9]["accuracy"]
        rows[threshold] = {
            ("kept share of AudioSet %", "paper"): as_reported(size),
            ("kept share of AudioSet %", "study"): cell(sweep.get(round(threshold, 6), math.nan)),
            (f"accuracy split {split} %", "paper"): as_reported(acc),
            (f"accuracy split {split} %", "study"): cell(mine.mean(), mine.std(ddof=1), len(mine)),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("threshold")


def pruning_quality(reports: list[dict]) -> pd.DataFrame:
    """Per split, threshold and seed (one pruning each): kept share and, where the data knows which clips are
    in-domain (the mini data), precision and recall of pruning against random selection, in %; for the pruned
    selection, the domain classifier's held-out ROC-AUC and its precision and recall at the threshold (the
    measure the real data has too)."""
    rows = []
    for report in reports:
        for sel in report["selections"]:
            row = {"split": report["split"], "threshold": report["threshold"], "seed": report["seed"],
                   "selection": sel["selection"],
                   "kept": sel["selected"], "share of pool %": sel["share of pool (%)"]}
            for key, name in [("in-domain precision", "in-domain precision %"),
                              ("in-domain recall", "in-domain recall %")]:
                if key in sel:
                    row[name] = round(100 * sel[key], 1)
            held_out = report.get("validation")
            if held_out and sel["selection"] == "pruned":  # the classifier's own measure, on the real data too
                at = {float(r["threshold"]): r for r in held_out["thresholds"]}.get(float(report["threshold"]), {})
                row["held-out ROC-AUC"] = round(held_out["roc_auc"], 3)
                row["held-out precision %"] = round(100 * at.get("precision", float("nan")), 1)
                row["held-out recall %"] = round(100 * at.get("recall", float("nan")), 1)
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(["split", "threshold", "seed", "selection"]).sort_index()


def group_table(runs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Mean accuracy per device group (real / seen / unseen) and overall, per method and split (%)."""
    summary = seed_summary(runs)[["accuracy", *GROUPS, "seeds"]].round(2).reset_index()
    summary["model"] = summary["method"].map(label)
    order = {m: i for i, m in enumerate(methods or METHODS)}
    summary = summary.sort_values(["split", "method"], key=lambda c: c.map(order).fillna(99) if c.name == "method" else c)
    return summary.set_index(["split", "model"]).drop(columns="method")


def groups_at(groups: pd.DataFrame, split: int) -> pd.DataFrame:
    """Rows of :func:`group_table` for one ``split`` (real / seen / unseen per model; empty when none ran)."""
    if split not in groups.index.get_level_values("split"):
        return pd.DataFrame(columns=list(GROUPS), index=pd.Index([], name="model"), dtype=float)
    return groups.xs(split, level="split")[list(GROUPS)]


def device_table(runs: pd.DataFrame, split: int) -> pd.DataFrame:
    """Mean accuracy per recording device of every method on ``split`` (%, rows = methods)."""
    mine = runs[runs["split"] == split]
    devices = [d for d in dcase.DEVICES if d in mine and mine[d].notna().any()]
    table = mine.groupby("method")[devices].mean().round(1)
    return table.rename(index=label).rename_axis("model")


def confusions(runs: pd.DataFrame, split: int, seed: int = 0) -> dict[str, list]:
    """Confusion matrix (test split) of every method's run on ``split`` and ``seed``."""
    mine = runs[(runs["split"] == split) & (runs["seed"] == seed)]
    order = {m: i for i, m in enumerate(METHODS)}
    mine = mine.assign(order=mine["method"].map(order).fillna(99)).sort_values("order")
    return {label(r.method): read_metrics(r.path)["test"]["confusion"] for r in mine.itertuples()}


def paper_series(paper: dict) -> dict[str, list]:
    """The papers' accuracy per split, keyed by the study's method that reproduces each reported model (so
    that plots label and colour them as the tables do); the baseline's numbers are Surkov's Table 3."""
    surkov = paper["surkov_table3"]
    return {"baseline": surkov["baseline"]["accuracy"], "efficientat_mt": surkov["efficientat"]["accuracy"],
            "kd_small": surkov["kd_small"]["accuracy"], "kd_large": surkov["kd_large"]["accuracy"],
            "werning": paper["werning_table2"]["werning"]}


def paper_table(paper: dict) -> pd.DataFrame:
    """Every per-split accuracy the two papers report, in one table (%)."""
    surkov = paper["surkov_table3"]
    series = {"Surkov: baseline": surkov["baseline"]["accuracy"],
              "Surkov: Efficient-AT teacher": surkov["efficientat"]["accuracy"],
              "Surkov: CP-Mobile KD, small": surkov["kd_small"]["accuracy"],
              "Surkov: CP-Mobile KD, large": surkov["kd_large"]["accuracy"],
              "Werning: pruned KD + fine-tuning": paper["werning_table2"]["werning"],
              "Werning: baseline": paper["werning_table2"]["baseline"]}
    return pd.DataFrame(series, index=[f"split {s} %" for s in paper["splits"]]).T.rename_axis("as reported")


def runs_root(profile: str, runs_dir: str | Path | None = None) -> Path:
    """Where the runs are read from: ``runs_dir`` when given, else the profile's runs folder."""
    root = paths.resolve(runs_dir) if runs_dir is not None else profile_runs(profile)
    if not root.is_dir():
        raise FileNotFoundError(f"no runs folder at {root}: run the training notebooks first (make report)")
    return root


# --- what ran and what did not -------------------------------------------------------------------------------

def planned_runs(profile: str, which: str | None = None) -> pd.DataFrame:
    """(method, split, seed) of every training run the profile's report plan ``which`` lists (None: the
    profile's default plan)."""
    rows = []
    for run in plan(profile, which):
        for method in methods_for(run["notebook"].stem, run["parameters"]):
            rows.append({"method": method, "split": int(run["parameters"].get("split", 5)),
                         "seed": int(run["parameters"].get("seed", 0))})
    return pd.DataFrame(rows, columns=["method", "split", "seed"]).drop_duplicates()


def missing_runs(runs: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Planned runs without a ``metrics.json``."""
    done = set(zip(runs["method"], runs["split"], runs["seed"]))
    keep = [(m, s, r) not in done for m, s, r in zip(planned["method"], planned["split"], planned["seed"])]
    return planned[keep].reset_index(drop=True)


def provenance(profile: str, description: str, runs: pd.DataFrame, missing: pd.DataFrame) -> str:
    """The statement at the top of the results: which data the numbers come from and what did not run."""
    lines = [f"**Data:** profile `{profile}`: {description}"]
    if profile == "smoke":
        lines.append("These runs took a few optimizer steps each (the `smoke` recipes): they show that every "
                     "notebook and method runs end to end; their accuracies mean nothing.")
    elif profile == "mini":
        lines.append("These numbers come from the generated mini dataset (synthetic audio in the real formats, "
                     "shortened recipes): they test that the pipeline reproduces each method's *mechanics*; they "
                     "are not comparable in value to the papers' TAU22 numbers.")
    starts = (runs.loc[runs["method"] != "baseline", "starts_from"].value_counts() if "starts_from" in runs
              else pd.Series(dtype=int))
    if len(starts):
        lines.append("**Starting weights:** " + ", ".join(f"{n} run(s) from `{k}`" for k, n in starts.items())
                     + " (the runs' own weights or their teacher's; the baseline trains from scratch).")
    if {"standin", "random"} & set(starts.index):
        lines.append("**WARNING: some runs start from the stand-in or from random weights, not from real AudioSet "
                     "pretraining: their findings about the papers' pretrained teachers are not meaningful.**")
    seeds = sorted(int(s) for s in runs["seed"].unique())
    lines.append(f"**Runs found:** {len(runs)} finished runs, {runs['method'].nunique() if len(runs) else 0} "
                 f"methods, seeds {seeds}.")
    if missing.empty:
        lines.append("**Did not run:** nothing: every training run of the report plan finished.")
    else:
        listed = ", ".join(f"{m} split {s} seed {r}" for m, s, r in missing.itertuples(index=False))
        lines.append(f"**Did not run ({len(missing)} of the plan):** {listed}.")
    return "\n\n".join(lines)


def accuracy_markdown(runs: pd.DataFrame, unit: str = "recording") -> str:
    """Every method's macro accuracy per split with its 95 % bootstrap interval (:func:`intervals`) as a Markdown
    table, methods in the registry's order, one column per split (docs/findings.md's copy)."""
    frame = intervals(runs, unit=unit)
    if frame.empty:
        return "*No finished run yet.*\n"
    order = {name: i for i, name in enumerate(METHODS)}
    frame = frame.assign(order=frame["method"].map(lambda m: order.get(m, len(order))))
    splits = sorted(frame["split"].unique())
    rows = []
    for method, mine in frame.sort_values(["order", "method"]).groupby("method", sort=False):
        by_split = {r.split: f"{r.accuracy:.1f} [{r.low:.1f}, {r.high:.1f}] ({r.seeds} seed{'s' if r.seeds > 1 else ''})"
                    for r in mine.itertuples()}
        rows.append({"method": label(method), **{f"split {s} %": by_split.get(s, "–") for s in splits}})
    return register.markdown_table(pd.DataFrame(rows))


def ablation_markdown(profile: str) -> str:
    """``02b``'s answer on every split where its variants ran: the table of variants against the mean teacher
    (paired intervals over test recordings and seeds), the conclusion in words and the consistency-weight sweep's
    choice, all from :mod:`asc_lib.methods.mt_ablation` (docs/findings.md's copy)."""
    settings = mt_ablation.settings()
    chosen, seeds = mt_ablation.variants(), settings["seeds"]
    used = config.profile_recipe(profile, "mean_teacher", source="surkov")["consistency_weight"]
    swept = mt_ablation.sweep_variants(settings["consistency_weights"], used)
    parts = []
    for split in config.SPLITS:
        runs = mt_ablation.accuracies(profile, split, chosen, seeds)
        if runs["variant"].nunique() < 2:
            continue
        table = mt_ablation.summary(runs, chosen, mt_ablation.ablation_comparisons(profile, split, chosen, seeds))
        parts += [f"**Split {split}** (accuracy of the EMA teacher and of its student, mean ± std over seeds; "
                  f"Δ: the variant minus the mean teacher, paired 95 % interval)\n",
                  register.markdown_table(mt_ablation.readable(table[table["seeds"].notna()]).reset_index(names="variant")),
                  mt_ablation.conclusion(table) + "\n"]
        sweep_runs = mt_ablation.accuracies(profile, split, swept, seeds)
        if sweep_runs["variant"].nunique() > 1:
            compared = mt_ablation.ablation_comparisons(profile, split, swept, seeds, family="sweep")
            parts += [register.markdown_table(mt_ablation.readable(mt_ablation.summary(sweep_runs, swept, compared))
                                              .reset_index(names="consistency weight")),
                      mt_ablation.weight_reading(sweep_runs, swept, used, compared) + "\n"]
    return "\n".join(parts) if parts else "*No ablation run yet (`make report PLAN=extended`).*\n"


def pruning_markdown(runs: pd.DataFrame, reports: list[dict], paper: dict) -> str:
    """Werning's pruning as Markdown (docs/findings.md's copy): per split and threshold the kept share of the pool and,
    where the data know which clips are in-domain (the mini data), the precision and recall of the pruned
    selection against the random one of the same size; then Table 1 (threshold against kept share and accuracy),
    the paper's numbers beside the study's."""
    quality = pruning_quality(reports)
    if quality.empty:
        return "*No pruning run yet.*\n"
    table = quality.reset_index().astype(object)
    table["threshold"] = table["threshold"].map(lambda t: f"{t:g}")
    table = table.where(table.notna(), "–")
    table1 = werning_table1(runs, reports, paper)
    table1.columns = [f"{what} ({source})" for what, source in table1.columns]
    return (register.markdown_table(table) + "\nTable 1 of Werning's report on split 100 (the study's accuracy: "
            "mean ± std where several seeds ran):\n\n" + register.markdown_table(table1.reset_index()))


def readme_blocks(profile: str) -> dict[str, str]:
    """The generated blocks of the README and docs/findings.md (:data:`BLOCK_PAGES`) from the runs of ``profile``: the findings, every method's accuracy with
    its interval, the mean-teacher ablation and Werning's pruning."""
    root = runs_root(profile)
    runs = runs_table(root, current_test_names(profile))
    unit = resampling_unit(profile)
    compared, paper = comparisons(runs, unit=unit), config.paper_results()
    return {"findings": findings_markdown(findings(compared, paper, profile), compared, paper, profile),
            "accuracies": accuracy_markdown(runs, unit), "ablation": ablation_markdown(profile),
            "pruning": pruning_markdown(runs, pruning_reports(root), paper)}


def save_findings(frame: pd.DataFrame, fragment: str, directory: str | Path) -> list[Path]:
    """Write the findings as ``findings.csv`` and their HTML fragment as :data:`FINDINGS` (atomically)."""
    return [write_csv(Path(directory) / "findings.csv", frame), write_text(Path(directory) / FINDINGS, fragment)]


def save_tables(tables: dict[str, pd.DataFrame], directory: str | Path) -> list[Path]:
    """Write each table as ``<name>.csv`` (atomically) for papers and other tools."""
    return [write_csv(Path(directory) / f"{name}.csv", table) for name, table in tables.items()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Print the findings of a profile's runs as Markdown (the "
                                                 "comparisons of 05_results with their paired intervals, every "
                                                 "method's accuracy with its interval, the mean-teacher ablation, Werning's pruning).")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--readme", action="store_true", help="write them between their markers (<!-- findings:start "
                        "--> ... <!-- findings:end -->, accuracies, ablation, pruning) into the pages they live in "
                        "(README.md, docs/findings.md) instead of printing them")
    args = parser.parse_args(argv)
    blocks = readme_blocks(args.profile)
    if args.readme:
        for page in dict.fromkeys(BLOCK_PAGES.values()):
            path = paths.ROOT / page
            text = path.read_text(encoding="utf-8")
            for name in (n for n, where in BLOCK_PAGES.items() if where == page):
                text = replace_block(text, blocks[name], *markers(name))
            write_text(path, text)
        print(f"wrote {', '.join(blocks)} of profile {args.profile!r} into "
              f"{', '.join(dict.fromkeys(BLOCK_PAGES.values()))}")
    else:
        print("\n".join(blocks.values()), end="")


if __name__ == "__main__":
    main()
