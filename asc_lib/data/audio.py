"""Audio decoding, resampling, where clips are read from, and the decoded-waveform cache.

Clips are read through a *source*: :class:`AudioFiles` (one audio file per clip under a folder, as TAU22
and a per-clip AudioSet copy) or :class:`asc_lib.data.audioset_clips.AudioSetHDF5` (the PaSST / EfficientAT
HDF5 files of mp3 bytes). A source names its clips, says which are present, decodes one, and signs the
content of a list of them for cache keys.

The cache holds one split as one contiguous ``(clips, samples)`` array in a ``.npy`` file, memory-mapped
for reading, keyed by the list of files, where they are and a signature of their content (size and
modification time of each, :func:`asc_lib.config.provenance.files_signature`), the sample rate, the clip length,
the dtype and the decoding code, and written atomically. A training loop can read items from it or move all of it to a GPU at once
(:meth:`WaveformCache.to_tensor`).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from asc_lib.config.progress import bar as progress_bar

from asc_lib.config import paths, provenance
from asc_lib.config.atomic import (
    CorruptCache,
    atomic_path,
    exclusive,
    quarantine,
    remove_leftovers,
    reserve,
    seal,
    verify,
    write_json,
)
from asc_lib.data.rows import DiskRows, hold, identified, loader_workers, read_ahead

CACHE_VERSION = 2
_DTYPES = {"float16": np.float16, "float32": np.float32, "int16": np.int16}


PEAK_LIMIT = 2.0  # decoded samples beyond ±2 are flagged: far outside [-1, 1] (a float file in other units?)


def checked_samples(data: np.ndarray, what: str) -> np.ndarray:
    """``data`` (decoded samples) if every sample is finite, else a ``ValueError`` naming ``what`` and how many
    are not; samples beyond ±:data:`PEAK_LIMIT` are kept but warned about, naming ``what`` and the peak."""
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"{what}: {bad} of {data.size} samples are not finite (NaN or infinite); repair the file "
                         "or remove it from the list")
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > PEAK_LIMIT:
        warnings.warn(f"{what}: peak amplitude {peak:.3g}, far outside [-1, 1] (float samples in other units?); "
                      "used as it is", stacklevel=3)
    return data


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a WAV (16-/24-bit PCM or float) to mono float32 in [-1, 1]; errors name the file."""
    data, sr, _channels = read_audio(path)
    return data, sr


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """:func:`read_wav` that also says how many channels the file had (before the down-mix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    if not os.access(path, os.R_OK):  # libsndfile would say only "System error"
        raise PermissionError(f"{path}: audio file is not readable by this user (mode "
                              f"{stat.filemode(path.stat().st_mode)}); fix its permissions")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot decode audio ({err})") from err
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio file holds no samples")
    return checked_samples(data, str(path)).mean(axis=1), int(sr), int(data.shape[1])


class AudioFiles:
    """One audio file per clip (WAV, FLAC, ...: what libsndfile decodes), named relative to ``root``."""

    layout = "files"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"AudioFiles({paths.shown(self.root)!r})"

    def available(self, names: Sequence[str]) -> list[bool]:
        return [(self.root / n).is_file() for n in names]

    def read(self, name: str) -> tuple[np.ndarray, int, int]:
        """Mono float32 samples, the file's rate and its channel count (errors name the file)."""
        return read_audio(self.root / name)

    def signature(self, names: Sequence[str]) -> str:
        """Changes with the folder, the names, their order and each file's size and modification time."""
        return provenance.files_signature(self.root, names)


def as_source(audio: "str | Path | AudioFiles"):
    """A source as given, or :class:`AudioFiles` of a folder."""
    return AudioFiles(audio) if isinstance(audio, (str, Path)) else audio


def fit_length(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Zero-pad or cut the last axis to ``num_samples``."""
    n = wave.shape[-1]
    if n >= num_samples:
        return wave[..., :num_samples]
    return torch.nn.functional.pad(wave, (0, num_samples - n))


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling with torchaudio (identity when the rates match)."""
    if orig_sr == new_sr:
        return wave
    return AF.resample(wave, orig_sr, new_sr)


def load_clip(path: str | Path, sample_rate: int, num_samples: int | None = None) -> torch.Tensor:
    """Decode, resample to ``sample_rate`` and fit to ``num_samples`` (1-D float32 tensor)."""
    data, sr = read_wav(path)
    wave = resample(torch.from_numpy(data), sr, sample_rate)
    return fit_length(wave, num_samples) if num_samples else wave


def fit_clips(decoded: Sequence[tuple[np.ndarray, int]], sample_rate: int, num_samples: int) -> np.ndarray:
    """``(clips, num_samples)`` float32 of decoded ``(wave, rate)`` pairs: resampled to ``sample_rate`` (the
    clips of one rate together) and zero-padded or cut to ``num_samples``."""
    out = np.zeros((len(decoded), num_samples), dtype=np.float32)
    for sr in sorted({sr for _, sr in decoded}):
        idx = [j for j, (_, s) in enumerate(decoded) if s == sr]
        longest = max(len(decoded[j][0]) for j in idx)
        stack = torch.stack([fit_length(torch.from_numpy(decoded[j][0]), longest) for j in idx])
        out[idx] = fit_length(resample(stack, sr, sample_rate), num_samples).numpy()
    return out


def cache_key(filenames: Sequence[str], audio_root, sample_rate: int, num_samples: int, dtype: str) -> str:
    """Key of a waveform cache: changes with the clips, their order, their source (layout, folder) and
    content signature (size, modification time), the rate, the length, the dtype and the decoding code."""
    source = as_source(audio_root)
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, sample_rate, num_samples, dtype, source.layout,
                         provenance.code_digest(build_waveform_cache),
                         provenance.code_digest(type(source))]).encode())
    h.update(source.signature(filenames).encode())
    return h.hexdigest()[:20]


class WaveformCache:
    """A memory-mapped ``(clips, samples)`` array of decoded, resampled waveforms."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.array = np.load(self.path, mmap_mode="r")
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.scale = 1.0 / 32768.0 if self.array.dtype == np.int16 else 1.0

    def __len__(self) -> int:
        return self.array.shape[0]

    @property
    def num_samples(self) -> int:
        return self.array.shape[1]

    @property
    def conversions(self) -> dict:
        """How many clips were resampled, down-mixed, padded or cut to fit the cache (with an example
        file each), as recorded when the cache was built."""
        return dict(self.meta.get("conversions", {}))

    @property
    def seconds(self) -> np.ndarray | None:
        """Each clip's decoded length in seconds before padding or cutting (None for a cache built before
        lengths were recorded)."""
        seconds = self.meta.get("seconds")
        return None if seconds is None else np.asarray(seconds, dtype=np.float64)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.array[i], dtype=np.float32) * self.scale)

    def to_tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The whole cache as one tensor on ``device`` (stored dtype; int16 stays int16), identified as its
        rows (:func:`asc_lib.data.rows.identified`)."""
        return identified(torch.from_numpy(np.array(self.array)).to(device), self.rows().identity)

    def rows(self, pieces: tuple | None = None) -> DiskRows:
        """The cache's rows (or ``pieces`` of them, see :class:`asc_lib.data.rows.DiskRows`) read from disk on
        demand, identified by the cache key."""
        return DiskRows(self.path, self.meta.get("key", self.path.stem), pieces)

    def load(self, device: str | torch.device = "cpu", budget: int | None = None):
        """The whole cache where it fits: on ``device``, in host memory or read from disk
        (:func:`asc_lib.data.rows.hold`)."""
        return hold(self.rows(), device, budget)


def build_waveform_cache(
    filenames: Sequence[str],
    audio_root,
    sample_rate: int,
    num_samples: int,
    dtype: str = "float16",
    cache_dir: str | Path | None = None,
    batch: int = 64,
    expected: Sequence[str] = (),
) -> WaveformCache:
    """Decode and resample ``filenames`` of ``audio_root`` (a folder, or a source such as
    :class:`AudioFiles`) once into a keyed cache.

    Returns the existing cache when the key matches; otherwise writes a new one atomically, so an
    interrupted build leaves no partial cache behind. Clips that had to be resampled, down-mixed to mono,
    zero-padded or cut are counted (``WaveformCache.conversions``); a warning names the padded and
    down-mixed ones, which the real TAU22 never needs, unless they are ``expected`` (AudioSet's short
    segments are padded by design).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"unknown cache dtype {dtype!r}; choose from {sorted(_DTYPES)}")
    filenames = list(filenames)
    cache_dir = Path(cache_dir) if cache_dir else paths.waveforms_dir()
    key = cache_key(filenames, audio_root, sample_rate, num_samples, dtype)
    path = cache_dir / f"waveforms-{key}.npy"
    cache = _verified_cache(path)
    if cache is not None:
        return cache
    with exclusive(path, "waveform cache", wait=True):  # one builder; the others wait, then read its cache
        cache = _verified_cache(path)
        if cache is not None:
            return cache
        remove_leftovers(path)  # a killed build's temporary file
        return _build(filenames, as_source(audio_root), path, key, sample_rate, num_samples, dtype, batch,
                      expected)


def _verified_cache(path: Path) -> "WaveformCache | None":
    """The cache at ``path`` if it is there and its bytes are the ones written, else None; a damaged one
    (flipped bytes, truncated, garbled) is named in a warning and moved aside, to be built again."""
    if not path.is_file():
        return None
    try:
        return WaveformCache(verify(path))
    except (CorruptCache, ValueError, OSError) as err:
        quarantine(path, str(err) if isinstance(err, CorruptCache) else f"{path}: unreadable waveform cache ({err})")
        return None


class _DecodedChunks(torch.utils.data.Dataset):
    """Chunk ``i`` of a cache build: its clips decoded, resampled and padded or cut, in the cache's dtype, with
    what each needed (name, channels, rate, decoded samples). Read by DataLoader workers ahead of the writer."""

    def __init__(self, filenames: list[str], source, sample_rate: int, num_samples: int, dtype: str, batch: int):
        self.filenames, self.source, self.batch = filenames, source, batch
        self.sample_rate, self.num_samples, self.dtype = sample_rate, num_samples, dtype

    def __len__(self) -> int:
        return -(-len(self.filenames) // self.batch)

    def __getitem__(self, i: int):
        decoded, facts = [], []
        for name in self.filenames[i * self.batch:(i + 1) * self.batch]:
            wave, sr, channels = self.source.read(name)
            decoded.append((wave, sr))
            facts.append((name, channels, sr, len(wave)))
        waves = fit_clips(decoded, self.sample_rate, self.num_samples)
        if self.dtype == "int16":
            waves = np.clip(np.round(waves * 32768.0), -32768, 32767)
        return waves.astype(_DTYPES[self.dtype]), facts


def _build(filenames: list[str], source, path: Path, key: str, sample_rate: int, num_samples: int, dtype: str,
           batch: int, expected: Sequence[str]) -> WaveformCache:
    """Write the cache: chunks decoded by DataLoader workers (:func:`asc_lib.data.rows.loader_workers`; none on
    two cores) ahead of this process, which writes them in order, so the bytes do not depend on the workers."""
    conversions: dict[str, dict] = {}
    seconds: list[float] = []

    def note(kind: str, name: str, detail: str) -> None:
        entry = conversions.setdefault(kind, {"clips": 0, "example": f"{name} ({detail})"})
        entry["clips"] += 1

    chunks = _DecodedChunks(filenames, source, sample_rate, num_samples, dtype, batch)
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=_DTYPES[dtype], shape=(len(filenames), num_samples))
        reserve(tmp, tmp.stat().st_size)  # the disk space now, or an error naming it (not a SIGBUS mid-write)
        workers = min(loader_workers(), len(chunks)) if len(chunks) > 1 else 0
        decoded = read_ahead(chunks, workers) if workers else map(chunks.__getitem__, range(len(chunks)))
        for i, (waves, facts) in enumerate(progress_bar(decoded, total=len(chunks), desc=f"caching {len(filenames)} clips", unit="batch")):
            for name, channels, sr, samples in facts:
                if channels > 1:
                    note("down-mixed", name, f"{channels} channels")
                if sr != sample_rate:
                    note(f"resampled {sr} -> {sample_rate} Hz", name, f"{sr} Hz")
                length = samples * sample_rate / sr
                seconds.append(round(samples / sr, 3))
                if length < num_samples - 0.5:
                    note("zero-padded", name, f"{samples / sr:.3f} s")
                elif length > num_samples + 0.5:
                    note("cut", name, f"{samples / sr:.3f} s")
            out[i * batch:i * batch + len(facts)] = np.asarray(waves)
        out.flush()
        del out
    write_json(path.with_suffix(".json"), {
        "key": key, "version": CACHE_VERSION, "sample_rate": sample_rate, "num_samples": num_samples,
        "dtype": dtype, "source": repr(source), "filenames": filenames, "conversions": conversions,
        "seconds": seconds,
    })
    seal(path)  # its checksum: every later open verifies the bytes
    unusual = {k: v for k, v in conversions.items() if k in ("down-mixed", "zero-padded") and k not in expected}
    if unusual:
        warnings.warn(f"{source}: " + "; ".join(f"{v['clips']} of {len(filenames)} clips {k}, e.g. {v['example']}"
                                              for k, v in unusual.items()), stacklevel=3)
    return WaveformCache(path)


class DecodedRows:
    """Clips of a source decoded on demand, resampled and padded or cut as :func:`build_waveform_cache`
    stores them (float16), without a cache: for a single pass over data too large to decode to disk first
    (the PaSST logits of AudioSet's two million clips). Indexed like :class:`asc_lib.data.rows.DiskRows`;
    ``identity`` is the key the cache would have."""

    def __init__(self, filenames: Sequence[str], audio_root, sample_rate: int, num_samples: int):
        self.filenames = list(filenames)
        self.source = as_source(audio_root)
        self.sample_rate, self.num_samples = int(sample_rate), int(num_samples)
        self.identity = cache_key(self.filenames, self.source, sample_rate, num_samples, "float16")
        self.dtype = torch.float16

    def __len__(self) -> int:
        return len(self.filenames)

    def __repr__(self) -> str:
        return f"DecodedRows({self.source}, {len(self)} clips of {self.num_samples} samples)"

    @property
    def shape(self) -> tuple:
        return (len(self), self.num_samples)

    @property
    def nbytes(self) -> int:
        return len(self) * self.num_samples * 2

    def to(self, *args, **kwargs) -> "DecodedRows":
        return self

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            index = range(*index.indices(len(self)))
        elif isinstance(index, torch.Tensor):
            index = index.tolist()
        decoded = [self.source.read(self.filenames[int(i)])[:2] for i in index]
        return torch.from_numpy(fit_clips(decoded, self.sample_rate, self.num_samples).astype(np.float16))


def describe_conversions(conversions: dict, total: int) -> str:
    """One line on what decoding did to ``total`` clips, e.g. ``3700 of 3700 resampled 44100 -> 32000 Hz``."""
    if not conversions:
        return f"all {total} clips used as stored (no resampling, down-mix, padding or cut)"
    return "; ".join(f"{v['clips']} of {total} {k}" for k, v in sorted(conversions.items()))
