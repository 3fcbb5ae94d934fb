"""EfficientAT against the official mn04 checkpoint and the reference parameter counts."""
import pytest
import torch
from conftest import shared_file

from asc_lib.models.efficientat import build_efficientat, load_efficientat
from asc_lib.study import fidelity


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_reference():
    assert _params(build_efficientat("mn10", 527)) == 4_876_831
    assert _params(build_efficientat("mn10", 10)) == 4_214_554  # Surkov's 4.214M
    assert _params(build_efficientat("mn04", 527)) == 983_599


def test_forward_returns_logits_and_pooled_features():
    model = build_efficientat("mn04", 10).eval()
    logits, feats = model(torch.randn(2, 1, 128, 100))
    assert logits.shape == (2, 10) and feats.shape == (2, 6 * 64)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="mn99"):
        build_efficientat("mn99")


def test_official_mn04_loads_strictly_and_with_a_new_head():
    path = shared_file("weights", "mn04_as_mAP_432.pt")
    full = load_efficientat(path, "mn04")
    ten = load_efficientat(path, "mn04", n_classes=10)
    assert ten.classifier[5].out_features == 10
    assert torch.equal(full.classifier[2].weight, ten.classifier[2].weight), "only classifier.5 is replaced"


def test_mn04_hears_rail_transport_in_the_real_metro_station():
    shared_file("weights", "mn04_as_mAP_432.pt")
    shared_file("audio", "metro_station-paris.wav")
    top5 = set(fidelity.audioset_top_labels(k=5)["label"])
    expected = {"Train", "Rail transport", "Railroad car, train wagon", "Subway, metro, underground", "Vehicle"}
    assert len(top5 & expected) >= 4, top5