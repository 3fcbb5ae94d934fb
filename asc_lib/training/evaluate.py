"""Evaluation as the DCASE2024 Task 1 rules define it, plus the breakdowns the study reports.

The challenge metric is the macro-average of class-wise accuracies on the test split. Per device and
per device group (real a-c / seen s1-s3 / unseen s4-s6) accuracy is the share of correct clips, as in
the baseline's logs (the test split is balanced over classes within each device).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asc_lib.config.atomic import atomic_path
from asc_lib.data.dcase import DEVICE_GROUPS, DEVICES, SCENES
from asc_lib.training.loop import logits_of


@torch.no_grad()
def predict(model: nn.Module, frontend: nn.Module, waves: torch.Tensor, batch_size: int = 256,
            device: str | torch.device | None = None, amp: bool = False) -> torch.Tensor:
    """Class probabilities ``(n, classes)`` (float32, on the CPU) for a ``(n, samples)`` waveform tensor."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training, frontend.training
    model.eval()
    frontend.eval().to(device)
    out = []
    for start in range(0, len(waves), batch_size):
        x = waves[start:start + batch_size].to(device).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(frontend(x))
        out.append(torch.softmax(logits_of(logits).float(), dim=1).cpu())
    model.train(was_training[0])
    frontend.train(was_training[1])
    return torch.cat(out)


def _accuracy(correct: np.ndarray) -> float:
    return float(correct.mean()) if len(correct) else float("nan")


def scene_scores(frame: pd.DataFrame, probs) -> dict:
    """Scores of ``probs (n, 10)`` against an annotated split ``frame`` (columns label, device).

    Returns accuracy (macro over classes), per_class, per_device, per_group, log_loss and the
    confusion matrix (rows = true scene, columns = predicted).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(frame), len(SCENES)):
        raise ValueError(f"probabilities have shape {probs.shape}, expected ({len(frame)}, {len(SCENES)})")
    labels = frame["label"].to_numpy()
    devices = frame["device"].to_numpy()
    pred = probs.argmax(1)
    correct = pred == labels
    per_class = {s: _accuracy(correct[labels == i]) for i, s in enumerate(SCENES)}
    per_device = {d: _accuracy(correct[devices == d]) for d in DEVICES if (devices == d).any()}
    per_group = {g: _accuracy(correct[np.isin(devices, members)])
                 for g, members in DEVICE_GROUPS.items() if np.isin(devices, members).any()}
    confusion = np.zeros((len(SCENES), len(SCENES)), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    log_loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-15, 1)).mean())
    return {
        "accuracy": float(np.nanmean(list(per_class.values()))),
        "per_class": per_class, "per_device": per_device, "per_group": per_group,
        "log_loss": log_loss, "confusion": confusion.tolist(), "n_clips": int(len(labels)),
    }


def output_frame(filenames, probs) -> pd.DataFrame:
    """The DCASE submission table: filename, scene_label (the argmax), then one column per scene."""
    probs = np.asarray(probs, dtype=np.float64)
    frame = pd.DataFrame(probs, columns=list(SCENES))
    frame.insert(0, "scene_label", [SCENES[i] for i in probs.argmax(1)])
    frame.insert(0, "filename", list(filenames))
    return frame


def write_output_csv(path: str | Path, filenames, probs) -> Path:
    """Write the DCASE ``output.csv`` (tab-separated, probabilities with 6 decimals) atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        output_frame(filenames, probs).to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    return Path(path)


def read_output_csv(path: str | Path) -> pd.DataFrame:
    """Read an ``output.csv`` back, checking its columns."""
    frame = pd.read_csv(path, sep="\t")
    expected = ["filename", "scene_label", *SCENES]
    if list(frame.columns) != expected:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {expected}")
    return frame
