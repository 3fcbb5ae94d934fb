"""The plan on a SLURM cluster: `make test-slurm` starts a one-node cluster on this machine
(workflow/test-slurm.sh) and runs this file; elsewhere it is skipped. The smoke plan runs twice through the
workflow, locally and with every job submitted by sbatch (workflow/profiles/slurm), each with its own runs
folder: the cluster ran every job, and its results equal the local ones (the same machine, so the same
numbers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from asc_lib.config import paths

WORK = os.environ.get("ASC_SLURM_SELFTEST")
SCRIPTS = paths.ROOT / "workflow" / "profiles" / "slurm"
needs_cluster = pytest.mark.skipif(not WORK, reason="needs a SLURM cluster: make test-slurm starts one on this machine")


def _fake(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + script)
    (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize("gpus, env, wanted, unwanted", [
    ("1", {}, ["--gpus=1", "--cpus-per-task=2", "--mem=4000", "--time=30"], ["--partition"]),
    ("0", {"ASC_SLURM_PARTITION": "gpu", "ASC_SLURM_ACCOUNT": "lab"}, ["--partition=gpu", "--account=lab"], ["--gpus"]),
    ("1", {"ASC_SLURM_GPUS": "0"}, ["--parsable"], ["--gpus"]),
])
def test_submit_asks_sbatch_for_the_rules_resources(tmp_path, gpus, env, wanted, unwanted):
    """submit.sh with a stand-in ``sbatch`` that prints its arguments: CPUs, memory, time and a log per job
    always; GPUs only for a rule that takes one on a cluster that has them; partition and account when set."""
    _fake(tmp_path / "bin", "sbatch", 'echo "$@"\n')
    done = subprocess.run([str(SCRIPTS / "submit.sh"), gpus, "2", "4000", "30", str(tmp_path / "logs"), "job.sh"],
                          env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", **env},
                          capture_output=True, text=True, check=True)
    args = done.stdout.split()
    assert args[-1] == "job.sh" and f"--output={tmp_path / 'logs'}/%j.log" in args
    assert all(w in args for w in wanted) and not any(a.startswith(u) for a in args for u in unwanted), args


@pytest.mark.parametrize("scontrol, sacct, status", [
    ("JobId=7 JobState=COMPLETED Reason=None", "", "success"),
    ("JobId=7 JobState=RUNNING Reason=None", "", "running"),
    ("JobId=7 JobState=PENDING Reason=Resources", "", "running"),
    ("JobId=7 JobState=OUT_OF_MEMORY Reason=None", "", "failed"),
    ("", "COMPLETED", "success"),   # gone from scontrol (after MinJobAge): sacct, where there is accounting
    ("", "", "failed"),
])
def test_status_reads_the_jobs_state(tmp_path, scontrol, sacct, status):
    _fake(tmp_path / "bin", "scontrol", f'echo "{scontrol}"\n' if scontrol else "exit 1\n")
    if sacct:
        _fake(tmp_path / "bin", "sacct", f'echo "{sacct}"\n')
    done = subprocess.run([str(SCRIPTS / "status.sh"), "7"], capture_output=True, text=True, check=True,
                          env={**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert done.stdout.strip() == status


def _report(name: str, cluster: bool) -> Path:
    out = Path(WORK) / name
    env = {**os.environ, "ASC_RUNS_DIR": str(Path(WORK) / f"runs-{name}"), "ASC_CACHE_DIR": str(Path(WORK) / "cache"),
           "ASC_REPORTS_DIR": str(out), "ASC_SLURM_GPUS": "0", "ASC_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "asc_lib.study.workflow", "--profile", "smoke", "--plan", "quick", "--out", str(out)]
    done = subprocess.run(cmd + (["--cluster", "slurm"] if cluster else []), env=env, capture_output=True, text=True)
    (Path(WORK) / f"{name}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return out


@needs_cluster
def test_the_smoke_plan_through_sbatch_equals_the_local_run():
    local, cluster = _report("local", cluster=False), _report("slurm", cluster=True)
    table = json.loads((cluster / "plan.json").read_text())
    jobs = sorted((cluster / "slurm").glob("*.log"))  # submit.sh: one log per sbatch job, named by its job id
    expected = len(table["runs"]) + 1 + (1 if table["standin"] else 0)  # every notebook, the index, the stand-in
    assert len(jobs) == expected, [p.name for p in jobs]
    submitted = (Path(WORK) / "slurmctld.log").read_text().count("_slurm_rpc_submit_batch_job")
    assert submitted == expected
    for run in table["runs"]:
        assert (cluster / f"{run['name']}.ipynb").is_file() and (cluster / "html" / f"{run['name']}.html").is_file()
    assert (cluster / "index.html").is_file()
    # the same results: every table of 05_results and every run's test accuracy
    tables = sorted(p.name for p in (local / "tables" / "smoke").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (cluster / "tables" / "smoke").glob("*.csv"))
    for name in tables:
        pd.testing.assert_frame_equal(pd.read_csv(local / "tables" / "smoke" / name),
                                      pd.read_csv(cluster / "tables" / "smoke" / name), obj=name)
    metrics = sorted((Path(WORK) / "runs-local").rglob("metrics.json"))
    assert metrics
    for path in metrics:
        twin = Path(WORK) / "runs-slurm" / path.relative_to(Path(WORK) / "runs-local")
        # a scene classifier's test scores; the stand-in AudioSet tagger (trained when mn04_as is absent) its mAP
        score = "test" if "test" in json.loads(path.read_text()) else "mAP"
        assert json.loads(twin.read_text())[score] == json.loads(path.read_text())[score], path
