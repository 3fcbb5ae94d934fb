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

WORK = os.environ.get("ASC_SLURM_SELFTEST")
pytestmark = pytest.mark.skipif(not WORK, reason="needs a SLURM cluster: make test-slurm starts one on this machine")


def _report(name: str, cluster: bool) -> Path:
    out = Path(WORK) / name
    env = {**os.environ, "ASC_RUNS_DIR": str(Path(WORK) / f"runs-{name}"), "ASC_CACHE_DIR": str(Path(WORK) / "cache"),
           "ASC_REPORTS_DIR": str(out), "ASC_SLURM_GPUS": "0", "ASC_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "asc_lib.study.workflow", "--profile", "smoke", "--plan", "quick", "--out", str(out)]
    done = subprocess.run(cmd + (["--cluster", "slurm"] if cluster else []), env=env, capture_output=True, text=True)
    (Path(WORK) / f"{name}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return out


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
        assert json.loads(twin.read_text())["test"] == json.loads(path.read_text())["test"], path
