"""The mini-DCASE generator: deterministic, real formats, and a task that is learnable but not trivial."""
import hashlib

import pytest
import soundfile as sf

from asc_lib import config
from asc_lib.data import dcase, minidata, synth
from asc_lib.study import explore

TINY = dict(cities=["lisbon", "paris", "vienna"], train_locations_per_scene=2, train_segments_per_scene=3,
            parallel_segments_per_device=1, test_locations_per_scene=1, test_segments_per_location=2,
            test_devices_per_segment=1, clips_per_segment=2,
            audioset=dict(clip_seconds=0.5, n_unbalanced=6, n_balanced=4, n_eval=4), workers=1)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return minidata.generate(tmp_path_factory.mktemp("a") / "mini", seed=7, **TINY)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = minidata.generate(tmp_path / "mini", seed=7, **TINY)
    assert _digest(tiny) == _digest(again)
    other = minidata.generate(tmp_path / "other", seed=8, **TINY)
    assert _digest(tiny) != _digest(other)


def test_tiny_layout_is_read_by_the_real_loaders(tiny):
    meta = dcase.read_meta(tiny / "tau22" / "meta.csv")
    assert len(meta) == minidata.read_manifest(tiny)["counts"]["meta"]
    splits = {s: dcase.read_split(tiny / "dcase2024_task1", s) for s in (5, 10, 25, 50, 100, "test")}
    assert set(splits["test"]["device"]) == set(dcase.DEVICES)
    info = sf.info(str(tiny / "tau22" / meta["filename"].iloc[0]))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (44100, 44100, 1, "PCM_24")


def test_parallel_recordings_share_content_across_devices(tiny):
    meta = dcase.read_meta(tiny / "tau22" / "meta.csv")
    seg = meta[meta["device"] == "b"]["segment"].iloc[0]
    same = meta[(meta["segment"] == seg) & meta["filename"].str.contains("-0-")]
    assert {"a", "b"} <= set(same["device"]), "device b records in parallel with device a, as in TAU22"


def test_no_partial_dataset_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(minidata, "_render_pool_clip", lambda args: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        minidata.generate(tmp_path / "mini", seed=1, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_device_models_differ_by_family():
    a, s4 = synth.device_profile(1, "a"), synth.device_profile(1, "s4")
    assert a["high"] > 17000 and s4["high"] < 9500 and s4["snr"] < a["snr"]
    assert synth.device_profile(1, "s4") == synth.device_profile(1, "s4")
    assert synth.device_profile(1, "s4") != synth.device_profile(1, "s5")


def test_mini_wav_format(mini_data):
    test = dcase.read_split(mini_data.splits_dir, "test")
    info = sf.info(str(mini_data.tau22_dir / test["filename"].iloc[0]))
    assert (info.samplerate, info.frames, info.subtype) == (44100, 44100, "PCM_24")


def test_mini_task_is_learnable_but_not_trivial(mini_data):
    """A linear probe on log-mel statistics: well above chance, far from perfect, and worse on unseen devices."""
    train = dcase.load_split(mini_data, 100)
    test = dcase.load_split(mini_data, "test")
    acc = explore.linear_probe(train, test, mini_data)["accuracy"]
    assert 0.3 < acc["all test"] < 0.9
    assert acc["unseen"] < acc["seen"] <= acc["real"] + 0.05
    assert acc["unseen"] < acc["real"] - 0.15


def test_test_recordings_are_many_per_scene_with_every_device_equally_often():
    """As TAU22's test split (2,064 recordings, ~1.4 devices each): the mini plan gives each scene 18 test
    recordings at 2 unseen locations, one device each, every device twice; the training recordings do not
    depend on how the test recordings are laid out."""
    cfg = config.load_profile("mini")["generator"]
    keys = ("cities", "train_locations_per_scene", "train_segments_per_scene", "parallel_segments_per_device",
            "test_locations_per_scene", "test_segments_per_location", "test_devices_per_segment")
    plan = minidata.plan_recordings(cfg["seed"], *[cfg[k] for k in keys])
    test = [r for r in plan if r["test"]]
    for scene in dcase.SCENES:
        mine = [r for r in test if r["scene"] == scene]
        assert len(mine) == 18 and len({(r["city"], r["location"]) for r in mine}) == 2
        assert len({r["segment"] for r in mine}) == 18
        devices = [d for r in mine for d in r["devices"]]
        assert sorted(devices) == sorted(dcase.DEVICES * 2)
    train = [r for r in plan if not r["test"]]
    other = minidata.plan_recordings(cfg["seed"], *[cfg[k] for k in keys[:5]], 1, 9)
    assert train == [r for r in other if not r["test"]]
    assert not {r["segment"] for r in train} & {r["segment"] for r in test}
