"""``make report``'s front door: the profile's plan executed by Snakemake (``workflow/Snakefile``).

    python -m asc_lib.study.workflow --profile mini --plan quick            # what make report runs
    python -m asc_lib.study.workflow --plan full --dry-run                  # what would run, and why
    python -m asc_lib.study.workflow 04_kd_split5.ipynb                     # one run and what it needs
    python -m asc_lib.study.workflow --cluster slurm --plan full            # every job through sbatch

It writes the plan table (:func:`asc_lib.study.report.table`) to ``plan.json`` in the reports folder and runs
Snakemake there. Jobs at once: on a CPU two (each kernel with half the cores: measured, two one-thread runs
finish sooner than the same runs one after the other with two threads each); with N GPUs, N, each notebook
that trains seeing one device of its own (:func:`asc_lib.study.execute.one_device`). A killed report resumes:
finished notebooks are kept, the unfinished ones run again. When a notebook fails, the others still run and
``index.html`` lists it as FAILED with its executed notebook in ``failed/``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from asc_lib.config import paths
from asc_lib.config.atomic import exclusive, write_json
from asc_lib.study import report
from asc_lib.study.report import failed_dir

SNAKEFILE = paths.ROOT / "workflow" / "Snakefile"
CLUSTERS = {"slurm": paths.ROOT / "workflow" / "profiles" / "slurm"}


def gpu_devices(listed: str | None = None) -> list[str]:
    """The GPU ids to spread jobs over: ``listed`` (comma-separated), else one per device torch sees."""
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def jobs_and_threads(cores: int, devices: list[str], jobs: int | None, threads: int | None) -> tuple[int, int]:
    """Notebooks at once and CPU threads per notebook: one job per GPU; on a CPU two when there are at least
    two cores; the cores shared among the jobs unless ``threads`` is given."""
    jobs = max(1, jobs or len(devices) or (2 if cores >= 2 else 1))
    return jobs, max(1, threads or cores // jobs)


def times(out: Path) -> dict[str, float]:
    """Seconds each finished run took (Snakemake's benchmark files, ``times/<run>.tsv``)."""
    found = {}
    for path in sorted((out / "times").glob("*.tsv")):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"), None)
        if row and row.get("s"):
            found[path.stem] = float(row["s"])
    return found


def write_index(out: Path) -> Path:
    """``index.html`` of the runs of ``out``'s plan (``plan.json``) as they stand: ok, FAILED or not run."""
    table = json.loads((out / "plan.json").read_text())
    took = times(out)
    records = {}
    for run in table["runs"]:
        name = run["name"]
        done, failed = (out / f"{name}.ipynb").is_file(), (failed_dir(out / f"{name}.ipynb") / f"{name}.ipynb").is_file()
        records[name] = {"ok": done, "status": "ok" if done else "FAILED" if failed else "not run",
                         "parameters": run["parameters"], "seconds": took.get(name)}
    return report.write_index(out, table["profile"], records)


def command(table: dict, out: Path, cores: int, threads: int, devices: list[str], force: bool = False,
            dry_run: bool = False, cluster: str | None = None, targets: list[str] = ()) -> list[str]:
    """The Snakemake command line of a report of the plan ``table`` (:func:`asc_lib.study.report.table`)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(out), "--cores", str(cores),
           "--config", f"profile={table['profile']}", f"plan={table['plan']}", f"plan_file={out / 'plan.json'}",
           f"threads={threads}", f"devices={','.join(devices)}", f"python={sys.executable}",
           "--rerun-incomplete", "--keep-going", "--show-failed-logs", "--nolock"]
    if devices:
        cmd += ["--resources", f"gpu={len(devices)}"]
    if force:  # every notebook and the stand-in, not the generated data (its rule would delete the manifest)
        rules = sorted({"nb_" + Path(run["notebook"]).stem for run in table["runs"]})
        rules += ["standin_tagger"] if table["standin"] else []  # (named, a rule joins the run)
        cmd += ["--forcerun", *rules]
    if dry_run:
        cmd += ["--dry-run"]
    if cluster:
        if cluster not in CLUSTERS:
            raise ValueError(f"unknown cluster {cluster!r}; choose from {sorted(CLUSTERS)}")
        scripts = CLUSTERS[cluster]
        cmd += ["--workflow-profile", str(scripts),
                "--cluster-generic-submit-cmd", f"{scripts / 'submit.sh'} {{resources.gpu}} {{threads}} "
                f"{{resources.mem_mb}} {{resources.runtime}} {out / 'slurm'}",
                "--cluster-generic-status-cmd", str(scripts / "status.sh"), "--cluster-generic-cancel-cmd", "scancel"]
    return cmd + list(targets)


def build(profile: str = "mini", out: Path | None = None, which: str | None = None, jobs: int | None = None,
          threads: int | None = None, force: bool = False, dry_run: bool = False, gpus: str | None = None,
          cluster: str | None = None, targets: list[str] = ()) -> bool:
    """Run (or, ``dry_run``, list) the profile's plan ``which`` into ``out`` (default ``reports/``) through
    Snakemake; returns whether every job succeeded. ``force`` re-executes every notebook and retrains every
    run; ``gpus`` lists the devices to use (default: every device torch sees)."""
    which = which or report.default_plan(profile)
    out = Path(out or paths.reports_dir()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    devices = gpu_devices(gpus)
    jobs, per_job = jobs_and_threads(cores, devices, jobs, threads)
    # one report per folder, held by a lock that dies with its holder (Snakemake's own lock, off here, would
    # outlive a killed report and stop the next one until --unlock)
    with exclusive(out / "plan.json", "reports folder"):
        table = report.table(profile, which)
        write_json(out / "plan.json", table)
        print(f"report of profile {profile!r}, {which} plan: {len(table['runs'])} notebook runs through Snakemake, "
              f"{jobs} at a time with {per_job} CPU thread(s) each" + (f", GPUs {','.join(devices)}" if devices else ""),
              flush=True)
        cmd = command(table, out, cores if cluster else min(cores, jobs * per_job), per_job, devices, force, dry_run,
                      cluster, targets)
        env = {**os.environ, **({"ASC_RETRAIN": "1"} if force else {})}  # every training run starts over
        ok = subprocess.run(cmd, env=env).returncode == 0
        if dry_run:
            return ok
        if not ok:
            write_index(out)
    took = times(out)
    print(f"{'done' if ok else 'FAILED (see above)'}: notebook time of the plan's runs {sum(took.values()):.0f} s; "
          f"report: {out / 'index.html'}", flush=True)
    return ok


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the study's plan through Snakemake into reports/.")
    parser.add_argument("targets", nargs="*", help="runs to make (e.g. 04_kd_split5.ipynb); default: the report")
    parser.add_argument("--profile", default="mini", help="parameter profile (params/<profile>.yaml)")
    parser.add_argument("--plan", choices=report.PLANS, default=None,
                        help="quick (every notebook and method on splits 5 and 100), full (+ 3 seeds where a verdict is "
                             "drawn) or extended (+ every split, the ablations); default: the profile's default_plan")
    parser.add_argument("--out", default=None, help="reports folder (default: reports/)")
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: 2 on a CPU, one per GPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per notebook (default: shared)")
    parser.add_argument("--gpus", default=None, help="GPU ids to use, comma-separated (default: all torch sees)")
    parser.add_argument("--force", action="store_true", help="re-execute every notebook and retrain every run")
    parser.add_argument("--dry-run", action="store_true", help="list what would run and why; run nothing")
    parser.add_argument("--cluster", choices=sorted(CLUSTERS), default=None,
                        help="submit every job to a cluster (workflow/profiles/<name>)")
    parser.add_argument("--write-index", action="store_true", help="only write index.html (the workflow's last job)")
    args = parser.parse_args(argv)
    if args.write_index:
        write_index(Path(args.out or paths.reports_dir()))
        return
    sys.exit(0 if build(args.profile, args.out, args.plan, args.jobs, args.threads, args.force, args.dry_run,
                        args.gpus, args.cluster, args.targets) else 1)


if __name__ == "__main__":
    main()
