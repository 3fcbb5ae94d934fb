"""DCASE metrics and the output.csv submission format."""
import numpy as np
import pandas as pd
import pytest
import torch

from asc_lib.config import load_recipe
from asc_lib.data.dcase import SCENES, annotate
from asc_lib.models import build_cp_mobile
from asc_lib.training import evaluate
from asc_lib.training.experiment import half_eval


def _frame():
    rows = []
    for i, scene in enumerate(SCENES):
        for device in ("a", "b", "s1", "s4"):
            rows.append({"filename": f"audio/{scene}-lisbon-1-{i}-{device}.wav", "scene_label": scene})
    return annotate(pd.DataFrame(rows))


def _probs(frame, wrong):
    """One-hot on the true class, except the rows in ``wrong`` which predict the next class."""
    probs = np.full((len(frame), 10), 0.01)
    labels = frame["label"].to_numpy()
    pred = labels.copy()
    pred[wrong] = (labels[wrong] + 1) % 10
    probs[np.arange(len(frame)), pred] = 0.91
    return probs


def test_perfect_and_partial_scores():
    frame = _frame()
    perfect = evaluate.scene_scores(frame, _probs(frame, []))
    assert perfect["accuracy"] == 1.0 and perfect["per_group"] == {"real": 1.0, "seen": 1.0, "unseen": 1.0}
    assert np.trace(np.array(perfect["confusion"])) == len(frame)
    unseen_wrong = np.flatnonzero(frame["device"] == "s4")
    scores = evaluate.scene_scores(frame, _probs(frame, unseen_wrong))
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["per_group"]["unseen"] == 0.0 and scores["per_device"]["a"] == 1.0
    confusion = np.array(scores["confusion"])
    assert confusion.sum() == len(frame) and confusion[0, 1] == 1


def test_macro_accuracy_averages_classes_not_clips():
    frame = _frame()
    frame = pd.concat([frame, frame[frame["label"] == 0]] * 1, ignore_index=True)  # class 0 doubled
    wrong = np.flatnonzero(frame["label"].to_numpy() != 0)  # only class 0 right
    scores = evaluate.scene_scores(frame, _probs(frame, wrong))
    assert scores["accuracy"] == pytest.approx(0.1)
    assert scores["per_class"]["airport"] == 1.0


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="expected"):
        evaluate.scene_scores(_frame(), np.zeros((3, 10)))


def test_output_csv_round_trip(tmp_path):
    frame = _frame()
    probs = _probs(frame, [0])
    path = evaluate.write_output_csv(tmp_path / "output.csv", frame["filename"], probs)
    header = path.read_text().splitlines()[0].split("\t")
    assert header == ["filename", "scene_label", *SCENES]
    back = evaluate.read_output_csv(path)
    assert back.loc[0, "scene_label"] == "bus" and back.loc[1, "scene_label"] == "airport"
    assert np.allclose(back[list(SCENES)].to_numpy(), probs, atol=1e-6)
    pd.DataFrame({"file": [1]}).to_csv(tmp_path / "bad.csv", sep="\t", index=False)
    with pytest.raises(ValueError, match="bad.csv"):
        evaluate.read_output_csv(tmp_path / "bad.csv")


def test_float16_evaluation_as_the_baselines_test_step():
    """``eval_precision: fp16`` (the paper recipes of the baseline and its descendants) scores a float16 copy
    of the model on float16 inputs; the trained model stays float32; the mini recipes name the deviation."""
    assert half_eval(load_recipe("baseline")) and half_eval(load_recipe("finetune", source="werning"))
    assert not half_eval(load_recipe("baseline", "mini"))
    assert load_recipe("baseline", "mini")["deviations"]["eval_precision"]["used"] == "training"
    with pytest.raises(ValueError, match="eval_precision 'int8' unknown"):
        half_eval({"eval_precision": "int8"})
    torch.manual_seed(0)
    model = build_cp_mobile().eval()
    x = torch.randn(8, 1, 256, 65)
    full = evaluate.compute_logits(model, x, None, 4, torch.device("cpu"))
    half = evaluate.compute_logits(model, x, None, 4, torch.device("cpu"), half=True)
    assert half.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32
    assert not torch.equal(half, full) and torch.allclose(half, full, atol=1e-2, rtol=1e-2)
