"""Which device a run uses, and how it runs there.

``auto`` is the GPU when CUDA is usable, else the CPU, and says which and why once per process. When an
NVIDIA driver is present (``nvidia-smi`` runs) but CUDA is not usable, ``auto`` stops with the reason and the
fix instead of training on the CPU for days: the pinned ``torch==2.11.0`` wheel is built for CUDA 13 (driver
580 or newer, compute capability 7.5 or newer); an older driver takes PyTorch's CUDA 12.6 wheel.
``ASC_ALLOW_CPU=1`` accepts the CPU on such a machine on purpose.

On CUDA, :func:`configure` enables TF32 matmuls (``torch.set_float32_matmul_precision("high")``, as the CPJKU
DCASE2024 baseline does) and cuDNN's autotuner for the fixed-shape CNNs; :func:`precision` resolves a recipe's
autocast setting (``auto``: bfloat16 on GPUs that have it, else float16; float32 on the CPU).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess

import torch

ALLOW_CPU_ENV = "ASC_ALLOW_CPU"
CUDA12_INDEX = "https://download.pytorch.org/whl/cu126"
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


class DeviceError(RuntimeError):
    """CUDA was expected (an NVIDIA driver is present) but cannot be used."""


def driver_version() -> str | None:
    """The NVIDIA driver's version as ``nvidia-smi`` reports it; None without a driver (no ``nvidia-smi``)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version,name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown (nvidia-smi failed: {err})"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else \
        f"unknown (nvidia-smi exited {out.returncode}: {out.stderr.strip()[:200]})"


def cuda_unusable_reason() -> str | None:
    """Why CUDA cannot be used (None when it can): no device, or a GPU this wheel has no kernels for."""
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no usable CUDA device "
                f"(torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(0)
    arches = torch.cuda.get_arch_list()
    if arches and not any(a.startswith("sm_") and int(a[3:]) <= major * 10 + minor for a in arches if a[3:].isdigit()):
        return (f"GPU 0 ({torch.cuda.get_device_name(0)}) has compute capability {major}.{minor}; this torch build "
                f"has kernels for {', '.join(arches)} only")
    return None


@functools.lru_cache(maxsize=None)
def _announce(message: str) -> None:
    print(message, flush=True)


def default_device(announce: bool = True) -> torch.device:
    """The GPU when CUDA is usable, else the CPU; raises :class:`DeviceError` when an NVIDIA driver is present
    but CUDA is unusable (unless ``ASC_ALLOW_CPU=1``)."""
    reason = cuda_unusable_reason()
    if reason is None:
        device = torch.device("cuda")
        message = (f"device auto: cuda ({torch.cuda.device_count()} visible; GPU 0 {torch.cuda.get_device_name(0)}, "
                   f"torch {torch.__version__}, CUDA {torch.version.cuda})")
    else:
        driver = driver_version()
        if driver is not None and os.environ.get(ALLOW_CPU_ENV, "") in ("", "0"):
            raise DeviceError(
                f"an NVIDIA driver is present (nvidia-smi: {driver}) but CUDA is unusable: {reason}. The pinned "
                f"torch==2.11.0 wheel needs driver >= 580 (CUDA 13) and compute capability >= 7.5. Fix: update the "
                f"driver, or install the CUDA 12.6 build into the study's environment: .venv/bin/python -m pip "
                f"install --force-reinstall torch==2.11.0 torchaudio==2.11.0 --index-url {CUDA12_INDEX}. "
                f"To run on the CPU on purpose, set {ALLOW_CPU_ENV}=1.")
        device = torch.device("cpu")
        message = f"device auto: cpu ({'no NVIDIA driver' if driver is None else reason + '; ' + ALLOW_CPU_ENV + '=1'})"
    if announce:
        _announce(message)
    return device


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) is :func:`default_device`; anything else is passed to torch."""
    return default_device() if name in (None, "auto") else torch.device(name)


def configure(device: torch.device) -> None:
    """TF32 matmuls and cuDNN's autotuner on CUDA (both leave the CPU untouched)."""
    if torch.device(device).type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()  # deterministic: no autotuner


def precision(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a recipe's ``teacher_precision`` setting means on ``device`` (None: float32).

    ``auto``: on CUDA bfloat16 where the GPU has it, else float16 (EfficientAT's own inference runs its models
    under autocast on CUDA and in float32 on the CPU, ``inference.py``); float32 on the CPU. ``float32``,
    ``bfloat16``, ``float16`` ask for one precision (float16 autocast on the CPU is refused: slow and
    unsupported for some operators)."""
    if setting not in PRECISIONS:
        raise ValueError(f"teacher precision {setting!r} is not one of {PRECISIONS}")
    kind = torch.device(device).type
    if setting == "float32" or (setting == "auto" and kind != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "float16" and kind != "cuda":
        raise ValueError("float16 autocast is for GPUs; on the CPU use bfloat16 or float32")
    return torch.bfloat16 if setting == "bfloat16" else torch.float16
