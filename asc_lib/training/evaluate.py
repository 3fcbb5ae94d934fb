"""Evaluation as the DCASE2024 Task 1 rules define it, plus the breakdowns the study reports.

The challenge metric is the macro-average of class-wise accuracies on the test split. Per device and
per device group (real a-c / seen s1-s3 / unseen s4-s6) accuracy is the share of correct clips, as in
the baseline's logs (the test split is balanced over classes within each device).
"""
from __future__ import annotations

import copy
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from asc_lib.config.progress import bar as progress_bar

from asc_lib.config.atomic import atomic_path
from asc_lib.data.dcase import DEVICE_GROUPS, DEVICES, SCENES
from asc_lib.data.rows import loader_workers, read_ahead
from asc_lib.training.loop import logits_of


@torch.no_grad()
def compute_logits(model: nn.Module, waves: torch.Tensor, frontend: nn.Module | None, batch_size: int,
                   device: torch.device, start: int = 0,
                   stop: int | None = None, amp: bool = False, half: bool = False,
                   autocast: torch.dtype | None = None) -> torch.Tensor:
    """A model's logits (float32, CPU) of rows ``start:stop`` of ``waves`` (all by default) in batches, in
    evaluation mode, without caching: the one batched inference of the study (test predictions, teacher
    outputs, tagging). Rows on disk (:mod:`asc_lib.data.rows`) are read one batch at a time; ``amp`` runs
    in bfloat16 on a GPU; ``autocast`` names the dtype of an autocast pass on any device (teacher passes,
    :func:`asc_lib.training.device.precision`). ``half`` runs a float16 twin of the model on float16 inputs
    (the front end in float32), as the DCASE2024 baseline's test step does (``model.half()``, ``x.half()``);
    the twin is made once per model and refreshed from its weights on each call."""
    model = model.eval().to(device)
    if half:
        model = _half_twin(model)
    dtype = autocast if autocast is not None else (torch.bfloat16 if amp and device.type == "cuda" else None)
    if frontend is not None:
        frontend = frontend.eval().to(device)
    stop = len(waves) if stop is None else stop
    ranges = [(begin, min(begin + batch_size, stop)) for begin in range(start, stop, batch_size)]
    out = []
    for x in progress_bar(_read_batches(waves, ranges), total=len(ranges), desc="inference", unit="batch", mininterval=2.0):
        x = x.to(device).float()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None and not half):
            x = frontend(x) if frontend is not None else x
            logits = model(x.half() if half else x)
        out.append(logits_of(logits).float().cpu())
    return torch.cat(out) if out else torch.zeros((0,), dtype=torch.float32)


_TWINS: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def _half_twin(model: nn.Module) -> nn.Module:
    """``model`` in float16 for evaluation: one copy per model, its weights refreshed in place on each call
    (no new module per evaluation)."""
    twin = _TWINS.get(model)
    if twin is None or next(twin.parameters()).device != next(model.parameters()).device:
        twin = _TWINS[model] = copy.deepcopy(model).half().eval()
    else:
        twin.load_state_dict(model.state_dict())
    return twin


class _Ranges(torch.utils.data.Dataset):
    def __init__(self, waves, ranges):
        self.waves, self.ranges = waves, ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.waves[self.ranges[i][0]:self.ranges[i][1]]


def _read_batches(waves, ranges):
    """The row ranges of ``waves``: sliced in place when resident; read (or decoded) by DataLoader workers
    ahead of the model when they come from disk or from the audio source."""
    if isinstance(waves, torch.Tensor) or len(ranges) < 2 or loader_workers() == 0:
        for a, b in ranges:
            yield waves[a:b]
        return
    yield from read_ahead(_Ranges(waves, ranges), min(loader_workers(), len(ranges)))


def predict(model: nn.Module, frontend: nn.Module, waves: torch.Tensor, batch_size: int = 256,
            device: str | torch.device | None = None, amp: bool = False, half: bool = False) -> torch.Tensor:
    """Class probabilities ``(n, classes)`` (float32, on the CPU) for a ``(n, samples)`` waveform tensor
    (the modes of model and front end are restored)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training, frontend.training
    logits = compute_logits(model, waves, frontend, batch_size, device, amp=amp, half=half)
    model.train(was_training[0])
    frontend.train(was_training[1])
    return torch.softmax(logits, dim=1)


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
