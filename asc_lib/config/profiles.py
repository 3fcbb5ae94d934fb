"""Data profiles (``params/<profile>.yaml``): where the data lives and how much of it to use.

A *profile* (``mini``, ``smoke``, ``shared``, ``real``) names its data folders, its recipe set and its
report plans. Also the YAML reader every parameter file goes through and the papers' reported numbers.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from asc_lib.config import paths

SPLITS = (5, 10, 25, 50, 100)

def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = " ".join(filter(None, (getattr(err, "context", None), getattr(err, "problem", None)))) or str(err)
        raise ValueError(f"{where}: invalid YAML (line {mark.line + 1 if mark else '?'}, column "
                         f"{mark.column + 1 if mark else '?'}): {what}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def available_profiles() -> list[str]:
    """Names of the data profiles in ``params/`` (files with a top-level ``profile:`` key)."""
    names = []
    for p in sorted(paths.PARAMS_DIR.glob("*.yaml")):
        try:
            if "profile" in load_yaml(p):
                names.append(p.stem)
        except ValueError:
            continue
    return names


def load_profile(profile: str) -> dict:
    """Load ``params/<profile>.yaml`` and check it has a ``data`` section.

    A top-level section given as another profile's name (``generator: mini``, ``report: mini``) is that
    profile's section: the ``smoke`` profile shares the mini report plans (``report: mini``).
    """
    known = available_profiles()
    if profile not in known:
        candidate = paths.PARAMS_DIR / f"{profile}.yaml"
        if candidate.is_file() and "profile" not in load_yaml(candidate):  # invalid YAML raises here, with line
            raise ValueError(f"{candidate}: not a data profile (no top-level 'profile:' key)")
        raise ValueError(f"unknown profile {profile!r}; available: {', '.join(known)}")
    cfg = load_yaml(paths.PARAMS_DIR / f"{profile}.yaml")
    check_keys(cfg, PROFILE_KEYS, f"params/{profile}.yaml")
    if isinstance(cfg.get("data"), dict):
        check_keys(cfg["data"], DATA_KEYS, f"params/{profile}.yaml: data")
    for key in ("data", "generator", "report", "default_plan"):
        if isinstance(cfg.get(key), str) and cfg[key] in known and cfg[key] != profile:
            cfg[key] = load_profile(cfg[key]).get(key)
    missing = {"tau22_dir", "meta_csv", "splits_dir", "audioset_dir"} - set(cfg.get("data", {}))
    if missing:
        raise ValueError(f"params/{profile}.yaml: data section lacks {sorted(missing)}")
    return cfg


PROFILE_KEYS = ("profile", "description", "recipes", "resampling_unit", "data", "generator", "default_plan",
                "mechanisms", "report", "report_parameters")
DATA_KEYS = ("tau22_dir", "meta_csv", "splits_dir", "audioset_dir", "audio_available", "audioset_layout",
             "audioset_audio_dir", "audioset_clip_seconds")


def check_keys(mapping: Mapping[str, Any], known, where: str) -> None:
    """A ``ValueError`` naming ``where`` and the first key of ``mapping`` not in ``known``, with the closest
    known key as a suggestion (a misspelled key would otherwise be ignored and its default used)."""
    for key in mapping:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise ValueError(f"{where}: unknown key {key!r}{hint}")


def check_split(split: int) -> int:
    """Return ``split`` as an int if it is one of the five DCASE2024 training splits."""
    try:
        value = int(split)
    except (TypeError, ValueError):
        value = None
    if value not in SPLITS or (isinstance(split, float) and split != value):
        raise ValueError(f"unknown split {split!r}: the DCASE2024 training splits are {SPLITS} (percent)")
    return value


@dataclass(frozen=True)
class DataPaths:
    """Where one profile's data lives, all paths absolute."""

    tau22_dir: Path
    meta_csv: Path
    splits_dir: Path
    audioset_dir: Path
    audio_available: bool
    audioset_layout: str = "files"          # files: <audio dir>/<list>/Y<YTID>.wav; hdf5: <audio dir>/<list>_mp3.hdf
    audioset_audio_dir: Path | None = None  # default <audioset_dir>/audio
    audioset_clip_seconds: float = 10.0     # the lists' nominal clip length (shorter clips are padded to it)

    OPTIONAL = ("audio_available", "audioset_layout", "audioset_audio_dir", "audioset_clip_seconds")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> "DataPaths":
        tau22 = paths.resolve(data["tau22_dir"])
        meta = Path(data["meta_csv"])
        audioset = paths.resolve(data["audioset_dir"])
        layout = str(data.get("audioset_layout", "files"))
        if layout not in ("files", "hdf5"):
            raise ValueError(f"data.audioset_layout is {layout!r}; choose files (one audio file per clip) or "
                             "hdf5 (the PaSST / EfficientAT <list>_mp3.hdf files)")
        try:
            seconds = float(data.get("audioset_clip_seconds", 10.0))
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 0 < seconds < float("inf"):
            raise ValueError(f"data.audioset_clip_seconds must be a positive number of seconds, "
                             f"got {data.get('audioset_clip_seconds')!r}")
        available = data.get("audio_available", True)
        if not isinstance(available, bool):
            raise ValueError(f"data.audio_available must be true or false (unquoted), got {available!r}")
        audio_dir = data.get("audioset_audio_dir")
        return cls(
            tau22_dir=tau22,
            meta_csv=meta if meta.is_absolute() else tau22 / meta,
            splits_dir=paths.resolve(data["splits_dir"]),
            audioset_dir=audioset,
            audio_available=available,
            audioset_layout=layout,
            audioset_audio_dir=paths.resolve(audio_dir) if audio_dir else audioset / "audio",
            audioset_clip_seconds=seconds,
        )


def data_paths(profile: str = "mini", **overrides) -> DataPaths:
    """The data paths of ``profile``, with any non-None override (same keys as the ``data`` section)."""
    data = dict(load_profile(profile)["data"])
    unknown = set(overrides) - set(data) - set(DataPaths.OPTIONAL)
    if unknown:
        raise ValueError(f"unknown data path override(s) {sorted(unknown)}; known: {sorted(data)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return DataPaths.from_config(data)


def paper_results() -> dict:
    """The papers' reported numbers (``params/paper_results.yaml``)."""
    return load_yaml(paths.PARAMS_DIR / "paper_results.yaml")


@lru_cache(maxsize=1)
def _frontend_presets() -> dict:
    return load_yaml(paths.PARAMS_DIR / "frontends.yaml")


def frontend_presets() -> dict:
    """The log-mel front-end presets of ``params/frontends.yaml`` (name -> settings; a copy)."""
    return {name: dict(settings) for name, settings in _frontend_presets().items()}
