"""AudioSet clips as unlabeled 1 s training items.

The students and the fine-tuned teacher take 1 s inputs (like TAU22's clips, which are 1 s pieces of
10 s recordings), so each AudioSet segment is cut into consecutive 1 s pieces, each one item. The
reports do not say how they fed 10 s AudioSet clips to 1 s models; this is the study's choice.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from .audio import build_waveform_cache
from .audioset import clip_path


def clip_seconds(segments: pd.DataFrame) -> float:
    """Length of the segments (end - start); all must agree (AudioSet: 10 s)."""
    spans = (segments["end_seconds"] - segments["start_seconds"]).round(3).unique()
    if len(spans) != 1:
        raise ValueError(f"segments have different lengths {sorted(spans)[:5]} s; expected one length")
    return float(spans[0])


def subset_files(subset: pd.DataFrame, audioset_dir: str | Path) -> list[str]:
    """Audio paths of a subset (with its ``list`` column), relative to ``audioset_dir``; missing files
    raise an error naming the first one and how many are absent."""
    root = Path(audioset_dir)
    files = [str(clip_path(root, lst, ytid).relative_to(root)) for lst, ytid in zip(subset["list"], subset["YTID"])]
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(files)} AudioSet clips are absent under {root}, "
                                f"e.g. {missing[0]}")
    return files


def subset_pieces(subset: pd.DataFrame, audioset_dir: str | Path, sample_rate: int, device="cpu",
                  piece_seconds: float = 1.0, progress: bool = True) -> torch.Tensor:
    """``(segments * pieces, samples)``: every segment decoded once (cached) and cut into 1 s pieces,
    the pieces of one segment consecutive."""
    seconds = clip_seconds(subset)
    pieces = int(seconds // piece_seconds)
    if pieces < 1:
        raise ValueError(f"segments of {seconds} s are shorter than one {piece_seconds} s piece")
    piece = int(round(piece_seconds * sample_rate))
    cache = build_waveform_cache(subset_files(subset, audioset_dir), audioset_dir, sample_rate,
                                 int(round(seconds * sample_rate)), progress=progress)
    waves = cache.to_tensor(device)
    return waves[:, : pieces * piece].reshape(len(subset) * pieces, piece)
