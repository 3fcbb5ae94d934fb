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
    mini = profile_recipe("mini", "kd", source="werning")
    assert set(mini["deviations"]) == {"min_steps", "max_steps", "feature_cache"}


def test_paper_tables_are_in_one_file():
    r = paper_results()
    t1 = r["werning_table1"]
    assert dict(zip(t1["threshold"], t1["relative_size"]))[0.3] == 14.2
    assert dict(zip(t1["threshold"], t1["accuracy"]))[0.3] == 60.0
    assert r["werning_table2"]["werning"] == [45.8, 50.3, 53.8, 55.0, 60.0]
    assert r["werning_table2"]["baseline"] == [42.4, 45.3, 50.3, 53.2, 57.0]
    assert r["surkov_table3"]["kd_small"]["accuracy"][0] == 46.47


def test_balanced_batches_are_half_and_half():
    labels = torch.tensor([1] * 7 + [0] * 30)
    batches = pruning.balanced_batches(labels, batch_size=10, seed=0, epoch=0)
    for index in batches:
        assert len(index) == 10 and int(labels[index].sum()) == 5
    negatives = torch.cat([b[5:] for b in batches])
    assert sorted(negatives.tolist()) == list(range(7, 37))  # the larger class exactly once per epoch
    again = pruning.balanced_batches(labels, 10, seed=0, epoch=0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(torch.cat(batches), torch.cat(pruning.balanced_batches(labels, 10, seed=0, epoch=1)))
    with pytest.raises(ValueError, match="even"):
        pruning.balanced_batches(labels, 9, 0)
    with pytest.raises(ValueError, match="both classes"):
        pruning.balanced_batches(torch.ones(5), 4, 0)


def test_domain_classifier_separates_a_separable_toy_set():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 527, generator=gen) + 1.0
    neg = torch.randn(300, 527, generator=gen) - 1.0
    x, y = torch.cat([pos, neg]), torch.cat([torch.ones(60), torch.zeros(300)])
    model, losses = pruning.train_domain_classifier(x, y, lr=1e-3, batch_size=40, epochs=20, seed=0, progress=False)
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
    model, _ = pruning.train_domain_classifier(x, y, lr=1e-2, batch_size=40, epochs=20, seed=0, progress=False,
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
    assert terms["kd"] == pytest.approx(float(bce(logits, soft)))
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
