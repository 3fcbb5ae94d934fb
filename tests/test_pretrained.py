"""The one resolver of pretrained checkpoints: local first, then the shared folder, then a download; hashes
enforced; the stand-in only when nothing else can be had, and then with its banner."""
import json
import warnings

import pandas as pd
import pytest
import torch

from asc_lib.config import profile_recipe
from asc_lib.config.provenance import file_digest
from asc_lib.methods import surkov, tagger
from asc_lib.models import pretrained

from conftest import shared_file


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """An empty data/weights/ and shared folder of the test's own, a one-entry catalogue, no network."""
    local, shared = tmp_path / "weights", tmp_path / "shared"
    (shared / "weights").mkdir(parents=True)
    monkeypatch.setattr(pretrained, "weights_dir", lambda: local)
    monkeypatch.setenv("ASC_SHARED_DATA", str(shared))
    monkeypatch.setenv("ASC_OFFLINE", "1")
    return local, shared / "weights"


def _catalogue(monkeypatch, sha256):
    monkeypatch.setattr(pretrained, "catalogue", lambda: {"tiny_as": {
        "file": "tiny.pt", "url": "https://example.invalid/tiny.pt", "sha256": sha256, "model": "mn04",
        "n_classes": 527}})


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.full((3,), float(value))}, path)
    return file_digest(path)


def test_the_local_file_comes_first_then_the_shared_one(folders, monkeypatch):
    local, shared = folders
    digest = _write(shared / "tiny.pt", 1)
    _catalogue(monkeypatch, digest)
    found = pretrained.resolve("tiny_as")
    assert (found.origin, found.sha256, found.pretrained) == ("shared", digest, True)
    assert pretrained.resolve("tiny.pt").path == found.path  # the file name finds it too
    (local / "tiny.pt").parent.mkdir(parents=True)
    (local / "tiny.pt").write_bytes((shared / "tiny.pt").read_bytes())
    assert pretrained.resolve("tiny_as").origin == "local"


def test_a_file_with_another_sha256_is_refused_naming_both(folders, monkeypatch):
    local, shared = folders
    good = _write(shared / "good.pt", 1)
    bad = _write(shared / "tiny.pt", 2)
    _catalogue(monkeypatch, good)
    with pytest.raises(ValueError) as err:
        pretrained.resolve("tiny_as")
    assert "tiny.pt" in str(err.value) and good in str(err.value) and bad in str(err.value)


def test_without_a_recorded_hash_the_first_is_recorded_then_enforced(folders, monkeypatch):
    local, shared = folders
    _catalogue(monkeypatch, None)
    digest = _write(local / "tiny.pt", 1)
    assert pretrained.resolve("tiny_as").sha256 == digest
    assert not (local / "sha256.json").exists()  # recorded only once the file has loaded (record_hash)
    with pytest.warns(UserWarning, match="no SHA-256 recorded"):
        pretrained.record_hash(local / "tiny.pt")
    assert json.loads((local / "sha256.json").read_text()) == {"tiny.pt": digest}
    _write(local / "tiny.pt", 3)
    with pytest.raises(ValueError, match="does not match"):
        pretrained.resolve("tiny_as")


def test_a_file_pinned_in_the_models_file_is_not_recorded_again(folders, monkeypatch):
    """The released mn04_as is pinned in params/models.yaml: loading it must not record it in sha256.json and
    warn that no hash is recorded (seen in a rendered 03_domain_pruning)."""
    local, shared = folders
    digest = _write(shared / "tiny.pt", 1)
    _catalogue(monkeypatch, digest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pretrained.record_hash(pretrained.resolve("tiny_as").path)
    assert not (local / "sha256.json").exists()


def test_nothing_to_be_had_names_every_place_tried(folders, monkeypatch):
    _catalogue(monkeypatch, "0" * 64)
    with pytest.raises(pretrained.CheckpointUnavailable) as err:
        pretrained.resolve("tiny_as")
    text = str(err.value)
    assert "weights/tiny.pt" in text and "shared/weights/tiny.pt" in text and "example.invalid" in text


def test_the_stand_in_only_when_nothing_else_can_be_had_with_its_banner(folders, monkeypatch, tmp_path):
    _catalogue(monkeypatch, "0" * 64)
    standin = tmp_path / "standin.pt"
    standin.write_bytes(b"x")
    monkeypatch.setattr(tagger, "standin_checkpoint", lambda profile, data: pretrained.Checkpoint(
        "standin", str(standin), file_digest(standin), "standin"))
    recipe = {"weights": "tiny_as", "fallback": "standin", "model": "mn04"}
    with pytest.raises(pretrained.CheckpointUnavailable):  # the paper's recipes have no fallback
        surkov.resolve_weights(None, {**recipe, "fallback": None}, "mini", None)
    with pytest.warns(UserWarning, match="NOT FROM REAL AUDIOSET PRETRAINING"):
        chosen = surkov.resolve_weights(None, recipe, "mini", None)
    assert chosen.origin == "standin" and not chosen.pretrained
    assert "NOT FROM REAL AUDIOSET PRETRAINING" in tagger.banner(chosen)
    # the real file appears: it is used, with no banner
    _catalogue(monkeypatch, _write(folders[1] / "tiny.pt", 1))
    chosen = surkov.resolve_weights(None, recipe, "mini", None)
    assert chosen.origin == "shared" and tagger.banner(chosen) is None
    assert surkov.resolve_weights("none", recipe, "mini", None).origin == "random"


def test_the_mini_profile_starts_from_the_released_mn04_as():
    mt = profile_recipe("mini", "mean_teacher", source="surkov")
    prune = profile_recipe("mini", "domain_classifier", source="werning")
    assert (mt["model"], mt["weights"], mt["fallback"]) == ("mn04", "mn04_as", "standin")
    assert (prune["embedding"], prune["fallback"]) == ("mn04_as", "standin")
    entry = pretrained.catalogue()["mn04_as"]
    assert entry["sha256"] == "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
    real = profile_recipe("real", "mean_teacher", source="surkov")
    assert (real["model"], real["weights"], real["fallback"]) == ("mn10", "mn10_as", None)


def test_the_shared_mn04_as_resolves_with_its_recorded_hash():
    shared_file("weights", "mn04_as_mAP_432.pt")
    found = pretrained.resolve("mn04_as")
    assert found.pretrained and found.sha256 == pretrained.catalogue()["mn04_as"]["sha256"]


def test_a_released_taggers_logits_are_read_at_the_mini_classes_positions():
    classes = tagger.audioset_positions(["/m/09x0r", "/m/015lz1"])
    assert classes == [0, 27]  # Speech, Singing in AudioSet's 527-class index
    released = torch.nn.Identity()
    released.audioset_order = True
    logits = torch.arange(527.0).repeat(2, 1)
    picked = tagger.class_logits(released, logits, pd.DataFrame({"mid": ["/m/015lz1", "/m/09x0r"]}))
    assert picked.tolist() == [[27.0, 0.0], [27.0, 0.0]]
    with pytest.raises(ValueError, match="2 logits for 3 classes"):
        tagger.class_logits(torch.nn.Identity(), logits[:, :2], pd.DataFrame({"mid": ["a", "b", "c"]}))
