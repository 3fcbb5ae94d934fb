"""What the study's data path buys, and what the papers' full recipes cost (``notebooks/06_benchmarks.ipynb``).

By job: :mod:`.throughput` (training and inference rates), :mod:`.scaling` (fresh-process scaling with the
data's size, streaming memory), :mod:`.projections` (the papers' recipes in hours and GPU memory).

Four kinds of measurement, all on the machine at hand (GPU when there is one):

- **training throughput** of CP-Mobile (samples/s) with the *reference* data path, a ``DataLoader`` whose
  dataset reads and resamples one WAV per item on every epoch (as the DCASE2024 baseline's loader does),
  against the *study's* path: waveforms decoded once into a cache, held as one tensor on the device,
  batches gathered by index there, roll / front end / augmentation batched on the device. Both run the
  same model, objective, optimizer and precision; only the data path differs;
- **teacher inference** (EfficientAT mn10, PaSST-S) in clips/s, fp32 against mixed precision, and the released
  mn04_as's autocast pass against float32 (speed, top-1 agreement, largest difference of probabilities);
- **scaling** of cache build, AudioSet label filtering and domain-classifier scoring with the number of
  items, each size in a fresh process (time and peak resident memory above the idle process);
- **streaming**: :func:`asc_lib.training.loop.fit` on clips resident against the same clips read from disk by
  DataLoader workers (:mod:`asc_lib.data.rows`), and the peak memory of training on data ten times the budget.

:func:`projections` turns the measured rates into the wall-clock of each paper's full recipe.
"""
from asc_lib.study.benchmark.projections import (
    AUDIOSET_SEGMENTS,
    RATES,
    SERVER,
    SPLIT100_CLIPS,
    TEST_CLIPS,
    gpu_estimates,
    headline_numbers,
    measured_rates,
    paper_settings,
    projections,
    real_resources,
    save,
    training_gpu_gb,
    unit_rates,
)
from asc_lib.study.benchmark.scaling import (
    DEFAULT_CACHE_SIZES,
    DEFAULT_STREAMING_SIZES,
    extrapolate,
    real_list_rehearsal,
    scaling,
    scaling_sizes,
    scaling_table,
    streaming_memory,
    write_disk_waves,
    write_generated_segments,
)
from asc_lib.study.benchmark.throughput import (
    WavDataset,
    device_name,
    efficientat_training_rate,
    fit_rate,
    inference_throughput,
    reference_batches,
    streaming_comparison,
    teacher_agreement,
    teacher_table,
    training_comparison,
)

__all__ = ["AUDIOSET_SEGMENTS", "RATES", "SERVER", "SPLIT100_CLIPS", "TEST_CLIPS", "gpu_estimates", "headline_numbers", "measured_rates", "paper_settings", "projections", "real_resources", "save", "training_gpu_gb", "unit_rates", "DEFAULT_CACHE_SIZES", "DEFAULT_STREAMING_SIZES", "extrapolate", "real_list_rehearsal", "scaling", "scaling_sizes", "scaling_table", "streaming_memory", "write_disk_waves", "write_generated_segments", "WavDataset", "device_name", "efficientat_training_rate", "fit_rate", "inference_throughput", "reference_batches", "streaming_comparison", "teacher_agreement", "teacher_table", "training_comparison"]
