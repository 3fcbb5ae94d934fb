"""WAV decoding (16/24-bit), resampling, and the waveform cache (keyed, atomic, GPU-ready)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from asc_lib.data import audio


def _tone(sr=44100, seconds=1.0, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("subtype,tol", [("PCM_16", 1 / 2 ** 15), ("PCM_24", 1 / 2 ** 23)])
def test_decode_16_and_24_bit(tmp_path, subtype, tol):
    x = _tone()
    sf.write(tmp_path / "x.wav", x, 44100, subtype=subtype)
    y, sr = audio.read_wav(tmp_path / "x.wav")
    assert sr == 44100 and y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= tol


def test_stereo_is_mixed_to_mono(tmp_path):
    x = _tone()
    sf.write(tmp_path / "s.wav", np.stack([x, -x], 1), 44100, subtype="PCM_16")
    y, _ = audio.read_wav(tmp_path / "s.wav")
    assert y.ndim == 1 and np.max(np.abs(y)) < 1e-4


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.wav"):
        audio.read_wav(tmp_path / "nothere.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError, match=r"bad\.wav: cannot decode"):
        audio.read_wav(tmp_path / "bad.wav")


def test_resample_keeps_the_tone(tmp_path):
    sf.write(tmp_path / "x.wav", _tone(freq=1000.0), 44100, subtype="PCM_24")
    y = audio.load_clip(tmp_path / "x.wav", 32000, 32000)
    assert y.shape == (32000,)
    spectrum = torch.fft.rfft(y).abs()
    assert abs(spectrum.argmax().item() - 1000) <= 1  # 1 Hz bins at 1 s


def _files(tmp_path, n=5):
    names = []
    for i in range(n):
        name = f"audio/clip{i}.wav"
        (tmp_path / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, _tone(freq=200.0 * (i + 1)), 44100, subtype="PCM_24")
        names.append(name)
    return names


def test_cache_matches_direct_decoding_and_is_reused(tmp_path, monkeypatch):
    names = _files(tmp_path)
    cache = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c")
    assert len(cache) == 5 and cache.num_samples == 32000
    direct = audio.load_clip(tmp_path / names[3], 32000, 32000)
    assert torch.allclose(cache[3], direct, atol=1e-3)  # float16 storage
    assert cache.to_tensor().shape == (5, 32000) and cache.to_tensor().dtype == torch.float16
    monkeypatch.setattr(audio.sf, "read", lambda *a, **k: pytest.fail("a cache hit must not decode"))
    again = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c")
    assert again.path == cache.path


def test_cache_key_changes_with_files_folder_rate_length_dtype(tmp_path):
    names = _files(tmp_path, 2)
    base = audio.cache_key(names, tmp_path, 32000, 32000, "float16")
    assert base == audio.cache_key(names, tmp_path, 32000, 32000, "float16")
    assert base != audio.cache_key(names[::-1], tmp_path, 32000, 32000, "float16")
    assert base != audio.cache_key(names, tmp_path / "elsewhere", 32000, 32000, "float16")
    assert base != audio.cache_key(names, tmp_path, 16000, 32000, "float16")
    assert base != audio.cache_key(names, tmp_path, 32000, 16000, "float16")
    assert base != audio.cache_key(names, tmp_path, 32000, 32000, "int16")


def test_other_audio_under_the_same_names_rebuilds_the_cache(tmp_path):
    """A profile pointed at another copy of the data (same file names, other audio) must not read the
    first copy's cache; nor may a file rewritten in place."""
    first, second = tmp_path / "first", tmp_path / "second"
    names = _files(first, 2)
    for i, name in enumerate(names):
        (second / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(second / name, _tone(freq=3000.0 + 100 * i), 44100, subtype="PCM_24")
    one = audio.build_waveform_cache(names, first, 32000, 32000, cache_dir=tmp_path / "c")
    two = audio.build_waveform_cache(names, second, 32000, 32000, cache_dir=tmp_path / "c")
    assert one.path != two.path
    assert torch.allclose(two[0], audio.load_clip(second / names[0], 32000, 32000), atol=1e-3)
    sf.write(first / names[0], _tone(freq=5000.0, seconds=0.5), 44100, subtype="PCM_16")  # rewritten in place
    with pytest.warns(UserWarning, match="zero-padded"):
        three = audio.build_waveform_cache(names, first, 32000, 32000, cache_dir=tmp_path / "c")
    assert three.path != one.path
    # (the cache resamples a batch padded to its longest clip: only the samples at the 0.5 s edge differ)
    assert torch.allclose(three[0][:15000], audio.load_clip(first / names[0], 32000, 32000)[:15000], atol=1e-3)


def test_conversions_are_counted_and_unusual_ones_warned(tmp_path):
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio/short.wav", _tone(seconds=0.5), 44100, subtype="PCM_24")
    sf.write(tmp_path / "audio/stereo.wav", np.stack([_tone(), _tone()], 1), 44100, subtype="PCM_24")
    sf.write(tmp_path / "audio/slow.wav", _tone(sr=22050), 22050, subtype="PCM_16")
    sf.write(tmp_path / "audio/long.wav", _tone(sr=32000, seconds=1.5), 32000, subtype="PCM_16")
    names = ["audio/short.wav", "audio/stereo.wav", "audio/slow.wav", "audio/long.wav"]
    with pytest.warns(UserWarning, match=r"1 of 4 clips down-mixed, e\.g\. audio/stereo\.wav"):
        cache = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c")
    conv = cache.conversions
    assert conv["zero-padded"]["clips"] == 1 and "short.wav" in conv["zero-padded"]["example"]
    assert conv["down-mixed"]["clips"] == 1
    assert conv["resampled 44100 -> 32000 Hz"]["clips"] == 2 and conv["resampled 22050 -> 32000 Hz"]["clips"] == 1
    assert conv["cut"]["clips"] == 1 and "long.wav" in conv["cut"]["example"]
    line = audio.describe_conversions(conv, 4)
    assert "1 of 4 zero-padded" in line and "2 of 4 resampled 44100 -> 32000 Hz" in line
    assert audio.WaveformCache(cache.path).conversions == conv  # recorded with the cache


def test_int16_cache_scales_back(tmp_path):
    names = _files(tmp_path, 2)
    cache = audio.build_waveform_cache(names, tmp_path, 16000, 16000, dtype="int16", cache_dir=tmp_path / "c")
    assert cache.to_tensor().dtype == torch.int16
    assert torch.allclose(cache[0], audio.load_clip(tmp_path / names[0], 16000, 16000), atol=1e-3)


def test_interrupted_cache_build_leaves_nothing(tmp_path, monkeypatch):
    names = _files(tmp_path, 3)
    real = audio.sf.read
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(audio.sf, "read", flaky)
    monkeypatch.setenv("ASC_LOADER_WORKERS", "0")  # the interruption counted in this process
    with pytest.raises(KeyboardInterrupt):
        audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c", batch=1)
    # nothing but the empty lock file (kept: deleting a flock file races with a waiting process)
    assert [p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")] == []


def test_a_cache_built_by_decoding_workers_has_the_same_bytes(tmp_path, monkeypatch):
    names = _files(tmp_path, 5)
    monkeypatch.setenv("ASC_LOADER_WORKERS", "0")
    alone = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "a", batch=2)
    monkeypatch.setenv("ASC_LOADER_WORKERS", "2")
    workers = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "b", batch=2)
    assert torch.equal(alone.to_tensor(), workers.to_tensor()) and alone.meta["seconds"] == workers.meta["seconds"]
    assert alone.conversions == workers.conversions


def test_corrupt_file_in_cache_build_is_named(tmp_path):
    names = _files(tmp_path, 2)
    (tmp_path / names[1]).write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="clip1.wav"):
        audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c")


def _two_clips(folder):
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    for i in range(2):
        sf.write(folder / f"c{i}.wav", (0.1 * np.sin(np.arange(8000) * (i + 1) / 7)).astype(np.float32), 16000)
    return ["c0.wav", "c1.wav"]


def test_a_killed_cache_build_leaves_a_temporary_file_that_the_next_build_removes(tmp_path):
    from asc_lib.data import audio

    names = _two_clips(tmp_path / "clips")
    key = audio.cache_key(names, tmp_path / "clips", 16000, 8000, "float16")
    leftover = tmp_path / "cache" / f".waveforms-{key}.npy.abc123.tmp.npy"  # as atomic_path names it
    leftover.parent.mkdir()
    leftover.write_bytes(b"\0" * 4096)
    cache = audio.build_waveform_cache(names, tmp_path / "clips", 16000, 8000, cache_dir=tmp_path / "cache")
    assert len(cache) == 2 and not leftover.exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp.npy")) == []


def test_a_cache_build_killed_for_real_is_cleaned_up_by_the_next_build(tmp_path):
    """kill -9 of a process in the middle of a cache build (decoding slowed so the kill lands mid-way): it
    leaves its temporary file and its lock; the lock dies with it (flock), and the next build removes the
    leftover and writes a complete cache."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from asc_lib.data import audio

    names = _two_clips(tmp_path / "clips") * 20
    script = (
        "import time\n"
        "from asc_lib.data import audio\n"
        "real = audio.sf.read\n"
        "def slow(*a, **k):\n"
        "    time.sleep(0.2)\n"
        "    return real(*a, **k)\n"
        "audio.sf.read = slow\n"
        f"audio.build_waveform_cache({names!r}, {str(tmp_path / 'clips')!r}, 16000, 8000,"
        f" cache_dir={str(tmp_path / 'cache')!r}, batch=1)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cache").glob(".waveforms-*.tmp.npy")):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)
    time.sleep(0.5)  # a few clips in
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftover = list((tmp_path / "cache").glob(".waveforms-*.tmp.npy"))
    assert proc.returncode == -signal.SIGKILL and len(leftover) == 1
    cache = audio.build_waveform_cache(names, tmp_path / "clips", 16000, 8000, cache_dir=tmp_path / "cache")
    assert len(cache) == 40 and not leftover[0].exists()
    assert torch.equal(cache[1], audio.load_clip(tmp_path / "clips" / names[1], 16000, 8000).half().float())


def test_a_full_disk_is_an_error_naming_the_cache_and_the_bytes_with_nothing_left_behind(tmp_path, monkeypatch):
    """Checked before the memory map is written (which would end in SIGBUS on a full disk): the error names the
    file and the space it needs, and no temporary file stays to keep the disk full."""
    import errno
    import shutil
    from collections import namedtuple

    from asc_lib.config import atomic
    from asc_lib.data import audio

    names = _two_clips(tmp_path / "clips")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(OSError, match=r"waveforms-\w+\.npy\.\w+\.tmp\.npy: needs 0\.0 MB but the disk holds") as err:
        audio.build_waveform_cache(names, tmp_path / "clips", 16000, 8000, cache_dir=tmp_path / "cache")
    assert err.value.errno == errno.ENOSPC
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".waveforms")] == []
    assert not list((tmp_path / "cache").glob("*.tmp*")) and not list((tmp_path / "cache").glob(".*.tmp*"))
    monkeypatch.undo()
    assert shutil.disk_usage(tmp_path).free > 0


def test_a_real_full_filesystem_fails_cleanly(tmp_path):
    """On a 1 MB tmpfs (when this machine lets the test mount one) a cache of 4 MB fails with the path named,
    no SIGBUS, and no temporary file left."""
    import subprocess

    from asc_lib.data import audio

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
    try:
        names = _two_clips(tmp_path / "clips") * 128  # 256 clips of 8000 float16 samples: 4 MB
        with pytest.raises(OSError, match=r"small/.*waveforms-.*: needs .* MB"):
            audio.build_waveform_cache(names, tmp_path / "clips", 16000, 8000, cache_dir=mount)
        assert not list(mount.glob(".*.tmp*")) and not list(mount.glob("*.npy"))
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garble"])
def test_a_damaged_waveform_cache_is_named_moved_aside_and_rebuilt(tmp_path, damage):
    """A flipped byte, a truncated file or garbage where the cache was: the next build names the file, moves it
    aside and decodes the clips again, giving the original samples (never trusting the damaged bytes)."""
    from asc_lib.data import audio

    names = _two_clips(tmp_path / "clips")
    build = lambda: audio.build_waveform_cache(names, tmp_path / "clips", 16000, 8000,  # noqa: E731
                                               cache_dir=tmp_path / "cache")
    good = build().to_tensor().clone()
    path = next((tmp_path / "cache").glob("waveforms-*.npy"))
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0xFF
    elif damage == "truncate":
        raw = raw[:len(raw) // 2]
    else:
        raw = bytearray(b"not an npy file at all")
    path.write_bytes(bytes(raw))
    from asc_lib.config import atomic
    atomic._VERIFIED.clear()  # a new process: nothing verified yet
    with pytest.warns(UserWarning, match=rf"{path.name}: .*moved aside to {path.name}\.corrupt and built again"):
        again = build()
    assert torch.equal(again.to_tensor(), good)
    assert (path.parent / f"{path.name}.corrupt").exists()


def test_damaged_teacher_outputs_are_named_and_computed_again(tmp_path):
    from asc_lib.config import atomic
    from asc_lib.training import distill

    teacher = torch.nn.Sequential(torch.nn.Linear(16, 3))
    waves = torch.randn(10, 16)
    key = {"kind": "test"}
    first = distill.teacher_outputs(teacher, waves, key, cache_dir=tmp_path)
    path = next(tmp_path.glob("logits-*.npy"))
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x55
    path.write_bytes(bytes(raw))
    atomic._VERIFIED.clear()
    with pytest.warns(UserWarning, match=r"logits-\w+\.npy: its bytes changed since it was written"):
        again = distill.teacher_outputs(teacher, waves, key, cache_dir=tmp_path)
    assert torch.equal(first, again)
    path.write_bytes(path.read_bytes()[:64])
    atomic._VERIFIED.clear()
    with pytest.warns(UserWarning, match=r"truncated"):
        assert torch.equal(distill.teacher_outputs(teacher, waves, key, cache_dir=tmp_path), first)


def test_two_processes_needing_the_same_teacher_outputs_compute_them_once(tmp_path):
    """The race seen when two notebooks embedded the same pool at once: the second waits for the first's
    cache instead of computing into the same partial file (one renamed it away from under the other)."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from asc_lib.training import distill\n"
        "torch.manual_seed(0)\n"
        "teacher = torch.nn.Linear(4000, 3)\n"
        "waves = torch.randn(400, 4000, generator=torch.Generator().manual_seed(1))\n"
        f"out = distill.teacher_outputs(teacher, waves, {{'kind': 'race'}}, cache_dir={str(tmp_path)!r}, batch_size=2,"
        ")\n"
        "print(float(out.sum()))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert outs[0][0] == outs[1][0]
    assert len(list(tmp_path.glob("logits-*.npy"))) == 1 and not list(tmp_path.glob("*.partial*"))
