"""torchrun: 2 CPU processes (gloo) give the same teacher logits as one process, and train the baseline to
the same metrics within a stated tolerance; the sharding helpers partition exactly."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from asc_lib.config import data_paths, profile_recipe
from asc_lib.models import build_cp_mobile
from asc_lib.methods import surkov, torchrun
from asc_lib.models.efficientat import build_efficientat
from asc_lib.training import distributed, experiment
from asc_lib.training.distill import teacher_outputs
from asc_lib.training.evaluate import compute_logits

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))

# Spread at the test's budget (80 steps of 32 on split 5), measured on the mini data (v3) for seeds 0, 1, 2:
# one process 42.5 / 45.1 / 46.4 % test accuracy with one thread and 47.6 / 46.8 / 47.4 % with two (the
# thread count changes the floating-point results), two ranks 33.6 / 45.7 / 43.3 %; final-epoch losses 1.54
# to 1.67 (one process) and 1.62 to 1.78 (two ranks). Two ranks differ from one process only by per-rank
# BatchNorm statistics and augmentation draws, so one seed of each must land within that spread: the
# largest measured difference is 14.0 points (seed 0, two threads; 8.9 with one) and 0.25 in loss. The
# exact part of the contract (replicas in sync, the same logits) is asserted exactly elsewhere.
ACCURACY_TOLERANCE = 0.20
LOSS_TOLERANCE = 0.40
BUDGET = ["--split", "5", "--epochs", "1", "--min-steps", "80", "--batch-size", "32", "--final-eval-only",
          "--quiet", "--device", "cpu"]


def _torchrun(*args: str, timeout: int = 600) -> dict:
    if TORCHRUN is None:
        pytest.skip("torchrun is not installed next to this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "asc_lib.methods.torchrun", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    # both ends of the log: a rank's own error comes first, torchrun's summary of the failure last
    assert done.returncode == 0, done.stderr[:3000] + "\n[...]\n" + done.stderr[-2000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def test_shards_partition_the_rows():
    for n in (0, 1, 7, 10, 11):
        bounds = [distributed.shard_bounds(n, r, 3) for r in range(3)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
    with pytest.raises(ValueError, match="outside a world of 2"):
        distributed.shard_bounds(4, 2, 2)


def test_rank_batches_cover_the_global_batch_equally():
    index = torch.arange(7)
    shares = [distributed.rank_batch(index, distributed.World(r, 2)) for r in range(2)]
    assert [len(s) for s in shares] == [4, 4]  # padded by wrapping round, as DistributedSampler does
    assert set(torch.cat(shares).tolist()) == set(range(7))
    assert torch.equal(distributed.rank_batch(index, distributed.World()), index)


def test_single_process_helpers_are_no_ops():
    assert distributed.world() == distributed.World(0, 1) and distributed.world().main
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(distributed.gather_rows(x, 3), x)
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.parameters_in_sync(torch.nn.Linear(2, 2))


@pytest.mark.full
def test_two_ranks_give_the_same_teacher_logits_as_one(tmp_path, monkeypatch):
    """A CP-Mobile teacher file on the mini split (make test-full); the fast equivalent in make test: the
    documented logits line (02's teacher on the smoke split) equals one process, tests/test_notebooks.py."""
    torch.manual_seed(3)
    teacher = build_cp_mobile().eval()
    path = torchrun.save_teacher_file(tmp_path / "teacher.pt", teacher, "baseline")
    out = tmp_path / "logits.pt"
    report = _torchrun("logits", "--teacher", str(path), "--split", "5", "--out", str(out),
                       "--cache-dir", str(tmp_path / "cache"), "--batch-size", "16", "--quiet", "--device", "cpu")
    assert report["world_size"] == 2
    task = experiment.SceneTask(data_paths("mini"), 5, "baseline", "cpu")
    sharded = torch.load(out, weights_only=True)
    one = compute_logits(teacher, task.train_waves, task.frontend, 64, torch.device("cpu"))
    assert sharded.shape == one.shape == (len(task.train), 10)
    torch.testing.assert_close(sharded, one, rtol=1e-4, atol=1e-5)
    # rank 0 cached the merged logits: one process now reads them back instead of recomputing
    key = {"teacher": str(path.resolve()), "profile": "mini", "split": 5, "frontend": "baseline",
           "purpose": "torchrun logits"}
    monkeypatch.setattr(teacher, "forward", lambda *a, **k: pytest.fail("a cache hit runs no teacher"))
    cached = teacher_outputs(teacher, task.train_waves, key, frontend=task.frontend, cache_dir=tmp_path / "cache")
    assert torch.equal(cached, sharded)


def test_the_logits_stage_reads_a_mean_teacher_file_and_refuses_other_files(tmp_path):
    torch.manual_seed(0)
    path = surkov.save_teacher(tmp_path, build_efficientat("mn04", 10), "mn04")  # 02_mean_teacher's teacher.pt
    model, frontend = torchrun.load_any_teacher(path, "smoke")
    assert frontend == profile_recipe("smoke", "mean_teacher", source="surkov")["frontend"]  # what 02 trained on
    assert model(torch.zeros(1, 1, 128, 101))[0].shape == (1, 10) and not model.training
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a teacher file"):
        torchrun.load_any_teacher(tmp_path / "other.pt", "smoke")


@pytest.mark.full
def test_two_ranks_train_in_sync(tmp_path, smoke_data):
    """Two ranks of the smoke recipe (4 steps) end with their replicas in sync and write the run's metrics (make
    test-full; in make test the documented train line checks the same, tests/test_notebooks.py); whether they
    learn like one process is the next test's."""
    two = _torchrun("train", "--profile", "smoke", "--split", "5", "--batch-size", "32", "--final-eval-only",
                    "--quiet", "--device", "cpu", "--seed", "0", "--run-dir", str(tmp_path / "two"))
    assert two["world_size"] == 2 and two["replicas_in_sync"]
    metrics = json.loads((tmp_path / "two" / experiment.METRICS).read_text())
    assert metrics["fit"]["steps"] == 4 and metrics["test"]["n_clips"] == 300


@pytest.mark.full
def test_two_ranks_train_like_one_process(tmp_path):
    two = _torchrun("train", *BUDGET, "--seed", "0", "--run-dir", str(tmp_path / "two"))
    torchrun.main(["train", *BUDGET, "--seed", "0", "--run-dir", str(tmp_path / "one")])
    one = json.loads((tmp_path / "one" / experiment.METRICS).read_text())
    history = json.loads((tmp_path / "one" / "history.json").read_text())
    assert two["world_size"] == 2 and two["replicas_in_sync"]
    assert two["accuracy"] > 0.25  # it learned (chance: 0.10)
    assert abs(two["accuracy"] - one["test"]["accuracy"]) <= ACCURACY_TOLERANCE
    assert abs(two["loss"] - history[-1]["loss"]) <= LOSS_TOLERANCE
    two_metrics = json.loads((tmp_path / "two" / experiment.METRICS).read_text())
    assert two_metrics["epochs_trained"] == one["epochs_trained"]  # same global batches, same schedule
