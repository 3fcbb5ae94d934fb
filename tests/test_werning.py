"""Werning: the report's settings, balanced batches, the domain classifier, the threshold table,
the distillation loss, the 527-class head swap and the logit cache."""
import numpy as np
import pandas as pd
import pytest
import torch

from asc_lib.config import load_recipe, notebook_params, paper_results, profile_recipe
from asc_lib.features.frontend import build_frontend
from asc_lib.methods import domain_selection, pruning, werning
from asc_lib.models import build_cp_mobile, complexity


def test_report_settings_are_the_defaults():
    dc = load_recipe("domain_classifier", source="werning")
    assert (dc["lr"], dc["batch_size"], dc["epochs"], dc["threshold"]) == (1e-4, 600, 400, 0.3)
    assert dc["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5] and dc["negatives"] == "eval_segments"
    assert dc["embedding"] == "passt_ensemble"
    kd = load_recipe("kd", source="werning")
    assert (kd["distillation_weight"], kd["batch_size"], kd["min_steps"], kd["lr"], kd["min_lr_fraction"]) == \
        (0.9, 32, 100_000, 5e-3, 0.01)
    assert kd["max_steps"] == 100_000  # exactly 100k iterations, not rounded up to whole epochs
    fe = build_frontend(kd["frontend"])
    assert (fe.sample_rate, fe.mel.n_mels, fe.mel.win_length, fe.mel.hop_length) == (32000, 256, 3072, 500)
    ft = load_recipe("finetune", source="werning")
    baseline = load_recipe("baseline", source="training")
    assert ft["epochs"] == 100
    assert {k: v for k, v in ft.items() if k not in ("epochs", "deviations")} == \
        {k: v for k, v in baseline.items() if k not in ("epochs", "deviations")}
    assert (kd["input"], kd["mixup"], kd["mixup_p"], kd["mixup_alpha"]) == ("clips", "werning", 0.5, 2.0)
    assert kd["roll_seconds"] == pytest.approx(10_000 / 32_000)
    assert (dc["positive_mixup"], dc["validation_share"], dc["validation_seed"]) == (0.5, 0.2, 13)
    mini = profile_recipe("mini", "kd", source="werning")
    assert set(mini["deviations"]) == {"min_steps", "max_steps"}
    # the mini fine-tuning keeps the report's length ratio to the baseline (100 of 150 epochs), on both its
    # epochs and its step floor, derived from the baseline's mini values
    mini_ft, mini_base = profile_recipe("mini", "finetune", source="werning"), profile_recipe("mini", "baseline", source="training")
    ratio = ft["epochs"] / baseline["epochs"]
    assert mini_ft["epochs"] == int(mini_base["epochs"] * ratio)
    assert mini_ft["min_steps"] == round(mini_base["min_steps"] * ratio)


def test_paper_tables_are_in_one_file():
    r = paper_results()
    t1 = r["werning_table1"]
    assert dict(zip(t1["threshold"], t1["relative_size"]))[0.3] == 14.2
    assert dict(zip(t1["threshold"], t1["accuracy"]))[0.3] == 60.0
    assert r["werning_table2"]["werning"] == [45.8, 50.3, 53.8, 55.0, 60.0]
    assert r["werning_table2"]["baseline"] == [42.4, 45.3, 50.3, 53.2, 57.0]
    assert r["surkov_table3"]["kd_small"]["accuracy"][0] == 46.47


def test_balanced_batches_are_drawn_with_replacement_and_max_mix_half_the_positives():
    """Werning's sampler: (positives + negatives) // batch iterations per epoch, each half positives and half
    negatives drawn with replacement; half of the positives get a positive partner to max-mix with."""
    labels = torch.tensor([1] * 7 + [0] * 30)
    batches = pruning.balanced_batches(labels, batch_size=10, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 37 // 10
    for index, partner in batches:
        assert len(index) == 10 and int(labels[index].sum()) == 5 and bool((labels[index[:5]] == 1).all())
        assert len(partner) == 2 and bool((labels[partner] == 1).all())  # int(5 * 0.5): half of the positives
    many = pruning.balanced_batches(labels, 10, torch.Generator().manual_seed(1))
    drawn = torch.cat([i[:50] for i, _ in pruning.balanced_batches(torch.tensor([1] * 3 + [0] * 297), 100,
                                                                 torch.Generator().manual_seed(0))])
    assert len(drawn) == 3 * 50 and len(set(drawn.tolist())) == 3  # 150 draws from 3 positives: with replacement
    again = pruning.balanced_batches(labels, 10, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, many))
    features = torch.arange(37 * 3, dtype=torch.float32).view(37, 3)
    index, partner = torch.tensor([0, 1, 8, 9]), torch.tensor([5])
    x = pruning.mixed_features(features, index, partner)
    assert torch.equal(x[0], torch.maximum(features[0], features[5])) and torch.equal(x[1:], features[index[1:]])
    assert len(pruning.balanced_batches(labels, 10, torch.Generator(), positive_mixup=0.0)[0][1]) == 0
    with pytest.raises(ValueError, match="even"):
        pruning.balanced_batches(labels, 9, torch.Generator())
    with pytest.raises(ValueError, match="both classes"):
        pruning.balanced_batches(torch.ones(5), 4, torch.Generator())


def test_validation_auc_is_one_on_separable_logits_and_precision_recall_per_threshold():
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(80, 527, generator=gen) + 2.0, torch.randn(400, 527, generator=gen) - 2.0
    x, y = torch.cat([pos, neg]), torch.cat([torch.ones(80), torch.zeros(400)])
    model, _ = pruning.train_domain_classifier(x, y, lr=1e-3, batch_size=40, epochs=5, seed=0)
    val_pos, val_neg = torch.randn(30, 527, generator=gen) + 2.0, torch.randn(30, 527, generator=gen) - 2.0
    scores = pruning.domain_scores(model, torch.cat([val_pos, val_neg]))
    auc, table = pruning.validation_quality(scores, np.r_[np.ones(30), np.zeros(30)], [0.1, 0.3, 0.5])
    assert auc == 1.0
    assert table.loc[0.3, "precision"] == 1.0 and table.loc[0.3, "recall"] == 1.0
    # a constructed case: scores 0.9, 0.6, 0.2 for positives; 0.7, 0.1, 0.05 for negatives
    auc, table = pruning.validation_quality(np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.05]), np.array([1, 1, 1, 0, 0, 0]),
                                            [0.5])
    assert auc == pytest.approx(7 / 9)  # 7 of the 9 positive-negative pairs ranked right
    row = table.loc[0.5]
    assert (row["kept positives"], row["kept negatives"], row["precision"], row["recall"]) == \
        (2, 1, pytest.approx(2 / 3, abs=1e-3), pytest.approx(2 / 3, abs=1e-3))
    with pytest.raises(ValueError, match="both classes"):
        pruning.validation_quality(np.ones(3), np.ones(3), [0.5])


def test_the_negative_holdout_is_a_fixed_fifth():
    recipe = {"validation_share": 0.2, "validation_seed": 13}
    mask = domain_selection.negative_holdout(400, recipe)
    assert mask.sum() == 80 and np.array_equal(mask, domain_selection.negative_holdout(400, recipe))
    assert domain_selection.negative_holdout(3, recipe).sum() == 1  # at least one held out, one kept
    with pytest.raises(ValueError, match="validation_share"):
        domain_selection.negative_holdout(10, {"validation_share": 1.0, "validation_seed": 0})


def test_domain_classifier_separates_a_separable_toy_set():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 527, generator=gen) + 1.0
    neg = torch.randn(300, 527, generator=gen) - 1.0
    x, y = torch.cat([pos, neg]), torch.cat([torch.ones(60), torch.zeros(300)])
    model, losses = pruning.train_domain_classifier(x, y, lr=1e-3, batch_size=40, epochs=20, seed=0)
    scores = pruning.domain_scores(model, x)
    assert losses[-1] < losses[0] / 5
    assert ((scores >= 0.5) == y.numpy().astype(bool)).mean() > 0.98


def test_the_code_variant_of_the_domain_classifier_is_sigmoid_linear_sigmoid():
    """The report's classifier is linear on the logits (the recipe's default); Werning's code applies a sigmoid
    to the logits first: its score is Sigmoid(Linear(Sigmoid(x)))."""
    assert load_recipe("domain_classifier", source="werning")["classifier"] == "linear"
    torch.manual_seed(0)
    x = torch.randn(50, 527) * 3
    for variant, inputs in (("linear", x), ("sigmoid_inputs", torch.sigmoid(x))):
        model = pruning.DomainClassifier(527, variant)
        expected = torch.sigmoid(model.linear(inputs).squeeze(-1))
        assert np.allclose(pruning.domain_scores(model, x), expected.detach().numpy())
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(60, 527, generator=gen) + 1.0, torch.randn(300, 527, generator=gen) - 1.0
    x, y = torch.cat([pos, neg]), torch.cat([torch.ones(60), torch.zeros(300)])
    model, _ = pruning.train_domain_classifier(x, y, lr=1e-2, batch_size=40, epochs=20, seed=0,
                                               variant="sigmoid_inputs")
    assert ((pruning.domain_scores(model, x) >= 0.5) == y.numpy().astype(bool)).mean() > 0.98
    with pytest.raises(ValueError, match="unknown domain classifier 'mlp'"):
        pruning.DomainClassifier(527, "mlp")


def test_threshold_table_and_pruning():
    scores = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
    table = pruning.threshold_table(scores, [0.1, 0.3, 0.5])
    assert table["kept clips"].tolist() == [9, 7, 5]
    assert table["relative size of pruned set (%)"].tolist() == [90.0, 70.0, 50.0]
    segments = pd.DataFrame({"YTID": [f"id{i}" for i in range(10)]})
    kept = pruning.prune(segments, scores, 0.5)
    assert kept["YTID"].tolist() == [f"id{i}" for i in range(5, 10)]
    with pytest.raises(ValueError, match="scores"):
        pruning.prune(segments, scores[:3], 0.5)


def test_selection_quality_against_the_generator_truth():
    pool = pd.DataFrame({"YTID": list("abcdef")})
    truth = pd.Series([True, True, False, False, False, True], index=list("abcdef"))
    q = pruning.selection_quality(pool.iloc[[0, 1, 2]], pool, truth)
    assert (q["precision"], q["recall"], q["pool in-domain share"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 0.5)
    control = pruning.random_selection(pool, 3, seed=1)
    assert len(control) == 3 and control.equals(pruning.random_selection(pool, 3, seed=1))


def test_distillation_loss_and_its_weight():
    logits, soft = torch.randn(4, 6), torch.rand(4, 6)
    hard = torch.randint(0, 2, (4, 6)).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for weight in (0.0, 0.9, 1.0):
        loss, terms = werning.distillation_loss(logits, soft, hard, weight)
        assert torch.allclose(loss, weight * bce(logits, soft) + (1 - weight) * bce(logits, hard))
    assert float(terms["kd"]) == pytest.approx(float(bce(logits, soft)))
    with pytest.raises(ValueError, match="distillation_weight"):
        werning.MultiLabelDistillation(torch.nn.Identity(), 1.5)


def test_distillation_objective_mixes_inputs_and_targets_alike():
    torch.manual_seed(0)
    obj = werning.MultiLabelDistillation(torch.nn.Identity(), 0.9, mixup_alpha=0.3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 5))
    batch = {"waves": torch.randn(6, 1, 2, 4), "teacher_logits": torch.randn(6, 5),
             "targets": torch.randint(0, 2, (6, 5)).float()}
    loss, terms = obj.loss(model, batch, 0)
    assert torch.isfinite(loss) and set(terms) == {"kd", "cls"}
    loss.backward()
    assert model[1].weight.grad is not None
    werning_obj = werning.MultiLabelDistillation(torch.nn.Identity(), 0.9, 2.0, "werning", 0.5)
    model = torch.nn.Linear(8, 5)
    loss, _ = werning_obj.loss(model, {**batch, "waves": torch.randn(6, 8)}, 0)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="unknown mixup"):
        werning.MultiLabelDistillation(torch.nn.Identity(), 0.9, 0.3, "cutmix")


def test_werning_mixup_folds_a_beta_2_2_draw_and_mixes_logits_linearly():
    """His MixUp: half of the items mixed; lambda ~ Beta(2, 2) folded to >= 0.5 (mean 0.6875, where
    EfficientAT's Beta(0.3, 0.3) folds to ~0.87); logits mixed with lambda, labels the union, waveforms mixed
    zero-mean with the same lambda."""
    torch.manual_seed(0)
    n = 4000
    logits = torch.eye(n)  # item i's logits are e_i: the mix's lambda is read off the diagonal
    targets = torch.zeros(n, 3)
    targets[:, 0] = torch.arange(n) % 2
    targets[:, 1] = 1 - targets[:, 0]
    waves = torch.randn(n, 16) + 3.0
    out_waves, out_logits, out_targets = werning.werning_mixup(waves, logits, targets, alpha=2.0, p=0.5)
    mixed = out_logits.diagonal() < 1
    lam = out_logits.diagonal()[mixed]
    assert abs(float(mixed.float().mean()) - 0.5) < 0.03
    assert bool((lam >= 0.5).all()) and abs(float(lam.mean()) - 0.6875) < 0.01
    partner = out_logits[mixed].clone()
    partner[torch.arange(len(lam)), torch.nonzero(mixed).flatten()] = 0
    partner_index = partner.argmax(1)
    assert torch.allclose(partner.max(1).values, 1 - lam)  # linear in the logits, weights lam and 1 - lam
    rows = torch.nonzero(mixed).flatten()
    centred = waves - waves.mean(1, keepdim=True)
    expected = lam.view(-1, 1) * centred[rows] + (1 - lam.view(-1, 1)) * centred[partner_index]
    assert torch.allclose(out_waves[rows], expected - expected.mean(1, keepdim=True), atol=1e-5)
    assert torch.equal(out_targets[rows], torch.maximum(targets[rows], targets[partner_index]))  # the union
    assert torch.equal(out_waves[~mixed], waves[~mixed]) and torch.equal(out_targets[~mixed], targets[~mixed])


def test_whole_clip_kd_reads_the_pools_clip_logits_without_a_second_teacher_pass(smoke_data, monkeypatch):
    """Whole-clip distillation: one item per selected clip, at its full nominal length, with one teacher vector
    per clip, the pool's row from the embedding the domain classifier scored; the teacher is not run again."""
    from asc_lib.methods import tagger

    n_classes = len(tagger.class_index(smoke_data))
    seen = []  # clips through the teacher (outside the module: its attributes are part of its cache identity)

    class CountingTeacher(torch.nn.Module):
        sample_rate = 32000

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, n_classes)

        def forward(self, waves):
            seen.append(len(waves))
            w = waves.float()
            return self.proj(torch.stack([w.mean(1), w.std(1), w.abs().max(1).values, w[:, ::7].mean(1)], 1))

    teacher = CountingTeacher()
    monkeypatch.setattr(werning, "teacher_for", lambda *a, **k: (teacher, "counting-teacher"))
    prune = profile_recipe("smoke", "domain_classifier", source="werning")
    kd = profile_recipe("smoke", "kd", source="werning")
    assert kd["input"] == "clips" and kd["mixup"] == "werning"
    emb = domain_selection.domain_embeddings(teacher, prune, "smoke", smoke_data, 5, "counting-teacher")
    pool = emb["pool_segments"]
    chosen = pool.iloc[::3].reset_index(drop=True)
    before = sum(seen)
    items, segments = werning.distillation_data(chosen, prune, kd, "smoke", smoke_data)
    assert sum(seen) == before  # no second teacher pass
    assert len(items) == len(segments) == len(chosen)
    assert items.waves.shape[1] == int(smoke_data.audioset_clip_seconds * 32000)  # whole clips
    assert items.extras["teacher_logits"].shape == (len(chosen), n_classes)
    assert torch.equal(items.extras["teacher_logits"], emb["pool"][torch.arange(0, len(pool), 3)])
    assert items.extras["targets"].shape[0] == len(chosen)
    pieces, _ = werning.distillation_data(chosen, prune, {**kd, "input": "pieces"}, "smoke", smoke_data)
    assert pieces.waves.shape[1] == 32000 and len(pieces) > len(items)
    assert sum(seen) - before >= len(pieces)  # the alternative: a teacher pass over the pieces


def test_head_swap_527_to_10_stays_within_limits():
    student = build_cp_mobile(n_classes=527)
    backbone = {k: v.clone() for k, v in student.state_dict().items() if not k.startswith("feed_forward")}
    model = werning.finetune_student(student, 10)
    assert model.n_classes == 10
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in backbone.items())
    cost = complexity.measure(model, (1, 1, 256, 65))
    assert (cost.params, cost.macs) == (61_148, 29_419_156) and cost.passes


class _Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self._calls = torch.nn.Linear(4, 3), [0]  # private: not part of the teacher's identity
        self.sample_rate = 4

    @property
    def calls(self):
        return self._calls[0]

    def forward(self, x):
        self._calls[0] += 1
        return self.linear(x)


def test_logit_cache_hits_and_invalidates(tmp_path):
    teacher, waves = _Counting(), torch.randn(6, 4)
    key = domain_selection.embedding_key("standin", "split5", [f"clip{i}" for i in range(6)], "weights-1")
    first = domain_selection.embed(teacher, waves, key, cache_dir=tmp_path, data_id="clips-v1")
    calls = teacher.calls
    # read back by the data's identity: the waveforms are not touched
    again = domain_selection.embed(teacher, torch.empty(6, 0), key, cache_dir=tmp_path, data_id="clips-v1")
    assert teacher.calls == calls and torch.equal(first, again)
    other = domain_selection.embedding_key("standin", "split5", [f"clip{i}" for i in range(6)], "weights-2")
    domain_selection.embed(teacher, waves, other, cache_dir=tmp_path, data_id="clips-v1")
    assert teacher.calls == 2 * calls
    domain_selection.embed(teacher, waves, key, cache_dir=tmp_path, data_id="clips-v2")  # other audio, same names
    assert teacher.calls == 3 * calls


def test_notebook_parameters_are_checked():
    with pytest.raises(ValueError, match="selection"):
        notebook_params("03b_pruned_kd", {"selection": "best"})
    with pytest.raises(ValueError, match="threshold"):
        notebook_params("03_domain_pruning", {"threshold": 1.5})
