"""WAV decoding (16/24-bit), resampling, and the waveform cache (keyed, atomic, GPU-ready)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from asc_lib import audio


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
        (tmp_path / "audio").mkdir(exist_ok=True)
        sf.write(tmp_path / name, _tone(freq=200.0 * (i + 1)), 44100, subtype="PCM_24")
        names.append(name)
    return names


def test_cache_matches_direct_decoding_and_is_reused(tmp_path, monkeypatch):
    names = _files(tmp_path)
    cache = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c", progress=False)
    assert len(cache) == 5 and cache.num_samples == 32000
    direct = audio.load_clip(tmp_path / names[3], 32000, 32000)
    assert torch.allclose(cache[3], direct, atol=1e-3)  # float16 storage
    assert cache.to_tensor().shape == (5, 32000) and cache.to_tensor().dtype == torch.float16
    monkeypatch.setattr(audio, "read_wav", lambda *a: pytest.fail("a cache hit must not decode"))
    again = audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c", progress=False)
    assert again.path == cache.path


def test_cache_key_changes_with_files_rate_length_dtype():
    base = audio.cache_key(["a.wav", "b.wav"], 32000, 32000, "float16")
    assert base != audio.cache_key(["b.wav", "a.wav"], 32000, 32000, "float16")
    assert base != audio.cache_key(["a.wav", "b.wav"], 16000, 32000, "float16")
    assert base != audio.cache_key(["a.wav", "b.wav"], 32000, 16000, "float16")
    assert base != audio.cache_key(["a.wav", "b.wav"], 32000, 32000, "int16")


def test_int16_cache_scales_back(tmp_path):
    names = _files(tmp_path, 2)
    cache = audio.build_waveform_cache(names, tmp_path, 16000, 16000, dtype="int16", cache_dir=tmp_path / "c",
                                       progress=False)
    assert cache.to_tensor().dtype == torch.int16
    assert torch.allclose(cache[0], audio.load_clip(tmp_path / names[0], 16000, 16000), atol=1e-3)


def test_interrupted_cache_build_leaves_nothing(tmp_path, monkeypatch):
    names = _files(tmp_path, 3)
    real = audio.read_wav
    calls = {"n": 0}

    def flaky(path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(audio, "read_wav", flaky)
    with pytest.raises(KeyboardInterrupt):
        audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c", batch=1, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_corrupt_file_in_cache_build_is_named(tmp_path):
    names = _files(tmp_path, 2)
    (tmp_path / names[1]).write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="clip1.wav"):
        audio.build_waveform_cache(names, tmp_path, 32000, 32000, cache_dir=tmp_path / "c", progress=False)
