"""The mini stand-in AudioSet tagger: targets, mAP, the official state-dict format and the raw-wave interface."""
import numpy as np
import pandas as pd
import pytest
import torch

from asc_lib.features.frontend import build_frontend
from asc_lib.methods import tagger
from asc_lib.models.efficientat import build_efficientat, load_efficientat
from asc_lib.training.evaluate import compute_logits


def test_average_precision_by_hand():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.6]])
    targets = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    ap = tagger.average_precision(scores, targets)
    # class 0 ranks positives at 1 and 3: (1/1 + 2/3) / 2; class 1 has no positive
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2) and np.isnan(ap[1])
    assert tagger.mean_average_precision(scores, targets) == pytest.approx((1 + 2 / 3) / 2)
    assert tagger.mean_average_precision(-scores[:, :1], targets[:, :1]) < ap[0]


def test_piece_targets_repeat_segment_labels():
    classes = pd.DataFrame({"index": [0, 1, 2], "mid": ["/m/a", "/m/b", "/m/c"], "display_name": list("abc")})
    segments = pd.DataFrame({"positive_labels": [["/m/a", "/m/c"], ["/m/b"]]})
    t = tagger.piece_targets(segments, classes, 2)
    assert t.tolist() == [[1, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0]]


def test_standin_format_loads_like_an_official_checkpoint(tmp_path):
    model = build_efficientat("mn04", 54)
    path = tmp_path / "standin.pt"
    torch.save(model.state_dict(), path)
    same = load_efficientat(path, "mn04", 54)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    swapped = load_efficientat(path, "mn04", 10)  # fine-tuning: the head is replaced, the rest kept
    assert swapped.classifier[5].out_features == 10
    assert torch.equal(swapped.features[0][0].weight, model.features[0][0].weight)


def test_tagger_takes_raw_waveforms():
    t = tagger.Tagger(build_frontend("efficientat"), build_efficientat("mn04", 54)).eval()
    logits = compute_logits(t, torch.randn(3, 32000), None, 2, torch.device("cpu"))
    assert logits.shape == (3, 54) and t.sample_rate == 32000


def test_multilabel_objective_is_bce():
    obj = tagger.MultiLabel(torch.nn.Identity())
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    batch = {"waves": torch.randn(5, 4), "targets": torch.randint(0, 2, (5, 3)).float()}
    loss, _ = obj.loss(model, batch, 0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(model(batch["waves"]), batch["targets"])
    assert torch.allclose(loss, expected)
