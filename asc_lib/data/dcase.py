"""TAU Urban Acoustic Scenes 2022 Mobile and the DCASE2024 Task 1 splits.

File formats (all tab-separated, first line a header):
    ``meta.csv``        filename, scene_label, identifier, source_label
    ``split{N}.csv``    filename, scene_label      (N in 5, 10, 25, 50, 100; nested)
    ``test.csv``        filename, scene_label
File names are ``audio/<scene>-<city>-<location>-<segment>-<index>-<device>.wav``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from asc_lib.config import SPLITS, DataPaths, check_split
from asc_lib.data.audio import load_clip

SCENES = (
    "airport", "bus", "metro", "metro_station", "park",
    "public_square", "shopping_mall", "street_pedestrian", "street_traffic", "tram",
)
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
DEVICE_GROUPS = {"real": ("a", "b", "c"), "seen": ("s1", "s2", "s3"), "unseen": ("s4", "s5", "s6")}
GROUP_OF_DEVICE = {d: g for g, ds in DEVICE_GROUPS.items() for d in ds}

META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
SPLIT_COLUMNS = ("filename", "scene_label")


def read_table(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a tab-separated DCASE table, checking the file and its columns; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: the file is empty (expected a tab-separated table with columns "
                         f"{list(columns)})") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a tab-separated table: {err}") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    return frame


def parse_filename(filename: str) -> dict:
    """Split a TAU22 file name into scene, city, location, segment and device."""
    stem = Path(filename).name
    if not stem.endswith(".wav"):
        raise ValueError(f"not a TAU22 file name (no .wav): {filename!r}")
    parts = stem[:-4].split("-")
    if len(parts) < 5 or parts[0] not in SCENES or parts[-1] not in DEVICES:
        raise ValueError(
            f"not a TAU22 file name (<scene>-<city>-<location>-<segment>-<index>-<device>.wav): {filename!r}"
        )
    return {
        "scene": parts[0],
        "city": parts[1],
        "location": f"{parts[1]}-{parts[2]}",
        "segment": "-".join(parts[:-1][:4]),
        "device": parts[-1],
    }


def encode_labels(scene_labels: Sequence[str]) -> np.ndarray:
    """Scene names to integers in alphabetical order (airport = 0 ... tram = 9)."""
    index = {s: i for i, s in enumerate(SCENES)}
    unknown = sorted(set(scene_labels) - set(index))
    if unknown:
        raise ValueError(f"unknown scene label(s) {unknown}; expected one of {SCENES}")
    return np.array([index[s] for s in scene_labels], dtype=np.int64)


def annotate(frame: pd.DataFrame, source: str | Path = "<table>") -> pd.DataFrame:
    """Add parsed columns (scene, city, location, segment, device, device_group, label)."""
    try:
        parsed = pd.DataFrame([parse_filename(f) for f in frame["filename"]], index=frame.index)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err
    out = frame.join(parsed)
    mismatch = out["scene"] != out["scene_label"]
    if mismatch.any():
        row = out[mismatch].iloc[0]
        raise ValueError(f"{source}: scene_label {row.scene_label!r} disagrees with file name {row.filename!r}")
    out["device_group"] = out["device"].map(GROUP_OF_DEVICE)
    out["label"] = encode_labels(out["scene_label"].tolist())
    return out


def read_meta(meta_csv: str | Path) -> pd.DataFrame:
    """Read TAU22 ``meta.csv`` with parsed columns."""
    frame = read_table(meta_csv, META_COLUMNS)
    return annotate(frame, meta_csv)


def split_file(splits_dir: str | Path, split: int | str) -> Path:
    """Path of ``split{N}.csv`` (or ``test.csv`` for ``split='test'``)."""
    if split == "test":
        return Path(splits_dir) / "test.csv"
    return Path(splits_dir) / f"split{check_split(split)}.csv"


def read_split(splits_dir: str | Path, split: int | str) -> pd.DataFrame:
    """Read one training split (5, 10, 25, 50, 100) or ``'test'``, with parsed columns."""
    path = split_file(splits_dir, split)
    return annotate(read_table(path, SPLIT_COLUMNS), path)


def missing_audio(frame: pd.DataFrame, tau22_dir: str | Path) -> list[str]:
    """File names of ``frame`` with no file under ``tau22_dir``."""
    root = Path(tau22_dir)
    return [f for f in frame["filename"] if not (root / f).is_file()]


def check_audio(frame: pd.DataFrame, tau22_dir: str | Path, source: str = "split") -> None:
    """Raise if any file listed in ``frame`` is absent, naming the first ones."""
    missing = missing_audio(frame, tau22_dir)
    if missing:
        shown = ", ".join(str(Path(tau22_dir) / m) for m in missing[:3])
        raise FileNotFoundError(f"{len(missing)} file(s) listed in {source} are absent, e.g. {shown}")


def validation_mask(train: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Which clips of a training split form its validation part: for every scene, whole recording locations
    (``location``), drawn in a seeded order until they hold at least ``fraction`` of the scene's clips, so
    that validation, like the test split, has locations the model never trained on. Recipe choices are made
    there, never on the test split."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = pd.Series(False, index=train.index)
    for _, frame in train.groupby("scene_label", sort=True):
        counts = frame["location"].value_counts().sort_index()
        order = counts.index[rng.permutation(len(counts))]
        taken = np.cumsum(counts.loc[order].to_numpy())
        n = int(np.searchsorted(taken, fraction * len(frame))) + 1
        if n >= len(order):
            raise ValueError(f"scene {frame['scene_label'].iloc[0]!r} has too few locations for a validation part")
        held |= train["location"].isin(order[:n]) & (train["scene_label"] == frame["scene_label"].iloc[0])
    return held


def load_split(data: DataPaths, split: int | str, check_files: bool = True) -> pd.DataFrame:
    """A split joined with ``meta.csv`` (identifier, source_label) and, optionally, its audio checked."""
    frame = read_split(data.splits_dir, split)
    meta = read_table(data.meta_csv, META_COLUMNS)[["filename", "identifier", "source_label"]]
    merged = frame.merge(meta, on="filename", how="left", validate="one_to_one")
    absent = merged["identifier"].isna()
    if absent.any():
        raise ValueError(
            f"{split_file(data.splits_dir, split)}: {int(absent.sum())} file(s) not in {data.meta_csv}, "
            f"e.g. {merged.loc[absent, 'filename'].iloc[0]!r}"
        )
    if check_files and data.audio_available:
        check_audio(merged, data.tau22_dir, str(split_file(data.splits_dir, split)))
    return merged


class SceneDataset(Dataset):
    """A split as (waveform, label, device index) items.

    ``waveforms`` is either a :class:`asc_lib.data.audio.WaveformCache` aligned with ``frame`` (fast path) or
    ``None``: then each item is decoded and resampled from its WAV (the reference approach).
    """

    def __init__(self, frame: pd.DataFrame, tau22_dir: str | Path, sample_rate: int = 32000,
                 num_samples: int | None = None, waveforms=None):
        self.frame = frame.reset_index(drop=True)
        self.tau22_dir = Path(tau22_dir)
        self.sample_rate = sample_rate
        self.num_samples = num_samples if num_samples is not None else sample_rate
        self.labels = torch.as_tensor(self.frame["label"].to_numpy(copy=True), dtype=torch.long)
        self.devices = torch.as_tensor(self.frame["device"].map(DEVICES.index).to_numpy(copy=True), dtype=torch.long)
        if waveforms is not None and len(waveforms) != len(self.frame):
            raise ValueError(f"waveform cache holds {len(waveforms)} clips, split has {len(self.frame)}")
        self.waveforms = waveforms

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: int):
        if self.waveforms is not None:
            wave = self.waveforms[i]
        else:
            wave = load_clip(self.tau22_dir / self.frame.at[i, "filename"], self.sample_rate, self.num_samples)
        return wave, self.labels[i], self.devices[i]
