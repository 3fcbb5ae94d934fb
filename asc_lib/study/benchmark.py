"""What the study's data path buys, and what the papers' full recipes cost (``notebooks/06_benchmarks.ipynb``).

Four kinds of measurement, all on the machine at hand (GPU when there is one):

- **training throughput** of CP-Mobile (samples/s) with the *reference* data path, a ``DataLoader`` whose
  dataset reads and resamples one WAV per item on every epoch (as the DCASE2024 baseline's loader does),
  against the *study's* path: waveforms decoded once into a cache, held as one tensor on the device,
  batches gathered by index there, roll / front end / augmentation batched on the device. Both run the
  same model, objective, optimizer and precision; only the data path differs;
- **teacher inference** (EfficientAT mn10, PaSST-S) in clips/s, fp32 against mixed precision;
- **scaling** of cache build, AudioSet label filtering and domain-classifier scoring with the number of
  items, each size in a fresh process (time and peak resident memory above the idle process);
- **streaming**: :func:`asc_lib.training.loop.fit` on clips resident against the same clips read from disk by
  DataLoader workers (:mod:`asc_lib.data.rows`), and the peak memory of training on data ten times the budget.

:func:`projections` turns the measured rates into the wall-clock of each paper's full recipe.
"""
from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from asc_lib.data.audio import build_waveform_cache, fit_length, read_wav, resample
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend
from asc_lib.training import loop
from asc_lib.training.loop import Supervised, TrainData

AUDIOSET_SEGMENTS = 2_000_000     # "AudioSet's 2 million segments" (balanced + unbalanced + eval, rounded)
SPLIT100_CLIPS = 139_620          # DCASE2024 split 100 (tests/test_dcase.py checks the real list)


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
    from asc_lib.models import build_cp_mobile

    torch.manual_seed(seed)
    frontend = build_frontend(recipe["frontend"]).to(device)
    model = build_cp_mobile().to(device)
    objective = Supervised(Augment(frontend, AugmentConfig.from_recipe(recipe))).to(device)
    objective.channels_last = bool(recipe.get("channels_last", False))
    if objective.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
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
        loop.fit(model, objective, data, run, directory, seed=seed, device=device, progress=False, on_step_end=mark)
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

def _peak_mb() -> float:
    """This process's peak resident memory (MB). VmHWM starts afresh at exec, unlike ru_maxrss, which a
    child inherits from its parent on Linux."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _in_fresh_process(task: str, size: int, workdir: str, extra: dict) -> dict:
    """Run one scaling task in this (fresh) process; time it, the peak memory it added and, when it started
    worker processes, the largest worker's peak."""
    idle = _peak_mb()
    start = time.perf_counter()
    more = SCALING_TASKS[task](size, Path(workdir), **extra) or {}
    result = {"seconds": time.perf_counter() - start, "peak MB": max(0.0, _peak_mb() - idle), **more}
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if children:
        result["workers peak MB"] = children
    return result


def _label_filter(size: int, workdir: Path, **_) -> None:
    from asc_lib.data import audioset
    from asc_lib.methods import labelfilter

    segments = audioset.read_segments(workdir / f"segments-{size}.csv")
    labels = set(labelfilter.table1_labels())
    labelfilter.filtered_pool({"generated": segments}, labels)


def _domain_scoring(size: int, workdir: Path, chunk: int = 65_536, **_) -> None:
    from asc_lib.methods.pruning import DomainClassifier, domain_scores

    torch.manual_seed(0)
    classifier = DomainClassifier(527).eval()
    generator = torch.Generator().manual_seed(1)
    kept = 0
    for start in range(0, size, chunk):  # logits streamed chunk by chunk, as from a memory-mapped cache
        logits = torch.randn(min(chunk, size - start), 527, generator=generator)
        kept += int((domain_scores(classifier, logits) >= 0.3).sum())


def _cache_build(size: int, workdir: Path, audio_root: str = "", filenames=(), **_) -> None:
    build_waveform_cache(list(filenames)[:size], audio_root, 32_000, 32_000, cache_dir=workdir / f"cache-{size}",
                         progress=False)


def write_disk_waves(path: Path, clips: int, samples: int = 32_000, seed: int = 0, chunk: int = 1024) -> Path:
    """A waveform-cache-like ``.npy`` of ``clips`` float16 rows of noise, written chunk by chunk with plain
    file writes (no memory map: the writer's resident memory stays one chunk)."""
    if path.is_file():
        return path
    generator = np.random.default_rng(seed)
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                   "fortran_order": False, "shape": (clips, samples)})
        for start in range(0, clips, chunk):
            stop = min(clips, start + chunk)
            (0.1 * generator.standard_normal((stop - start, samples))).astype(np.float16).tofile(fh)
    return path


def _streamed_training(size: int, workdir: Path, steps: int = 8, batch_size: int = 32, streamed: bool = True,
                       **_) -> dict:
    """``steps`` steps of :func:`asc_lib.training.loop.fit` on ``size`` clips held on disk: streamed (a budget of a
    tenth of the data) or resident (loaded first)."""
    from asc_lib.models import build_cp_mobile
    from asc_lib.config.params import load_recipe
    from asc_lib.data.rows import DiskRows

    rows = DiskRows(write_disk_waves(workdir / f"waves-{size}.npy", size), f"bench-{size}")
    waves = rows if streamed else rows.resident()
    labels = torch.arange(size) % 10
    recipe = {**load_recipe("baseline"), "batch_size": batch_size, "epochs": 1, "min_steps": steps,
              "max_steps": steps, "eval_points": 0, "feature_cache": False, "warmup_steps": 0}
    torch.manual_seed(0)
    objective = Supervised(Augment(build_frontend(recipe["frontend"]), AugmentConfig.from_recipe(recipe)))
    with tempfile.TemporaryDirectory() as run:
        loop.fit(build_cp_mobile(), objective, TrainData(waves, labels), recipe, run, device="cpu", progress=False)
    return {"data MB": rows.nbytes / 2**20}


def _real_lists(size: int, workdir: Path, audioset_dir: str = "", **_) -> dict:
    """The list-level stages of both methods on the real segment lists, stage by stage: time and peak
    memory so far (this process), with what each stage produced."""
    from asc_lib.data import audioset, audioset_clips, unlabeled
    from asc_lib.methods import labelfilter

    stages, idle = [], _peak_mb()

    def done(stage: str, started: float, result: str) -> None:
        stages.append({"stage": stage, "seconds": time.perf_counter() - started,
                       "peak MB": max(0.0, _peak_mb() - idle), "result": result})

    t = time.perf_counter()
    lists = {n: audioset.read_segments(Path(audioset_dir) / f"{n}.csv").assign(list=n)
             for n in ("balanced_train_segments", "eval_segments")}
    done("read the segment lists", t, ", ".join(f"{n}: {len(f):,}" for n, f in lists.items()))
    t = time.perf_counter()
    pool = labelfilter.filtered_pool(lists, set(labelfilter.table1_labels()))
    done("Surkov's 14-label filter", t, f"{len(pool):,} segments match")
    t = time.perf_counter()
    subset = labelfilter.draw_subset(pool, min(size, len(pool)), seed=0)
    path = labelfilter.write_subset(workdir / "subset.csv", subset, "rehearsal")
    done("draw a subset and write its manifest", t, f"{len(subset):,} segments, {path.stat().st_size / 1024:.0f} kB")
    t = time.perf_counter()
    both = pd.concat(lists.values(), ignore_index=True)
    counts = unlabeled.pieces_per_segment(both, 10.0)
    short = int((audioset_clips.spans(both) < 10).sum())
    done("lengths: 1 s pieces per segment", t, f"{short:,} short segments, {int(counts.sum()):,} pieces")
    return {"stages": stages}


SCALING_TASKS: dict[str, Callable] = {"label filtering": _label_filter, "domain scoring": _domain_scoring,
                                      "cache build": _cache_build, "streamed training": _streamed_training,
                                      "real lists": _real_lists}


def real_list_rehearsal(subset_size: int = 10_000) -> pd.DataFrame | None:
    """The real balanced and eval lists of ``../shared/data`` through the list-level stages (label filter,
    subset and manifest, lengths and pieces) in a fresh process; None when those files are absent."""
    from asc_lib.config import paths

    audioset_dir = paths.shared_data_dir() / "audioset"
    if not (audioset_dir / "balanced_train_segments.csv").is_file():
        return None
    with tempfile.TemporaryDirectory() as workdir:
        extras = Path(workdir) / "extra.json"
        extras.write_text(json.dumps({"audioset_dir": str(audioset_dir)}))
        command = [sys.executable, "-m", "asc_lib.study.benchmark", "real lists", str(subset_size), workdir, str(extras)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the real-list rehearsal failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    return pd.DataFrame(result["stages"]).set_index("stage")


DEFAULT_STREAMING_SIZES = (2000, 8000)  # 122 and 488 MB of 1 s float16 clips at 32 kHz


def streaming_memory(sizes, steps: int = 8, progress: bool = True) -> pd.DataFrame:
    """Peak memory of training on data held on disk: each size resident and streamed (a budget of a tenth of
    the data), each in a fresh process; ``workers peak MB`` is the largest DataLoader worker's own peak."""
    parts = []
    for streamed in (False, True):
        table = scaling("streamed training", sizes, {"steps": steps, "streamed": streamed}, progress=progress)
        parts.append(table.assign(task="streamed from disk" if streamed else "resident (loaded first)"))
    return pd.concat(parts, ignore_index=True)


def streaming_comparison(waves: torch.Tensor, labels: torch.Tensor, recipe: dict, steps: int,
                         device: torch.device, rounds: int = 3, seed: int = 0) -> pd.DataFrame:
    """:func:`asc_lib.training.loop.fit` samples/s with the clips resident against the same clips streamed from disk
    by DataLoader workers (:mod:`asc_lib.data.rows`), alternating ``rounds`` rounds; no feature cache in either
    (it needs resident data). The median round of each is reported."""
    from asc_lib.data.rows import DiskRows, loader_workers

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


def write_generated_segments(path: Path, size: int, seed: int = 0) -> Path:
    """An official-format segment list of ``size`` generated segments (labels drawn from the real class
    index vocabulary of the 14 Table-1 labels plus others)."""
    from asc_lib.data import audioset
    from asc_lib.methods import labelfilter

    rng = np.random.default_rng(seed)
    vocabulary = list(labelfilter.table1_labels()) + [f"/m/0gen{i:03d}" for i in range(100)]
    counts = rng.integers(1, 4, size)
    picks = rng.integers(0, len(vocabulary), counts.sum())
    bounds = np.concatenate([[0], np.cumsum(counts)])
    frame = pd.DataFrame({
        "YTID": [f"g{i:010d}" for i in range(size)],
        "start_seconds": 30.0, "end_seconds": 40.0,
        "positive_labels": [[vocabulary[j] for j in picks[a:b]] for a, b in zip(bounds[:-1], bounds[1:])],
    })
    return audioset.write_segments(path, frame, created="generated by asc_lib.study.benchmark")


def scaling(task: str, sizes, extra: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """Time and peak memory of ``task`` at each size, each in a fresh Python process."""
    from tqdm import tqdm

    if task not in SCALING_TASKS:
        raise ValueError(f"unknown scaling task {task!r}; choose from {sorted(SCALING_TASKS)}")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        extras = Path(workdir) / "extra.json"
        extras.write_text(json.dumps(extra or {}))
        for size in tqdm(list(sizes), desc=task, disable=not progress):
            if task == "label filtering":  # inputs are prepared here, outside the measured process
                write_generated_segments(Path(workdir) / f"segments-{size}.csv", size)
            if task == "streamed training":
                write_disk_waves(Path(workdir) / f"waves-{size}.npy", size)
            command = [sys.executable, "-m", "asc_lib.study.benchmark", task, str(int(size)), workdir, str(extras)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{task} at {size} items failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"task": task, "items": int(size), **result,
                         "µs per item": 1e6 * result["seconds"] / size})
    return pd.DataFrame(rows)


def extrapolate(table: pd.DataFrame, items: int) -> float:
    """Seconds for ``items`` from the largest measured size, assuming linear cost."""
    last = table.sort_values("items").iloc[-1]
    return float(last["seconds"]) / float(last["items"]) * items


# ---------------------------------------------------------------------------------------------- projections

def projections(rates: dict, surkov: dict, werning: dict, baseline: dict) -> pd.DataFrame:
    """Projected wall-clock (hours) of each paper's full recipe from measured ``rates``:
    ``cp_mobile_train`` and ``efficientat_train`` (samples/s), ``efficientat_infer`` (1 s clips/s) and
    ``passt_infer`` (10 s clips/s, one model)."""
    labeled = SPLIT100_CLIPS
    small, large = surkov["subsets"]["small"], surkov["subsets"]["large"]
    ensemble, pruned_share = werning["ensemble_size"], werning["pruned_share"]
    kd_steps, kd_batch = werning["kd"]["min_steps"], werning["kd"]["batch_size"]
    rows = [
        ("baseline", "CP-Mobile, split 100", f"{baseline['epochs']} epochs × {labeled:,} clips",
         baseline["epochs"] * labeled, rates["cp_mobile_train"]),
        ("Surkov", "mean teacher: EfficientAT mn10", f"{surkov['mt_epochs']} epochs × ({labeled:,} + {small:,}) clips",
         surkov["mt_epochs"] * (labeled + small), rates["efficientat_train"]),
        ("Surkov", "teacher outputs, cached once", f"{labeled + large:,} clips", labeled + large,
         rates["efficientat_infer"]),
        ("Surkov", "KD into CP-Mobile, large subset", f"{surkov['kd_epochs']} epochs × ({labeled:,} + {large:,}) clips",
         surkov["kd_epochs"] * (labeled + large), rates["cp_mobile_train"]),
        ("Werning", "PaSST-ensemble logits of AudioSet (domain classifier)",
         f"{ensemble} models × {AUDIOSET_SEGMENTS:,} clips of 10 s", ensemble * AUDIOSET_SEGMENTS, rates["passt_infer"]),
        ("Werning", "PaSST-ensemble logits of the pruned 1 s pieces",
         f"{ensemble} × {pruned_share:.1%} × {AUDIOSET_SEGMENTS:,} × 10 pieces (≈ cost of 10 s clips)",
         ensemble * pruned_share * AUDIOSET_SEGMENTS, rates["passt_infer"]),
        ("Werning", "KD into CP-Mobile (527 classes)", f"{kd_steps:,} steps × {kd_batch} pieces",
         kd_steps * kd_batch, rates["cp_mobile_train"]),
        ("Werning", "fine-tuning on split 100", f"{werning['finetune_epochs']} epochs × {labeled:,} clips",
         werning["finetune_epochs"] * labeled, rates["cp_mobile_train"]),
    ]
    frame = pd.DataFrame(rows, columns=["paper", "stage", "work", "items", "items/s"])
    frame["hours"] = frame["items"] / frame["items/s"] / 3600
    return frame.set_index(["paper", "stage"])


# ------------------------------------------------------------------------- PROFILE=real on one GPU server

SERVER = {"name": "one H100 server", "gpu_gb": 80, "ram_gb": 128, "cores": 16}
TEST_CLIPS = 29_680               # DCASE2024 test split (tests/test_dcase.py checks the real list)


def training_gpu_gb(model: nn.Module, input_size: tuple, batch: int, train_mode: bool = True) -> float:
    """GPU memory of a step at ``batch`` from torchinfo's counts on one item (forward/backward activations,
    scaled linearly to the batch) plus the parameters (training: weights, gradients and AdamW's two
    moments, fp32; inference: the weights only)."""
    from torchinfo import summary

    stats = summary(model.eval(), input_size=(1, *input_size), verbose=0, device="cpu")
    activations = stats.total_output_bytes * (batch if train_mode else batch / 2)
    weights = stats.total_param_bytes * (4 if train_mode else 1)
    return (activations + weights) / 2**30


def gpu_estimates() -> dict[str, float]:
    """GPU memory (GB) of each model's step at the papers' batch sizes (torchinfo; random weights)."""
    from asc_lib.models import build_cp_mobile
    from asc_lib.models.efficientat import build_efficientat
    from asc_lib.models.passt import load_passt

    with torch.no_grad():
        return {
            "cp_mobile_train": training_gpu_gb(build_cp_mobile(), (1, 256, 65), 256),
            "cp_mobile_527_train": training_gpu_gb(build_cp_mobile(n_classes=527), (1, 256, 65), 32),
            "efficientat_train": training_gpu_gb(build_efficientat("mn10", 10), (1, 128, 101), 256),
            "efficientat_infer": training_gpu_gb(build_efficientat("mn10", 10), (1, 128, 101), 256, False),
            "passt_infer": training_gpu_gb(load_passt(None), (320_000,), 64, False),
        }


def real_resources(rates: dict, gpu: dict, surkov: dict, werning: dict, baseline: dict,
                   budget_gb: float | None = None) -> pd.DataFrame:
    """Every stage of ``PROFILE=real`` on :data:`SERVER`: disk it writes, memory it holds (data over the
    budget stream from disk: waveform caches read by DataLoader workers, or clips decoded on the fly for a
    single pass), GPU memory at the papers' batch sizes (``gpu``, torchinfo estimates) and hours at
    ``rates`` (the rates measured on the machine at hand, as :func:`projections`)."""
    budget = budget_gb if budget_gb is not None else SERVER["ram_gb"] / 2
    gb = 1 / 2**30
    clip32, clip16 = 32_000 * 2, 16_000 * 2              # 1 s of float16 at 32 / 16 kHz
    hours = projections(rates, surkov, werning, baseline)["hours"]
    pruned = werning["pruned_share"] * AUDIOSET_SEGMENTS
    large = surkov["subsets"]["large"]

    def row(paper, stage, disk, data, gpu_gb, hours_, single_pass=False):
        streamed = data > budget
        held = min(data, budget) if not streamed else 0.0
        how = ("decoded on the fly" if single_pass else "streamed from disk") if streamed else "resident"
        return {"paper": paper, "stage": stage, "disk GB": disk, "data GB": data, "held in RAM GB": held,
                "data path": how, "GPU GB": gpu_gb, "hours (rates here)": hours_}

    tau = (SPLIT100_CLIPS + TEST_CLIPS)
    rows = [
        row("all", "TAU22 waveform caches (split 100 + test, 32 and 16 kHz)", tau * (clip32 + clip16) * gb,
            SPLIT100_CLIPS * clip32 * gb, 0.0, float("nan")),
        row("baseline", "CP-Mobile, split 100", 0.0, SPLIT100_CLIPS * clip32 * gb, gpu["cp_mobile_train"],
            hours[("baseline", "CP-Mobile, split 100")]),
        row("Surkov", "mean teacher: EfficientAT mn10", surkov["subsets"]["small"] * 10 * clip16 * gb,
            (SPLIT100_CLIPS + surkov["subsets"]["small"] * 10) * clip16 * gb, gpu["efficientat_train"],
            hours[("Surkov", "mean teacher: EfficientAT mn10")]),
        row("Surkov", "teacher outputs, cached once", (SPLIT100_CLIPS + large * 10) * 10 * 4 * gb,
            (SPLIT100_CLIPS + large * 10) * clip16 * gb, gpu["efficientat_infer"],
            hours[("Surkov", "teacher outputs, cached once")]),
        row("Surkov", "KD into CP-Mobile, large subset", large * 10 * clip32 * gb,
            (SPLIT100_CLIPS + large * 10) * clip32 * gb, gpu["cp_mobile_train"],
            hours[("Surkov", "KD into CP-Mobile, large subset")]),
        row("Werning", "PaSST-ensemble logits of AudioSet (domain classifier)", AUDIOSET_SEGMENTS * 527 * 4 * gb,
            AUDIOSET_SEGMENTS * 10 * clip32 * gb, gpu["passt_infer"],
            hours[("Werning", "PaSST-ensemble logits of AudioSet (domain classifier)")], single_pass=True),
        row("Werning", "PaSST-ensemble logits of the pruned 1 s pieces", pruned * 10 * 527 * 4 * gb,
            pruned * 10 * clip32 * gb, gpu["passt_infer"],
            hours[("Werning", "PaSST-ensemble logits of the pruned 1 s pieces")]),
        row("Werning", "KD into CP-Mobile (527 classes)", pruned * 10 * clip32 * gb, pruned * 10 * clip32 * gb,
            gpu["cp_mobile_527_train"], hours[("Werning", "KD into CP-Mobile (527 classes)")]),
        row("Werning", "fine-tuning on split 100", 0.0, SPLIT100_CLIPS * clip32 * gb, gpu["cp_mobile_train"],
            hours[("Werning", "fine-tuning on split 100")]),
    ]
    return pd.DataFrame(rows).set_index(["paper", "stage"])


# ------------------------------------------------------------------------------------------- notebook glue

DEFAULT_CACHE_SIZES = [10, 100, 1_000]


def scaling_sizes(largest: int | None, device: torch.device) -> list[int]:
    """10×-spaced sizes from 1,000 up to ``largest`` (included); None: AudioSet's 2 million segments on a GPU
    machine, 100,000 on a CPU (the full sweep takes about a minute more there)."""
    largest = largest or (AUDIOSET_SEGMENTS if device.type == "cuda" else 100_000)
    sizes = [10 ** k for k in range(3, 10) if 10 ** k < largest]
    return sizes + [largest]


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
    """Teacher inference in clips/s, fp32 against mixed precision: EfficientAT mn10 on 1 s clips (its 16 kHz
    front end; Surkov's teacher) and PaSST-S on 10 s clips at 32 kHz (one member of Werning's ensemble).
    Random weights: the speed does not depend on them."""
    from asc_lib.models.efficientat import build_efficientat
    from asc_lib.models.passt import load_passt

    frontend = build_frontend("surkov16k")
    rows = []
    for amp in (False, True):
        rows.append({"teacher": "EfficientAT mn10 (1 s clips)", "precision": "mixed" if amp else "fp32",
                     "clips/s": inference_throughput(build_efficientat("mn10", 10), clips, 1.0, frontend.sample_rate,
                                                     batch_size, device, amp, frontend)})
    passt = load_passt(None)
    for amp in (False, True):
        rows.append({"teacher": "PaSST-S (10 s clips)", "precision": "mixed" if amp else "fp32",
                     "clips/s": inference_throughput(passt, passt_clips, 10.0, 32_000, min(batch_size, passt_clips),
                                                     device, amp)})
    return pd.DataFrame(rows).set_index(["teacher", "precision"])


def efficientat_training_rate(waves: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int,
                              device: torch.device, seed: int = 0, recipe: dict | None = None) -> float:
    """EfficientAT mn10 training samples/s through :func:`asc_lib.training.loop.fit` (for the mean-teacher
    projection); ``waves`` at 16 kHz, the surkov16k front end, the given recipe's optimizer settings."""
    from asc_lib.models.efficientat import build_efficientat

    recipe = {**(recipe or {"lr": 1e-3, "weight_decay": 1e-3, "warmup_steps": 0, "min_lr_fraction": 0.0,
                            "channels_last": True, "amp": True}), "batch_size": batch_size}
    torch.manual_seed(seed)
    frontend = build_frontend("surkov16k").to(device)
    model = build_efficientat("mn10", 10).to(device)
    objective = Supervised(Augment(frontend, AugmentConfig())).to(device)
    return fit_rate(model, objective, TrainData(waves, labels), recipe, steps, 1, device, seed)


def scaling_table(filter_sizes, cache_sizes, cache_frame: pd.DataFrame, audio_root: str | Path,
                  progress: bool = True) -> pd.DataFrame:
    """Time and peak memory of label filtering, domain scoring and cache build at each size."""
    cache_sizes = [s for s in cache_sizes if s <= len(cache_frame)]
    parts = [scaling("label filtering", filter_sizes, progress=progress),
             scaling("domain scoring", filter_sizes, progress=progress),
             scaling("cache build", cache_sizes, {"audio_root": str(audio_root),
                                                  "filenames": list(cache_frame["filename"])}, progress=progress)]
    return pd.concat(parts, ignore_index=True)


def paper_settings() -> dict:
    """The full recipes' sizes the projections need, from ``params/``."""
    from asc_lib.config.params import load_recipe, load_yaml, paper_results
    from asc_lib.config import paths

    table1 = paper_results()["werning_table1"]
    surkov = load_yaml(paths.PARAMS_DIR / "surkov.yaml")
    werning = load_yaml(paths.PARAMS_DIR / "werning.yaml")
    models = load_yaml(paths.PARAMS_DIR / "models.yaml")
    threshold = werning["domain_classifier"]["paper"]["threshold"]
    return {
        "surkov": {"subsets": surkov["audioset_filter"]["paper"]["subsets"],
                   "mt_epochs": surkov["mean_teacher"]["paper"]["epochs"],
                   "kd_epochs": surkov["kd"]["paper"]["epochs"]},
        "werning": {"ensemble_size": models["passt"]["n_ensemble_paper"], "kd": werning["kd"]["paper"],
                    "finetune_epochs": werning["finetune"]["paper"]["epochs"],
                    "pruned_share": table1["relative_size"][table1["threshold"].index(threshold)] / 100},
        "baseline": {"epochs": load_recipe("baseline")["epochs"]},
    }


def save(results: dict, tables: dict[str, pd.DataFrame], name: str, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``results`` as ``<name>.json`` and each table as ``<name>-<table>.csv`` (atomically)."""
    from asc_lib.config import paths
    from asc_lib.config.atomic import write_csv, write_json

    out = Path(out_dir) if out_dir else paths.reports_dir() / "benchmarks"
    return [write_json(out / f"{name}.json", results),
            *(write_csv(out / f"{name}-{key}.csv", table) for key, table in tables.items())]


if __name__ == "__main__":  # one scaling measurement in a fresh process: task, size, workdir, extras (JSON file)
    print(json.dumps(_in_fresh_process(sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                       json.loads(Path(sys.argv[4]).read_text()))))
