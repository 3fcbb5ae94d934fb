"""Tables and checks for the data-exploration notebook (``00_data_exploration``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from asc_lib.config import SPLITS, DataPaths, paths
from asc_lib.data import audio, dcase
from asc_lib.features.frontend import build_frontend


def load_splits(data: DataPaths) -> dict:
    """The five training splits and the test split, joined with the metadata (5, 10, ..., 'test')."""
    return {s: dcase.load_split(data, s, check_files=False) for s in (*SPLITS, "test")}


def split_summary(splits: dict) -> pd.DataFrame:
    """One row per split: clips, recordings, locations, cities and clips per device."""
    rows = []
    for name, f in splits.items():
        row = {"split": f"split{name}" if name != "test" else "test", "clips": len(f),
               "recordings": f["segment"].nunique(), "locations": f["location"].nunique(),
               "cities": f["city"].nunique()}
        row.update(f["device"].value_counts().reindex(dcase.DEVICES, fill_value=0).to_dict())
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def structure_checks(splits: dict) -> pd.DataFrame:
    """The structural facts every DCASE2024-style corpus must satisfy, one row per check."""
    train = [s for s in SPLITS if s in splits]
    test = splits["test"]
    checks = []
    for small, large in zip(train, train[1:]):
        ok = set(splits[small]["filename"]) <= set(splits[large]["filename"])
        checks.append((f"split{small} ⊂ split{large}", ok))
    full = splits[train[-1]]
    checks += [
        ("no file in both split100 and test", not (set(full["filename"]) & set(test["filename"]))),
        ("no test location in training", not (set(full["location"]) & set(test["location"]))),
        ("devices s4-s6 only in test", not (set(full["device"]) & set(dcase.DEVICE_GROUPS["unseen"]))
         and set(dcase.DEVICE_GROUPS["unseen"]) <= set(test["device"])),
        ("device a dominates every training split",
         all(splits[s]["device"].value_counts().idxmax() == "a" for s in train)),
        ("all ten scenes in every split", all(splits[s]["scene_label"].nunique() == 10 for s in splits)),
    ]
    return pd.DataFrame(checks, columns=["check", "holds"]).set_index("check")


def scene_device_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Clips per scene (rows) and device (columns)."""
    return pd.crosstab(frame["scene_label"], frame["device"]).reindex(
        columns=[d for d in dcase.DEVICES if d in set(frame["device"])])


def clips_per_location(frame: pd.DataFrame) -> pd.DataFrame:
    """Clips per recording location, with its scene and city."""
    return (frame.groupby(["location", "scene_label", "city"]).size()
            .rename("clips").reset_index().sort_values("clips", ascending=False))


def example_files(frame: pd.DataFrame, data: DataPaths, n: int, seed: int = 0) -> list[tuple[str, Path]]:
    """Up to ``n`` (title, path) example clips of different scenes, or the real metro-station
    recording of ``../shared/data`` when the profile has no audio."""
    if not data.audio_available:
        real = paths.shared_data_dir() / "audio" / "metro_station-paris.wav"
        return [("metro_station-paris (real recording, first second)", real)] if real.is_file() else []
    rng = np.random.default_rng(seed)
    scenes = rng.choice(sorted(frame["scene_label"].unique()), size=min(n, 10), replace=False)
    out = []
    for s in scenes:
        rows = frame[frame["scene_label"] == s]
        row = rows.iloc[int(rng.integers(len(rows)))]
        out.append((Path(row["filename"]).stem, data.tau22_dir / row["filename"]))
    return out


def frontend_views(path: Path, presets=("baseline", "surkov16k", "efficientat"), seconds: float = 1.0) -> dict:
    """The log-mel spectrogram of the first ``seconds`` of ``path`` under each front-end preset."""
    views = {}
    for name in presets:
        fe = build_frontend(name).eval()
        wave = audio.load_clip(path, fe.sample_rate, int(fe.sample_rate * seconds))
        with torch.no_grad():
            views[name] = fe(wave.unsqueeze(0))[0, 0].numpy()
    return views


def clip_statistics(frame: pd.DataFrame, data: DataPaths, feature: str = "baseline") -> torch.Tensor:
    """Per-clip mean and standard deviation of each mel band (a cheap, fixed embedding)."""
    fe = build_frontend(feature).eval()
    cache = audio.build_waveform_cache(frame["filename"], data.tau22_dir, fe.sample_rate, fe.sample_rate)
    waves, feats = cache.to_tensor(), []
    with torch.no_grad():
        for start in range(0, len(waves), 512):
            mel = fe(waves[start:start + 512].float()).squeeze(1)
            feats.append(torch.cat([mel.mean(-1), mel.std(-1)], 1))
    return torch.cat(feats)


def linear_probe(train: pd.DataFrame, test: pd.DataFrame, data: DataPaths, seed: int = 0,
                 steps: int = 300, feature: str = "baseline") -> pd.DataFrame:
    """Accuracy of a linear classifier on clip statistics, overall and per device group.

    A sanity check of the data, not a model of the study: it shows whether scenes are separable and how
    much the device shift costs.
    """
    x_train, x_test = clip_statistics(train, data, feature), clip_statistics(test, data, feature)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    y = torch.as_tensor(train["label"].to_numpy(copy=True))
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x_train.shape[1], len(dcase.SCENES))
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe((x_train - mean) / std), y).backward()
        opt.step()
    with torch.no_grad():
        pred = probe((x_test - mean) / std).argmax(1).numpy()
    correct = pd.Series(pred == test["label"].to_numpy(), index=test.index)
    rows = {"all test": correct.mean()}
    rows.update({g: correct[test["device_group"] == g].mean() for g in dcase.DEVICE_GROUPS})
    return pd.DataFrame({"accuracy": rows}).rename_axis("test clips")
