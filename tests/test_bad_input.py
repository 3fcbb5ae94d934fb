"""Bad input gets a clear error naming the file or parameter, and written files get ordinary permissions."""
import os

import pytest
import torch

from asc_lib import config
from asc_lib.config import atomic
from asc_lib.data import audioset, dcase
from asc_lib.config.provenance import file_digest
from asc_lib.models import passt


def test_empty_split_file_is_named(tmp_path):
    (tmp_path / "split5.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"split5\.csv: the file is empty"):
        dcase.read_table(tmp_path / "split5.csv", dcase.SPLIT_COLUMNS)
    (tmp_path / "class_labels_indices.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"class_labels_indices\.csv: the file is empty"):
        audioset.read_class_index(tmp_path / "class_labels_indices.csv")


def test_unclosed_quote_in_a_segment_list_is_named(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_text("# Segments csv created x\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n"
                    'aaa, 0.000, 10.000, "/m/09x0r\n'
                    'bbb, 0.000, 10.000, "/m/07yv9"\n')
    with pytest.raises(ValueError, match=r"eval_segments\.csv:4: a quote opened here is not closed"):
        audioset.read_segments(path)
    path.write_text('aaa, 0.000, 10.000, "/m/09x0r,speech"\n')
    with pytest.raises(ValueError, match=r"eval_segments\.csv:1: .*malformed label"):
        audioset.read_segments(path)


def test_a_gpu_that_is_not_there_is_refused_at_validation():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA device"):
        config.notebook_params("00b_baseline", {"device": "cuda"})
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda"):
        config.notebook_params("00b_baseline", {"device": "gpu"})
    assert config.notebook_params("00b_baseline", {"device": "cpu"}).device == "cpu"


def test_atomic_writes_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic.write_json(tmp_path / "metrics.json", {"a": 1})
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert atomic.write_text(tmp_path / "private.txt", "x").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_weights_with_another_sha256_are_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    passt.verify_sha256(path, file_digest(path))
    with pytest.raises(ValueError, match=r"weights\.pt: SHA-256 .* does not match the recorded"):
        passt.verify_sha256(path, "0" * 64)
    with pytest.raises(ValueError, match="does not match"):
        passt.load_passt(path, sha256="0" * 64)


def test_non_finite_and_out_of_range_samples_are_named(tmp_path):
    """A float WAV with NaN samples is refused, naming the file and the count; one with samples of ±459 is
    read but warned about, naming the file and the peak."""
    import numpy as np
    import soundfile as sf

    from asc_lib.data import audio

    wave = (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    broken = wave.copy()
    broken[100:110] = np.nan
    sf.write(tmp_path / "nan.wav", broken, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav: 10 of 16000 samples are not finite"):
        audio.read_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "loud.wav", wave * 4590, 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"loud\.wav: peak amplitude 459, far outside \[-1, 1\]"):
        audio.read_audio(tmp_path / "loud.wav")
    sf.write(tmp_path / "fine.wav", wave, 16000, subtype="FLOAT")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.allclose(audio.read_audio(tmp_path / "fine.wav")[0], wave)


def test_profile_mistakes_are_named_with_the_key(tmp_path, monkeypatch):
    """A misspelled key (``recipe:`` for ``recipes:``) would silently select the paper recipes; invalid YAML
    would read as an unknown profile; a quoted "false" would read as true."""
    from asc_lib.config import paths, profiles

    text = (paths.PARAMS_DIR / "mini.yaml").read_text()
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    (tmp_path / "custom.yaml").write_text(text.replace("profile: mini", "profile: custom")
                                          .replace("\nrecipes: mini", "\nrecipe: mini"))
    with pytest.raises(ValueError, match=r"custom\.yaml: unknown key 'recipe'; did you mean 'recipes'\?"):
        profiles.load_profile("custom")
    (tmp_path / "custom.yaml").write_text(text.replace("profile: mini", "profile: custom")
                                          .replace("  meta_csv: meta.csv", "  meta_cvs: meta.csv"))
    with pytest.raises(ValueError, match=r"custom\.yaml: data: unknown key 'meta_cvs'; did you mean 'meta_csv'\?"):
        profiles.load_profile("custom")
    (tmp_path / "broken.yaml").write_text("profile: broken\ndata: [unclosed\n")
    with pytest.raises(ValueError, match=r"broken\.yaml:3:1: invalid YAML \(line 3, column 1\): while parsing a flow sequence expected"):
        profiles.load_profile("broken")
    data = {"tau22_dir": "a", "meta_csv": "m.csv", "splits_dir": "s", "audioset_dir": "d"}
    with pytest.raises(ValueError, match="data.audio_available must be true or false"):
        profiles.DataPaths.from_config({**data, "audio_available": "false"})
    for bad in ("abc", float("nan"), -1):
        with pytest.raises(ValueError, match="data.audioset_clip_seconds must be a positive number"):
            profiles.DataPaths.from_config({**data, "audioset_clip_seconds": bad})


def test_recipe_mistakes_are_named_with_the_key(tmp_path, monkeypatch):
    """A misspelled mini/smoke setting or override, a setting of the wrong kind, and ``.nan`` in a recipe are
    errors naming the file, the recipe and the key (a misspelled key would otherwise leave the paper's value)."""
    from asc_lib.config import paths, recipes

    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    good = "paper: {epochs: 150, lr: 0.005, mixup: werning, shift: true}\n"
    for mini, error in (("{why: short, epoch: 3}", r"custom\.yaml: recipe r: .*mini: 'epoch' is not a setting of "
                                                   r"paper: \(did you mean 'epochs'\?\)"),
                        ("{epochs: 3}", r"custom\.yaml: recipe r: .*epochs changes the paper's value without a reason"),
                        ("{epochs: {value: 3, why: ''}}", r"custom\.yaml: recipe r: .*at least 1 character"),
                        ("{why: short, epochs: '3'}", r"custom\.yaml: recipe r \(mini\): epochs: Input should be a valid integer"),
                        ("{why: short, lr: .nan}", r"recipe r \(mini\): lr: Input should be a finite number"),
                        ("{why: short, shift: 'no'}", r"recipe r \(mini\): shift: Input should be a valid boolean")):
        (tmp_path / "custom.yaml").write_text("r:\n  " + good + f"  mini: {mini}\n")
        with pytest.raises(ValueError, match=error):
            recipes.load_recipe("r", "mini", "custom")
    (tmp_path / "custom.yaml").write_text("r:\n  " + good + "  mini: {lr: {value: 0.01, why: measured}}\n")
    recipe = recipes.load_recipe("r", "mini", "custom", epochs=3)
    assert recipe["deviations"] == {"epochs": {"paper": 150, "used": 3, "why": ""},
                                    "lr": {"paper": 0.005, "used": 0.01, "why": "measured"}}
    assert recipes.load_recipe("r", "paper", "custom", epochs=3, lr=1)["lr"] == 1  # ints and floats are numbers
    with pytest.raises(ValueError, match=r"recipe r \(paper\): override 'mixpu' is not a setting \(did you mean 'mixup'\?\)"):
        recipes.load_recipe("r", "paper", "custom", mixpu="none")


def test_an_unreadable_audio_file_is_named_as_such(tmp_path, monkeypatch):
    """A file of mode 000 read as "cannot decode audio ... System error" (libsndfile's words): now it is named
    as not readable, with its mode. As root every file reads, so there the check is exercised by patching
    ``os.access``; elsewhere the real mode does it."""
    import numpy as np
    import soundfile as sf

    from asc_lib.data import audio

    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(160, dtype=np.float32), 16000)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root
            monkeypatch.setattr(audio.os, "access", lambda p, mode: str(p) != str(path))
        with pytest.raises(PermissionError, match=r"locked\.wav: audio file is not readable by this user "
                                                  r"\(mode -{10}\); fix its permissions"):
            audio.read_audio(path)
    finally:
        path.chmod(0o644)


def test_the_scene_task_obeys_the_memory_budget(smoke_data, monkeypatch):
    """00b's data (SceneTask) read the budget: an invalid one is refused naming the variable, a tiny one streams
    the split from disk instead of holding it."""
    from asc_lib.data.rows import BUDGET_ENV, DiskRows
    from asc_lib.training.experiment import SceneTask

    monkeypatch.setenv(BUDGET_ENV, "abc")
    with pytest.raises(ValueError, match="ASC_MEMORY_BUDGET_GB='abc'"):
        SceneTask(smoke_data, 5, "baseline", "cpu")
    monkeypatch.setenv(BUDGET_ENV, "0.000001")
    assert isinstance(SceneTask(smoke_data, 5, "baseline", "cpu").train_waves, DiskRows)


def test_weights_of_another_architecture_or_not_a_state_dict_are_named(tmp_path):
    """A file of the right name with other content: the error names the file and says what is wrong, without
    torch's advice to load untrusted pickles."""
    from asc_lib.methods import surkov
    from asc_lib.models.efficientat import build_efficientat, load_efficientat

    other = tmp_path / "mn04_as_mAP_432.pt"
    torch.save(build_efficientat("mn10", 527).state_dict(), other)  # mn10's weights under mn04's name
    with pytest.raises(ValueError, match=r"mn04_as_mAP_432\.pt: not an EfficientAT mn04 checkpoint: another "
                                         r"architecture \(.*shape mismatches"):
        load_efficientat(other, "mn04", 10)
    torch.save({"something": [1, 2, 3]}, tmp_path / "teacher.pt")
    with pytest.raises(ValueError, match=r"teacher\.pt: not a fine-tuned teacher saved by 02_mean_teacher"):
        surkov.load_teacher_file(tmp_path / "teacher.pt")
    (tmp_path / "garbled.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"garbled\.pt: cannot read EfficientAT mn04 checkpoint: not a readable") as err:
        load_efficientat(tmp_path / "garbled.pt", "mn04")
    assert "weights_only=False" not in str(err.value)


def test_a_refused_weights_file_does_not_pin_its_hash(tmp_path, monkeypatch):
    """Trust on first use records a hash only once the file has loaded into its network: a wrong file put in
    data/weights/ first is refused and not recorded, so the right one put there later loads."""
    import json

    from asc_lib.models import pretrained
    from asc_lib.models.efficientat import build_efficientat, load_efficientat

    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    wrong = tmp_path / "custom_as.pt"
    torch.save(build_efficientat("mn10", 527).state_dict(), wrong)
    with pytest.raises(ValueError, match="another architecture"):
        load_efficientat(wrong, "mn04")
    assert not (tmp_path / "sha256.json").exists()
    torch.save(build_efficientat("mn04", 527).state_dict(), wrong)  # the right file, same name
    with pytest.warns(UserWarning, match="no SHA-256 recorded for it; recorded"):
        load_efficientat(wrong, "mn04")
    assert json.loads((tmp_path / "sha256.json").read_text())["custom_as.pt"] == pretrained.file_digest(wrong)
