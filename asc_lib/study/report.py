"""The study's plan: which notebooks run with which parameters, in which order, and the report's index.

The profile's ``report`` list (``params/<profile>.yaml``) says which notebooks run with which parameters
(:func:`plan`); :func:`dependencies` says which runs each must wait for. The plan is executed by Snakemake
(``workflow/Snakefile``, started by :mod:`asc_lib.study.workflow`, the front door of ``make report``): it
decides which notebooks to run and reruns a notebook when its source, parameters, the library's code or the
profile's data changed; inside a re-executed notebook, training runs are still reused only when their own
fingerprint (:func:`asc_lib.training.loop.fit`) matches. :func:`write_index` writes ``reports/index.html``.
"""
from __future__ import annotations

import hashlib
import html
import itertools
import json
from pathlib import Path

from asc_lib.config import NOTEBOOK_PARAMETERS, load_profile, paths, profile_recipe, provenance
from asc_lib.config.atomic import write_text
from asc_lib.methods.tagger import STANDIN
from asc_lib.models import pretrained

FINDINGS = "findings.html"  # the fragment 05_results writes beside its tables (asc_lib.study.results.FINDINGS)

# Which notebooks' outputs a notebook reads (with its default parameters): 02 trains on the label-filtered
# subsets of 01, 04 distils the teacher of 02, 03b distils on the pruning of 03, 05 collects every run.
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "02_mean_teacher": ("01_audioset_label_filtering",),
    "02b_mean_teacher_ablations": ("02_mean_teacher",),  # shares 02's runs: after them, never beside them
    "04_kd": ("02_mean_teacher",),
    "03b_pruned_kd": ("03_domain_pruning",),
    "04b_cross_selection": ("04_kd", "03b_pruned_kd"),  # compares with their runs of the same split and seed
}


def prerequisites(notebook: str) -> list[str]:
    """Every notebook ``notebook`` needs, transitively, in the order they must run."""
    order: list[str] = []
    for needed in PREREQUISITES.get(notebook, ()):
        for name in prerequisites(needed) + [needed]:
            if name not in order:
                order.append(name)
    return order


def run_name(notebook: str, parameters: dict, profile: str) -> str:
    """Output name of a run, e.g. ``00_data_exploration_split5`` (profile appended unless mini)."""
    parts = [notebook] + [f"{k}{v}" for k, v in sorted(parameters.items()) if k == "split"]
    parts += [f"{k}-{'+'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
              for k, v in sorted(parameters.items()) if k != "split"]
    if profile != "mini":
        parts.append(profile)
    return "_".join(str(p) for p in parts)


def data_signature(profile: str) -> str:
    """Signature of every file of the profile's data folders (names, sizes, modification times)."""
    data = load_profile(profile)["data"]
    return provenance.tree_signature(*(paths.resolve(data[k]) for k in ("tau22_dir", "splits_dir", "audioset_dir")))


def expand(parameters: dict) -> list[dict]:
    """One parameter set per combination: a list value (e.g. ``split: [5, 10]``) means one run each."""
    keys = list(parameters)
    values = [v if isinstance(v, list) else [v] for v in parameters.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


PLANS = ("quick", "full", "extended")  # nested: each plan holds the smaller ones
ENTRY_KEYS = {"notebook", "parameters", "plan"}  # what a report entry of params/<profile>.yaml may say
BARRIERS = ("05_results", "06_benchmarks")   # wait for every run before them
EXCLUSIVE = ("06_benchmarks",)               # run alone on the machine (it measures speed)


def default_plan(profile: str) -> str:
    """The plan ``make report`` runs for ``profile`` (``default_plan:`` of its file; ``full`` if absent)."""
    return load_profile(profile).get("default_plan", "full")


def plan(profile: str, which: str | None = None) -> list[dict]:
    """The runs of a profile's plan ``which`` (``quick``, ``full`` or ``extended``; None: the profile's default),
    in order: notebook path, parameters (profile included) and output name. A report entry's ``plan:`` names
    the smallest plan it belongs to (the plans are nested); without one it belongs to every plan.
    ``report_parameters:`` of the profile's file replaces the parameters of every entry of a notebook by one
    set, taken as it is (lists are values, not a sweep): the smoke profile's small benchmark on the mini plans."""
    which = which or default_plan(profile)
    if which not in PLANS:
        raise ValueError(f"unknown plan {which!r}; choose from {PLANS}")
    cfg = load_profile(profile)
    replaced = cfg.get("report_parameters") or {}
    unknown = sorted(set(replaced) - set(NOTEBOOK_PARAMETERS))
    if unknown:
        raise ValueError(f"params/{profile}.yaml: report_parameters names unknown notebook {', '.join(map(repr, unknown))}")
    runs = []
    for entry in cfg.get("report", []):
        name = entry["notebook"]
        if name not in NOTEBOOK_PARAMETERS:
            raise ValueError(f"params/{profile}.yaml: report lists unknown notebook {name!r}")
        unknown = set(replaced.get(name, entry.get("parameters", {}))) - set(NOTEBOOK_PARAMETERS[name])
        if unknown:
            raise ValueError(f"params/{profile}.yaml: unknown parameter(s) {sorted(unknown)} for {name}")
        if extra := sorted(set(entry) - ENTRY_KEYS):
            raise ValueError(f"params/{profile}.yaml: an entry of {name} has unknown key(s) {extra}; it takes "
                             f"{', '.join(sorted(ENTRY_KEYS))}")
        first = entry.get("plan", PLANS[0])
        if first not in PLANS:
            raise ValueError(f"params/{profile}.yaml: {name} names unknown plan {first!r}; choose from {PLANS}")
        if PLANS.index(which) < PLANS.index(first):
            continue
        for chosen in [replaced[name]] if name in replaced else expand(entry.get("parameters", {})):
            extra = {"plan": which} if "plan" in NOTEBOOK_PARAMETERS[name] else {}
            runs.append(dict(notebook=paths.NOTEBOOKS_DIR / f"{name}.ipynb",
                             parameters={"profile": profile, **chosen, **extra}, name=run_name(name, chosen, profile)))
    names = [r["notebook"].stem for r in runs]
    for i, run in enumerate(runs):
        for needed in prerequisites(run["notebook"].stem):
            if needed not in names[:i]:
                raise ValueError(f"params/{profile}.yaml ({which} plan): {run['name']} needs {needed}, "
                                 "which must come earlier in the plan")
    return runs


def dependencies(runs: list[dict]) -> list[set[int]]:
    """For each run, the earlier runs it must wait for: runs of its prerequisite notebooks on the same
    split (or without a split), and every earlier run for the results and benchmark notebooks; a run
    after an exclusive one waits for it."""
    after: list[set[int]] = []
    for i, run in enumerate(runs):
        name, split = run["notebook"].stem, run["parameters"].get("split")
        needed = set(prerequisites(name))
        if name in BARRIERS:
            deps = set(range(i))
        else:
            deps = {j for j in range(i) if runs[j]["notebook"].stem in needed
                    and runs[j]["parameters"].get("split") in (None, split)}
            deps |= {j for j in range(i) if runs[j]["notebook"].stem in EXCLUSIVE}
        after.append(deps)
    return after


def failed_dir(out: Path) -> Path:
    """Where a failed run's executed notebook and page go: ``failed/`` of the reports folder."""
    return out.parent / "failed"


def _rows(records: dict) -> str:
    rows = []
    for name, rec in records.items():
        status = rec.get("status") or ("ok" if rec["ok"] else "FAILED")
        page = {"ok": "html", "FAILED": "failed"}.get(status)  # a failed run's page shows its error
        link = f"<a href='{page}/{html.escape(name)}.html'>{html.escape(name)}</a>" if page else html.escape(name)
        source = f"<a href='{html.escape(name)}.ipynb'>ipynb</a>" if status == "ok" else ""
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td><code>{html.escape(json.dumps(rec['parameters']))}"
                    f"</code></td><td>{source}</td></tr>")
    header = "<tr><th>notebook</th><th>status</th><th>parameters</th><th>source</th></tr>"
    return f"<table class='runs'>{header}{''.join(rows)}</table>"


def write_index(out_dir: Path, profile: str, records: dict) -> Path:
    """``index.html`` linking every rendered notebook of this profile's plan, with status (``ok``, ``FAILED``:
    its executed notebook shows the error; ``not run``) and parameters."""
    cfg = load_profile(profile)
    results = [n for n, rec in records.items() if n.startswith("05_results") and rec["ok"]]
    headline = (f"<p class='results'><a href='html/{html.escape(results[0])}.html'>Results: the papers' tables "
                f"beside this study's</a> (Surkov's Table 3, Werning's Tables 1 and 2, every comparison with its "
                f"interval, per-device accuracy, confusion matrices)</p>") if results else "<p>The results notebook has not run yet.</p>"
    findings = paths.tables_dir(profile) / FINDINGS
    if results and findings.is_file():  # written by 05_results from the runs (never by hand)
        headline = (f"<h2>Findings</h2><p>What each paper claimed, what this study found and how sure, as "
                    f"<a href='html/{html.escape(results[0])}.html'>05_results</a> computed it from the runs:</p>"
                    f"{findings.read_text(encoding='utf-8')}{headline}")
    benchmarks = [n for n, rec in records.items() if n.startswith("06_benchmarks") and rec["ok"]]
    if benchmarks:
        headline += (f"<p><a href='html/{html.escape(benchmarks[0])}.html'>Benchmarks</a>: the study's data path "
                     f"against the reference loader, teacher inference (mixed precision on a GPU), scaling to AudioSet's "
                     f"size, projected cost of the papers' full recipes</p>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>DCASE 2024 Task 1 reproduction study</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.3em .8em;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}.results{{font-size:1.2em}}.findings li{{margin-bottom:.6em}}.findings td{{text-align:right}}.findings td:last-child{{text-align:left}}
table.runs{{width:100%;table-layout:fixed}}.runs td{{overflow-wrap:anywhere;vertical-align:top}}.runs th:nth-child(1){{width:45%}}
.runs th:nth-child(2){{width:8%}}.runs th:nth-child(4){{width:8%}}</style></head><body>
<h1>Data-efficient low-complexity acoustic scene classification: reproduction study</h1>
<p>Profile <b>{html.escape(profile)}</b>: {html.escape(cfg.get('description', ''))}</p>
{headline}
<h2>Every notebook run, in order</h2>
{_rows(records)}
</body></html>
"""
    return write_text(out_dir / "index.html", page)


STANDIN_USERS = ("02_mean_teacher", "02b_mean_teacher_ablations", "03_domain_pruning", "03b_pruned_kd")


def needs_standin(recipe: dict, key: str) -> bool:
    """Whether the recipe's starting weights (``recipe[key]``) are the stand-in: asked for, or the fallback
    of a released checkpoint that cannot be had (looked up as the runs will: local, shared, download)."""
    name = recipe.get(key)
    if name == STANDIN:
        return True
    if recipe.get("fallback") != STANDIN or name in (None, "none", "passt_ensemble"):
        return False
    try:
        pretrained.resolve(str(name))
    except pretrained.CheckpointUnavailable:
        return True
    return False


def uses_standin(profile: str, runs: list[dict]) -> bool:
    """Whether a run of ``runs`` starts from the mini stand-in AudioSet tagger (the released checkpoint cannot be
    had): then it is trained once, as the workflow's ``standin_tagger`` job, before the runs that need it
    (they would otherwise train it at the same time)."""
    if not any(r["notebook"].stem in STANDIN_USERS for r in runs):
        return False
    return any(needs_standin(profile_recipe(profile, name, source=source), key)
               for name, source, key in (("mean_teacher", "surkov", "weights"),
                                         ("domain_classifier", "werning", "embedding")))


GPU_NOTEBOOKS = ("00b_baseline", "02_mean_teacher", "02b_mean_teacher_ablations", "03_domain_pruning",
                 "03b_pruned_kd", "04_kd", "04b_cross_selection", "06_benchmarks")  # train or run a teacher


def table(profile: str, which: str | None = None, runs: list[dict] | None = None) -> dict:
    """The plan as the workflow (``workflow/Snakefile``) reads it: per run its name, notebook, parameters,
    the names of the runs it waits for, whether it takes a GPU, runs alone (the benchmark) or may start from
    the stand-in tagger; whether the stand-in is needed; and what the engine's rerun triggers compare besides
    each notebook's source and parameters: the library's code and the profile's data."""
    which = which or default_plan(profile)
    runs = plan(profile, which) if runs is None else runs
    after = dependencies(runs)
    return {"profile": profile, "plan": which, "code": provenance.package_digest(), "data": data_signature(profile),
            "standin": uses_standin(profile, runs),
            "runs": [{"name": r["name"], "notebook": str(r["notebook"]), "parameters": r["parameters"],
                      "after": [runs[j]["name"] for j in sorted(after[i])],
                      "gpu": r["notebook"].stem in GPU_NOTEBOOKS, "exclusive": r["notebook"].stem in EXCLUSIVE,
                      "standin": r["notebook"].stem in STANDIN_USERS} for i, r in enumerate(runs)]}
