"""The shared training loop: schedule, recipe defaults, learning, checkpoints and exact resume."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from asc_lib.config import load_recipe, profile_recipe
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend
from asc_lib.models.cpmobile import build_cp_mobile
from asc_lib.training import loop


def test_baseline_recipe_matches_the_dcase2024_baseline():
    r = load_recipe("baseline")
    assert (r["optimizer"], r["lr"], r["weight_decay"], r["warmup_steps"], r["epochs"], r["batch_size"]) \
        == ("adamw", 5e-3, 1e-4, 2000, 150, 256)
    assert (r["roll_seconds"], r["mixstyle_p"], r["mixstyle_alpha"], r["mixstyle_eps"], r["freq_mask"]) \
        == (0.1, 0.4, 0.3, 1e-6, 48)
    assert r["frontend"] == "baseline" and r["deviations"] == {}


def test_mini_recipe_names_every_deviation():
    r = profile_recipe("mini", "baseline")
    assert set(r["deviations"]) == {"epochs", "batch_size", "warmup_steps", "min_steps", "eval_points",
                                    "feature_cache", "eval_precision"}
    assert r["deviations"]["epochs"] == {"paper": 150, "used": r["epochs"],
                                         "why": "150 epochs of 3,700 clips do not fit in minutes on 2 CPU cores"}
    assert profile_recipe("real", "baseline")["deviations"] == {}
    with pytest.raises(ValueError, match="override 'lr_max' is not a setting"):
        load_recipe("baseline", lr_max=1.0)
    with pytest.raises(ValueError, match="no recipe"):
        load_recipe("baseline_v2")


def test_warmup_then_cosine():
    f = lambda s: loop.warmup_cosine(s, total_steps=1000, warmup_steps=100, min_fraction=0.01)  # noqa: E731
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5) and f(100) == pytest.approx(1.0)
    assert f(550) == pytest.approx(0.01 + 0.99 * 0.5)
    assert f(1000) == pytest.approx(0.01)
    values = [f(s) for s in range(100, 1001, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_epochs_and_evaluation_points():
    recipe = {"epochs": 8, "batch_size": 64, "min_steps": 400}
    assert loop.total_epochs(recipe, 190) == 134  # 3 steps per epoch, at least 400 steps
    assert loop.total_epochs(recipe, 3700) == 8
    assert loop.eval_epochs(8, 4) == [2, 4, 6, 8]
    assert loop.eval_epochs(5, 0) == [1, 2, 3, 4, 5]
    assert loop.eval_epochs(134, 4)[-1] == 134


def test_train_data_checks_lengths():
    with pytest.raises(ValueError, match="labels has 3 rows"):
        loop.TrainData(torch.zeros(4, 10), torch.zeros(3, dtype=torch.long))


def _toy(n=48, seed=0):
    """Two classes told apart by pitch; 0.25 s clips at 32 kHz."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(8000) / 32000
    labels = torch.arange(n) % 2
    freqs = torch.where(labels == 0, 500.0, 4000.0) * (1 + 0.05 * torch.rand(n, generator=g))
    waves = 0.3 * torch.sin(2 * math.pi * freqs[:, None] * t) + 0.01 * torch.randn(n, 8000, generator=g)
    return loop.TrainData(waves.half(), labels)


TOY_RECIPE = {"epochs": 4, "batch_size": 16, "lr": 5e-3, "weight_decay": 1e-4, "warmup_steps": 2,
              "min_lr_fraction": 0.0, "min_steps": 0, "eval_points": 0, "amp": False, "channels_last": True,
              "roll_seconds": 0.1, "mixstyle_p": 0.4, "mixstyle_alpha": 0.3, "mixstyle_eps": 1e-6,
              "freq_mask": 48, "time_mask": 0}


def _objective():
    return loop.Supervised(Augment(build_frontend("baseline"), AugmentConfig.from_recipe(TOY_RECIPE)))


def _fit(run_dir, **kwargs):
    torch.manual_seed(0)
    model = build_cp_mobile(n_classes=2)
    history = loop.fit(model, _objective(), _toy(), TOY_RECIPE, run_dir, seed=7, device="cpu", **kwargs)
    return model, history


def test_fit_learns_and_writes_history(tmp_path):
    data = _toy()
    model, history = _fit(tmp_path / "run",
                          evaluate=lambda m: {"accuracy": float((m(build_frontend("baseline")(data.waves.float()))
                                                                  .argmax(1) == data.labels).float().mean())})
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < history[0]["loss"]
    # chance is 0.5; six seeds of this toy fit (init 0-5, fit seed 7-12) measured 0.85-1.0 (mean 0.96)
    assert history[-1]["accuracy"] >= 0.75
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-9)
    assert (tmp_path / "run" / loop.HISTORY).is_file() and (tmp_path / "run" / loop.CHECKPOINT).is_file()


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    straight, history = _fit(tmp_path / "straight")

    def kill_after_two(epoch, record):
        if epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        _fit(tmp_path / "resumed", on_epoch_end=kill_after_two)
    assert loop.load_checkpoint(tmp_path / "resumed")["epoch"] == 2
    resumed, resumed_history = _fit(tmp_path / "resumed")
    assert resumed_history == history
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


LONG_EPOCH = {**TOY_RECIPE, "epochs": 2, "batch_size": 4, "checkpoint_every": 3}  # 12 steps an epoch


def test_a_run_killed_mid_epoch_resumes_at_its_step_checkpoint_to_the_same_weights(tmp_path):
    def fit(run_dir, recipe, **kwargs):
        torch.manual_seed(0)
        model = build_cp_mobile(n_classes=2)
        return model, loop.fit(model, _objective(), _toy(), recipe, run_dir, seed=7, device="cpu", **kwargs)

    straight, history = fit(tmp_path / "straight", LONG_EPOCH)

    def kill_at_step_7(step):  # steps 0-7 of the first epoch done; the last checkpoint is after 6
        if step == 7:
            raise _Killed

    with pytest.raises(_Killed):
        fit(tmp_path / "resumed", LONG_EPOCH, on_step_end=kill_at_step_7)
    saved = loop.load_checkpoint(tmp_path / "resumed")
    assert (saved["epoch"], saved["step_in_epoch"]) == (0, 6)
    resumed, resumed_history = fit(tmp_path / "resumed", LONG_EPOCH)
    assert resumed_history.status == "resumed" and "after epoch 0 and 6 steps" in resumed_history.summary()
    assert resumed_history == history  # the first epoch's mean loss too
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    # the checkpoint interval does not change what trains, nor the run's fingerprint
    plain, plain_history = fit(tmp_path / "plain", {**LONG_EPOCH, "checkpoint_every": 0})
    assert plain_history.fingerprint == history.fingerprint
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), straight.state_dict().values()))


def test_finished_run_is_reused_and_a_stale_one_retrained(tmp_path):
    model, history = _fit(tmp_path / "run")
    assert history.status == "trained" and "from scratch" in history.summary()
    (tmp_path / "run" / "metrics.json").write_text("{}")  # what the notebook writes after fit
    again, again_history = _fit(tmp_path / "run")
    assert again_history == history and again_history.status == "reused"
    assert again_history.fingerprint == history.fingerprint and "reused" in again_history.summary()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # another recipe: the saved run is stale; it is retrained and its old results are gone
    torch.manual_seed(0)
    other = loop.fit(build_cp_mobile(n_classes=2), _objective(), _toy(), {**TOY_RECIPE, "lr": 1e-3},
                      tmp_path / "run", seed=7, device="cpu")
    assert other.status == "retrained" and "recipe" in other.reason and other.fingerprint != history.fingerprint
    assert not (tmp_path / "run" / "metrics.json").exists()
    # other data of the same size: retrained too (the old fingerprint held only the clip count)
    torch.manual_seed(0)
    moved = loop.fit(build_cp_mobile(n_classes=2), _objective(), _toy(seed=1), {**TOY_RECIPE, "lr": 1e-3},
                      tmp_path / "run", seed=7, device="cpu")
    assert moved.status == "retrained" and moved.reason == "changed: data"
    # another front end hop: retrained (the front end is part of the objective's configuration)
    frontend = build_frontend("baseline")
    frontend.mel.spectrogram.hop_length = 400
    objective = loop.Supervised(Augment(frontend, AugmentConfig.from_recipe(TOY_RECIPE)))
    torch.manual_seed(0)
    hop = loop.fit(build_cp_mobile(n_classes=2), objective, _toy(seed=1), {**TOY_RECIPE, "lr": 1e-3},
                    tmp_path / "run", seed=7, device="cpu")
    assert hop.status == "retrained" and hop.reason == "changed: objective"


def test_a_run_scored_along_the_way_is_keyed_by_what_it_is_scored_on(tmp_path):
    """The accuracy curve is part of a run: another test split (evaluator identity) retrains it; without
    eval points the evaluator does not enter the fingerprint."""
    def scorer(identity):
        def evaluate(model):
            return {"accuracy": 0.5}
        evaluate.identity = identity
        return evaluate

    recipe = {**TOY_RECIPE, "eval_points": 2}

    def run(identity, rec=recipe):
        torch.manual_seed(0)
        return loop.fit(build_cp_mobile(n_classes=2), _objective(), _toy(), rec, tmp_path / "run", seed=7,
                        device="cpu", evaluate=scorer(identity))

    first = run("test A")
    assert [r["accuracy"] for r in first if "accuracy" in r] == [0.5, 0.5]
    assert run("test A").status == "reused"
    moved = run("test B")
    assert moved.status == "retrained" and moved.reason == "changed: evaluation"
    assert loop.evaluation_identity(scorer("x"), TOY_RECIPE) is None  # eval_points 0: nothing scored along the way
    assert loop.evaluation_identity(None, recipe) is None


def test_retrain_environment_variable_forces_training(tmp_path, monkeypatch):
    _fit(tmp_path / "run")
    monkeypatch.setenv(loop.RETRAIN_ENV, "1")
    _, history = _fit(tmp_path / "run")
    assert history.status == "retrained" and loop.RETRAIN_ENV in history.reason


def test_rng_after_fit_does_not_depend_on_reuse(tmp_path):
    _fit(tmp_path / "run")
    after_training = torch.rand(3)
    _fit(tmp_path / "run")
    assert torch.equal(torch.rand(3), after_training)


_PROBE = """
import torch
from torch import nn
from asc_lib.training.loop import Supervised, logits_of


def probe_loss(logits, labels):
    return nn.functional.cross_entropy(logits.float(), labels){extra}


class ProbeObjective(Supervised):
    name = "probe"

    def loss(self, model, batch, step):
        return probe_loss(logits_of(model(self.inputs(batch["waves"]))), batch["labels"]), {{}}
"""


def _probe_module(tmp_path, version, extra):
    import importlib.util

    path = tmp_path / f"probe_v{version}.py"
    path.write_text(_PROBE.format(extra=extra))
    spec = importlib.util.spec_from_file_location("asc_lib._probe_objective", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_changed_loss_line_retrains_exactly_the_runs_that_use_it(tmp_path):
    v1 = _probe_module(tmp_path, 1, "")
    objective = v1.ProbeObjective(Augment(build_frontend("baseline"), AugmentConfig.from_recipe(TOY_RECIPE)))

    def run(obj, name):
        torch.manual_seed(0)
        return loop.fit(build_cp_mobile(n_classes=2), obj, _toy(), TOY_RECIPE, tmp_path / name, seed=7,
                         device="cpu")

    assert run(objective, "probe").status == "trained" and run(_objective(), "plain").status == "trained"
    assert run(objective, "probe").status == "reused"
    v2 = _probe_module(tmp_path, 2, " * 1.0  # one line of the loss changed")
    changed = v2.ProbeObjective(Augment(build_frontend("baseline"), AugmentConfig.from_recipe(TOY_RECIPE)))
    again = run(changed, "probe")
    assert again.status == "retrained" and again.reason == "changed: code"
    assert run(_objective(), "plain").status == "reused"  # the baseline's objective does not use it


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "payload": Payload()}, run / loop.CHECKPOINT)
    with pytest.raises(RuntimeError, match=r"checkpoint\.pt: cannot read checkpoint: it holds Python objects other "
                                           r"than tensors"):
        loop.load_checkpoint(run)
    with pytest.raises(RuntimeError, match="holds Python objects other than tensors"):
        _fit(run)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / loop.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        loop.load_checkpoint(tmp_path / "bad")


def test_supervised_ignores_unlabeled_items():
    torch.manual_seed(0)
    model = build_cp_mobile(n_classes=2).eval()
    obj = _objective().eval()
    data = _toy(8)
    batch = data.batch(torch.arange(8))
    loss_labeled, _ = obj.loss(model, {**batch, "waves": batch["waves"][:4], "labels": batch["labels"][:4]}, 0)
    batch["labels"][4:] = -1
    loss_mixed, _ = obj.loss(model, batch, 0)
    assert torch.allclose(loss_labeled, loss_mixed)
    assert isinstance(obj, nn.Module)


def test_max_steps_stops_the_last_epoch_part_way():
    recipe = {"epochs": 1, "batch_size": 32, "min_steps": 100_000, "max_steps": 100_000}
    # Werning's 100k iterations on 290,000 pruned clips (9,063 steps per epoch): 12 epochs, the last one cut
    assert loop.total_steps(recipe, 290_000) == 100_000 and loop.total_epochs(recipe, 290_000) == 12
    assert loop.total_steps({**recipe, "max_steps": 0}, 290_000) == 12 * 9063  # whole epochs: 108,756 steps
    assert loop.total_steps({"epochs": 3, "batch_size": 10, "max_steps": 0}, 95) == 30


def test_composed_batches_hold_the_named_labeled_count_and_visit_every_labeled_clip_each_epoch():
    from asc_lib.training import distributed

    labels = torch.tensor([i % 10 if i % 3 else -1 for i in range(70)])  # 46 labeled, 24 unlabeled, interleaved
    labeled = set(torch.nonzero(labels >= 0).flatten().tolist())
    recipe = {"epochs": 2, "batch_size": 12, "labeled_per_batch": 5}
    plan = loop.batch_plan(recipe, labels, seed=3, here=distributed.world())
    assert isinstance(plan, loop.ComposedPlan) and plan.per_epoch == 10  # ceil(46 / 5): epochs count labeled clips
    assert loop.epoch_items(recipe, labels) == 46 and loop.total_steps(recipe, 46) == 20
    for epoch in range(2):
        seen = []
        for step in range(epoch * plan.per_epoch, (epoch + 1) * plan.per_epoch):
            index = plan.index(step)
            assert len(index) == 12 and int((labels[index] >= 0).sum()) == 5  # exactly 5 labeled in every batch
            seen += [i for i in index.tolist() if labels[i] >= 0]
        assert set(seen) == labeled  # every labeled clip once per epoch ...
        assert len(seen) - len(labeled) == 4  # ... and the last batch topped up with 4 of this epoch's first ones
    # divisible: each labeled clip exactly once per epoch; the unlabeled stream covers its items evenly
    even = loop.batch_plan({**recipe, "labeled_per_batch": 2}, labels[:30], seed=0, here=distributed.world())
    epoch = torch.cat([even.index(s) for s in range(even.per_epoch)])
    lab = epoch[labels[:30][epoch] >= 0]
    assert sorted(lab.tolist()) == torch.nonzero(labels[:30] >= 0).flatten().tolist()
    unl = epoch[labels[:30][epoch] < 0]
    assert torch.bincount(unl, minlength=30)[labels[:30] < 0].max() - torch.bincount(unl, minlength=30)[labels[:30] < 0].min() <= 1
    # the same batches when computed out of order (resume, DataLoader workers)
    again = loop.batch_plan(recipe, labels, seed=3, here=distributed.world())
    assert torch.equal(again.index(17), plan.index(17)) and torch.equal(again.index(3), plan.index(3))
    with pytest.raises(ValueError, match="labeled_per_batch"):
        loop.labeled_per_batch({"batch_size": 4, "labeled_per_batch": 5})


def test_composed_batches_without_unlabeled_items_are_the_pooled_batches():
    from asc_lib.training import distributed

    labels = torch.arange(48) % 10
    pooled = loop.batch_plan({"batch_size": 8}, labels, seed=5, here=distributed.world())
    composed = loop.batch_plan({"batch_size": 32, "labeled_per_batch": 8}, labels, seed=5, here=distributed.world())
    assert pooled.per_epoch == composed.per_epoch == 6
    assert all(torch.equal(pooled.index(s), composed.index(s)) for s in range(12))


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_the_clips(tmp_path):
    """One NaN sample in one clip: the run stops at the first non-finite loss, naming the run folder, the
    step and the clips of that batch, and nothing is stored as trained (no checkpoint, no history)."""
    data = _toy()
    waves = data.waves.clone()
    waves[5, 100:110] = float("nan")
    bad = loop.TrainData(waves, data.labels, names=[f"audio/clip{i}.wav" for i in range(len(waves))])
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"run: the loss is nan at step \d+ .*audio/clip\d+\.wav") as err:
        loop.fit(build_cp_mobile(n_classes=2), _objective(), bad, TOY_RECIPE, tmp_path / "run", seed=7,
                 device="cpu")
    assert "audio/clip5.wav" in str(err.value) or "more" in str(err.value)
    assert not (tmp_path / "run" / loop.CHECKPOINT).exists()
    assert not list((tmp_path / "run").glob("history*"))


def test_a_second_process_on_a_run_folder_stops_naming_the_owner_and_leaves_its_checkpoint(tmp_path):
    """Two runs into one folder: the second stops at once with a message naming the folder and the process
    that holds it; the first's checkpoint is untouched. When the holder is gone, the folder is free again
    (the system releases the lock of a dead process: no stale lock)."""
    import subprocess
    import sys
    import time

    from asc_lib.config import atomic

    run = tmp_path / "run"
    _fit(run)
    before = (run / loop.CHECKPOINT).read_bytes()
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, pathlib\n"
        "from asc_lib.config import atomic\n"
        f"with atomic.exclusive(pathlib.Path({str(run)!r}), 'run folder'):\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(60)\n")])
    try:
        for _ in range(600):
            if ready.exists():
                break
            time.sleep(0.05)
        assert ready.exists(), "the holder process did not start"
        with pytest.raises(RuntimeError, match=rf"run: this run folder is in use by process {holder.pid} on "):
            loop.fit(build_cp_mobile(n_classes=2), _objective(), _toy(), {**TOY_RECIPE, "lr": 1e-3}, run, seed=7,
                     device="cpu")
        assert (run / loop.CHECKPOINT).read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    _, history = _fit(run)  # the killed holder left no lock behind
    assert history.status == "reused"
    assert not atomic.lock_file(run).with_name(atomic.lock_file(run).name + ".owner").exists()


def test_the_memory_budget_does_not_change_a_runs_identity(tmp_path):
    """The same cached clips held resident or streamed from disk (what the budget decides) are the same run:
    a finished run trained on resident data is reused when the budget streams them, not retrained."""
    import numpy as np
    import soundfile as sf

    from asc_lib.data import audio
    from asc_lib.data.rows import DiskRows

    toy = _toy(n=32)
    names = []
    for i, wave in enumerate(toy.waves.float().numpy()):
        sf.write(tmp_path / f"c{i}.wav", wave, 32000, subtype="FLOAT")
        names.append(f"c{i}.wav")
    cache = audio.build_waveform_cache(names, tmp_path, 32000, 8000, cache_dir=tmp_path / "cache")
    resident, streamed = cache.load(budget=2**30), cache.load(budget=1)
    assert isinstance(resident, torch.Tensor) and isinstance(streamed, DiskRows)
    recipe = {**TOY_RECIPE, "epochs": 1}
    data = {k: loop.TrainData(w, toy.labels) for k, w in (("resident", resident), ("streamed", streamed))}
    assert loop.data_digest(data["resident"]) == loop.data_digest(data["streamed"])
    assert loop.data_digest(data["resident"]) == loop.data_digest(data["resident"].to("cpu"))
    torch.manual_seed(0)
    first = loop.fit(build_cp_mobile(n_classes=2), _objective(), data["resident"], recipe, tmp_path / "run", seed=7,
                     device="cpu")
    torch.manual_seed(0)
    again = loop.fit(build_cp_mobile(n_classes=2), _objective(), data["streamed"], recipe, tmp_path / "run", seed=7,
                     device="cpu")
    assert first.status == "trained" and again.status == "reused" and again.fingerprint == first.fingerprint
    changed = resident.clone()  # other bytes (no identity): another run
    changed[0] += 0.01
    assert loop.data_digest(loop.TrainData(changed, toy.labels)) != loop.data_digest(data["resident"])


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_cache_under_streamed_rows_is_rebuilt_and_the_finished_run_reused(tmp_path, damage):
    """What 00b did before caches sealed themselves: a flipped byte in the cache behind a finished run's
    streamed rows made the run look stale, so it was deleted and retrained on the damaged bytes. Now the
    damaged cache is named, moved aside and rebuilt; its rows read the original samples, and the finished run
    (judged by the inputs' identity, not by the damaged file) is reused, its checkpoint untouched."""
    import numpy as np
    import soundfile as sf

    from asc_lib.config import atomic
    from asc_lib.data import audio

    toy = _toy(n=32)
    names = []
    for i, wave in enumerate(toy.waves.float().numpy()):
        sf.write(tmp_path / f"c{i}.wav", wave, 32000, subtype="FLOAT")
        names.append(f"c{i}.wav")
    build = lambda: audio.build_waveform_cache(names, tmp_path, 32000, 8000,  # noqa: E731
                                               cache_dir=tmp_path / "cache")
    streamed = build().load(budget=1)
    good = streamed.read(0, len(streamed)).clone()
    recipe = {**TOY_RECIPE, "epochs": 1}
    torch.manual_seed(0)
    first = loop.fit(build_cp_mobile(n_classes=2), _objective(), loop.TrainData(streamed, toy.labels), recipe,
                     tmp_path / "run", seed=7, device="cpu")
    checkpoint = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    path = streamed.path
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[:len(raw) // 3]
    path.write_bytes(bytes(raw))
    atomic._VERIFIED.clear()  # a new process: nothing verified yet
    with pytest.warns(UserWarning, match=rf"{path.name}: .*moved aside"):
        again_rows = build().load(budget=1)
    assert torch.equal(again_rows.read(0, len(again_rows)), good)
    torch.manual_seed(0)
    again = loop.fit(build_cp_mobile(n_classes=2), _objective(), loop.TrainData(again_rows, toy.labels), recipe,
                     tmp_path / "run", seed=7, device="cpu")
    assert first.status == "trained" and again.status == "reused" and again.fingerprint == first.fingerprint
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == checkpoint


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_an_invalid_memory_budget_is_refused_naming_the_variable(monkeypatch, value):
    from asc_lib.data import rows

    monkeypatch.setenv(rows.BUDGET_ENV, value)
    with pytest.raises(ValueError, match=rf"ASC_MEMORY_BUDGET_GB={value!r}"):
        rows.memory_budget()


def test_the_recipes_optimizer_is_the_one_that_trains_and_an_unknown_one_is_refused(tmp_path, monkeypatch):
    """``optimizer:`` is read: ``adam`` (weight decay as an L2 term, Werning's domain classifier) and ``adamw``
    (decoupled, the baseline's) train different weights from the same start, and a name that is neither is
    refused naming it."""
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert type(loop.build_optimizer(params, {"optimizer": "adam", "lr": 1e-3})) is torch.optim.Adam
    assert type(loop.build_optimizer(params, {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1})) is torch.optim.AdamW
    with pytest.raises(ValueError, match="'sgd' is not one of"):
        loop.build_optimizer(params, {"optimizer": "sgd", "lr": 1e-3})
    weights = {}
    for name in ("adamw", "adam"):
        monkeypatch.setitem(TOY_RECIPE, "optimizer", name)
        monkeypatch.setitem(TOY_RECIPE, "epochs", 1)
        model, _ = _fit(tmp_path / name)
        weights[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.allclose(weights["adamw"], weights["adam"])
