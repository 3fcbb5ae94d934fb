"""The study's log-mel front ends, built on torchaudio, usable on CPU or GPU.

Presets live in ``params/frontends.yaml``:
    ``baseline``    32 kHz, 4096-point FFT, window 3072, hop 500, 256 mels  -> 256 x 65 for 1 s
    ``surkov16k``   16 kHz, window 2048 (128 ms), hop 160 (10 ms), 128 mels -> 128 x 101 for 1 s
    ``efficientat`` 32 kHz, 1024-point FFT, window 800, hop 320, 128 Kaldi mels, pre-emphasis,
                    (log(x + 1e-5) + 4.5) / 5, random f_min / f_max in training
Input: waveforms ``(batch, samples)`` at the preset's sample rate. Output: ``(batch, 1, mels, frames)``.
"""
from __future__ import annotations

import torch
import torchaudio
from torch import nn

from asc_lib.config import frontend_presets


def preset_names() -> list[str]:
    return list(frontend_presets())


def load_preset(name: str) -> dict:
    """The settings of a front-end preset (a copy)."""
    presets = frontend_presets()
    if name not in presets:
        raise ValueError(f"unknown front end {name!r}; presets: {', '.join(presets)}")
    return presets[name]


class LogMel(nn.Module):
    """torchaudio ``MelSpectrogram`` (HTK mels, power 2, centred) followed by ``log(x + offset)``."""

    deterministic = True  # same output in training and evaluation: it can be computed once

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
                 f_min: float = 0.0, f_max: float | None = None, log_offset: float = 1e-5):
        super().__init__()
        self.sample_rate = sample_rate
        self.log_offset = log_offset
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            n_mels=n_mels, f_min=f_min, f_max=f_max,
        )

    @property
    def hop_length(self) -> int:
        return int(self.mel.hop_length)

    @property
    def floor(self) -> float:
        """The output of a bin without power: ``log(offset)`` (float32, as the forward computes it)."""
        return float(torch.tensor(self.log_offset, dtype=torch.float32).log())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.mel(wave.float())
        return (spec + self.log_offset).log().unsqueeze(1)


class EfficientATMel(nn.Module):
    """EfficientAT's ``AugmentMelSTFT`` without masking: pre-emphasis, STFT power, Kaldi mel banks,
    ``log(x + 1e-5)``, then ``(x + 4.5) / 5``. In training mode f_min and f_max are drawn at random."""

    deterministic = False

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
                 f_min: float, f_max: float, log_offset: float, preemphasis, fmin_aug_range: int,
                 fmax_aug_range: int, norm_shift: float, norm_scale: float, kaldi_mel: bool = True):
        super().__init__()
        if not kaldi_mel:
            raise ValueError("the efficientat front end uses Kaldi mel banks (kaldi_mel: true)")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, f_min, f_max
        self.fmin_aug_range, self.fmax_aug_range = fmin_aug_range, fmax_aug_range
        self.log_offset, self.norm_shift, self.norm_scale = log_offset, norm_shift, norm_scale
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer("preemphasis", torch.tensor([[list(preemphasis)]], dtype=torch.float32),
                             persistent=False)

    @property
    def floor(self) -> float:
        """The output of a bin without power: ``(log(offset) + shift) / scale`` (float32)."""
        return float((torch.tensor(self.log_offset, dtype=torch.float32).log() + self.norm_shift) / self.norm_scale)

    def mel_banks(self, f_min: float, f_max: float) -> torch.Tensor:
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            self.n_mels, self.n_fft, float(self.sample_rate), f_min, f_max, 100.0, -500.0, 1.0)
        return nn.functional.pad(banks, (0, 1))  # (n_mels, n_fft // 2 + 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            x = nn.functional.conv1d(wave.float().unsqueeze(1), self.preemphasis).squeeze(1)
            spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                              window=self.window, center=True, normalized=False, return_complex=True)
            power = spec.real ** 2 + spec.imag ** 2
            f_min, f_max = self.f_min, self.f_max
            if self.training:
                f_min = f_min + int(torch.randint(self.fmin_aug_range, (1,)))
                f_max = f_max + self.fmax_aug_range // 2 - int(torch.randint(self.fmax_aug_range, (1,)))
            mel = torch.matmul(self.mel_banks(f_min, f_max).to(power.device), power)
            mel = (mel + self.log_offset).log()
        return ((mel + self.norm_shift) / self.norm_scale).unsqueeze(1)


def build_frontend(name: str) -> nn.Module:
    """The front end of preset ``name`` as an ``nn.Module`` (``.sample_rate`` tells its input rate)."""
    cfg = load_preset(name)
    if name == "efficientat" or "preemphasis" in cfg:
        return EfficientATMel(**cfg)
    return LogMel(**cfg)


@torch.no_grad()
def evaluate_frontend(frontend: nn.Module, waves: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The front end's evaluation-mode output for ``waves``, in batches on the front end's device, kept where
    ``waves`` are (host memory when they did not fit the GPU's budget; its mode is restored)."""
    was = frontend.training
    frontend.eval()
    device = next(iter(frontend.buffers()), waves).device
    try:
        return torch.cat([frontend(waves[i:i + batch_size].to(device).float()).to(waves.device)
                          for i in range(0, len(waves), batch_size)])
    finally:
        frontend.train(was)


def output_shape(name: str, seconds: float = 1.0) -> tuple[int, int]:
    """(mels, frames) the preset produces for ``seconds`` of audio."""
    fe = build_frontend(name).eval()
    with torch.no_grad():
        out = fe(torch.zeros(1, int(round(fe.sample_rate * seconds))))
    return tuple(out.shape[-2:])


def output_shapes(seconds: float = 1.0) -> dict[str, tuple[int, int]]:
    """``(mels, frames)`` of every preset for ``seconds`` of audio."""
    return {name: output_shape(name, seconds) for name in preset_names()}
