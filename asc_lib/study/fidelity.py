"""Checks of the study's models against the real files in ``../shared/data`` (when present).

* the official DCASE2024 baseline checkpoint (CP-Mobile, split 5) loads strictly and recognises a real
  metro-station recording;
* the official EfficientAT ``mn04_as`` checkpoint loads strictly and hears rail transport in it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from asc_lib.config import paths
from asc_lib.config.provenance import load_torch
from asc_lib.data import audioset
from asc_lib.data.audio import load_clip
from asc_lib.data.dcase import SCENES
from asc_lib.features.frontend import build_frontend
from asc_lib.models.cpmobile import build_cp_mobile
from asc_lib.models.efficientat import load_efficientat

FILES = {
    "baseline_split5": ("weights", "dcase2024_baseline_split5", "model_state_dict.pt"),
    "mn04_as": ("weights", "mn04_as_mAP_432.pt"),
    "metro_recording": ("audio", "metro_station-paris.wav"),
    "class_index": ("audioset", "class_labels_indices.csv"),
}


def shared_file(name: str) -> Path:
    """Path of one of :data:`FILES` under the shared data folder; FileNotFoundError names it if absent."""
    path = paths.shared_data_dir().joinpath(*FILES[name])
    if not path.is_file():
        raise FileNotFoundError(f"{path} is absent (real reference files live in ../shared/data)")
    return path


def available() -> bool:
    """Whether every file these checks need is present."""
    return all(paths.shared_data_dir().joinpath(*parts).is_file() for parts in FILES.values())


def one_second_clips(path: Path, sample_rate: int) -> torch.Tensor:
    """A recording cut into consecutive 1 s clips ``(clips, sample_rate)`` (the tail is dropped)."""
    wave = load_clip(path, sample_rate)
    return wave[: len(wave) // sample_rate * sample_rate].reshape(-1, sample_rate)


def official_baseline():
    """The official split-5 CP-Mobile checkpoint (fp16 state dict) loaded strictly into ours."""
    model = build_cp_mobile().eval()
    model.load_state_dict(load_torch(shared_file("baseline_split5"), "official baseline checkpoint"), strict=True)
    return model


@torch.no_grad()
def baseline_scene_probabilities() -> pd.DataFrame:
    """Scene probabilities of the official baseline on the real metro-station recording (mean over its
    1 s clips), most likely first."""
    clips = one_second_clips(shared_file("metro_recording"), 32000)
    probs = official_baseline()(build_frontend("baseline").eval()(clips)).float().softmax(-1).mean(0)
    return (pd.DataFrame({"scene": SCENES, "probability": probs.numpy()})
            .sort_values("probability", ascending=False, ignore_index=True))


@torch.no_grad()
def audioset_top_labels(k: int = 5, checkpoint: str = "mn04_as", name: str = "mn04") -> pd.DataFrame:
    """The ``k`` AudioSet labels the official EfficientAT checkpoint rates highest (sigmoid) on the real
    metro-station recording (10 s, efficientat front end)."""
    model = load_efficientat(shared_file(checkpoint), name).eval()
    index = audioset.read_class_index(shared_file("class_index"))
    wave = load_clip(shared_file("metro_recording"), 32000)
    logits, _ = model(build_frontend("efficientat").eval()(wave[None]))
    top = logits[0].sigmoid().topk(k)
    return pd.DataFrame({"label": [index.display_name[int(i)] for i in top.indices],
                         "probability": top.values.numpy()})
