"""AudioSet audio as a user really has it: two layouts behind one interface, short and absent clips.

Two layouts, named by the profile's ``data.audioset_layout``:

``files``
    one audio file per segment, ``<audioset_audio_dir>/<list stem>/Y<YTID>.wav`` (read by :class:`AudioFiles`);
``hdf5``
    the PaSST / EfficientAT packing: ``<audioset_audio_dir>/<list stem>_mp3.hdf``, each with the datasets
    ``audio_name`` (``Y<YTID>.mp3``), ``mp3`` (one variable-length uint8 array per clip: the mp3 file's
    bytes) and ``target`` (527 labels packed with ``np.packbits``), decoded on the fly with PyAV as the
    anchors do (:class:`AudioSetHDF5`).

Either way a segment is read to the lists' nominal clip length (``data.audioset_clip_seconds``; 10 s on
AudioSet) with the anchors' rule: zero-padded at the end when shorter, cut when longer. The real lists
name segments shorter than 10 s (345 of 22,160 in the balanced list) and clips YouTube no longer serves;
:func:`usable_segments` drops the absent ones with a warning that counts them, and fails only when none is
left.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Sequence

import av
import h5py
import numpy as np
import pandas as pd

from asc_lib.config import paths, provenance
from asc_lib.config.atomic import atomic_path
from asc_lib.data.audio import AudioFiles, checked_samples

LAYOUTS = ("files", "hdf5")
HDF5_SUFFIX = "_mp3.hdf"


def clip_name(layout: str, list_name: str, ytid: str) -> str:
    """The name a source knows segment ``ytid`` of ``list_name`` by."""
    stem = Path(list_name).stem
    if layout == "files":
        return f"{stem}/Y{ytid}.wav"
    if layout == "hdf5":
        return f"{stem}/Y{ytid}.mp3"
    raise ValueError(f"unknown AudioSet layout {layout!r}; choose from {LAYOUTS}")


# --- mp3 -------------------------------------------------------------------------------------------------

def decode_mp3(data: bytes, what: str = "mp3 clip") -> tuple[np.ndarray, int, int]:
    """Mono float32 samples, the rate and the channel count of an mp3 file's bytes (PyAV, every frame of
    the first audio stream, as the anchors' ``decode_mp3``); errors name ``what``."""
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise ValueError(f"{what}: no audio stream")
            rate = stream.codec_context.sample_rate
            frames = [frame.to_ndarray() for frame in container.decode(stream)]
    except av.error.FFmpegError as err:
        raise ValueError(f"{what}: cannot decode mp3 ({err})") from err
    if not frames:
        raise ValueError(f"{what}: holds no samples")
    planar = [f if f.ndim == 2 and f.shape[0] <= 8 else f.reshape(1, -1) for f in frames]
    samples = checked_samples(np.concatenate(planar, axis=1).astype(np.float32, copy=False), what)
    return samples.mean(axis=0), int(rate), int(samples.shape[0])


def encode_mp3(wave: np.ndarray, sample_rate: int, bit_rate: int = 128_000) -> bytes:
    """The bytes of a mono mp3 file of ``wave`` (float in [-1, 1]) at ``sample_rate`` (LAME via PyAV)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def write_hdf5(path: str | Path, names: Sequence[str], mp3s: Sequence[bytes], targets: np.ndarray) -> Path:
    """One list in the anchors' HDF5 layout (``audio_name``, ``mp3``, packed ``target``), written atomically."""
    targets = np.asarray(targets)
    if not len(names) == len(mp3s) == len(targets):
        raise ValueError(f"{path}: {len(names)} names, {len(mp3s)} mp3s and {len(targets)} target rows differ")
    with atomic_path(Path(path), suffix=".hdf") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("audio_name", data=np.array([n.encode() for n in names], dtype="S"))
            audio = f.create_dataset("mp3", shape=(len(mp3s),), dtype=h5py.vlen_dtype(np.dtype("uint8")))
            for i, data in enumerate(mp3s):
                audio[i] = np.frombuffer(data, dtype=np.uint8)
            f.create_dataset("target", data=np.packbits(targets.astype(bool), axis=-1))
    return Path(path)


# --- the HDF5 source ---------------------------------------------------------------------------------------

class AudioSetHDF5:
    """Clips of the anchors' HDF5 files under ``root`` (``<list stem>_mp3.hdf``), named ``<list stem>/Y<YTID>.mp3``.

    Files are opened lazily and reopened in a new process (h5py handles must not cross a fork, e.g. into
    DataLoader workers)."""

    layout = "hdf5"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._index: dict[str, dict[str, int]] = {}
        self._files: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"AudioSetHDF5({paths.shown(self.root)!r})"

    def __getstate__(self):
        return {"root": self.root}

    def __setstate__(self, state):
        self.__init__(state["root"])

    def path(self, stem: str) -> Path:
        return self.root / f"{stem}{HDF5_SUFFIX}"

    def _file(self, stem: str) -> h5py.File | None:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if stem not in self._files:
            path = self.path(stem)
            if not path.is_file():
                return None
            if not os.access(path, os.R_OK):
                mode = stat.filemode(path.stat().st_mode)
                raise PermissionError(f"{path}: not readable by this user (mode {mode}); fix its permissions")
            try:
                handle = h5py.File(path, "r")
            except OSError as err:
                raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
            missing = {"audio_name", "mp3"} - set(handle.keys())
            if missing:
                raise ValueError(f"{path}: lacks dataset(s) {sorted(missing)} (expected audio_name, mp3, target)")
            self._files[stem] = handle
        return self._files[stem]

    def _rows(self, stem: str) -> dict[str, int]:
        if stem not in self._index:
            handle = self._file(stem)
            names = [] if handle is None else [n.decode() if isinstance(n, bytes) else str(n)
                                               for n in handle["audio_name"][:]]
            self._index[stem] = {n: i for i, n in enumerate(names)}
        return self._index[stem]

    def _locate(self, name: str) -> tuple[str, int | None]:
        stem, _, clip = name.partition("/")
        return stem, self._rows(stem).get(clip)

    def available(self, names: Sequence[str]) -> list[bool]:
        return [self._locate(n)[1] is not None for n in names]

    def read(self, name: str) -> tuple[np.ndarray, int, int]:
        stem, row = self._locate(name)
        if row is None:
            raise FileNotFoundError(f"{self.path(stem)}: no clip {name.partition('/')[2]!r}")
        return decode_mp3(self._file(stem)["mp3"][row].tobytes(), f"{self.path(stem)}: {name}")

    def signature(self, names: Sequence[str]) -> str:
        """Changes with the folder, the names and each HDF5 file's size and modification time."""
        names = list(names)
        stems = sorted({n.partition("/")[0] for n in names})
        h = hashlib.sha256(provenance.files_signature(self.root, [f"{s}{HDF5_SUFFIX}" for s in stems]).encode())
        h.update("\n".join(names).encode())
        return h.hexdigest()[:20]


def source(layout: str, root: str | Path):
    """The reader of ``layout`` over ``root``."""
    if layout == "files":
        return AudioFiles(root)
    if layout == "hdf5":
        return AudioSetHDF5(root)
    raise ValueError(f"unknown AudioSet layout {layout!r}; choose from {LAYOUTS}")


# --- segments: lengths and absent clips ---------------------------------------------------------------------

def spans(segments: pd.DataFrame) -> np.ndarray:
    """Each segment's length in seconds (``end - start``, to the millisecond)."""
    return (segments["end_seconds"] - segments["start_seconds"]).round(3).to_numpy()


def clip_names(segments: pd.DataFrame, layout: str) -> list[str]:
    """The source names of ``segments`` (which need a ``list`` column)."""
    if "list" not in segments.columns:
        raise ValueError("segments need a 'list' column naming the segment list each row comes from")
    return [clip_name(layout, lst, ytid) for lst, ytid in zip(segments["list"], segments["YTID"])]


class NoAudioError(FileNotFoundError):
    """None of the listed clips is present."""


def usable_segments(segments: pd.DataFrame, reader, what: str = "AudioSet clips") -> pd.DataFrame:
    """The rows of ``segments`` whose audio ``reader`` holds (index reset). Absent clips are dropped with a
    warning that counts them and names one; :class:`NoAudioError` when nothing is left."""
    names = clip_names(segments, reader.layout)
    present = np.asarray(reader.available(names), dtype=bool)
    if not present.any():
        raise NoAudioError(f"none of the {len(names)} {what} is present in {reader} (e.g. {names[0] if names else '-'}); "
                           "check the profile's data.audioset_audio_dir and data.audioset_layout")
    if not present.all():
        first = names[int(np.flatnonzero(~present)[0])]
        warnings.warn(f"{reader}: {int((~present).sum())} of {len(names)} {what} are absent (e.g. {first}); "
                      "continuing with the rest", stacklevel=2)
    return segments.loc[present].reset_index(drop=True)


def absent_count(segments: pd.DataFrame, reader) -> int:
    """How many of ``segments`` ``reader`` does not hold."""
    return int(len(segments) - sum(reader.available(clip_names(segments, reader.layout))))


def list_audit(lists: dict[str, pd.DataFrame], reader, nominal_seconds: float) -> pd.DataFrame:
    """Per segment list: how many segments it names, how many are shorter than the nominal length (and
    their median length), and, when ``reader`` is given, how many of them the audio copy holds."""
    rows = []
    for name, segments in lists.items():
        lengths = spans(segments)
        short = lengths[lengths < nominal_seconds]
        row = {"list": name, "segments": len(segments), f"shorter than {nominal_seconds:g} s": len(short),
               "median short length (s)": float(np.median(short)) if len(short) else float("nan")}
        if reader is not None:
            absent = absent_count(segments.assign(list=name), reader)
            row.update({"audio present": len(segments) - absent, "absent": absent})
        rows.append(row)
    return pd.DataFrame(rows).set_index("list")
