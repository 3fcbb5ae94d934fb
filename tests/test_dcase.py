"""TAU22 / DCASE2024 metadata on the real split files and on the mini corpus; errors that name the problem."""
import shutil

import pandas as pd
import pytest

from asc_lib import config
from asc_lib.data import dcase
from asc_lib.study import explore

REAL_SIZES = {5: 6980, 10: 13960, 25: 34900, 50: 69800, 100: 139620, "test": 29680}


def test_parse_filename_of_a_real_name():
    p = dcase.parse_filename("audio/airport-lisbon-1000-40000-0-a.wav")
    assert p == {"scene": "airport", "city": "lisbon", "location": "lisbon-1000",
                 "segment": "airport-lisbon-1000-40000", "device": "a"}


@pytest.mark.parametrize("bad", ["audio/airport-lisbon-1000-40000-0-a.mp3", "audio/beach-lisbon-1-2-0-a.wav",
                                 "audio/airport-lisbon-1-2-0-s9.wav", "audio/airport.wav"])
def test_parse_filename_rejects(bad):
    with pytest.raises(ValueError, match="TAU22 file name"):
        dcase.parse_filename(bad)


def test_labels_are_alphabetical():
    assert list(dcase.SCENES) == sorted(dcase.SCENES)
    assert dcase.encode_labels(["airport", "tram", "metro_station"]).tolist() == [0, 9, 3]
    with pytest.raises(ValueError, match="beach"):
        dcase.encode_labels(["beach"])


def test_real_split_sizes_nesting_and_devices(shared_data):
    splits = explore.load_splits(shared_data)
    assert {k: len(v) for k, v in splits.items()} == REAL_SIZES
    checks = explore.structure_checks(splits)
    assert checks["holds"].all(), checks[~checks["holds"]]
    devices = splits[100]["device"].value_counts().to_dict()
    assert devices == {"a": 102150, "b": 7490, "c": 7480, "s1": 7500, "s2": 7500, "s3": 7500}
    assert splits["test"]["device"].value_counts().to_dict() == {
        "a": 3300, "b": 3290, "c": 3290, "s1": 3300, "s2": 3300, "s3": 3300, "s4": 3300, "s5": 3300, "s6": 3300}
    assert not set(splits[100]["location"]) & set(splits["test"]["location"])


def test_real_meta_agrees_with_file_names(shared_data):
    meta = dcase.read_meta(shared_data.meta_csv)
    assert len(meta) == 169300
    assert (meta["identifier"] == meta["location"]).all()
    assert (meta["source_label"] == meta["device"]).all()


def test_mini_corpus_passes_the_same_structural_checks(mini_data):
    splits = explore.load_splits(mini_data)
    checks = explore.structure_checks(splits)
    assert checks["holds"].all(), checks[~checks["holds"]]
    full = splits[100]["device"].value_counts()
    assert full["a"] > 10 * full.drop("a").max(), "device a must dominate as in TAU22 (13.6:1)"
    assert set(full.index) == {"a", "b", "c", "s1", "s2", "s3"}
    meta = dcase.read_meta(mini_data.meta_csv)
    assert (meta["identifier"] == meta["location"]).all()


def test_dataset_over_a_split(mini_data):
    frame = dcase.load_split(mini_data, 5)
    ds = dcase.SceneDataset(frame, mini_data.tau22_dir, sample_rate=32000)
    wave, label, device = ds[0]
    assert wave.shape == (32000,) and label.item() == frame["label"].iloc[0]
    assert dcase.DEVICES[device.item()] == frame["device"].iloc[0]


def test_unknown_split_names_the_split(mini_data):
    with pytest.raises(ValueError, match="unknown split 20"):
        dcase.read_split(mini_data.splits_dir, 20)


def test_missing_split_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split5\.csv"):
        dcase.read_split(tmp_path, 5)


def test_missing_column_names_file_and_column(tmp_path):
    (tmp_path / "split5.csv").write_text("filename\taudio\naudio/airport-lisbon-1-2-0-a.wav\tx\n")
    with pytest.raises(ValueError, match=r"split5\.csv: missing column\(s\) \['scene_label'\]"):
        dcase.read_split(tmp_path, 5)


def test_label_disagreeing_with_file_name(tmp_path):
    (tmp_path / "test.csv").write_text("filename\tscene_label\naudio/airport-lisbon-1-2-0-a.wav\tbus\n")
    with pytest.raises(ValueError, match="disagrees with file name"):
        dcase.read_split(tmp_path, "test")


def test_listed_but_absent_audio_names_the_file(mini_data, tmp_path):
    tau = tmp_path / "tau22"
    (tau / "audio").mkdir(parents=True)
    shutil.copy(mini_data.meta_csv, tau / "meta.csv")
    frame = dcase.read_split(mini_data.splits_dir, 5)
    for f in frame["filename"].iloc[1:]:
        (tau / f).symlink_to(mini_data.tau22_dir / f)
    data = config.DataPaths(tau, tau / "meta.csv", mini_data.splits_dir, mini_data.audioset_dir, True)
    with pytest.raises(FileNotFoundError, match=frame["filename"].iloc[0].split("/")[1]):
        dcase.load_split(data, 5)


def test_split_file_not_in_meta(mini_data, tmp_path):
    meta = pd.read_csv(mini_data.meta_csv, sep="\t")
    first = dcase.read_split(mini_data.splits_dir, 5)["filename"].iloc[0]
    meta[meta["filename"] != first].to_csv(tmp_path / "meta.csv", sep="\t", index=False)
    data = config.DataPaths(mini_data.tau22_dir, tmp_path / "meta.csv", mini_data.splits_dir,
                            mini_data.audioset_dir, True)
    with pytest.raises(ValueError, match=r"not in .*meta\.csv"):
        dcase.load_split(data, 5)


def test_the_validation_part_holds_whole_locations_of_every_scene(mini_data):
    """Recipe choices are made on a part of the training split: whole locations per scene (as the test split
    has unseen locations), at least the fraction asked of each scene's clips, the same for the same seed."""
    train = dcase.load_split(mini_data, 5)
    held = dcase.validation_mask(train, 0.2, 0)
    assert held.equals(dcase.validation_mask(train, 0.2, 0)) and not held.equals(dcase.validation_mask(train, 0.2, 1))
    assert not set(train.loc[held, "location"]) & set(train.loc[~held, "location"])
    share = held.groupby(train["scene_label"]).mean()
    assert (share >= 0.2).all() and (share < 0.6).all() and len(share) == 10
    with pytest.raises(ValueError, match="fraction"):
        dcase.validation_mask(train, 1.0, 0)
