"""AudioSet clips as training items: whole clips, or consecutive 1 s pieces.

Surkov's teacher and student take 1 s inputs (like TAU22's clips, which are 1 s pieces of 10 s
recordings), so for them each AudioSet segment is cut into consecutive 1 s pieces, each one item; his
report does not say how he fed 10 s AudioSet clips to 1 s models, this is the study's choice. Werning's
student distils whole clips, as his code does (``piece_seconds=None``; 1 s pieces are its alternative). A segment
shorter than the nominal length (the real lists hold some, down to 1 s) gives only the pieces its audio
covers (at least one, zero-padded), so no piece is pure padding.

Audio is read from the profile's layout (:mod:`asc_lib.data.audioset_clips`); clips the source does not hold
are dropped with a warning, and the functions return the segments they kept beside the waves.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from asc_lib.config import DataPaths
from asc_lib.data.audio import DecodedRows, WaveformCache, build_waveform_cache, cache_key
from asc_lib.data.audioset_clips import clip_names, source, spans, usable_segments
from asc_lib.data.audioset_clips import list_audit as audit
from asc_lib.data.rows import DiskRows, hold, memory_budget


def reader(data: DataPaths):
    """The profile's AudioSet audio source (layout ``data.audioset_layout`` over ``data.audioset_audio_dir``)."""
    return source(data.audioset_layout, data.audioset_audio_dir)


def list_audit(lists: dict[str, pd.DataFrame], data: DataPaths) -> pd.DataFrame:
    """:func:`asc_lib.data.audioset_clips.list_audit` of the profile's lists against its audio (when it has audio)."""
    return audit(lists, reader(data) if data.audio_available else None, data.audioset_clip_seconds)


def nominal_samples(data: DataPaths, sample_rate: int) -> int:
    """Samples of one whole clip at the profile's nominal length (AudioSet: 10 s)."""
    return int(round(data.audioset_clip_seconds * sample_rate))


def clips_identity(segments: pd.DataFrame, data: DataPaths, sample_rate: int) -> str:
    """Identity of the whole clips of (usable) ``segments`` as :func:`clip_cache` decodes them (the waveform
    cache's key), known without decoding them."""
    source_ = reader(data)
    return cache_key(clip_names(segments, source_.layout), source_, sample_rate, nominal_samples(data, sample_rate),
                     "float16")


def clip_cache(segments: pd.DataFrame, data: DataPaths, sample_rate: int) -> WaveformCache:
    """The whole clips of (usable) ``segments``, decoded once at ``sample_rate`` and padded or cut to the
    nominal length (the anchors' rule), in a keyed on-disk cache."""
    source_ = reader(data)
    return build_waveform_cache(clip_names(segments, source_.layout), source_, sample_rate,
                                nominal_samples(data, sample_rate), expected=("zero-padded",))


def clip_rows(segments: pd.DataFrame, data: DataPaths, sample_rate: int, device="cpu",
              budget: int | None = None):
    """Whole clips of (usable) ``segments`` for a single pass (teacher logits): decoded once into the cache
    and held on ``device`` when they fit ``budget`` bytes (default :func:`asc_lib.data.rows.memory_budget`);
    larger sets are decoded on the fly in DataLoader workers, without writing them to disk first (AudioSet's
    1.3 TB)."""
    samples = nominal_samples(data, sample_rate)
    if len(segments) * samples * 2 > (memory_budget(device) if budget is None else budget):  # float16, as cached
        source_ = reader(data)
        return DecodedRows(clip_names(segments, source_.layout), source_, sample_rate, samples)
    return clip_cache(segments, data, sample_rate).to_tensor(device)


SHORT_TOLERANCE = 0.5  # seconds a clip may decode short of its listed span without a warning (mp3 framing)


def pieces_per_segment(segments: pd.DataFrame, nominal_seconds: float, piece_seconds: float = 1.0,
                       decoded: np.ndarray | None = None) -> np.ndarray:
    """How many consecutive ``piece_seconds`` pieces each segment's audio covers: ``floor(length / piece)``,
    at least 1 and at most what the nominal clip holds. The length is the list's span, or the ``decoded``
    length when that is shorter (a file cut short gives no piece of pure padding)."""
    most = int(nominal_seconds // piece_seconds + 1e-9)
    if most < 1:
        raise ValueError(f"clips of {nominal_seconds} s are shorter than one {piece_seconds} s piece")
    lengths = spans(segments) if decoded is None else np.minimum(spans(segments), decoded)
    return np.clip(np.floor(lengths / piece_seconds + 1e-6).astype(int), 1, most)


def short_clips(segments: pd.DataFrame, decoded: np.ndarray | None, names: list[str]) -> str | None:
    """A line naming how many clips decoded more than :data:`SHORT_TOLERANCE` short of their listed span (a
    file cut short or damaged), with an example, or None."""
    if decoded is None:
        return None
    listed = spans(segments)
    short = np.flatnonzero(decoded < listed - SHORT_TOLERANCE)
    if not len(short):
        return None
    i = int(short[0])
    return (f"{len(short)} of {len(listed)} AudioSet clips decode to less audio than their list says (e.g. "
            f"{names[i]}: {decoded[i]:.2f} s of {listed[i]:.2f} s; cut short or damaged?); only what their audio "
            "covers is used, the rest is zero padding")


@dataclass
class Pieces:
    """Consecutive pieces of the clips that were present: ``waves`` ``(pieces, samples)`` (a tensor, or rows
    on disk when they exceed the memory budget), the ``segments`` they come from and how many pieces each
    gave (``counts``, in order)."""

    waves: torch.Tensor | DiskRows
    segments: pd.DataFrame
    counts: torch.Tensor

    def per_piece(self, rows: torch.Tensor) -> torch.Tensor:
        """One row per segment -> one row per piece."""
        return rows.repeat_interleave(self.counts.to(rows.device), dim=0)


def piece_layout(counts: np.ndarray, piece: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each piece lies in the clip cache: its row, its first sample, and the piece length."""
    rows = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    return rows, (np.arange(len(rows)) - first) * piece, piece


def subset_pieces(subset: pd.DataFrame, data: DataPaths, sample_rate: int, device="cpu",
                  piece_seconds: float | None = 1.0, budget: int | None = None) -> Pieces:
    """The ``piece_seconds`` pieces of every present segment of ``subset`` (which needs a ``list`` column),
    the pieces of one segment consecutive. ``piece_seconds=None`` gives whole clips (one item each).
    Held where they fit: on ``device``, in host memory or in the on-disk cache (:func:`asc_lib.data.rows.hold`)."""
    segments = usable_segments(subset, reader(data))
    nominal = data.audioset_clip_seconds
    piece_seconds = nominal if piece_seconds is None else piece_seconds
    cache = clip_cache(segments, data, sample_rate)
    short = short_clips(segments, cache.seconds, cache.meta.get("filenames", []))
    if short:
        warnings.warn(f"{reader(data)}: {short}", stacklevel=2)
    counts = pieces_per_segment(segments, nominal, piece_seconds, decoded=cache.seconds)
    rows = cache.rows(piece_layout(counts, int(round(piece_seconds * sample_rate))))
    return Pieces(hold(rows, device, budget), segments, torch.from_numpy(counts))
