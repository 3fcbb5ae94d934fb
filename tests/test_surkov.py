"""Surkov: the report's settings, the label filter on the real lists, mean teacher and KD."""
import csv
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_file
from torch import nn

from asc_lib import config
from asc_lib.config import load_recipe, profile_recipe
from asc_lib.data import audioset
from asc_lib.data.dcase import SCENES, load_split, parse_filename
from asc_lib.methods import labelfilter, meanteacher, registry
from asc_lib.models import complexity
from asc_lib.models.efficientat import build_efficientat
from asc_lib.training import distill, experiment, uncertainty
from asc_lib.training.evaluate import write_output_csv

REAL_BALANCED = {"Vehicle (/m/07yv9)": 860, "Rail transport (/m/06d_3)": 189, "Outside, urban or manmade (/t/dd00128)": 256,
                 "any of them (union)": 1528, "all segments": 22160}
REAL_EVAL = {"Vehicle (/m/07yv9)": 780, "Train (/m/07jdr)": 173, "any of them (union)": 1445, "all segments": 20371}


def test_report_settings_are_the_defaults():
    assert len(labelfilter.table1_labels()) == 14
    assert labelfilter.table1_labels()["/t/dd00127"] == "Inside, public space"
    f = load_recipe("audioset_filter", source="surkov")
    assert f["subsets"] == {"small": 10000, "large": 20000} and f["include_descendants"] is False
    mt = load_recipe("mean_teacher", source="surkov")
    assert (mt["model"], mt["ema_decay"], mt["rampup_fraction"], mt["constant_fraction"]) == ("mn10", 0.999, 0.1, 0.1)
    assert (mt["mixstyle_p"], mt["mixstyle_alpha"], mt["mixstyle_eps"]) == (0.4, 0.3, 1e-6)
    assert (mt["freq_mask_fraction"], mt["time_mask_fraction"], mt["frontend"]) == (0.15, 0.15, "surkov16k")
    kd = load_recipe("kd", source="surkov")
    assert (kd["lr"], kd["weight_decay"], kd["warmup_fraction"], kd["epochs"], kd["batch_size"]) == (1e-3, 1e-3, 0.1, 750, 256)
    assert kd["loss"] == "mse_probabilities" and kd["deviations"] == {}
    mini = profile_recipe("mini", "kd", source="surkov")
    assert set(mini["deviations"]) == {"lr", "epochs", "batch_size", "labeled_per_batch", "min_steps", "eval_points",
                                       "feature_cache", "eval_precision"}
    assert mini["labeled_per_batch"] / mini["batch_size"] == kd["labeled_per_batch"] / kd["batch_size"] == 0.5


def test_efficientat_mn10_cost_matches_the_report():
    cost = complexity.measure(build_efficientat("mn10", 10), (1, 1, 128, 101))
    assert (cost.params, cost.macs) == (4_214_554, 62_721_522)  # Table 3: 4.214M, 62.722M


def _raw_union(path, mids):
    """Independent count: rows of the raw CSV whose label field names any of ``mids``."""
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh, skipinitialspace=True) if r and not r[0].startswith("#")]
    return sum(1 for r in rows if set(r[3].split(",")) & set(mids))


def test_label_filter_on_the_real_segment_lists():
    balanced = shared_file("audioset", "balanced_train_segments.csv")
    evaluation = shared_file("audioset", "eval_segments.csv")
    lists = {"balanced": audioset.read_segments(balanced), "eval": audioset.read_segments(evaluation)}
    mids = labelfilter.table1_labels()
    table = labelfilter.label_table(lists, mids)
    for row, n in REAL_BALANCED.items():
        assert table.loc[row, "balanced"] == n, row
    for row, n in REAL_EVAL.items():
        assert table.loc[row, "eval"] == n, row
    assert table.loc["any of them (union)", "balanced"] == _raw_union(balanced, mids)
    assert table.loc["any of them (union)", "eval"] == _raw_union(evaluation, mids)
    ontology = audioset.read_ontology(shared_file("audioset", "ontology.json"))
    wider = labelfilter.label_table(lists, mids, ontology, include_descendants=True)
    assert (wider.loc["any of them (union)"] > table.loc["any of them (union)"]).all()


def _pool(n=50):
    return pd.DataFrame({"YTID": [f"id{i:03d}" for i in range(n)], "start_seconds": 0.0, "end_seconds": 10.0,
                         "positive_labels": [["/m/07yv9"]] * n, "list": "balanced_train_segments"})


def test_subsets_are_seeded_and_capped_explicitly(tmp_path):
    pool = _pool()
    a, b = labelfilter.draw_subset(pool, 20, seed=3), labelfilter.draw_subset(pool, 20, seed=3)
    assert list(a["YTID"]) == list(b["YTID"]) and a["YTID"].is_unique
    assert list(labelfilter.draw_subset(pool, 20, seed=4)["YTID"]) != list(a["YTID"])
    with pytest.raises(ValueError, match="holds only 50"):
        labelfilter.draw_subset(pool, 100, seed=0)
    assert len(labelfilter.draw_subset(pool, 100, seed=0, allow_smaller=True)) == 50
    path = audioset.write_subset(tmp_path / "small_segments.csv", a, "test")
    assert path.read_text().startswith("# Segments csv created test\n# num_ytids=20, num_segs=20")
    back = audioset.read_subset(path)
    assert list(back["YTID"]) == list(a["YTID"]) and set(back["list"]) == {"balanced_train_segments"}


def test_ema_update_and_decay():
    assert meanteacher.ema_decay(0, 0.999) == 0.0 and meanteacher.ema_decay(9, 0.999) == pytest.approx(0.9)
    assert meanteacher.ema_decay(100_000, 0.999) == 0.999
    student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(0.0)
    meanteacher.ema_update(teacher, student, decay=0.75)
    assert torch.allclose(teacher.weight, torch.full((2, 2), 0.25))
    # BatchNorm statistics are the teacher's own (it runs in training mode on its inputs), not the student's
    s_bn, t_bn = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    s_bn.running_mean.fill_(5.0)
    meanteacher.ema_update(t_bn, s_bn, decay=0.5)
    assert torch.equal(t_bn.running_mean, torch.zeros(2))


def test_mini_mean_teacher_deviations_are_named():
    mini = profile_recipe("mini", "mean_teacher", source="surkov")
    assert mini["weights"] == "mn04_as" and mini["fallback"] == "standin" and mini["bn_momentum"] == 0.1 and mini["ema_decay"] == 0.99
    assert mini["consistency_weight"] == 10.0  # chosen on the validation part (asc_lib.methods.choices)
    assert set(mini["deviations"]) == {"model", "weights", "fallback", "ema_decay", "bn_momentum", "consistency_weight",
                                       "epochs", "batch_size", "labeled_per_batch", "min_steps", "max_steps",
                                       "eval_points", "feature_cache"}
    paper = load_recipe("mean_teacher", source="surkov")
    assert (paper["model"], paper["weights"], paper["fallback"], paper["bn_momentum"], paper["lr"]) == (
        "mn10", "mn10_as", None, 0.01, 1e-3)
    # the study's choices where the report is silent: half-labeled batches, Tarvainen's weight, the pretrained input
    assert (paper["labeled_per_batch"], paper["consistency_weight"], paper["input_norm"]) == (128, 100.0, "efficientat")
    assert mini["labeled_per_batch"] / mini["batch_size"] == 0.5


def test_consistency_weight_schedule_breakpoints():
    w = lambda s: meanteacher.consistency_weight(s, 1000, max_weight=2.0)  # noqa: E731
    assert w(0) == pytest.approx(2.0 * math.exp(-5))
    assert w(50) == pytest.approx(2.0 * math.exp(-5 * 0.25))
    assert w(100) == 2.0 and w(199) == 2.0
    assert w(200) == pytest.approx(2.0) and w(600) == pytest.approx(1.0) and w(1000) == 0.0
    ramp = [w(s) for s in range(0, 100, 10)]
    assert all(a < b for a, b in zip(ramp, ramp[1:]))


def test_consistency_and_kd_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert meanteacher.consistency_loss(logits, logits) == 0
    teacher_probs = torch.tensor([[1.0, 0.0, 0.0]])
    p = logits.softmax(-1)
    expected = ((p - teacher_probs) ** 2).mean()
    assert distill.probability_mse(logits, teacher_probs) == pytest.approx(float(expected))
    logits.requires_grad_(True)
    distill.probability_mse(logits, teacher_probs).backward()
    assert logits.grad[0, 0] < 0  # pushes the student towards the teacher's class


class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self._calls = [0]  # private: not part of the teacher's identity (a counter would change its cache key)
        self.lin = nn.Linear(4, 3)

    @property
    def calls(self):
        return self._calls[0]

    def forward(self, x):
        self._calls[0] += 1
        return self.lin(x)


def test_teacher_outputs_are_cached_and_keyed(tmp_path):
    teacher, waves = _Counting(), torch.randn(10, 4)
    key = {"teacher": "t1", "data": "d1", "frontend": "surkov16k"}
    first = distill.teacher_outputs(teacher, waves, key, batch_size=4, cache_dir=tmp_path)
    calls = teacher.calls
    assert calls == 1 + 3 and first.shape == (10, 3)  # one row to size the on-disk array, then 3 batches of 4
    again = distill.teacher_outputs(teacher, waves, key, batch_size=4, cache_dir=tmp_path)
    assert teacher.calls == calls and torch.equal(first, again)  # hit: no forward pass
    distill.teacher_outputs(teacher, waves, {**key, "teacher": "t2"}, batch_size=4, cache_dir=tmp_path)
    assert teacher.calls == 2 * calls  # changed key: recomputed
    other = distill.teacher_outputs(teacher, waves + 1, key, batch_size=4, cache_dir=tmp_path)
    assert teacher.calls == 3 * calls and not torch.equal(other, first)  # other data under the same key: recomputed
    distill.teacher_outputs(teacher, waves, key, cache_dir=tmp_path, data_id="named")
    with pytest.raises(ValueError, match="rows"):  # a data identity that does not fit the waves is caught
        distill.teacher_outputs(teacher, waves[:5], key, cache_dir=tmp_path, data_id="named")


def test_mean_teacher_objective_trains_and_checkpoints_its_teacher(tmp_path):
    from test_train import TOY_RECIPE, _toy

    from asc_lib.features.augment import Augment, AugmentConfig
    from asc_lib.features.frontend import build_frontend
    from asc_lib.models.cpmobile import build_cp_mobile
    from asc_lib.training.loop import TrainData, fit, load_checkpoint

    def run(directory):
        torch.manual_seed(0)
        student = build_cp_mobile(n_classes=2)
        objective = meanteacher.MeanTeacher(Augment(build_frontend("baseline"), AugmentConfig.from_recipe(TOY_RECIPE)),
                                            student, decay=0.9)
        toy = _toy()
        labels = toy.labels.clone()
        labels[::2] = -1  # half unlabeled
        fit(student, objective, TrainData(toy.waves, labels), {**TOY_RECIPE, "epochs": 2}, directory, seed=1,
            device="cpu")
        return student, objective

    student, objective = run(tmp_path / "mt")
    assert objective.eval_model(student) is objective.teacher
    s, t = dict(student.named_parameters()), dict(objective.teacher.named_parameters())
    assert not torch.equal(s["feed_forward.0.weight"], t["feed_forward.0.weight"])
    assert not t["feed_forward.0.weight"].requires_grad
    saved = load_checkpoint(tmp_path / "mt")["objective"]
    assert torch.equal(saved["teacher.feed_forward.0.weight"], t["feed_forward.0.weight"])


def test_kd_runs_from_different_teachers_do_not_share_a_directory():
    from asc_lib.methods import surkov

    assert surkov.kd_method("small", "efficientat_mt") == "kd_small"
    assert surkov.kd_method("small", "efficientat_ft") == "kd_small_from_ft"
    with pytest.raises(ValueError, match="teacher"):
        surkov.kd_method("small", "passt")


def test_input_norm_is_the_pretraining_normalisation_on_every_path(tmp_path, monkeypatch):
    """The teacher's input normalisation is part of the network: fine-tuning, evaluation and the cached
    teacher outputs of 04_kd all see (x + 4.5) / 5, and a saved teacher keeps it."""
    from asc_lib.features.frontend import build_frontend
    from asc_lib.methods import surkov
    from asc_lib.training import evaluate

    assert surkov.input_norm(load_recipe("mean_teacher", source="surkov")) == (4.5, 5.0)
    assert surkov.input_norm({"input_norm": "none"}) is None
    with pytest.raises(ValueError, match="input_norm"):
        surkov.input_norm({"input_norm": "kaldi"})
    torch.manual_seed(0)
    plain = build_efficientat("mn04", 10).eval()
    normed = build_efficientat("mn04", 10, input_norm=(4.5, 5.0)).eval()
    normed.load_state_dict(plain.state_dict())  # no weights of its own: the same checkpoint keys load strictly
    x = torch.randn(3, 1, 128, 101) - 6.0
    with torch.no_grad():
        assert torch.equal(normed(x)[0], plain((x + 4.5) / 5.0)[0])  # training and evaluation: the forward itself
    path = surkov.save_teacher(tmp_path, normed, "mn04")
    saved = torch.load(path, weights_only=True)
    assert saved["input_norm"] == [4.5, 5.0]
    monkeypatch.setattr(surkov, "run_dir", lambda *a: tmp_path)
    loaded, _ = surkov.load_teacher("mini", "efficientat_mt", 5, 0)
    assert loaded.input_norm == (4.5, 5.0)
    frontend = build_frontend("surkov16k")
    waves = 0.1 * torch.randn(4, 16000)
    cached = distill.teacher_outputs(loaded, waves, {"k": 1}, frontend=frontend, cache_dir=tmp_path / "cache")
    with torch.no_grad():
        by_hand = plain((frontend.eval()(waves) + 4.5) / 5.0)[0]
    assert torch.allclose(cached, by_hand, atol=1e-5)
    batched = evaluate.compute_logits(loaded, waves, frontend, 2, torch.device("cpu"))
    assert torch.allclose(batched, by_hand, atol=1e-5)  # test predictions: the same path


def test_a_teacher_saved_again_keeps_its_teacher_outputs(tmp_path):
    """02 writes teacher.pt on every run, reused or not; 04 keys its cached teacher outputs by that file's
    content. Saved twice (through a new temporary file each time), the same weights give the same bytes,
    so the cache hits; torch.save alone would name its archive after each temporary file."""
    from asc_lib.methods import surkov

    torch.manual_seed(0)
    model = build_efficientat("mn04", 10, input_norm=(4.5, 5.0))
    key = lambda: surkov.teacher_key(surkov.save_teacher(tmp_path, model, "mn04"), ["a.wav"], "mini", "none",
                                     "surkov16k")
    first = key()
    assert key() == first
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert key()["teacher"] != first["teacher"]  # other weights: another key


def test_fine_tuning_run_scores_teacher_and_student(tmp_path):
    """metrics.json of a mean-teacher run holds the EMA teacher's and the student's test scores."""
    from asc_lib.methods import surkov

    metrics = {"test": {"accuracy": 0.5, "per_group": {"real": 0.6}},
               "student": {"test": {"accuracy": 0.4, "per_group": {"real": 0.5}}}}
    table = surkov.teacher_and_student(metrics)
    assert list(table.index) == ["EMA teacher", "student"] and table.loc["student", "accuracy"] == 40.0
    assert list(surkov.teacher_and_student({"test": metrics["test"]}).index) == ["fine-tuned model"]


def test_mean_teacher_at_weight_zero_without_unlabeled_clips_is_plain_fine_tuning(tmp_path):
    """Same seed, same batches: the student of mean teacher with consistency weight 0 and no unlabeled clips
    ends with exactly the weights of plain fine-tuning (the teacher only averages it)."""
    from test_train import TOY_RECIPE, _toy

    from asc_lib.features.augment import Augment, AugmentConfig
    from asc_lib.features.frontend import build_frontend
    from asc_lib.models.cpmobile import build_cp_mobile
    from asc_lib.training.loop import Supervised, fit

    recipe = {**TOY_RECIPE, "epochs": 2, "labeled_per_batch": 8}

    def train(make_objective, directory):
        torch.manual_seed(0)
        student = build_cp_mobile(n_classes=2)
        objective = make_objective(Augment(build_frontend("baseline"), AugmentConfig.from_recipe(recipe)), student)
        fit(student, objective, _toy(), recipe, tmp_path / directory, seed=1, device="cpu")
        return student, objective

    plain, _ = train(lambda augment, student: Supervised(augment), "ft")
    start = build_cp_mobile(n_classes=2).state_dict()
    for make in (lambda augment, student: meanteacher.MeanTeacher(augment, student, decay=0.9, max_weight=0.0),
                 lambda augment, student: meanteacher.EMAWithoutConsistency(augment, student, decay=0.9, max_weight=0.0)):
        mt, objective = train(make, "mt")
        for (name, a), b in zip(plain.state_dict().items(), mt.state_dict().values()):
            assert torch.equal(a, b), name
        assert not torch.equal(objective.teacher.feed_forward[0].weight, mt.feed_forward[0].weight)  # an average of it
    # the ablation's variant runs its teacher (on an augmentation stream of its own): its BatchNorm statistics moved
    bn = [k for k in start if k.endswith("running_mean")][0]
    assert not torch.equal(objective.teacher.state_dict()[bn], start[bn])
    recipe_w0 = {**load_recipe("mean_teacher", source="surkov"), "consistency_weight": 0.0}
    from asc_lib.methods import surkov
    assert type(surkov.training_objective("mean_teacher", recipe_w0, None, nn.Linear(2, 2))) is meanteacher.EMAWithoutConsistency


def _comparison(diff, half_width):
    """A constructed paired comparison (points), its interval diff ± half_width."""
    return uncertainty.Comparison(diff / 100, (diff - half_width) / 100, (diff + half_width) / 100, 0.5, 0.95,
                                  "recording", (3, 3))


def test_ablation_table_and_its_plain_words_on_constructed_runs():
    """The ablation's sentences come from the paired bootstrap's verdicts (interval above, below or across
    zero), not from the difference of two means."""
    from asc_lib.methods import mt_ablation

    variants = list(mt_ablation.VARIANTS)
    shift = {"plain fine-tuning, same labeled presentations": 8.0, "mean teacher, consistency weight 0": 6.0,
             "mean teacher without Freq-MixStyle": -5.0}
    runs = pd.DataFrame([{"variant": v.label, "seed": s, "model": 50 + shift.get(v.label, 0.0) + s, "student": 45.0}
                         for v in variants for s in range(3)])
    compared = {v.label: _comparison(shift.get(v.label, 0.0), 3.0) for v in variants[1:]}
    table = mt_ablation.summary(runs, variants, compared)
    assert list(table.index) == [v.label for v in variants] and (table["seeds"] == 3).all()
    assert table.loc["mean teacher (02)", "model mean"] == 51.0 and table.loc["mean teacher (02)", "model std"] == 1.0
    assert table[mt_ablation.DELTA].tolist() == [0.0, 8.0, 6.0, -5.0, 0.0, 0.0, 0.0, 0.0]
    words = mt_ablation.conclusion(table)
    assert words.startswith("Mean teacher falls short of plain fine-tuning: 51.0 % against 59.0 %")
    assert "Above it (Holm-adjusted within the ablation): mean teacher, consistency weight 0 (+6.0)" in words
    assert "Below it (Holm-adjusted within the ablation): mean teacher without Freq-MixStyle (-5.0)" in words
    assert "mean teacher without Freq-MixStyle: 46.0 ± 1.0 %, below the mean teacher (02) (-5.0 points" \
        in mt_ablation.ablation_findings(table)[2]
    # the same means with wide intervals: nothing distinguishable
    wide = {name: _comparison(100 * c.difference, 20.0) for name, c in compared.items()}
    words = mt_ablation.conclusion(mt_ablation.summary(runs, variants, wide))
    assert words.startswith("Mean teacher holds up") and "No single change moves it distinguishably" in words
    shown = mt_ablation.readable(mt_ablation.summary(runs, variants, wide))
    assert shown.loc["mean teacher without Freq-MixStyle", "Δ to mean teacher (02) (points)"] == "-5.0 [-25.0, +15.0]"
    assert shown.loc["mean teacher without Freq-MixStyle", "verdict"] == "not distinguishable at this budget"
    sweep = mt_ablation.sweep_variants([1.0, 10.0, 100.0], 100.0)
    assert [v.name for v in sweep] == ["efficientat_mt", "efficientat_mt_cw1", "efficientat_mt_cw10"]  # 02's run first
    swept = pd.DataFrame([{"variant": v.label, "seed": s, "model": [50, 40, 55][i] + s, "student": 0.0}
                          for i, v in enumerate(sweep) for s in range(3)])
    better = {sweep[1].label: _comparison(-10.0, 3.0), sweep[2].label: _comparison(5.0, 3.0)}
    choice = mt_ablation.weight_reading(swept, sweep, 100.0, better)
    assert "best mean at consistency weight 10 (56.0 ± 1.0 %)" in choice and "not the choice" in choice
    assert "does not overrule" in choice  # a better weight on the test split changes nothing
    level = {sweep[1].label: _comparison(-10.0, 3.0), sweep[2].label: _comparison(5.0, 8.0)}
    assert "No other weight is distinguishable from the recipe's 100" in mt_ablation.weight_reading(swept, sweep, 100.0, level)


def test_seed_comparison_uses_the_seeds_both_methods_have(monkeypatch, tmp_path):
    """The comparing sentence comes from the paired bootstrap over the runs' output.csv: a method right on
    every clip is "better" than one right on half; a method with no run is "not compared yet"."""
    def run_dir(profile, method, split, seed):
        return tmp_path / method / f"seed{seed}"

    monkeypatch.setattr(registry, "run_dir", run_dir)
    monkeypatch.setattr(experiment, "run_dir", run_dir)  # finished_runs looks there
    files = list(load_split(config.data_paths("mini"), "test", check_files=False)["filename"])  # the current test split
    truth = np.array([SCENES.index(parse_filename(f)["scene"]) for f in files])
    rng = np.random.default_rng(0)
    for method, seeds, share in (("kd_small", (0, 1), 1.0), ("baseline", (0, 1, 2), 0.5)):
        for seed in seeds:
            right = rng.random(len(files)) < share
            pred = np.where(right, truth, (truth + 1) % 10)
            (tmp_path / method / f"seed{seed}").mkdir(parents=True)
            write_output_csv(tmp_path / method / f"seed{seed}" / "output.csv", files, np.eye(10)[pred])
    stale = [f.replace(".wav", "-old.wav") for f in files]  # a run scored before the data were regenerated
    (tmp_path / "baseline" / "seed3").mkdir(parents=True)
    write_output_csv(tmp_path / "baseline" / "seed3" / "output.csv", stale, np.eye(10)[truth])
    with pytest.warns(UserWarning, match=r"seed\(s\) \[3\] left out, scored on other test clips"):
        correct, labels, names, found = registry.correctness("mini", "baseline", 5, [0, 1, 2, 3])
    assert correct.shape == (3, len(files)) and found == [0, 1, 2] and names == sorted(files)
    words = registry.comparison_sentence("mini", 5, [0, 1, 2], "kd_small", "baseline")
    assert f"{registry.label('kd_small')} (seed 0, 1) vs {registry.label('baseline')} (seed 0, 1, 2)" in words
    assert "100.0 % vs" in words and words.endswith("95 % interval from Student's t).")
    assert ": no verdict: these runs only (2 vs 3 seeds) (paired: a bootstrap" in words  # 2 seeds: about these runs
    assert registry.comparison_sentence("mini", 5, 0, "kd_large", "baseline").startswith("Not compared yet")
    table = registry.compare_seeds("mini", 5, [0, 1, 2], ["baseline", "kd_small"])
    assert np.isnan(table.loc[registry.label("kd_small"), "seed 2"])


def test_the_pretraining_front_end_variant_feeds_the_checkpoints_own_input():
    """02b's 32 kHz variant: EfficientAT's own front end (normalised inside, random f_min/f_max in training, so
    never cached), with the network's input scaling off so that (x + 4.5) / 5 is applied once."""
    from asc_lib.features.frontend import build_frontend
    from asc_lib.methods import mt_ablation, surkov

    variant = {v.name: v for v in mt_ablation.VARIANTS}["efficientat_mt_32k"]
    recipe = mt_ablation.recipe("mini", variant)
    assert (recipe["frontend"], recipe["input_norm"], recipe["feature_cache"]) == ("efficientat", "none", False)
    assert surkov.input_norm(recipe) is None
    fe = build_frontend(recipe["frontend"])
    assert fe.sample_rate == 32000 and (fe.norm_shift, fe.norm_scale) == (4.5, 5.0)
    assert mt_ablation.recipe("mini", mt_ablation.VARIANTS[0])["frontend"] == "surkov16k"


def test_an_ablation_variant_with_its_own_front_end_gets_the_split_and_pieces_at_its_own_rate(monkeypatch):
    """02b's runner: variants at 02's front end share 02's task and pieces; the 32 kHz variant gets the same
    split and subset decoded at 32 kHz (one task for all its seeds)."""
    from types import SimpleNamespace

    from asc_lib.methods import mt_ablation, surkov

    built, trained = [], []

    class FakeTask:
        def __init__(self, data, split, frontend, device):
            built.append(frontend)
            self.split, self.device, self.name = split, device, frontend
            self.frontend = SimpleNamespace(sample_rate=32000 if frontend == "efficientat" else 16000)

    monkeypatch.setattr(mt_ablation, "SceneTask", FakeTask)
    monkeypatch.setattr(surkov, "unlabeled_waves", lambda profile, data, subset, rate, device: f"pieces@{rate}")
    monkeypatch.setattr(surkov, "train_teacher", lambda task, spec, mode, recipe, weights, pieces, info:
                        trained.append((spec.method, task.name, pieces, recipe["frontend"]))
                        or SimpleNamespace(history=SimpleNamespace(status="trained")))
    base = SimpleNamespace(split=5, device="cpu", name="surkov16k")
    chosen = mt_ablation.variants(["efficientat_mt", "efficientat_mt_32k"])
    mt_ablation.run(base, "mini", chosen, [0, 1], None, "pieces@16000", "small", data="data")
    assert built == ["efficientat"]  # one extra task, for both seeds of the 32 kHz variant
    assert trained == [("efficientat_mt", "surkov16k", "pieces@16000", "surkov16k")] * 2 + \
        [("efficientat_mt_32k", "efficientat", "pieces@32000", "efficientat")] * 2
    with pytest.raises(ValueError, match="pass the data"):
        mt_ablation.run(base, "mini", chosen, [0], None, "pieces@16000", "small")


def test_the_kd_recipes_loss_is_the_one_that_trains_and_an_unknown_one_is_refused():
    """``loss:`` of Surkov's KD recipe is read: ``mse_probabilities`` (the report's) and ``kl_probabilities``
    give different objectives and losses on the same batch; another name is refused naming it."""
    recipe = config.load_recipe("kd", "mini", "surkov")
    assert recipe["loss"] == "mse_probabilities"
    augment = torch.nn.Identity()
    mse = distill.distillation_objective(recipe, augment)
    kl = distill.distillation_objective({**recipe, "loss": "kl_probabilities"}, augment)
    assert (type(mse), type(kl)) == (distill.ProbabilityMSE, distill.ProbabilityKL) and mse.name != kl.name
    torch.manual_seed(0)
    logits, teacher = torch.randn(4, 10), torch.randn(4, 10).softmax(-1)
    model, batch = (lambda x: x), {"waves": logits, "teacher_probs": teacher}  # the identity as the "network"
    assert float(mse.loss(model, batch, 0)[0]) == pytest.approx(float(distill.probability_mse(logits, teacher)))
    assert float(kl.loss(model, batch, 0)[0]) == pytest.approx(float(distill.probability_kl(logits, teacher)))
    assert float(mse.loss(model, batch, 0)[0]) != pytest.approx(float(kl.loss(model, batch, 0)[0]))
    with pytest.raises(ValueError, match="'cross_entropy' is not one of"):
        distill.distillation_objective({**recipe, "loss": "cross_entropy"}, augment)
