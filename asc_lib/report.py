"""Run the study's notebooks headless with papermill and render ``reports/index.html``.

The profile's ``report`` list (``params/<profile>.yaml``) says which notebooks run with which
parameters. A run is identified by its notebook's source and its parameters: finished runs whose
identity has not changed are not redone. Each executed notebook is written atomically to
``reports/<name>.ipynb`` and rendered to ``reports/html/<name>.html``.

    python -m asc_lib.report --profile mini
"""
from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import json
import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from . import paths
from .atomic import atomic_path, write_json, write_text
from .notebooks import tidy_progress
from .params import NOTEBOOK_PARAMETERS, load_profile


def run_name(notebook: str, parameters: dict, profile: str) -> str:
    """Output name of a run, e.g. ``00_data_exploration_split5`` (profile appended unless mini)."""
    parts = [notebook] + [f"{k}{v}" for k, v in sorted(parameters.items()) if k == "split"]
    parts += [f"{k}-{v}" for k, v in sorted(parameters.items()) if k != "split"]
    if profile != "mini":
        parts.append(profile)
    return "_".join(str(p) for p in parts)


def run_key(notebook_path: Path, parameters: dict) -> str:
    """Identity of a run: the notebook's source cells and the parameters."""
    nb = nbformat.read(notebook_path, as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    return hashlib.sha256(json.dumps([source, parameters], sort_keys=True).encode()).hexdigest()[:16]


def expand(parameters: dict) -> list[dict]:
    """One parameter set per combination: a list value (e.g. ``split: [5, 10]``) means one run each."""
    keys = list(parameters)
    values = [v if isinstance(v, list) else [v] for v in parameters.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def plan(profile: str) -> list[dict]:
    """The runs of a profile, in order: notebook path, parameters (profile included) and output name."""
    runs = []
    for entry in load_profile(profile).get("report", []):
        name = entry["notebook"]
        if name not in NOTEBOOK_PARAMETERS:
            raise ValueError(f"params/{profile}.yaml: report lists unknown notebook {name!r}")
        unknown = set(entry.get("parameters", {})) - set(NOTEBOOK_PARAMETERS[name])
        if unknown:
            raise ValueError(f"params/{profile}.yaml: unknown parameter(s) {sorted(unknown)} for {name}")
        for chosen in expand(entry.get("parameters", {})):
            runs.append(dict(notebook=paths.NOTEBOOKS_DIR / f"{name}.ipynb",
                             parameters={"profile": profile, **chosen}, name=run_name(name, chosen, profile)))
    return runs


def render_html(notebook_path: Path, html_path: Path) -> None:
    """Render an executed notebook to a standalone HTML page (images embedded)."""
    body, _ = HTMLExporter(template_name="lab").from_filename(str(notebook_path))
    write_text(html_path, body)


def execute(run: dict, out_dir: Path) -> tuple[bool, float]:
    """Execute one run with papermill into ``out_dir/<name>.ipynb`` (atomically)."""
    import papermill as pm

    out = out_dir / f"{run['name']}.ipynb"
    start = time.time()
    ok = True
    with atomic_path(out, suffix=".ipynb") as tmp:
        try:
            pm.execute_notebook(str(run["notebook"]), str(tmp), parameters=run["parameters"],
                                kernel_name="python3", cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
        except pm.PapermillExecutionError as err:
            ok = False
            print(f"  FAILED: {err.ename}: {err.evalue}", file=sys.stderr)
        nb = nbformat.read(tmp, as_version=4)
        nbformat.write(tidy_progress(nb, keep_final=True), tmp)
    return ok, time.time() - start


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
    return f"<table>{header}{''.join(rows)}</table>"


def write_index(out_dir: Path, profile: str, records: dict, others: dict | None = None) -> Path:
    """``index.html`` linking every rendered notebook of this profile's plan (and, below, earlier runs
    of other profiles still in the folder), with status and parameters."""
    cfg = load_profile(profile)
    extra = ""
    results = [n for n, rec in records.items() if n.startswith("05_results") and rec["ok"]]
    headline = (f"<p class='results'><a href='html/{html.escape(results[0])}.html'>Results: the papers' tables "
                f"beside this study's</a> (seed 000 Table 3, seed 002 Tables 1 and 2, per-device accuracy, "
                f"confusion matrices)</p>") if results else "<p>The results notebook has not run yet.</p>"
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
tr:nth-child(even){{background:#f4f4f4}}.results{{font-size:1.2em}}</style></head><body>
<h1>Data-efficient low-complexity acoustic scene classification: reproduction study</h1>
<p>Profile <b>{html.escape(profile)}</b>: {html.escape(cfg.get('description', ''))}</p>
{headline}
<h2>Every notebook run, in order</h2>
{_rows(records)}
{extra}
</body></html>
"""
    return write_text(out_dir / "index.html", page)


def build(profile: str = "mini", out_dir: Path | None = None, force: bool = False) -> bool:
    """Run every notebook of the profile's plan (skipping unchanged finished runs) and write the index."""
    out_dir = Path(out_dir or paths.reports_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "runs.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    runs = plan(profile)
    all_ok = True
    for i, run in enumerate(runs, start=1):
        key = run_key(run["notebook"], run["parameters"])
        done = state.get(run["name"], {})
        executed = out_dir / f"{run['name']}.ipynb"
        if not force and done.get("key") == key and done.get("ok") and executed.is_file():
            print(f"[{i}/{len(runs)}] {run['name']}: up to date")
        else:
            print(f"[{i}/{len(runs)}] {run['name']}: running {run['notebook'].name} {run['parameters']}", flush=True)
            ok, seconds = execute(run, out_dir)
            print(f"[{i}/{len(runs)}] {run['name']}: {'done' if ok else 'failed'} in {seconds:.0f} s", flush=True)
            state[run["name"]] = {"key": key, "ok": ok, "parameters": run["parameters"]}
            write_json(state_path, state)
            if executed.is_file():
                render_html(executed, out_dir / "html" / f"{run['name']}.html")
        all_ok &= state[run["name"]]["ok"]
    current = {r["name"]: state[r["name"]] for r in runs}
    others = {n: rec for n, rec in state.items() if n not in current and (out_dir / "html" / f"{n}.html").is_file()}
    write_index(out_dir, profile, current, others)
    print(f"report: {out_dir / 'index.html'}")
    return all_ok


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the study's notebooks and render reports/index.html.")
    parser.add_argument("--profile", default="mini", help="parameter profile (params/<profile>.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default: reports/)")
    parser.add_argument("--force", action="store_true", help="rerun even finished, unchanged runs")
    args = parser.parse_args(argv)
    sys.exit(0 if build(args.profile, args.out, args.force) else 1)


if __name__ == "__main__":
    main()
