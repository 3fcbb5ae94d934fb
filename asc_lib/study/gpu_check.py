"""``make gpu-check``: the first thing to run on a GPU machine, in about five minutes.

It trains a few dozen steps of every method's objective with the smoke profile's recipes (random waveforms: the
speed and the code paths do not depend on the data) and runs a teacher pass, on the GPU and, for comparison, a
few steps on the CPU, and prints per stage: the precision actually used (the dtype seen inside the model), the
GPU memory peak and samples/s on both devices. It fails, naming the stage, where something falls back: the
model not on the GPU, float32 where the recipe asks for mixed precision, a non-finite loss. Before any stage it
prints the device, the driver, torch and its CUDA build, and whether bfloat16 and TF32 are on.

On a machine without a GPU it says so and exits 0 (``--device cpu`` runs the same stages on the CPU, which is
how the test suite checks this module). Send the whole output when it fails.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time

import pandas as pd
import torch
from torch import nn

from asc_lib.config import profile_recipe
from asc_lib.features.augment import Augment, AugmentConfig
from asc_lib.features.frontend import build_frontend, output_shape
from asc_lib.methods.meanteacher import MeanTeacher
from asc_lib.methods.werning import MultiLabelDistillation
from asc_lib.models import build_cp_mobile
from asc_lib.models.efficientat import build_efficientat
from asc_lib.training import device as devices
from asc_lib.training.distill import ProbabilityMSE
from asc_lib.training.evaluate import compute_logits
from asc_lib.training.loop import Supervised, build_optimizer, train_step

PROFILE = "smoke"
CPU_STEPS = 3  # the CPU's steps per stage (its rate, for comparison)


def environment(device: torch.device) -> dict:
    """What the check runs on: device, driver, torch and its CUDA build, bfloat16 and TF32."""
    info = {"device": str(device), "torch": torch.__version__, "CUDA build": torch.version.cuda or "none",
            "driver (nvidia-smi)": devices.driver_version() or "none", "host": f"{platform.machine()}, "
            f"{torch.get_num_threads()} CPU threads"}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        info.update({"GPU": torch.cuda.get_device_name(device), "compute capability": f"{major}.{minor}",
                     "GPU memory GB": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1),
                     "bfloat16": torch.cuda.is_bf16_supported(),
                     "TF32 matmuls": torch.get_float32_matmul_precision()})
    return info


def _stages() -> dict:
    """Each method's objective on the smoke recipes: (model, objective, batch extras, recipe)."""
    base = profile_recipe(PROFILE, "baseline")
    mt = profile_recipe(PROFILE, "mean_teacher", source="surkov")
    kd = profile_recipe(PROFILE, "kd", source="surkov")
    wkd = profile_recipe(PROFILE, "kd", source="werning")

    def augment(recipe):
        return Augment(build_frontend(recipe["frontend"]),
                       AugmentConfig.from_recipe(recipe, output_shape(recipe["frontend"])))

    student = build_efficientat("mn04", 10)
    return {
        "baseline: CP-Mobile, cross-entropy": (build_cp_mobile(), Supervised(augment(base)), {}, base),
        "Surkov: mean teacher, EfficientAT mn04": (student, MeanTeacher(augment(mt), student, mt["ema_decay"],
                                                                        mt["consistency_weight"]), {}, mt),
        "Surkov: KD into CP-Mobile, MSE on probabilities": (build_cp_mobile(), ProbabilityMSE(augment(kd)),
                                                            {"teacher_probs": 10}, kd),
        "Werning: KD into a 527-class CP-Mobile": (
            build_cp_mobile(n_classes=527), MultiLabelDistillation(augment(wkd), wkd["distillation_weight"],
                                                                   wkd["mixup_alpha"], wkd["mixup"], wkd["mixup_p"]),
            {"teacher_logits": 527, "targets": 527}, wkd),
    }


def _batch(recipe: dict, extras: dict, device: torch.device, labeled: bool = True) -> dict:
    g = torch.Generator().manual_seed(0)
    n, rate = recipe["batch_size"], build_frontend(recipe["frontend"]).sample_rate
    batch = {"waves": 0.1 * torch.randn(n, rate, generator=g), "labels": torch.randint(0, 10, (n,), generator=g)}
    if not labeled:
        batch["labels"][n // 2:] = -1
    for name, width in extras.items():
        batch[name] = (torch.rand(n, width, generator=g) > 0.9).to(torch.uint8) if name == "targets" \
            else torch.randn(n, width, generator=g).softmax(-1) if name == "teacher_probs" else torch.randn(n, width, generator=g)
    batch["index"] = torch.arange(n)
    return {k: v.to(device) for k, v in batch.items()}


def _dtype_probe(model: nn.Module) -> tuple[list, object]:
    """The dtypes the model's first convolution computes in (a forward hook)."""
    seen: list = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return seen, conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))


def train_stage(model: nn.Module, objective, extras: dict, recipe: dict, device: torch.device, steps: int) -> dict:
    """``steps`` optimizer steps (after one untimed) of ``objective`` on ``device``: samples/s, the dtype seen
    inside the model, the loss, the memory peak."""
    model, objective = model.to(device), objective.to(device)
    objective.total_steps = steps + 1
    if recipe.get("channels_last"):
        model.to(memory_format=torch.channels_last)
        objective.to(memory_format=torch.channels_last)
        objective.channels_last = True
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], recipe)
    amp = bool(recipe.get("amp")) and device.type == "cuda"
    batch = _batch(recipe, extras, device, labeled=not isinstance(objective, MeanTeacher))
    seen, hook = _dtype_probe(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    loss = train_step(model, model, objective, optimizer, None, batch, 0, device, amp)
    _sync(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = train_step(model, model, objective, optimizer, None, batch, step, device, amp)
    _sync(device)
    rate = steps * recipe["batch_size"] / (time.perf_counter() - start)
    hook.remove()
    return {"samples/s": rate, "precision": _name(seen), "expected": "bfloat16" if amp else "float32",
            "loss": float(loss), "peak GB": _peak(device), "on device": next(model.parameters()).device.type}


def teacher_stage(device: torch.device, clips: int, setting: str = "auto") -> dict:
    """A teacher pass (EfficientAT mn04, 527 classes, 1 s clips) in the recipes' ``teacher_precision``."""
    model = build_efficientat("mn04", 527).to(device).eval()
    frontend = build_frontend("surkov16k").to(device)
    waves = 0.1 * torch.randn(clips, 16_000, generator=torch.Generator().manual_seed(0))
    dtype = devices.precision(setting, device)
    seen, hook = _dtype_probe(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    compute_logits(model, waves, frontend, 64, device, 0, min(64, clips), autocast=dtype)
    _sync(device)
    start = time.perf_counter()
    out = compute_logits(model, waves, frontend, 64, device, autocast=dtype)
    _sync(device)
    rate = clips / (time.perf_counter() - start)
    hook.remove()
    return {"samples/s": rate, "precision": _name(seen), "expected": str(dtype or torch.float32).split(".")[-1],
            "loss": float(out.float().abs().mean()), "peak GB": _peak(device),  # the pass's mean |logit|
            "on device": next(model.parameters()).device.type}


def _name(seen: list) -> str:
    return ", ".join(sorted({str(d).split(".")[-1] for d in seen})) or "not run"


def _peak(device: torch.device) -> float:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check(device: torch.device, steps: int, teacher_clips: int, compare_cpu: bool = True) -> pd.DataFrame:
    """Every stage on ``device`` (and on the CPU for comparison): the table :func:`main` prints."""
    devices.configure(device)
    rows = []
    for name, (model, objective, extras, recipe) in _stages().items():
        row = train_stage(model, objective, extras, recipe, device, steps)
        if compare_cpu and device.type != "cpu":
            model, objective, extras, recipe = _stages()[name]
            row["CPU samples/s"] = train_stage(model, objective, extras, recipe, torch.device("cpu"), CPU_STEPS)["samples/s"]
        rows.append({"stage": name, **row})
    row = teacher_stage(device, teacher_clips)
    if compare_cpu and device.type != "cpu":
        row["CPU samples/s"] = teacher_stage(torch.device("cpu"), min(teacher_clips, 64))["samples/s"]
    rows.append({"stage": "teacher pass: EfficientAT mn04, 527 classes (teacher_precision auto)", **row})
    return pd.DataFrame(rows).set_index("stage")


def problems(table: pd.DataFrame, device: torch.device) -> list[str]:
    """What fell back: a model off the device, another precision than expected, a non-finite loss."""
    found = []
    for stage, row in table.iterrows():
        if row["on device"] != device.type:
            found.append(f"{stage}: the model is on {row['on device']}, not {device.type}")
        if row["precision"] != row["expected"]:
            found.append(f"{stage}: computed in {row['precision']}, the recipe asks for {row['expected']}")
        if not pd.notna(row["loss"]) or abs(row["loss"]) == float("inf"):
            found.append(f"{stage}: the loss is {row['loss']}")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check the GPU paths of every stage (make gpu-check).")
    parser.add_argument("--device", default="auto", help="auto (the GPU; on a CPU-only machine: nothing to check), "
                                                         "cuda[:N], or cpu (the same stages on the CPU)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per stage")
    parser.add_argument("--teacher-clips", type=int, default=512)
    args = parser.parse_args(argv)
    try:
        device = devices.resolve_device(args.device)
    except devices.DeviceError as err:
        print(f"GPU check FAILED before any stage: {err}")
        return 1
    if args.device == "auto" and device.type != "cuda":
        print(f"No usable GPU on this machine (torch {torch.__version__}, CUDA build {torch.version.cuda}, no NVIDIA "
              f"driver): nothing to check here. Run `make gpu-check` on the GPU machine; `--device cpu` runs the "
              f"same stages on this CPU.")
        return 0
    for key, value in environment(device).items():
        print(f"{key:>20}: {value}")
    table = check(device, args.steps, args.teacher_clips)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string())
    found = problems(table, device)
    if found:
        print("GPU check FAILED:\n  " + "\n  ".join(found) + "\nSend this whole output with the issue.")
        return 1
    print(f"GPU check passed: every stage ran on {device} in the precision its recipe asks for.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
