"""AudioSet audio as users have it: both layouts read alike, short segments padded, absent clips counted,
the real lists through every list-level stage, and like-for-like domain inputs."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import shared_file

from asc_lib.config import DataPaths
from asc_lib.data import audioset, audioset_clips, unlabeled
from asc_lib.methods import domain_selection, labelfilter, pruning

SR = 32000


def _tone(seconds: float, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def _segments(spans, list_name="balanced_train_segments") -> pd.DataFrame:
    return pd.DataFrame({"YTID": [f"clip{i:07d}" for i in range(len(spans))],
                         "start_seconds": [10.0] * len(spans), "end_seconds": [10.0 + s for s in spans],
                         "positive_labels": [["/m/09x0r"]] * len(spans), "list": list_name})


def _both_layouts(tmp_path, segments, absent=()):
    """The same clips as per-clip WAVs and as the anchors' HDF5; ``absent`` rows get no audio."""
    waves = {}
    names, mp3s = [], []
    for i, row in segments.iterrows():
        if i in absent:
            continue
        x = _tone(row.end_seconds - row.start_seconds, 300 + 40 * i, i)
        waves[row.YTID] = x
        folder = tmp_path / "files" / row.list
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"Y{row.YTID}.wav", x, SR, subtype="PCM_16")
        names.append(f"Y{row.YTID}.mp3")
        mp3s.append(audioset_clips.encode_mp3(x, SR))
    stem = segments["list"].iloc[0]
    audioset_clips.write_hdf5(tmp_path / "hdf5" / f"{stem}_mp3.hdf", names, mp3s, np.zeros((len(names), 527)))
    return waves


def _data(tmp_path, layout, seconds=2.0) -> DataPaths:
    return DataPaths(tmp_path, tmp_path / "meta.csv", tmp_path, tmp_path, True, layout,
                     tmp_path / ("files" if layout == "files" else "hdf5"), seconds)


def test_mp3_round_trip_keeps_length_and_alignment():
    x = _tone(1.5, 440, 0)
    y, rate, channels = audioset_clips.decode_mp3(audioset_clips.encode_mp3(x, SR))
    assert (rate, channels) == (SR, 1)
    assert abs(len(y) - len(x)) <= 1152  # at most one mp3 frame of padding, as the anchors then cut it away
    n = min(len(x), len(y))
    lag = int(np.argmax(np.correlate(y[2000:6000], x[2000 - 50:6000 + 50], "valid"))) - 50
    assert lag == 0  # no encoder delay left in the decoded samples
    snr = 10 * np.log10(np.sum(x[:n] ** 2) / np.sum((x[:n] - y[:n]) ** 2))
    assert snr > 15


def test_bad_mp3_names_the_clip():
    with pytest.raises(ValueError, match="my clip"):
        audioset_clips.decode_mp3(b"not an mp3 at all" * 10, "my clip")


def test_hdf5_and_file_readers_give_the_same_waveforms(tmp_path):
    segments = _segments([2.0, 2.0, 0.6, 2.0])
    _both_layouts(tmp_path, segments)
    files = unlabeled.subset_pieces(segments, _data(tmp_path, "files"), SR, piece_seconds=None)
    hdf5 = unlabeled.subset_pieces(segments, _data(tmp_path, "hdf5"), SR, piece_seconds=None)
    assert files.waves.shape == hdf5.waves.shape == (4, 2 * SR)
    a, b = files.waves.float(), hdf5.waves.float()
    snr = 10 * torch.log10((a ** 2).sum() / ((a - b) ** 2).sum())
    assert snr > 15  # the same audio through a lossy codec: aligned, same scale
    # the short segment is zero-padded at the end in both (the anchors' pad-or-cut rule)
    assert torch.count_nonzero(a[2, int(0.6 * SR) + 1:]) == 0 and torch.count_nonzero(b[2, int(0.6 * SR) + 1200:]) == 0


def test_short_segments_give_only_the_pieces_their_audio_covers(tmp_path):
    segments = _segments([2.0, 0.6, 1.5, 2.0])
    _both_layouts(tmp_path, segments)
    pieces = unlabeled.subset_pieces(segments, _data(tmp_path, "files"), SR)
    assert pieces.counts.tolist() == [2, 1, 1, 2]
    assert pieces.waves.shape == (6, SR)
    targets = pieces.per_piece(torch.arange(4).unsqueeze(1))
    assert targets.squeeze(1).tolist() == [0, 0, 1, 2, 3, 3]
    # real lengths on a 10 s nominal clip: 1 s pieces, never more than ten, never fewer than one
    counts = unlabeled.pieces_per_segment(_segments([10.0, 9.999999999999986, 7.0, 1.0, 0.4, 11.0]), 10.0)
    assert counts.tolist() == [10, 10, 7, 1, 1, 10]  # 9.999999999999986 is 10 s written with float noise (eval list)


@pytest.mark.parametrize("layout", ["files", "hdf5"])
def test_absent_clips_are_counted_and_dropped(tmp_path, layout):
    segments = _segments([2.0, 2.0, 2.0, 2.0])
    _both_layouts(tmp_path, segments, absent={1, 3})
    data = _data(tmp_path, layout)
    with pytest.warns(UserWarning, match=r"2 of 4 AudioSet clips are absent \(e.g. balanced_train_segments/Yclip0000001"):
        pieces = unlabeled.subset_pieces(segments, data, SR)
    assert pieces.segments["YTID"].tolist() == ["clip0000000", "clip0000002"]
    assert len(pieces.waves) == 4
    assert audioset_clips.absent_count(segments, unlabeled.reader(data)) == 2


@pytest.mark.parametrize("layout", ["files", "hdf5"])
def test_a_clip_cut_short_is_named_and_gives_no_piece_of_padding(tmp_path, layout):
    """An mp3 (or WAV) cut to a third of its listed 3 s: a warning names it with both lengths, and it gives
    only the one 1 s piece its audio covers, not two more of pure padding (pieces used to be counted from the
    list alone)."""
    segments = _segments([3.0, 3.0])
    _both_layouts(tmp_path, segments.iloc[:1])
    cut = _tone(1.0, 500, 7)  # the second clip's file holds 1 s of its listed 3 s
    sf.write(tmp_path / "files" / "balanced_train_segments" / "Yclip0000001.wav", cut, SR, subtype="PCM_16")
    audioset_clips.write_hdf5(tmp_path / "hdf5" / "balanced_train_segments_mp3.hdf",
                              ["Yclip0000000.mp3", "Yclip0000001.mp3"],
                              [audioset_clips.encode_mp3(_tone(3.0, 300, 0), SR), audioset_clips.encode_mp3(cut, SR)],
                              np.zeros((2, 527)))
    with pytest.warns(UserWarning, match=r"1 of 2 AudioSet clips decode to less audio than their list says "
                                         r"\(e\.g\. balanced_train_segments/Yclip0000001\.\w+: 1\.\d+ s of 3\.00 s"):
        pieces = unlabeled.subset_pieces(segments, _data(tmp_path, layout, seconds=3.0), SR)
    assert pieces.counts.tolist() == [3, 1]
    assert all(torch.count_nonzero(piece) > 0.9 * SR for piece in pieces.waves)


def test_nothing_present_is_a_clear_error(tmp_path):
    data = _data(tmp_path, "hdf5")
    with pytest.raises(audioset_clips.NoAudioError, match="none of the 3 AudioSet clips.*audioset_audio_dir"):
        unlabeled.subset_pieces(_segments([2.0] * 3), data, SR)


def test_hdf5_cache_key_follows_the_file(tmp_path):
    segments = _segments([2.0, 2.0])
    _both_layouts(tmp_path, segments)
    data = _data(tmp_path, "hdf5")
    before = unlabeled.clips_identity(segments, data, SR)
    assert unlabeled.clips_identity(segments, data, SR) == before
    assert unlabeled.clips_identity(segments, _data(tmp_path, "files"), SR) != before  # other layout, other key
    x = _tone(2.0, 1000, 9)
    audioset_clips.write_hdf5(tmp_path / "hdf5" / "balanced_train_segments_mp3.hdf",
                              ["Yclip0000000.mp3", "Yclip0000001.mp3"], [audioset_clips.encode_mp3(x, SR)] * 2,
                              np.zeros((2, 527)))
    assert unlabeled.clips_identity(segments, data, SR) != before


def test_hdf5_without_its_datasets_is_named(tmp_path):
    import h5py

    (tmp_path / "hdf5").mkdir()
    with h5py.File(tmp_path / "hdf5" / "balanced_train_segments_mp3.hdf", "w") as f:
        f.create_dataset("waveform", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"balanced_train_segments_mp3.hdf: lacks dataset\(s\) \['audio_name', 'mp3'\]"):
        unlabeled.subset_pieces(_segments([2.0]), _data(tmp_path, "hdf5"), SR)


def test_profile_layout_is_validated():
    with pytest.raises(ValueError, match="audioset_layout is 'zip'"):
        DataPaths.from_config({"tau22_dir": "a", "meta_csv": "m.csv", "splits_dir": "s", "audioset_dir": "x",
                               "audioset_layout": "zip"})


def test_generated_profiles_describe_their_own_pool():
    from asc_lib.config import data_paths
    from asc_lib.data.minidata import default_settings, pool_settings

    for profile in ("mini", "smoke"):
        data, pool = data_paths(profile), pool_settings(default_settings(profile).get("audioset"))
        assert data.audioset_layout == pool["layout"]
        assert data.audioset_clip_seconds == pool["clip_seconds"]


def test_smoke_pool_is_hdf5_with_short_and_absent_clips(smoke_data):
    from asc_lib.data.minidata import read_manifest
    from asc_lib.methods.tagger import read_lists

    counts = read_manifest(smoke_data.tau22_dir.parent)["counts"]
    assert counts["pool_short"] > 0 and counts["pool_absent"] > 0
    lists = read_lists(smoke_data, audioset.SEGMENT_LISTS)
    reader = unlabeled.reader(smoke_data)
    assert reader.layout == "hdf5"
    assert audioset_clips.absent_count(lists, reader) == counts["pool_absent"]
    assert int((audioset_clips.spans(lists) < smoke_data.audioset_clip_seconds).sum()) == counts["pool_short"]


def test_real_lists_pass_every_list_level_stage(tmp_path):
    """The real balanced and eval lists: mixed lengths through label filtering, subset drawing, manifests,
    piece counts and the presence check (no audio here: every clip absent is a clear error)."""
    lists = {name: audioset.read_segments(shared_file("audioset", f"{name}.csv")).assign(list=name)
             for name in ("balanced_train_segments", "eval_segments")}
    both = pd.concat(lists.values(), ignore_index=True)
    # 345 + 362 segments have end - start < 10 in floating point; one of the eval list's is 9.999999999999986,
    # 10 s written with float noise, which the millisecond rounding counts as a whole clip
    assert int((audioset_clips.spans(both) < 10).sum()) == 345 + 361
    pool = labelfilter.filtered_pool(lists, set(labelfilter.table1_labels()))
    subset = labelfilter.draw_subset(pool, 1000, seed=0)
    path = audioset.write_subset(tmp_path / "subset.csv", subset, "test")
    back = audioset.read_subset(path)
    assert back["YTID"].tolist() == subset["YTID"].tolist()
    counts = unlabeled.pieces_per_segment(back, 10.0)
    assert counts.min() >= 1 and counts.max() == 10 and (counts < 10).any() == (audioset_clips.spans(back) < 10).any()
    real = DataPaths(tmp_path, tmp_path / "m.csv", tmp_path, tmp_path, True, "hdf5", tmp_path / "nothing", 10.0)
    with pytest.raises(audioset_clips.NoAudioError, match="none of the 1000"):
        unlabeled.subset_pieces(back, real, SR)


def test_length_only_accuracy():
    assert pruning.length_only_accuracy([1.0] * 5, [10.0] * 5) == 1.0
    assert pruning.length_only_accuracy([10.0] * 5, [10.0] * 5) == 0.5
    assert pruning.length_only_accuracy([10.0] * 4, [10.0, 10.0, 10.0, 4.0]) == pytest.approx(0.625)


def test_repeat_to_feeds_the_teacher_like_for_like():
    x = torch.arange(6.0).reshape(2, 3)
    assert domain_selection.repeat_to(x, 7).tolist() == [[0, 1, 2, 0, 1, 2, 0], [3, 4, 5, 3, 4, 5, 3]]
    seen = []
    teacher = domain_selection.Repeated(torch.nn.Identity(), 8)
    teacher.teacher.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    teacher(x)
    assert seen == [(2, 8)]
    recipe = {"challenge_input": "repeat"}
    data = dataclasses.replace(DataPaths.from_config({"tau22_dir": "a", "meta_csv": "m", "splits_dir": "s",
                                                      "audioset_dir": "x", "audioset_clip_seconds": 2.0}))
    wrapped = domain_selection.challenge_teacher(torch.nn.Identity(), recipe, data)
    assert wrapped(torch.zeros(1, SR)).shape == (1, 2 * SR)
    with pytest.raises(ValueError, match="unknown challenge_input"):
        domain_selection.challenge_teacher(torch.nn.Identity(), {"challenge_input": "loop"}, data)


def test_no_warning_for_padding_audioset_by_design(tmp_path):
    segments = _segments([2.0, 0.5])
    _both_layouts(tmp_path, segments)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unlabeled.subset_pieces(segments, _data(tmp_path, "files"), SR)


def test_both_layouts_holding_the_same_audio_read_identically(tmp_path):
    """The HDF5 reader and the file reader on the same clips: per-clip files holding exactly what the mp3s
    decode to give the same cached waveforms, sample for sample (padding, cutting and caching alike)."""
    segments = _segments([2.0, 0.6, 2.0])
    names, mp3s = [], []
    for i, row in segments.iterrows():
        data = audioset_clips.encode_mp3(_tone(row.end_seconds - row.start_seconds, 500 + 50 * i, i), SR)
        names.append(f"Y{row.YTID}.mp3")
        mp3s.append(data)
        decoded, rate, _ = audioset_clips.decode_mp3(data)
        folder = tmp_path / "files" / row.list
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"Y{row.YTID}.wav", decoded, rate, subtype="FLOAT")
    audioset_clips.write_hdf5(tmp_path / "hdf5" / "balanced_train_segments_mp3.hdf", names, mp3s, np.zeros((3, 527)))
    files = unlabeled.subset_pieces(segments, _data(tmp_path, "files"), SR, piece_seconds=None)
    hdf5 = unlabeled.subset_pieces(segments, _data(tmp_path, "hdf5"), SR, piece_seconds=None)
    assert torch.equal(files.waves, hdf5.waves)
