"""Batched augmentations of the study, computed on whatever device the batch lives on.

Waveform level: :func:`roll` (the baseline's ±0.1 s roll). Spectrogram level: :func:`freq_mixstyle`,
:func:`mask` (SpecAugment masks) and :func:`mixup`. :class:`Augment` chains them with a front end in the
order of the baseline's code (CPJKU ``run_training.py``): roll -> mel power -> frequency masking -> log ->
Freq-MixStyle. Masking a power bin before ``log(x + offset)`` is the same as setting its log-mel to
``log(offset)``, the front end's floor (:func:`mask_value`), which is what :class:`Augment` does, so the
log-mels can still be computed once. Each of the three choices is a recipe key (``mask_order``,
``mask_fill``, ``mask_widths``) with the paper's or the authors' code's value as its ``paper:`` default.

With a deterministic front end the log-mels of the training clips can be computed once
(:meth:`Augment.features`, the recipes' ``feature_cache``): the roll then moves whole frames of the
cached spectrogram (:func:`roll_frames`, the roll rounded to whole hops), a named deviation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchaudio
from torch import nn

from asc_lib.features.frontend import evaluate_frontend


def roll(waves: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Roll each waveform of a ``(batch, samples)`` tensor by its own shift, uniform in ±``max_shift``."""
    if max_shift <= 0:
        return waves
    n, length = waves.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 1), device=waves.device)
    index = (torch.arange(length, device=waves.device).unsqueeze(0) - shifts) % length
    return torch.gather(waves, 1, index)


def roll_frames(spec: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Roll each spectrogram of a ``(batch, channels, mels, frames)`` tensor along time by its own whole
    number of frames, uniform in ±``max_shift`` (the waveform roll rounded to whole hops)."""
    if max_shift <= 0:
        return spec
    n, frames = spec.shape[0], spec.shape[-1]
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 1, 1, 1), device=spec.device)
    index = (torch.arange(frames, device=spec.device).view(1, 1, 1, -1) - shifts) % frames
    return torch.gather(spec, 3, index.expand_as(spec))


def freq_mixstyle(x: torch.Tensor, p: float, alpha: float, eps: float) -> torch.Tensor:
    """Freq-MixStyle (Schmid et al.): with probability ``p`` per batch, mix each sample's per-frequency
    statistics (mean and std over channel and time) with those of a random partner, λ ~ Beta(α, α)."""
    if p <= 0 or torch.rand(()).item() >= p:
        return x
    n = x.shape[0]
    mu = x.mean(dim=(1, 3), keepdim=True).detach()
    sig = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt().detach()
    normed = (x - mu) / sig
    lam = torch.distributions.Beta(alpha, alpha).sample((n, 1, 1, 1)).to(x.device, x.dtype)
    perm = torch.randperm(n, device=x.device)
    mu_mix = mu * lam + mu[perm] * (1 - lam)
    sig_mix = sig * lam + sig[perm] * (1 - lam)
    return normed * sig_mix + mu_mix


MASK_ORDERS = ("before_mixstyle", "after_mixstyle")
MASK_FILLS = ("floor", "zero")
MASK_WIDTHS = ("up_to", "exact", "mean")


def _exact_mask(x: torch.Tensor, width: int, axis: int, value: float) -> torch.Tensor:
    """One band of exactly ``width`` bins along ``axis`` (2: frequency, 3: time) per sample, set to ``value``,
    its start uniform over the positions where it fits."""
    size = x.shape[axis]
    width = min(width, size)
    start = torch.randint(0, size - width + 1, (x.shape[0], 1), device=x.device)
    pos = torch.arange(size, device=x.device).unsqueeze(0)
    band = (pos >= start) & (pos < start + width)  # (batch, size)
    shape = [x.shape[0], 1, 1, 1]
    shape[axis] = size
    return x.masked_fill(band.view(shape), value)


def mask(x: torch.Tensor, freq: int = 0, time: int = 0, widths: str = "up_to", value: float = 0.0) -> torch.Tensor:
    """SpecAugment masks on ``(batch, channels, mels, frames)``: one frequency band and one time span per
    sample, set to ``value``. ``freq`` and ``time`` are widths in bins, read by ``widths``:

    - ``up_to``: torchaudio's ``FrequencyMasking`` / ``TimeMasking`` (``iid_masks``), width uniform below the
      parameter, so half of it on average (the DCASE2024 baseline's and EfficientAT's masks);
    - ``exact``: exactly that width;
    - ``mean``: torchaudio's masks with twice the parameter (at most the axis), so that width on average.
    """
    if widths not in MASK_WIDTHS:
        raise ValueError(f"unknown mask widths {widths!r}; choose from {MASK_WIDTHS}")
    for axis, width, transform in ((2, freq, torchaudio.transforms.FrequencyMasking),
                                   (3, time, torchaudio.transforms.TimeMasking)):
        if width <= 0:
            continue
        if widths == "exact":
            x = _exact_mask(x, width, axis, value)
        else:
            param = width if widths == "up_to" else min(2 * width, x.shape[axis])
            x = transform(param, iid_masks=True)(x, mask_value=value)
    return x


def mask_value(frontend: nn.Module, fill: str) -> float:
    """What a masked bin of ``frontend``'s output is set to: ``floor``, the output of a zero-power bin (the
    baseline masks the mel power before ``log(x + 1e-5)``: ``log(1e-5)``), or ``zero`` (EfficientAT masks the
    log-mel with 0)."""
    if fill not in MASK_FILLS:
        raise ValueError(f"unknown mask fill {fill!r}; choose from {MASK_FILLS}")
    return float(frontend.floor) if fill == "floor" else 0.0


def mixup(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixUp: returns mixed inputs, the partner permutation and λ (shape ``(batch,)``), so that targets
    are mixed as ``lam * y + (1 - lam) * y[perm]``."""
    n = x.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((n,)).to(x.device, x.dtype)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(n, device=x.device)
    shape = (n,) + (1,) * (x.dim() - 1)
    return x * lam.view(shape) + x[perm] * (1 - lam.view(shape)), perm, lam


def mask_width(fraction: float, size: int) -> int:
    """Mask parameter for masking ``fraction`` of an axis of ``size`` bins (Surkov: 15 %)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"mask fraction must be in [0, 1), got {fraction}")
    return int(round(fraction * size))


@dataclass
class AugmentConfig:
    """What :class:`Augment` does; every field has a named key in ``params/training.yaml``."""

    roll_seconds: float = 0.0
    mixstyle_p: float = 0.0
    mixstyle_alpha: float = 0.3
    mixstyle_eps: float = 1e-6
    freq_mask: int = 0
    time_mask: int = 0
    mask_order: str = "before_mixstyle"
    mask_fill: str = "floor"
    mask_widths: str = "up_to"

    def __post_init__(self):
        for name, allowed in (("mask_order", MASK_ORDERS), ("mask_fill", MASK_FILLS), ("mask_widths", MASK_WIDTHS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} unknown; choose from {allowed}")

    @classmethod
    def from_recipe(cls, recipe: dict, spec_shape: tuple[int, int] | None = None) -> "AugmentConfig":
        """The recipe's augmentation settings. Masks given as fractions of an axis
        (``freq_mask_fraction``, ``time_mask_fraction``) need the ``(mels, frames)`` ``spec_shape``."""
        cfg = cls(**{k: recipe[k] for k in asdict(cls()) if k in recipe})
        for axis, key in ((0, "freq"), (1, "time")):
            fraction = recipe.get(f"{key}_mask_fraction", 0)
            if fraction:
                if spec_shape is None:
                    raise ValueError(f"{key}_mask_fraction needs the spectrogram shape (spec_shape)")
                setattr(cfg, f"{key}_mask", mask_width(fraction, spec_shape[axis]))
        return cfg


class Augment(nn.Module):
    """Waveforms -> augmented log-mel spectrograms ``(batch, 1, mels, frames)``.

    In ``eval()`` mode only the front end runs. The front end's own training randomness (EfficientAT's
    random f_min/f_max) follows the module's mode. While ``precomputed`` is set, the input is already
    the front end's output (:meth:`features`) and the roll moves whole frames.
    """

    def __init__(self, frontend: nn.Module, config: AugmentConfig):
        super().__init__()
        self.frontend = frontend
        self.config = config
        self.precomputed = False

    def can_precompute(self) -> bool:
        """Whether the front end gives the same output in training as in evaluation (a plain log-mel)."""
        return bool(getattr(self.frontend, "deterministic", False))

    def features(self, waves: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The front end's output for ``waves``, in batches on their device (float32)."""
        if not self.can_precompute():
            raise ValueError(f"{type(self.frontend).__name__} draws random settings in training; its output "
                             "cannot be computed once (set feature_cache: false)")
        return evaluate_frontend(self.frontend, waves, batch_size)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if self.precomputed:
            spec = waves.float()
            if self.training:
                spec = roll_frames(spec, int(round(cfg.roll_seconds * self.frontend.sample_rate
                                                   / self.frontend.hop_length)))
        else:
            waves = waves.float()
            if self.training:
                waves = roll(waves, int(round(cfg.roll_seconds * self.frontend.sample_rate)))
            spec = self.frontend(waves)
        if self.training:
            masks = dict(freq=cfg.freq_mask, time=cfg.time_mask, widths=cfg.mask_widths,
                         value=mask_value(self.frontend, cfg.mask_fill))
            if cfg.mask_order == "before_mixstyle":
                spec = mask(spec, **masks)
            spec = freq_mixstyle(spec, cfg.mixstyle_p, cfg.mixstyle_alpha, cfg.mixstyle_eps)
            if cfg.mask_order == "after_mixstyle":
                spec = mask(spec, **masks)
        return spec
