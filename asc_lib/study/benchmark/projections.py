"""From measured rates to the papers' full recipes: the sizes the recipes imply (``params/``), the
wall-clock of each stage on the measuring machine, the GPU memory each training needs (torchinfo) and
the resources on one GPU server; writing the benchmark's results.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torchinfo import summary

from asc_lib.config import load_recipe, load_yaml, paper_results, paths
from asc_lib.config.atomic import write_csv, write_json
from asc_lib.models import build_cp_mobile
from asc_lib.models.efficientat import build_efficientat
from asc_lib.models.passt import load_passt

AUDIOSET_SEGMENTS = 2_000_000     # "AudioSet's 2 million segments" (balanced + unbalanced + eval, rounded)
SPLIT100_CLIPS = 139_620          # DCASE2024 split 100 (tests/test_dcase.py checks the real list)


RATES = ("cp_mobile_train", "efficientat_train", "efficientat_infer", "passt_infer")


def unit_rates() -> dict[str, float]:
    """One item per second for every rate :func:`projections` needs: its output is then the work itself."""
    return dict.fromkeys(RATES, 1.0)


def measured_rates(cp_mobile_train: float, efficientat_train: float, teachers: pd.DataFrame) -> dict[str, float]:
    """The rates :func:`projections` needs, from the training rates and the best of each teacher's
    inference rates in ``teachers`` (:func:`asc_lib.study.benchmark.throughput.teacher_table`)."""
    return {"cp_mobile_train": cp_mobile_train, "efficientat_train": efficientat_train,
            "efficientat_infer": teachers["clips/s"].xs("EfficientAT mn10 (1 s clips)").max(),
            "passt_infer": teachers["clips/s"].xs("PaSST-S (10 s clips)").max()}


def projections(rates: dict, surkov: dict, werning: dict, baseline: dict) -> pd.DataFrame:
    """Projected wall-clock (hours) of each paper's full recipe from measured ``rates``:
    ``cp_mobile_train`` and ``efficientat_train`` (samples/s), ``efficientat_infer`` (1 s clips/s) and
    ``passt_infer`` (10 s clips/s, one model)."""
    labeled = SPLIT100_CLIPS
    small, large = surkov["subsets"]["small"], surkov["subsets"]["large"]
    ensemble, pruned_share = werning["ensemble_size"], werning["pruned_share"]
    kd_steps, kd_batch = werning["kd"]["min_steps"], werning["kd"]["batch_size"]
    whole_clips = werning["kd"].get("input", "clips") == "clips"
    item_seconds = 10 if whole_clips else 1  # the CP-Mobile rate is per 1 s clip: a 10 s clip costs ten
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
        *([] if whole_clips else [
            ("Werning", "PaSST-ensemble logits of the pruned 1 s pieces",
             f"{ensemble} × {pruned_share:.1%} × {AUDIOSET_SEGMENTS:,} × 10 pieces (≈ cost of 10 s clips)",
             ensemble * pruned_share * AUDIOSET_SEGMENTS, rates["passt_infer"])]),
        ("Werning", "KD into CP-Mobile (527 classes)",
         f"{kd_steps:,} steps × {kd_batch} " + ("clips of 10 s (10 s of audio each)" if whole_clips else "1 s pieces"),
         kd_steps * kd_batch * item_seconds, rates["cp_mobile_train"]),
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
    stats = summary(model.eval(), input_size=(1, *input_size), verbose=0, device="cpu")
    activations = stats.total_output_bytes * (batch if train_mode else batch / 2)
    weights = stats.total_param_bytes * (4 if train_mode else 1)
    return (activations + weights) / 2**30


def gpu_estimates() -> dict[str, float]:
    """GPU memory (GB) of each model's step at the papers' batch sizes (torchinfo; random weights)."""
    with torch.no_grad():
        return {
            "cp_mobile_train": training_gpu_gb(build_cp_mobile(), (1, 256, 65), 256),
            "cp_mobile_527_train": training_gpu_gb(build_cp_mobile(n_classes=527), (1, 256, 641), 32),  # 10 s clips
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
        *([] if ("Werning", "PaSST-ensemble logits of the pruned 1 s pieces") not in hours.index else [
            row("Werning", "PaSST-ensemble logits of the pruned 1 s pieces", pruned * 10 * 527 * 4 * gb,
                pruned * 10 * clip32 * gb, gpu["passt_infer"],
                hours[("Werning", "PaSST-ensemble logits of the pruned 1 s pieces")])]),
        # the pruned set's clips in the waveform cache (10 s each, or their 1 s pieces: the same audio)
        row("Werning", "KD into CP-Mobile (527 classes)", pruned * 10 * clip32 * gb, pruned * 10 * clip32 * gb,
            gpu["cp_mobile_527_train"], hours[("Werning", "KD into CP-Mobile (527 classes)")]),
        row("Werning", "fine-tuning on split 100", 0.0, SPLIT100_CLIPS * clip32 * gb, gpu["cp_mobile_train"],
            hours[("Werning", "fine-tuning on split 100")]),
    ]
    return pd.DataFrame(rows).set_index(["paper", "stage"])


# ------------------------------------------------------------------------------------------- notebook glue

def paper_settings() -> dict:
    """The full recipes' sizes the projections need, from ``params/``."""
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


def headline_numbers(device: str, batch_size: int, steps: int, loader_workers: int, training_ratio: float, rates: dict,
            projected_hours: pd.Series, streaming: pd.DataFrame) -> dict:
    """The benchmark's headline numbers for ``<name>.json``: the data path's speed-up, the measured rates,
    one epoch of split 100 at the CP-Mobile rate, the projected hours per paper and the streaming ratio."""
    return {"device": device, "batch_size": batch_size, "steps": steps, "loader_workers": loader_workers,
            "training_ratio": float(training_ratio), "rates": rates,
            "split100_epoch_seconds": SPLIT100_CLIPS / rates["cp_mobile_train"],
            "projected_hours": projected_hours.to_dict(), "streaming_ratio": float(streaming["relative"].iloc[-1])}


def save(results: dict, tables: dict[str, pd.DataFrame], name: str, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``results`` as ``<name>.json`` and each table as ``<name>-<table>.csv`` (atomically)."""
    out = Path(out_dir) if out_dir else paths.reports_dir() / "benchmarks"
    return [write_json(out / f"{name}.json", results),
            *(write_csv(out / f"{name}-{key}.csv", table) for key, table in tables.items())]
