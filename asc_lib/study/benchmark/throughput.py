"""Training and inference throughput: CP-Mobile through the *reference* data path (a ``DataLoader``
reading and resampling one WAV per item every epoch, as the DCASE2024 baseline's loader does) against the
*study's* (waveforms decoded once into a cache, one tensor on the device, batches gathered by index,
roll / front end / augmentation batched there), both training through :func:`asc_lib.training.loop.fit`'s
own step; resident against streamed rows; teacher inference (EfficientAT mn10, PaSST-S) in fp32 and
mixed precision. Everything on the machine at hand (GPU when there is one).
"""
from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from asc_lib.data.audio import fit_length, read_wav, resample
from asc_lib.data.rows import DiskRows, loader_workers
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend
from asc_lib.models import build_cp_mobile
from asc_lib.models.efficientat import build_efficientat
from asc_lib.models.passt import load_passt
from asc_lib.methods.tagger import Tagger, load_released
from asc_lib.models.pretrained import CheckpointUnavailable, resolve
from asc_lib.training import loop
from asc_lib.training.device import precision
from asc_lib.training.evaluate import compute_logits
from asc_lib.training.loop import Supervised, TrainData, build_optimizer


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU's architecture and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class WavDataset(Dataset):
    """The reference approach: every item read from its WAV file and resampled, on every epoch."""

    def __init__(self, filenames, labels, root: str | Path, sample_rate: int, num_samples: int):
        self.filenames, self.labels = list(filenames), list(labels)
        self.root, self.sample_rate, self.num_samples = Path(root), sample_rate, num_samples

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, i: int):
        wave, rate = read_wav(self.root / self.filenames[i])
        wave = resample(torch.from_numpy(wave), rate, self.sample_rate)
        return fit_length(wave, self.num_samples), self.labels[i]


def _cycle(loader):
    while True:
        yield from loader


def _training_setup(recipe: dict, device: torch.device, seed: int) -> tuple[nn.Module, Supervised, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    frontend = build_frontend(recipe["frontend"]).to(device)
    model = build_cp_mobile().to(device)
    objective = Supervised(Augment(frontend, AugmentConfig.from_recipe(recipe))).to(device)
    objective.channels_last = bool(recipe.get("channels_last", False))
    if objective.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model.parameters(), recipe)
    return model, objective, optimizer


def _run_steps(batches, model, objective, optimizer, steps: int, warmup: int, device: torch.device,
               amp: bool) -> float:
    """Samples per second over ``steps`` optimizer steps after ``warmup`` untimed ones, each step the
    training loop's own :func:`asc_lib.training.loop.train_step` (the reference data path's measurement)."""
    model.train()
    objective.train()
    seen, start = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start, seen = time.perf_counter(), 0
        batch = next(batches)
        loop.train_step(model, model, objective, optimizer, None, batch, i, device, amp)
        seen += len(batch["labels"])
    _sync(device)
    return seen / (time.perf_counter() - start)


def fit_rate(model: nn.Module, objective, data: TrainData, recipe: dict, steps: int, warmup: int,
             device: torch.device, seed: int = 0) -> float:
    """Samples per second of :func:`asc_lib.training.loop.fit` itself (the study's path: data resident on the
    device, the recipe's feature cache, checkpoints after every epoch), timed from the end of step
    ``warmup`` to the end of step ``warmup + steps`` of one run in a temporary folder."""
    if warmup < 1:
        raise ValueError("fit_rate needs at least one untimed warm-up step")
    marks: dict[str, float] = {}

    def mark(step: int) -> None:
        if step in (warmup - 1, warmup + steps - 1):
            _sync(device)
            marks["start" if step == warmup - 1 else "end"] = time.perf_counter()

    run = {**recipe, "epochs": 1, "min_steps": warmup + steps, "eval_points": 0}
    with tempfile.TemporaryDirectory() as directory:
        loop.fit(model, objective, data, run, directory, seed=seed, device=device, on_step_end=mark)
    return steps * recipe["batch_size"] / (marks["end"] - marks["start"])


def reference_batches(frame: pd.DataFrame, audio_root: str | Path, sample_rate: int, batch_size: int,
                      device: torch.device, workers: int = 2, seed: int = 0):
    """Endless batches from a DataLoader that reads and resamples each WAV per item (the reference)."""
    dataset = WavDataset(frame["filename"], frame["label"], audio_root, sample_rate, sample_rate)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    for waves, labels in _cycle(loader):
        yield {"waves": waves.to(device, non_blocking=True), "labels": labels.to(device, non_blocking=True)}


def _amp(recipe: dict, device: torch.device) -> bool:
    return bool(recipe.get("amp", False)) and device.type == "cuda"


@torch.no_grad()
def inference_throughput(model: nn.Module, clips: int, seconds: float, sample_rate: int, batch_size: int,
                         device: torch.device, amp: bool, frontend: nn.Module | None = None, warmup: int = 1) -> float:
    """Clips per second of ``model`` (after ``frontend``, if given) on random ``seconds``-long clips."""
    model = model.eval().to(device)
    frontend = frontend.eval().to(device) if frontend is not None else None
    waves = torch.randn(batch_size, int(round(seconds * sample_rate)), generator=torch.Generator().manual_seed(0))
    waves = waves.to(device) * 0.1
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def once():
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            x = frontend(waves) if frontend is not None else waves
            return model(x)
    for _ in range(warmup):
        once()
    _sync(device)
    batches = max(1, -(-clips // batch_size))
    start = time.perf_counter()
    for _ in range(batches):
        once()
    _sync(device)
    return batches * batch_size / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------- scaling

def streaming_comparison(waves: torch.Tensor, labels: torch.Tensor, recipe: dict, steps: int,
                         device: torch.device, rounds: int = 3, seed: int = 0) -> pd.DataFrame:
    """:func:`asc_lib.training.loop.fit` samples/s with the clips resident against the same clips streamed from disk
    by DataLoader workers (:mod:`asc_lib.data.rows`), alternating ``rounds`` rounds; no feature cache in either
    (it needs resident data). The median round of each is reported."""
    plain = {**recipe, "feature_cache": False}
    measured: dict[str, list[float]] = {"resident": [], "streamed": []}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "waves.npy"
        np.save(path, waves.cpu().numpy())
        disk = DiskRows(path, "benchmark")
        for _ in range(rounds):
            for name, rows in (("resident", waves), ("streamed", disk)):
                model, objective, _ = _training_setup(plain, device, seed)
                measured[name].append(fit_rate(model, objective, TrainData(rows, labels), plain, steps, 2, device, seed))
    table = pd.DataFrame({
        "data path": ["loop.fit, clips resident on the device",
                      "loop.fit, clips streamed from disk (" + (f"{loader_workers()} DataLoader workers, prefetch 4)"
                                                                  if loader_workers() else "read in the training process)")],
        "samples/s": [float(np.median(measured[n])) for n in ("resident", "streamed")],
        "rounds": [", ".join(f"{v:.0f}" for v in measured[n]) for n in ("resident", "streamed")],
    }).set_index("data path")
    table["relative"] = table["samples/s"] / table["samples/s"].iloc[0]
    return table


def training_comparison(frame: pd.DataFrame, audio_root: str | Path, waves: torch.Tensor, recipe: dict, steps: int,
                        device: torch.device, workers: int, rounds: int = 3, seed: int = 0) -> pd.DataFrame:
    """CP-Mobile training samples/s, reference data path against the study's, on the same machine: the
    reference feeds DataLoader batches to the training step; the study's is :func:`asc_lib.training.loop.fit`
    itself (:func:`fit_rate`). The two alternate for ``rounds`` rounds of ``steps`` steps (so that a change
    of machine load hits both) and the median round of each is reported."""
    labels = torch.as_tensor(frame["label"].to_numpy(copy=True), dtype=torch.long)
    amp = _amp(recipe, device)
    model, objective, optimizer = _training_setup(recipe, device, seed)
    rate = objective.augment.frontend.sample_rate
    stream = reference_batches(frame, audio_root, rate, recipe["batch_size"], device, workers, seed)
    measured: dict[str, list[float]] = {"reference": [], "study": []}
    for r in range(rounds):
        measured["reference"].append(_run_steps(stream, model, objective, optimizer, steps, 2 if r == 0 else 0,
                                                device, amp))
        study_model, study_objective, _ = _training_setup(recipe, device, seed)
        measured["study"].append(fit_rate(study_model, study_objective, TrainData(waves, labels), recipe, steps, 2,
                                          device, seed))
    cache = " + log-mels computed once" if recipe.get("feature_cache") else ""
    table = pd.DataFrame({
        "data path": [f"reference: DataLoader, WAV read + resampled per item ({workers} workers)",
                      f"study: loop.fit, decoded once, resident on the device{cache}"],
        "samples/s": [float(np.median(measured["reference"])), float(np.median(measured["study"]))],
        "rounds": [", ".join(f"{v:.0f}" for v in measured[n]) for n in ("reference", "study")],
    }).set_index("data path")
    table["relative"] = table["samples/s"] / table["samples/s"].iloc[0]
    return table


def teacher_table(device: torch.device, clips: int, passt_clips: int, batch_size: int = 16) -> pd.DataFrame:
    """Teacher inference in clips/s, fp32 against mixed precision on a GPU (fp32 alone on a CPU, where the recipes
    run their teachers in float32 and bfloat16 without native support runs ~10x slower): EfficientAT mn10 on 1 s
    clips (its 16 kHz front end; Surkov's teacher) and PaSST-S on 10 s clips at 32 kHz (one member of Werning's
    ensemble). Random weights: the speed does not depend on them."""
    frontend = build_frontend("surkov16k")
    rows, precisions = [], (False, True) if device.type == "cuda" else (False,)
    for amp in precisions:
        rows.append({"teacher": "EfficientAT mn10 (1 s clips)", "precision": "mixed" if amp else "fp32",
                     "clips/s": inference_throughput(build_efficientat("mn10", 10), clips, 1.0, frontend.sample_rate,
                                                     batch_size, device, amp, frontend)})
    passt = load_passt(None)
    for amp in precisions:
        rows.append({"teacher": "PaSST-S (10 s clips)", "precision": "mixed" if amp else "fp32",
                     "clips/s": inference_throughput(passt, passt_clips, 10.0, 32_000, min(batch_size, passt_clips),
                                                     device, amp)})
    return pd.DataFrame(rows).set_index(["teacher", "precision"])


def teacher_agreement(waves: torch.Tensor, device: torch.device, clips: int = 256, batch_size: int = 64) -> pd.DataFrame:
    """A teacher pass under autocast against float32 on the same clips (the first ``clips`` of ``waves``, 32 kHz):
    the released mn04_as tagger (random mn04 weights where it cannot be had, said in the table), float32 against
    the recipes' ``teacher_precision: auto`` on a GPU (bfloat16 where it has it, else float16) or bfloat16 on the
    CPU: clips/s of each, top-1 agreement of the 527 classes, largest and mean difference of the probabilities
    (sigmoid, as a tagger's)."""
    try:
        teacher, weights = load_released(resolve("mn04_as", download=False), device), "released mn04_as"
    except CheckpointUnavailable:
        teacher, weights = Tagger(build_frontend("efficientat"), build_efficientat("mn04", 527)).to(device).eval(), \
            "random mn04 weights (mn04_as absent)"
    dtype = precision("auto", device) if device.type == "cuda" else torch.bfloat16
    x = waves[:clips]
    out, rates = {}, {}
    for name, cast in (("float32", None), (str(dtype).split(".")[-1], dtype)):
        compute_logits(teacher, x, None, batch_size, device, 0, min(batch_size, len(x)), autocast=cast)
        _sync(device)
        start = time.perf_counter()
        out[name] = compute_logits(teacher, x, None, batch_size, device, autocast=cast)
        _sync(device)
        rates[name] = len(x) / (time.perf_counter() - start)
    (full, f), (low, m) = out.items()
    delta = (torch.sigmoid(f) - torch.sigmoid(m)).abs()
    return pd.DataFrame([{"teacher": weights, "clips": len(x), "float32 clips/s": rates[full],
                          f"{low} clips/s": rates[low], "speed-up": rates[low] / rates[full],
                          "top-1 agreement": float((f.argmax(1) == m.argmax(1)).float().mean()),
                          "max |Δ probability|": float(delta.max()), "mean |Δ probability|": float(delta.mean())}]
                        ).set_index("teacher")


def efficientat_training_rate(waves: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int,
                              device: torch.device, seed: int = 0, recipe: dict | None = None) -> float:
    """EfficientAT mn10 training samples/s through :func:`asc_lib.training.loop.fit` (for the mean-teacher
    projection); ``waves`` at 16 kHz, the surkov16k front end, the given recipe's optimizer settings."""
    recipe = {**(recipe or {"lr": 1e-3, "weight_decay": 1e-3, "warmup_steps": 0, "min_lr_fraction": 0.0,
                            "channels_last": True, "amp": True}), "batch_size": batch_size}
    torch.manual_seed(seed)
    frontend = build_frontend("surkov16k").to(device)
    model = build_efficientat("mn10", 10).to(device)
    objective = Supervised(Augment(frontend, AugmentConfig())).to(device)
    return fit_rate(model, objective, TrainData(waves, labels), recipe, steps, 1, device, seed)
