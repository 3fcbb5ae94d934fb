"""Run the study's notebooks headless with papermill and render ``reports/index.html``.

The profile's ``report`` list (``params/<profile>.yaml``) says which notebooks run with which
parameters. A run is identified by its notebook's source, its parameters, the library's code and
parameter files and the profile's data (a signature of every file's size and modification time): a
finished run whose identity has not changed is not redone, and the report says why each run was redone
or reused. Inside a re-executed notebook, training runs are reused only when their own fingerprint
(:func:`asc_lib.training.loop.fit`) matches, so a changed loss retrains exactly the runs that use it.
``--force`` re-executes every notebook and retrains every run (``ASC_RETRAIN=1``). Each executed notebook is written atomically to
``reports/<name>.ipynb`` and rendered to ``reports/html/<name>.html``.

    python -m asc_lib.study.report --profile mini
"""
from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import nbformat
import torch
from nbconvert import HTMLExporter

from asc_lib.config import NOTEBOOK_PARAMETERS, load_profile, paths, profile_recipe, provenance
from asc_lib.config.atomic import atomic_path, write_json, write_text
from asc_lib.methods.tagger import STANDIN
from asc_lib.models import pretrained
from asc_lib.study.notebooks import tidy_progress

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


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_signature(profile: str) -> str:
    """Signature of every file of the profile's data folders (names, sizes, modification times)."""
    data = load_profile(profile)["data"]
    return provenance.tree_signature(*(paths.resolve(data[k]) for k in ("tau22_dir", "splits_dir", "audioset_dir")))


def run_identity(notebook_path: Path, parameters: dict, code: str, data: str) -> dict:
    """What a report entry was made from: the notebook's source cells, the parameters, the library and
    ``params/`` (``code``) and the profile's data (``data``)."""
    nb = nbformat.read(notebook_path, as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    return {"notebook": _digest(source), "parameters": _digest(parameters), "code": code, "data": data}


def rerun_reason(done: dict, identity: dict, executed: Path, force: bool) -> str | None:
    """Why a run must execute again (None when its finished result can be reused)."""
    if force:
        return "--force"
    if not done:
        return "not run yet"
    if not done.get("ok"):
        return "failed last time"
    if not executed.is_file():
        return f"{executed.name} is missing"
    changed = [k for k in identity if done.get("identity", {}).get(k) != identity[k]]
    return "changed: " + ", ".join(changed) if changed else None


def expand(parameters: dict) -> list[dict]:
    """One parameter set per combination: a list value (e.g. ``split: [5, 10]``) means one run each."""
    keys = list(parameters)
    values = [v if isinstance(v, list) else [v] for v in parameters.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


PLANS = ("quick", "full")
BARRIERS = ("05_results", "06_benchmarks")   # wait for every run before them
EXCLUSIVE = ("06_benchmarks",)               # run alone on the machine (it measures speed)


def default_plan(profile: str) -> str:
    """The plan ``make report`` runs for ``profile`` (``default_plan:`` of its file; ``full`` if absent)."""
    return load_profile(profile).get("default_plan", "full")


def plan(profile: str, which: str | None = None) -> list[dict]:
    """The runs of a profile's plan ``which`` (``quick`` or ``full``; None: the profile's default), in
    order: notebook path, parameters (profile included) and output name. A report entry without a
    ``plans:`` list belongs to every plan. ``report_parameters:`` of the profile's file replaces the
    parameters of every entry of a notebook by one set, taken as it is (lists are values, not a sweep):
    the smoke profile's small benchmark on the mini plans."""
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
        plans = entry.get("plans", list(PLANS))
        if set(plans) - set(PLANS):
            raise ValueError(f"params/{profile}.yaml: {name} lists unknown plan(s) {sorted(set(plans) - set(PLANS))}")
        if which not in plans:
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


def render_html(notebook_path: Path, html_path: Path) -> None:
    """Render an executed notebook to a standalone HTML page (images embedded)."""
    body, _ = HTMLExporter(template_name="lab").from_filename(str(notebook_path))
    write_text(html_path, body)


def _kernel_env(threads: int | None, retrain: bool = False) -> dict:
    env = dict(os.environ)
    if retrain:
        env["ASC_RETRAIN"] = "1"  # every training run in the kernel starts over (--force)
    if threads:
        env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    return env


def execute(run: dict, out_dir: Path, threads: int | None = None, retrain: bool = False) -> tuple[bool, float, str]:
    """Execute one run with papermill, in its own process, into ``out_dir/<name>.ipynb`` (atomically);
    ``threads`` caps the kernel's CPU threads. Returns success, seconds and the error (if any)."""
    out = out_dir / f"{run['name']}.ipynb"
    start = time.time()
    with atomic_path(out, suffix=".ipynb") as tmp:
        cmd = [sys.executable, "-m", "papermill", str(run["notebook"]), str(tmp), "-y",
               json.dumps(run["parameters"]), "-k", "python3", "--cwd", str(paths.NOTEBOOKS_DIR),
               "--no-progress-bar", "--no-log-output"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=_kernel_env(threads, retrain))
        ok = result.returncode == 0
        error = "" if ok else _error_of(result.stderr)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"papermill wrote no notebook for {run['name']}:\n{result.stderr[-2000:]}")
        nb = nbformat.read(tmp, as_version=4)
        nbformat.write(tidy_progress(nb, keep_final=True), tmp)
    return ok, time.time() - start, error


def _error_of(stderr: str) -> str:
    """The last exception line papermill printed."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()[:300]
    return lines[-1][:300] if lines else "unknown error"


def _rows(records: dict) -> str:
    rows = []
    for name, rec in records.items():
        status = "ok" if rec["ok"] else "FAILED"
        rows.append(
            f"<tr><td><a href='html/{html.escape(name)}.html'>{html.escape(name)}</a></td>"
            f"<td>{status}</td><td><code>{html.escape(json.dumps(rec['parameters']))}</code></td>"
            f"<td><a href='{html.escape(name)}.ipynb'>ipynb</a></td></tr>"
        )
    header = "<tr><th>notebook</th><th>status</th><th>parameters</th><th>source</th></tr>"
    return f"<table class='runs'>{header}{''.join(rows)}</table>"


def write_index(out_dir: Path, profile: str, records: dict, others: dict | None = None) -> Path:
    """``index.html`` linking every rendered notebook of this profile's plan (and, below, earlier runs
    of other profiles still in the folder), with status and parameters."""
    cfg = load_profile(profile)
    extra = ""
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
                     f"against the reference loader, teachers in fp32 and mixed precision, scaling to AudioSet's "
                     f"size, projected cost of the papers' full recipes</p>")
    if others:
        extra = f"<h2>Other runs in this folder</h2>{_rows(others)}"
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
{extra}
</body></html>
"""
    return write_text(out_dir / "index.html", page)


def default_jobs() -> int:
    """Notebooks run at once: one per two CPU cores' worth of work is not worth it on a GPU (one device),
    so 1 there; on the CPU, 2 when there are at least 2 cores (measured: two one-thread runs finish
    sooner than the same two runs one after the other with two threads each)."""
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def build(profile: str = "mini", out_dir: Path | None = None, force: bool = False, which: str | None = None,
          jobs: int | None = None, threads: int | None = None) -> bool:
    """Run every notebook of the profile's plan (reusing finished runs whose identity is unchanged) and
    write the index. Independent runs execute ``jobs`` at a time, each kernel with its share of the CPU
    threads (``threads`` per kernel when given: the test suite runs the smoke report on one core beside
    its other tests); prerequisites, the results and the benchmark notebook wait as :func:`dependencies`
    says. ``force`` re-executes everything and retrains every training run."""
    out_dir = Path(out_dir or paths.reports_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "runs.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    which = which or default_plan(profile)
    runs = plan(profile, which)
    jobs = max(1, jobs or default_jobs())
    cores = os.cpu_count() or 1
    code, data = provenance.package_digest(), data_signature(profile)
    print(f"report of profile {profile!r}, {which} plan: {len(runs)} notebook runs, {jobs} at a time; "
          f"library code {code}, data {data}", flush=True)
    after = dependencies(runs)
    todo: dict[int, str] = {}
    reused = 0
    for i, run in enumerate(runs):
        identity = run_identity(run["notebook"], run["parameters"], code, data)
        run["identity"] = identity
        reason = rerun_reason(state.get(run["name"], {}), identity, out_dir / f"{run['name']}.ipynb", force)
        if reason is None:
            reused += 1
            print(f"[{i + 1}/{len(runs)}] {run['name']}: reused (same notebook, parameters, code and data)")
        else:
            todo[i] = reason
    # shared set-up (the stand-in tagger) is one more job: the runs that need it wait for it, the others
    # start beside it
    setup = shared_setup(profile, [runs[i] for i in todo])
    if setup:
        todo[SETUP] = "shared set-up"
        runs.append({"name": "audioset_tagger (stand-in)", "command": setup, "notebook": Path("setup")})
        after.append(set())
        for i in list(todo):
            if i != SETUP and runs[i]["notebook"].stem in STANDIN_USERS:
                after[i] = after[i] | {SETUP}
    # a reused run's dependants may still run; a run waits only for the runs that execute now
    finished = {i for i in range(len(runs)) if i not in todo}
    failed: set[int] = set()
    running: dict = {}
    lock = threading.Lock()

    n_runs = len(runs) - (1 if setup else 0)

    def start(i: int, threads: int) -> None:
        run = runs[i]
        if "command" in run:
            print(f"[set-up] {run['name']}: running", flush=True)
            begun = time.time()
            result = subprocess.run(run["command"], capture_output=True, text=True, env=_kernel_env(threads, force))
            with lock:
                ok = result.returncode == 0
                print(f"[set-up] {run['name']}: {'done' if ok else 'FAILED: ' + _error_of(result.stderr)} in "
                      f"{time.time() - begun:.0f} s" + (f" ({result.stdout.strip()})" if ok else ""), flush=True)
                setup_ok[0] = ok
            return
        print(f"[{i + 1}/{n_runs}] {run['name']}: running ({todo[i]}) {run['parameters']}", flush=True)
        ok, seconds, error = execute(run, out_dir, threads, retrain=force)
        with lock:
            print(f"[{i + 1}/{n_runs}] {run['name']}: {'done' if ok else 'FAILED: ' + error} in {seconds:.0f} s",
                  flush=True)
            state[run["name"]] = {"key": _digest(run["identity"]), "identity": run["identity"], "ok": ok,
                                  "parameters": run["parameters"], "reason": todo[i], "seconds": round(seconds, 1),
                                  "error": error}
            write_json(state_path, state)
            executed = out_dir / f"{run['name']}.ipynb"
            if executed.is_file():
                render_html(executed, out_dir / "html" / f"{run['name']}.html")

    setup_ok = [True]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = sorted(todo, key=lambda i: -1 if i == SETUP else i)
        while pending or running:
            for i in list(pending):
                exclusive = runs[i]["notebook"].stem in EXCLUSIVE
                if not after[i] <= finished or (exclusive and running) or (
                        any(runs[j]["notebook"].stem in EXCLUSIVE for j in running)) or len(running) >= jobs:
                    continue
                share = threads or (cores if exclusive or jobs == 1 else max(1, cores // jobs))
                running[i] = pool.submit(start, i, share)
                pending.remove(i)
                if exclusive:
                    break
            if not running:
                raise RuntimeError("report scheduler: runs wait for each other ("
                                   + ", ".join(runs[i]["name"] for i in pending) + ")")
            done, _ = wait(running.values(), return_when=FIRST_COMPLETED)
            for i in [i for i, f in running.items() if f in done]:
                running.pop(i).result()
                finished.add(i)
                if i == SETUP:
                    if not setup_ok[0]:
                        raise RuntimeError(f"shared set-up failed: {' '.join(runs[i]['command'])}")
                elif not state[runs[i]["name"]]["ok"]:
                    failed.add(i)
    if setup:
        runs.pop()
        todo.pop(SETUP)
    current = {r["name"]: state[r["name"]] for r in runs}
    others = {n: rec for n, rec in state.items() if n not in current and (out_dir / "html" / f"{n}.html").is_file()}
    write_index(out_dir, profile, current, others)
    spent = sum(state[runs[i]["name"]]["seconds"] for i in todo)
    print(f"ran {len(todo)} and reused {reused} of {len(runs)} notebook runs ({spent:.0f} s of notebook time"
          f"{', ' + str(len(failed)) + ' FAILED' if failed else ''}); report: {out_dir / 'index.html'}")
    return all(state[r["name"]]["ok"] for r in runs)


STANDIN_USERS = ("02_mean_teacher", "02b_mean_teacher_ablations", "03_domain_pruning", "03b_pruned_kd")
SETUP = -1  # index of the shared set-up job in build()'s scheduler


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


def shared_setup(profile: str, runs: list[dict]) -> list[str] | None:
    """Work several notebooks share, done once before the first of them runs (they would otherwise train
    it at the same time): the mini stand-in AudioSet tagger, when a run needs it. Returns the command, or
    None when nothing is shared."""
    if not any(r["notebook"].stem in STANDIN_USERS for r in runs):
        return None
    uses_standin = any(needs_standin(profile_recipe(profile, name, source=source), key)
                       for name, source, key in (("mean_teacher", "surkov", "weights"),
                                                 ("domain_classifier", "werning", "embedding")))
    return [sys.executable, "-m", "asc_lib.methods.tagger", "--profile", profile, "--quiet"] if uses_standin else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the study's notebooks and render reports/index.html.")
    parser.add_argument("--profile", default="mini", help="parameter profile (params/<profile>.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default: reports/)")
    parser.add_argument("--force", action="store_true", help="re-execute every notebook and retrain every run")
    parser.add_argument("--plan", choices=PLANS, default=None,
                        help="quick (every notebook and method on splits 5 and 100) or full (every split, the "
                             "seeds, Werning's sweep); default: the profile's default_plan")
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: 2 on a CPU, 1 on a GPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per notebook (default: the machine's cores shared among the jobs)")
    args = parser.parse_args(argv)
    sys.exit(0 if build(args.profile, args.out, args.force, args.plan, args.jobs, args.threads) else 1)


if __name__ == "__main__":
    main()
