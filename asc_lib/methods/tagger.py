"""AudioSet taggers: multi-label training data, the BCE objective, mAP, and the mini stand-in tagger.

Both papers start from networks pretrained on AudioSet (Surkov: EfficientAT ``mn10_as``; Werning: nine
PaSST checkpoints). None ships with the mini data, so the study trains a *stand-in*: EfficientAT ``mn10``
on the mini AudioSet training lists (multi-label, binary cross-entropy; recipe ``audioset_tagger`` of
``params/training.yaml``). It is saved in the official EfficientAT state-dict format, so it enters the
pipeline by the same code path as ``mn10_as_mAP_471.pt`` (:func:`asc_lib.models.efficientat.load_efficientat`),
and wrapped with its front end (:class:`Tagger`) it takes raw waveforms like PaSST does.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asc_lib.config import DataPaths, data_paths, paths, profile_recipe, progress
from asc_lib.config.atomic import write_json
from asc_lib.config.provenance import file_digest, save_torch
from asc_lib.data import audioset
from asc_lib.data.unlabeled import subset_pieces
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend
from asc_lib.models.efficientat import build_efficientat, load_efficientat
from asc_lib.models.layers import set_bn_momentum
from asc_lib.models.pretrained import Checkpoint, CheckpointUnavailable, catalogue_entry, resolve
from asc_lib.training.device import resolve_device
from asc_lib.training.evaluate import compute_logits
from asc_lib.training.loop import Objective, TrainData, fit, logits_of

TRAIN_LISTS = ("balanced_train_segments", "unbalanced_train_segments")
EVAL_LIST = "eval_segments"


def class_index(data: DataPaths) -> pd.DataFrame:
    """The profile's AudioSet class index (527 classes on the real data)."""
    return audioset.read_class_index(data.audioset_dir / "class_labels_indices.csv")


def read_lists(data: DataPaths, names) -> pd.DataFrame:
    """Segment lists ``names`` concatenated, with a ``list`` column naming each row's source."""
    frames = []
    for name in names:
        frame = audioset.read_segments(data.audioset_dir / f"{name}.csv")
        frames.append(frame.assign(list=name))
    return pd.concat(frames, ignore_index=True)


def piece_targets(segments: pd.DataFrame, classes: pd.DataFrame, counts) -> torch.Tensor:
    """Multi-hot targets, one row per piece: each 1 s piece carries its segment's labels (``counts``: pieces
    per segment, one number for all or one per segment). Stored as uint8, a quarter of float32 (AudioSet's
    527 classes on the device); the losses read them as float."""
    targets = torch.from_numpy(audioset.multi_hot(segments["positive_labels"], classes).astype(np.uint8))
    return targets.repeat_interleave(torch.as_tensor(counts), dim=0)


def tagging_data(segments: pd.DataFrame, data: DataPaths, classes: pd.DataFrame, sample_rate: int,
                 device="cpu",
                 piece_seconds: float | None = 1.0) -> tuple[TrainData, pd.DataFrame]:
    """``piece_seconds`` pieces (None: whole clips) of the present ``segments`` (no scene label: -1) with their
    AudioSet targets as ``extras["targets"]``, and the segments they come from (absent clips dropped)."""
    pieces = subset_pieces(segments, data, sample_rate, device, piece_seconds=piece_seconds)
    targets = piece_targets(pieces.segments, classes, pieces.counts).to(device)
    labels = torch.full((len(pieces.waves),), -1, dtype=torch.long, device=device)
    return TrainData(pieces.waves, labels, {"targets": targets}), pieces.segments


class MultiLabel(Objective):
    """Binary cross-entropy against ``batch["targets"]`` (AudioSet tagging)."""

    name = "multilabel_bce"

    def loss(self, model, batch, step):
        logits = logits_of(model(self.inputs(batch["waves"])))
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["targets"].float()), {}


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision per class (NaN for classes without a positive), as AudioSet's mAP uses."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        positives = targets[:, c].sum()
        if positives == 0:
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = targets[order, c]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out[c] = precision[hits].sum() / positives
    return out


def mean_average_precision(scores, targets) -> float:
    """mAP over the classes that have a positive."""
    return float(np.nanmean(average_precision(scores, targets)))


class Tagger(nn.Module):
    """A front end and a tagging network: raw waveforms in, logits out (PaSST's interface)."""

    def __init__(self, frontend: nn.Module, model: nn.Module):
        super().__init__()
        self.frontend, self.model = frontend, model

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(self.frontend(waves)))

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate


@torch.no_grad()
def standin_path(profile: str, seed: int = 0) -> Path:
    """Where the stand-in's weights (official EfficientAT state-dict format) are saved."""
    return paths.standin_dir(profile, seed) / paths.STANDIN_FILE


def train_standin(profile: str, data: DataPaths, seed: int = 0, device: str = "auto") -> tuple[Tagger, dict]:
    """Train (or reuse) the stand-in AudioSet tagger of ``profile``; returns it with its metrics
    (mAP on the eval list). It is an ordinary :func:`asc_lib.training.loop.fit` run: resumable, and retrained
    when its code, data or recipe changed (its weights file and metrics are then rewritten)."""
    recipe = profile_recipe(profile, "audioset_tagger")
    device = resolve_device(device)
    frontend = build_frontend(recipe["frontend"]).to(device)
    classes = class_index(data)
    train, _ = tagging_data(read_lists(data, TRAIN_LISTS), data, classes, frontend.sample_rate, device)
    torch.manual_seed(seed)
    model = set_bn_momentum(build_efficientat(recipe["model"], len(classes)), recipe["bn_momentum"])
    directory = paths.standin_dir(profile, seed)

    objective = MultiLabel(Augment(frontend, AugmentConfig.from_recipe(recipe)))
    history = fit(model, objective, train, recipe, directory, seed=seed, device=device)
    tagger = Tagger(frontend, model.to(memory_format=torch.contiguous_format)).eval()
    path, metrics_path = standin_path(profile, seed), directory / paths.METRICS
    if history.status == "reused" and path.is_file() and metrics_path.is_file():
        saved = json.loads(metrics_path.read_text())
        if saved.get("fit", {}).get("fingerprint") == history.fingerprint:
            return tagger, saved
    evaluation = read_lists(data, [EVAL_LIST])
    test, _ = tagging_data(evaluation, data, classes, frontend.sample_rate, device)
    scores = compute_logits(tagger, test.waves, None, 128, device)
    metrics = {"mAP": mean_average_precision(scores, test.extras["targets"].cpu().numpy()),
               "n_classes": len(classes), "train_pieces": len(train), "eval_pieces": len(test),
               "clip_seconds": data.audioset_clip_seconds, "recipe": recipe, "fit": history.info()}
    save_torch({k: v.cpu() for k, v in model.state_dict().items()}, path)
    write_json(metrics_path, metrics)
    return tagger, metrics


def standin_weights(profile: str, data: DataPaths, seed: int = 0, device: str = "auto") -> Path:
    """The stand-in's weights file, trained first when it does not exist or is stale."""
    train_standin(profile, data, seed, device)
    return standin_path(profile, seed)


def standin_checkpoint(profile: str, data: DataPaths, seed: int = 0, device: str = "auto") -> Checkpoint:
    """The stand-in's weights as a :class:`~asc_lib.models.pretrained.Checkpoint` (origin ``standin``),
    trained first when needed."""
    path = standin_weights(profile, data, seed, device)
    return Checkpoint("standin", str(path), file_digest(path), "standin")


def load_standin(profile: str, data: DataPaths, seed: int = 0, device: str = "auto") -> Tagger:
    """The stand-in as a :class:`Tagger` (raw waves -> logits in the profile's class order), trained first
    when needed."""
    recipe = profile_recipe(profile, "audioset_tagger")
    checkpoint = standin_checkpoint(profile, data, seed, device)
    model = load_efficientat(checkpoint.path, recipe["model"], len(class_index(data)))
    tagger = Tagger(build_frontend(recipe["frontend"]), model).to(resolve_device(device)).eval()
    tagger.checkpoint = checkpoint
    return tagger


def load_released(checkpoint: Checkpoint, device: str = "auto") -> Tagger:
    """A released EfficientAT AudioSet tagger (``mn04_as``, ``mn10_as``) with EfficientAT's own front end
    (32 kHz, 128 mels, ``(x + 4.5) / 5``): raw waves -> 527 logits in AudioSet's class order."""
    entry = catalogue_entry(checkpoint.name)
    model = load_efficientat(checkpoint.path, entry["model"], entry["n_classes"])
    tagger = Tagger(build_frontend("efficientat"), model).to(resolve_device(device)).eval()
    tagger.checkpoint, tagger.audioset_order = checkpoint, True
    return tagger


STANDIN = "standin"
STANDIN_BANNER = ("STARTS FROM THE STAND-IN, NOT FROM REAL AUDIOSET PRETRAINING: {reason}. Findings that depend on "
                  "pretraining (the papers' teachers, their transfer to the scenes, what distillation passes on) are not "
                  "meaningful in this run; put {file} into data/weights/ (or ../shared/data/weights/) to start from it.")


def starting_weights(name: str | None, profile: str, data: DataPaths, fallback: str | None = None) -> Checkpoint:
    """What a network starts from: ``None``/``"none"`` random initialisation, ``"standin"`` the mini stand-in
    tagger, otherwise a released checkpoint (a name of ``params/models.yaml`` ``pretrained:``, its file name,
    or a path) resolved by :func:`asc_lib.models.pretrained.resolve`. When it cannot be had and ``fallback`` is
    ``"standin"``, the stand-in replaces it with a warning (:data:`STANDIN_BANNER`); otherwise the error
    names what was tried."""
    if not name or str(name).lower() == "none":
        return Checkpoint("random", None, None, "random")
    if name == STANDIN:
        return standin_checkpoint(profile, data)
    try:
        return resolve(str(name))
    except CheckpointUnavailable as err:
        if fallback != STANDIN:
            raise
        warnings.warn(STANDIN_BANNER.format(reason=str(err), file=name), stacklevel=2)
        return standin_checkpoint(profile, data)


def banner(checkpoint: Checkpoint) -> str | None:
    """The warning a run that does not start from real AudioSet pretraining carries (None when it does)."""
    if checkpoint.pretrained:
        return None
    what = "RANDOM WEIGHTS" if checkpoint.origin == "random" else "THE MINI STAND-IN TAGGER"
    return (f"STARTS FROM {what}, NOT FROM REAL AUDIOSET PRETRAINING: findings that depend on pretraining (the "
            "papers' teachers, their transfer to the scenes, what distillation passes on) are not meaningful here.")


def framed_banner(checkpoint: Checkpoint) -> str:
    """:func:`banner` between two lines of ``!`` for a notebook's output, or "" for real pretraining."""
    text = banner(checkpoint)
    return f"{'!' * 100}\n{text}\n{'!' * 100}" if text else ""


def audioset_positions(mids) -> list[int]:
    """Positions of AudioSet classes (``mids``) in AudioSet's 527-class index: where a released tagger puts
    them. Read from the embedded subset's record (the mini classes), checked against the real index by
    ``tests/test_audioset.py``."""
    known = json.loads((paths.RESOURCES_DIR / "audioset_subset.json").read_text())["audioset_index"]
    missing = [m for m in mids if m not in known]
    if missing:
        raise KeyError(f"no AudioSet index recorded for {missing[:5]} (asc_lib/resources/audioset_subset.json)")
    return [known[m] for m in mids]


def class_logits(tagger: nn.Module, logits: torch.Tensor, classes: pd.DataFrame) -> torch.Tensor:
    """``logits`` of ``tagger`` restricted to the profile's ``classes``, in their order: a released 527-class
    tagger's columns of those classes (all of them, in order, on the real data), the stand-in's as they are."""
    if not getattr(tagger, "audioset_order", False) or logits.shape[1] == len(classes) == 527:
        if logits.shape[1] != len(classes):
            raise ValueError(f"the teacher gives {logits.shape[1]} logits for {len(classes)} classes")
        return logits
    return logits[:, audioset_positions(list(classes["mid"]))]


__all__ = ["MultiLabel", "Tagger", "audioset_positions", "average_precision", "class_index", "class_logits",
           "banner", "framed_banner", "load_released", "load_standin", "mean_average_precision", "standin_checkpoint", "starting_weights",
           "piece_targets", "read_lists", "standin_path", "standin_weights", "tagging_data", "train_standin"]


def main(argv=None) -> None:
    """``python -m asc_lib.methods.tagger --profile mini``: train (or reuse) the profile's stand-in tagger."""
    parser = argparse.ArgumentParser(description="Train (or reuse) the mini stand-in AudioSet tagger.")
    parser.add_argument("--profile", default="mini", help="parameter profile (params/<profile>.yaml)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    progress.show(False if args.quiet else None)
    _, metrics = train_standin(args.profile, data_paths(args.profile), args.seed, args.device)
    print(f"stand-in tagger of profile {args.profile!r}: {metrics['fit']['status']}, eval mAP {metrics['mAP']:.3f}, "
          f"weights {standin_path(args.profile, args.seed)}")


if __name__ == "__main__":
    main()
