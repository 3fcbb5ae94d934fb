"""The one device helper: ``auto`` is the GPU when there is one, else the CPU."""
from __future__ import annotations

import torch


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) is :func:`default_device`; anything else is passed to torch."""
    return default_device() if name in (None, "auto") else torch.device(name)
