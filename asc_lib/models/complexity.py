"""Model complexity under the DCASE2024 Task 1 rules, counted with torchinfo (the challenge's counter).

Parameters and multiply-accumulate operations (MACs) for 1 s of audio at the model's input size;
parameter memory = parameters x bits / 8. Limits (``params/models.yaml``): 128,000 bytes and 30 M MACs.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import pandas as pd
import torch
import torchinfo

from asc_lib.config import load_yaml, paths


def limits() -> dict:
    """The complexity limits and parameter precision of ``params/models.yaml``."""
    return dict(load_yaml(paths.PARAMS_DIR / "models.yaml")["complexity"])


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    input_size: tuple
    param_bits: int
    max_param_bytes: int
    max_macs: int

    @property
    def param_bytes(self) -> int:
        return self.params * self.param_bits // 8

    @property
    def passes(self) -> bool:
        return self.param_bytes <= self.max_param_bytes and self.macs <= self.max_macs

    def as_dict(self) -> dict:
        return {**asdict(self), "param_bytes": self.param_bytes, "passes": self.passes}


def measure(model: torch.nn.Module, input_size, param_bits: int | None = None) -> Complexity:
    """Count parameters and MACs with ``torchinfo.summary`` on a float32 CPU copy of ``model``."""
    lim = limits()
    probe = copy.deepcopy(model).float().cpu().eval()
    stats = torchinfo.summary(probe, input_size=tuple(input_size), verbose=0, device="cpu")
    return Complexity(params=int(stats.total_params), macs=int(stats.total_mult_adds), input_size=tuple(input_size),
                      param_bits=param_bits or lim["param_bits"], max_param_bytes=lim["max_param_bytes"],
                      max_macs=lim["max_macs"])


def table(costs: dict) -> pd.DataFrame:
    """Complexity of several models side by side (``{name: Complexity}``), with the DCASE verdict."""
    rows = {name: {"parameters": c.params, "MACs (1 s)": c.macs, "input": "x".join(map(str, c.input_size)),
                   f"memory @ {c.param_bits} bit (bytes)": c.param_bytes,
                   "within DCASE limits": "yes" if c.passes else "no"} for name, c in costs.items()}
    return pd.DataFrame.from_dict(rows, orient="index")
