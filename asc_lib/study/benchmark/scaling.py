"""Scaling of the steps that grow with the data: cache build, AudioSet label filtering, domain scoring,
the real segment lists' rehearsal and streamed training, each size measured in a fresh process (time and
peak resident memory above the idle process). ``python -m asc_lib.study.benchmark.scaling TASK SIZE
WORKDIR EXTRAS.json`` is the child process; :func:`scaling` runs it over the sizes.
"""
from __future__ import annotations

import json
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
from asc_lib.config.progress import bar as progress_bar

from asc_lib.config import load_recipe, paths
from asc_lib.data import audioset, audioset_clips, unlabeled
from asc_lib.data.audio import build_waveform_cache
from asc_lib.data.rows import DiskRows
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend
from asc_lib.methods import labelfilter
from asc_lib.methods.pruning import DomainClassifier, domain_scores
from asc_lib.models import build_cp_mobile
from asc_lib.study.benchmark.projections import AUDIOSET_SEGMENTS
from asc_lib.training import loop
from asc_lib.training.loop import Supervised, TrainData


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
    segments = audioset.read_segments(workdir / f"segments-{size}.csv")
    labels = set(labelfilter.table1_labels())
    labelfilter.filtered_pool({"generated": segments}, labels)


def _domain_scoring(size: int, workdir: Path, chunk: int = 65_536, **_) -> None:
    torch.manual_seed(0)
    classifier = DomainClassifier(527).eval()
    generator = torch.Generator().manual_seed(1)
    kept = 0
    for start in range(0, size, chunk):  # logits streamed chunk by chunk, as from a memory-mapped cache
        logits = torch.randn(min(chunk, size - start), 527, generator=generator)
        kept += int((domain_scores(classifier, logits) >= 0.3).sum())


def _cache_build(size: int, workdir: Path, audio_root: str = "", filenames=(), **_) -> None:
    build_waveform_cache(list(filenames)[:size], audio_root, 32_000, 32_000, cache_dir=workdir / f"cache-{size}")


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
    rows = DiskRows(write_disk_waves(workdir / f"waves-{size}.npy", size), f"bench-{size}")
    waves = rows if streamed else rows.resident()
    labels = torch.arange(size) % 10
    recipe = {**load_recipe("baseline"), "batch_size": batch_size, "epochs": 1, "min_steps": steps,
              "max_steps": steps, "eval_points": 0, "feature_cache": False, "warmup_steps": 0}
    torch.manual_seed(0)
    objective = Supervised(Augment(build_frontend(recipe["frontend"]), AugmentConfig.from_recipe(recipe)))
    with tempfile.TemporaryDirectory() as run:
        loop.fit(build_cp_mobile(), objective, TrainData(waves, labels), recipe, run, device="cpu")
    return {"data MB": rows.nbytes / 2**20}


def _real_lists(size: int, workdir: Path, audioset_dir: str = "", **_) -> dict:
    """The list-level stages of both methods on the real segment lists, stage by stage: time and peak
    memory so far (this process), with what each stage produced."""
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
    path = audioset.write_subset(workdir / "subset.csv", subset, "rehearsal")
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
    audioset_dir = paths.shared_data_dir() / "audioset"
    if not (audioset_dir / "balanced_train_segments.csv").is_file():
        return None
    with tempfile.TemporaryDirectory() as workdir:
        extras = Path(workdir) / "extra.json"
        extras.write_text(json.dumps({"audioset_dir": str(audioset_dir)}))
        command = [sys.executable, "-m", "asc_lib.study.benchmark.scaling", "real lists", str(subset_size), workdir, str(extras)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the real-list rehearsal failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    return pd.DataFrame(result["stages"]).set_index("stage")


DEFAULT_STREAMING_SIZES = (2000, 8000)  # 122 and 488 MB of 1 s float16 clips at 32 kHz


def streaming_memory(sizes, steps: int = 8) -> pd.DataFrame:
    """Peak memory of training on data held on disk: each size resident and streamed (a budget of a tenth of
    the data), each in a fresh process; ``workers peak MB`` is the largest DataLoader worker's own peak."""
    parts = []
    for streamed in (False, True):
        table = scaling("streamed training", sizes, {"steps": steps, "streamed": streamed})
        parts.append(table.assign(task="streamed from disk" if streamed else "resident (loaded first)"))
    return pd.concat(parts, ignore_index=True)


def write_generated_segments(path: Path, size: int, seed: int = 0) -> Path:
    """An official-format segment list of ``size`` generated segments (labels drawn from the real class
    index vocabulary of the 14 Table-1 labels plus others)."""
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


def scaling(task: str, sizes, extra: dict | None = None) -> pd.DataFrame:
    """Time and peak memory of ``task`` at each size, each in a fresh Python process."""
    if task not in SCALING_TASKS:
        raise ValueError(f"unknown scaling task {task!r}; choose from {sorted(SCALING_TASKS)}")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        extras = Path(workdir) / "extra.json"
        extras.write_text(json.dumps(extra or {}))
        for size in progress_bar(list(sizes), desc=task):
            if task == "label filtering":  # inputs are prepared here, outside the measured process
                write_generated_segments(Path(workdir) / f"segments-{size}.csv", size)
            if task == "streamed training":
                write_disk_waves(Path(workdir) / f"waves-{size}.npy", size)
            command = [sys.executable, "-m", "asc_lib.study.benchmark.scaling", task, str(int(size)), workdir, str(extras)]
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

DEFAULT_CACHE_SIZES = [10, 100, 1_000]


def scaling_sizes(largest: int | None, device: torch.device) -> list[int]:
    """10×-spaced sizes from 1,000 up to ``largest`` (included); None: AudioSet's 2 million segments on a GPU
    machine, 100,000 on a CPU (the full sweep takes about a minute more there)."""
    largest = largest or (AUDIOSET_SEGMENTS if device.type == "cuda" else 100_000)
    sizes = [10 ** k for k in range(3, 10) if 10 ** k < largest]
    return sizes + [largest]


def scaling_table(filter_sizes, cache_sizes, cache_frame: pd.DataFrame, audio_root: str | Path) -> pd.DataFrame:
    """Time and peak memory of label filtering, domain scoring and cache build at each size."""
    cache_sizes = [s for s in cache_sizes if s <= len(cache_frame)]
    parts = [scaling("label filtering", filter_sizes),
             scaling("domain scoring", filter_sizes),
             scaling("cache build", cache_sizes, {"audio_root": str(audio_root),
                                                  "filenames": list(cache_frame["filename"])})]
    return pd.concat(parts, ignore_index=True)


if __name__ == "__main__":  # one scaling measurement in a fresh process: task, size, workdir, extras (JSON file)
    print(json.dumps(_in_fresh_process(sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                       json.loads(Path(sys.argv[4]).read_text()))))
