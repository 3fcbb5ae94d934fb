"""Seed 000 (Surkov) glue: where the label-filtered subsets live, the EfficientAT teacher to fine-tune,
and labeled + unlabeled training data. Settings: ``params/surkov.yaml``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import torch

from . import audioset, paths
from .experiment import runs_dir
from .labelfilter import read_subset
from .models.efficientat import build_efficientat, load_efficientat
from .params import DataPaths
from .train import TrainData
from .unlabeled import subset_pieces

SUBSETS = ("none", "small", "large")


def subset_path(profile: str, name: str) -> Path:
    """The segment list of subset ``name`` (small / large) written by ``01_audioset_label_filtering``."""
    return runs_dir(profile) / "audioset_subsets" / f"{name}_segments.csv"


def load_subset(profile: str, name: str) -> pd.DataFrame:
    """A label-filtered subset; a clear error says which notebook writes it when it is missing."""
    if name not in SUBSETS[1:]:
        raise ValueError(f"unknown subset {name!r}; choose from {SUBSETS}")
    path = subset_path(profile, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebooks/01_audioset_label_filtering.ipynb "
                                f"with profile {profile!r} first")
    return read_subset(path)


def source_lists(data: DataPaths, names) -> dict[str, pd.DataFrame]:
    """The segment lists ``names`` that exist under the profile's AudioSet folder (at least one)."""
    found = {n: audioset.read_segments(data.audioset_dir / f"{n}.csv")
             for n in names if (data.audioset_dir / f"{n}.csv").is_file()}
    if not found:
        raise FileNotFoundError(f"none of {list(names)} exists in {data.audioset_dir}")
    return found


def weights_file(name: str | None) -> Path | None:
    """Resolve an official checkpoint: a path as given, else a file of that name in ``data/weights/``
    or in the shared reference folder. None stays None (random initialisation)."""
    if not name:
        return None
    for candidate in (paths.resolve(name), paths.data_dir() / "weights" / name, paths.shared_data_dir() / "weights" / name):
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"checkpoint {name!r} not found as a path, in {paths.data_dir() / 'weights'} "
                            f"or in {paths.shared_data_dir() / 'weights'}; download it from the EfficientAT release")


def efficientat_teacher(model: str, weights: str | None, n_classes: int = 10) -> torch.nn.Module:
    """EfficientAT ``model`` with a fresh ``n_classes`` head, from an official checkpoint when given."""
    path = weights_file(weights)
    return load_efficientat(path, model, n_classes) if path else build_efficientat(model, n_classes)


def with_unlabeled(labeled: TrainData, unlabeled_waves: torch.Tensor | None) -> TrainData:
    """Labeled items followed by unlabeled ones (label -1)."""
    if unlabeled_waves is None or len(unlabeled_waves) == 0:
        return labeled
    waves = torch.cat([labeled.waves, unlabeled_waves.to(labeled.waves.device, labeled.waves.dtype)])
    labels = torch.cat([labeled.labels, torch.full((len(unlabeled_waves),), -1, dtype=torch.long,
                                                   device=labeled.labels.device)])
    return TrainData(waves, labels)


def unlabeled_waves(profile: str, data: DataPaths, subset: str, sample_rate: int, device="cpu",
                    progress: bool = True) -> torch.Tensor | None:
    """The 1 s pieces of a label-filtered subset (None for ``"none"``)."""
    if subset == "none":
        return None
    return subset_pieces(load_subset(profile, subset), data.audioset_dir, sample_rate, device, progress=progress)


def file_digest(path: str | Path) -> str:
    """Content hash of a file (identifies a teacher checkpoint in cache keys)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


def write_subsets(profile: str, pool: pd.DataFrame, sizes: dict[str, int], seed: int,
                  allow_smaller: bool = True) -> pd.DataFrame:
    """Draw each subset (``{"small": n, "large": m}``) from ``pool`` with ``seed`` and write it with
    :func:`asc_lib.labelfilter.write_subset`; return what was asked, drawn and where it went."""
    from .labelfilter import draw_subset, write_subset

    rows = []
    for name, size in sizes.items():
        subset = draw_subset(pool, size, seed, allow_smaller)
        path = write_subset(subset_path(profile, name), subset,
                            f"by asc_lib (Surkov {name} subset: {len(subset)} of {len(pool)} filtered segments, seed {seed})")
        rows.append({"subset": name, "asked": size, "drawn": len(subset), "pool": len(pool),
                     "capped": "yes" if len(subset) < size else "", **subset["list"].value_counts().to_dict(),
                     "file": path.name})
    return pd.DataFrame(rows).set_index("subset").fillna(0)
