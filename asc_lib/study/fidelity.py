"""Checks of the study's models against the real files in ``../shared/data`` (when present).

* the official DCASE2024 baseline checkpoint (CP-Mobile, split 5) loads strictly and recognises a real
  metro-station recording, cut the way TAU22's files were made (1 s files at 44.1 kHz, each resampled to
  32 kHz on its own when loaded: :func:`one_second_clips`);
* the official EfficientAT ``mn04_as`` checkpoint loads strictly and hears rail transport in it;
* ten real TUT Urban Acoustic Scenes 2018 recordings, one per scene (``audio/tut2018/``): what the official
  baseline predicts for each and what ``mn04_as`` hears in each, and how the baseline's predictions depend
  on the input level (:func:`real_scenes`, :func:`level_dependence`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from asc_lib.config import paths
from asc_lib.config.provenance import load_torch
from asc_lib.data import audioset
from asc_lib.data.audio import load_clip, read_wav, resample
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


TUT2018 = ("audio", "tut2018")  # <scene>.wav, 10 s, 48 kHz 24-bit stereo, at the recordings' own level


def tut2018_files() -> dict[str, Path]:
    """The ten real TUT Urban Acoustic Scenes 2018 recordings, by scene (FileNotFoundError names the folder)."""
    folder = paths.shared_data_dir().joinpath(*TUT2018)
    found = {scene: folder / f"{scene}.wav" for scene in SCENES if (folder / f"{scene}.wav").is_file()}
    if len(found) != len(SCENES):
        raise FileNotFoundError(f"{folder}: expected one recording per scene ({', '.join(SCENES)}.wav)")
    return found


def tut2018_available() -> bool:
    try:
        tut2018_files()
    except FileNotFoundError:
        return False
    return available()


def dbfs(wave: torch.Tensor) -> float:
    """RMS level in dB relative to full scale."""
    return float(20 * torch.log10(wave.float().pow(2).mean().sqrt().clamp_min(1e-12)))


def at_level(wave: torch.Tensor, level_dbfs: float | None) -> torch.Tensor:
    """``wave`` scaled to an RMS level of ``level_dbfs`` (None: as recorded)."""
    return wave if level_dbfs is None else wave * 10 ** ((level_dbfs - dbfs(wave)) / 20)


@torch.no_grad()
def _baseline_probs(clips: torch.Tensor, model=None) -> torch.Tensor:
    model = official_baseline() if model is None else model
    return model(build_frontend("baseline").eval()(clips)).float().softmax(-1)


@torch.no_grad()
def real_scenes(k: int = 3) -> pd.DataFrame:
    """Per real TUT 2018 recording (its own level): the RMS level, the official split-5 baseline's scene
    (probabilities averaged over the recording's 1 s clips, cut as TAU22's) and its probability of the true
    scene, and the ``k`` AudioSet labels ``mn04_as`` rates highest on the whole 10 s at 32 kHz."""
    model = official_baseline()
    tagger = load_efficientat(shared_file("mn04_as"), "mn04").eval()
    index = audioset.read_class_index(shared_file("class_index"))
    front = build_frontend("efficientat").eval()
    rows = []
    for scene, path in tut2018_files().items():
        probs = _baseline_probs(one_second_clips(path, 32000), model).mean(0)
        wave = load_clip(path, 32000)
        logits, _ = tagger(front(wave[None]))
        top = logits[0].sigmoid().topk(k)
        rows.append({"scene": scene, "level (dBFS RMS)": round(dbfs(wave), 1),
                     "baseline predicts": SCENES[int(probs.argmax())],
                     "p(true scene)": round(float(probs[SCENES.index(scene)]), 3),
                     "mn04_as hears": ", ".join(f"{index.display_name[int(i)]} ({v:.2f})"
                                                for i, v in zip(top.indices, top.values.tolist()))})
    return pd.DataFrame(rows).set_index("scene")


def level_dependence(levels=(None, -40.0, -30.0, -20.0, -15.0)) -> pd.DataFrame:
    """The official baseline on the ten real recordings, each scaled to one RMS level (a column; None: as
    recorded): the scene it predicts for each recording (probabilities averaged over the 1 s clips), then how
    many it names correctly and how many it calls "park"."""
    model = official_baseline()
    clips = {scene: one_second_clips(path, 32000) for scene, path in tut2018_files().items()}
    table = {}
    for level in levels:
        column = {scene: SCENES[int(_baseline_probs(at_level(c, level), model).mean(0).argmax())]
                  for scene, c in clips.items()}
        column["correct (of 10)"] = sum(p == s for s, p in column.items())
        column['called "park" (of 10)'] = list(column.values()).count("park")
        table["as recorded" if level is None else f"{level:g} dBFS"] = column
    return pd.DataFrame(table).rename_axis("recording")


def available() -> bool:
    """Whether every file these checks need is present."""
    return all(paths.shared_data_dir().joinpath(*parts).is_file() for parts in FILES.values())


CUTS = ("tau22", "resample_first")


def one_second_clips(path: Path, sample_rate: int, cut: str = "tau22") -> torch.Tensor:
    """A recording cut into consecutive 1 s clips ``(clips, sample_rate)`` (the tail is dropped).

    ``tau22``: cut at the file's own rate, then each clip resampled on its own, as TAU22's 1 s files were
    cut from the 44.1 kHz recordings and are resampled one by one when the study (or the baseline) loads
    them. ``resample_first``: the whole recording resampled, then cut (what a 10 s file would give; the
    clips' edges differ)."""
    if cut not in CUTS:
        raise ValueError(f"unknown cut {cut!r}; choose from {CUTS}")
    if cut == "resample_first":
        wave = load_clip(path, sample_rate)
        return wave[: len(wave) // sample_rate * sample_rate].reshape(-1, sample_rate)
    data, rate = read_wav(path)
    wave = torch.from_numpy(data)
    pieces = wave[: len(wave) // rate * rate].reshape(-1, rate)
    return resample(pieces, rate, sample_rate)  # row by row: each clip on its own


def official_baseline():
    """The official split-5 CP-Mobile checkpoint (fp16 state dict) loaded strictly into ours."""
    model = build_cp_mobile().eval()
    model.load_state_dict(load_torch(shared_file("baseline_split5"), "official baseline checkpoint"), strict=True)
    return model


@torch.no_grad()
def clip_probabilities(cut: str = "tau22") -> torch.Tensor:
    """The official baseline's scene probabilities ``(clips, 10)`` of the real metro-station recording's
    1 s clips (:func:`one_second_clips` with ``cut``), baseline front end, float32."""
    clips = one_second_clips(shared_file("metro_recording"), 32000, cut)
    return official_baseline()(build_frontend("baseline").eval()(clips)).float().softmax(-1)


def baseline_scene_probabilities(cut: str = "tau22") -> pd.DataFrame:
    """Scene probabilities of the official baseline on the real metro-station recording (mean over its
    1 s clips), most likely first."""
    probs = clip_probabilities(cut).mean(0)
    return (pd.DataFrame({"scene": SCENES, "probability": probs.numpy()})
            .sort_values("probability", ascending=False, ignore_index=True))


def per_clip_predictions() -> pd.DataFrame:
    """Per 1 s clip of the real recording: the official baseline's predicted scene and its probability when
    cut as TAU22's files (``tau22``), and the prediction when the recording is resampled before it is cut."""
    probs = {cut: clip_probabilities(cut) for cut in CUTS}
    top = {cut: p.max(1) for cut, p in probs.items()}
    metro = SCENES.index("metro_station")
    return pd.DataFrame({
        "second": range(len(probs["tau22"])),
        "predicted (TAU22 cut)": [SCENES[int(i)] for i in top["tau22"].indices],
        "probability": top["tau22"].values.numpy(),
        "p(metro_station)": probs["tau22"][:, metro].numpy(),
        "predicted (resampled, then cut)": [SCENES[int(i)] for i in top["resample_first"].indices],
    }).set_index("second")


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
