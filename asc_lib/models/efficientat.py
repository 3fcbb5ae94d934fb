"""EfficientAT MobileNetV3 audio taggers (Schmid et al., ICASSP 2023): mn04, mn10, ... by width.

Written to load the official checkpoints (``mn10_as_mAP_471.pt`` and friends) strictly: layers are
``features.<i>.block.<j>`` (conv, BN with eps 1e-3 / momentum 0.01, activation), channel
squeeze-excitation ``conc_se_layers.0.fc1/fc2`` (bottleneck make_divisible(c/4, 8), sigmoid gate), and an
MLP head ``classifier.{2,5}``. ``forward`` returns ``(logits, pooled features)``.

The checkpoints were trained on EfficientAT's own front end, whose last step is the fast normalisation
``(log-mel + 4.5) / 5``. A model fed by another front end (Surkov's 16 kHz log-mels) can apply that
normalisation as its first operation (``input_norm=(4.5, 5.0)``): every path that feeds the model
(training, evaluation, cached teacher outputs) then goes through it, and the augmentations before it
(Freq-MixStyle, masking) act on the log-mel, as in EfficientAT's ``AugmentMelSTFT``. It holds no weights,
so the official checkpoints still load strictly.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from asc_lib.config.provenance import load_state, load_torch
from asc_lib.models.layers import conv_bn, make_divisible
from asc_lib.models.pretrained import record_hash

# MobileNetV3-Large: input, kernel, expanded, output, squeeze-excitation, hard-swish, stride
MOBILENET_V3_LARGE = (
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
)
WIDTHS = {"mn01": 0.1, "mn02": 0.2, "mn04": 0.4, "mn05": 0.5, "mn10": 1.0, "mn20": 2.0, "mn30": 3.0, "mn40": 4.0}


def _conv_bn_act(in_ch, out_ch, kernel, stride=1, groups=1, act=None) -> nn.Sequential:
    return conv_bn(in_ch, out_ch, kernel, stride, groups, act=act, eps=1e-3, momentum=0.01)


class ChannelSE(nn.Module):
    """Squeeze-excitation over channels: mean over (freq, time), ReLU bottleneck, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, squeeze), nn.Linear(squeeze, channels)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * gate[:, :, None, None]


class ConcurrentSE(nn.Module):
    """EfficientAT's container (one channel SE layer by default; the max over layers of their outputs)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelSE(channels, make_divisible(channels // reduction, 8))])

    def forward(self, x):
        return torch.stack([layer(x) for layer in self.conc_se_layers]).max(0).values


class InvertedResidual(nn.Module):
    def __init__(self, in_ch, kernel, hidden, out_ch, use_se, hardswish, stride):
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        layers = [] if hidden == in_ch else [_conv_bn_act(in_ch, hidden, 1, act=act)]
        layers.append(_conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if use_se:
            layers.append(ConcurrentSE(hidden))
        layers.append(_conv_bn_act(hidden, out_ch, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
        y = self.block(x)
        return y + x if self.residual else y


class EfficientAT(nn.Module):
    """MobileNetV3 audio tagger of width ``width_mult`` on ``(batch, 1, 128, frames)`` log-mels."""

    def __init__(self, width_mult: float = 1.0, n_classes: int = 527, dropout: float = 0.2,
                 input_norm: tuple[float, float] | None = None):
        super().__init__()
        self.input_norm = tuple(float(v) for v in input_norm) if input_norm else None  # (shift, scale)
        ch = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        cfg = [(ch(i), k, ch(e), ch(o), se, hs, s) for i, k, e, o, se, hs, s in MOBILENET_V3_LARGE]
        last_in = cfg[-1][3]
        layers = [_conv_bn_act(1, cfg[0][0], 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidual(*c) for c in cfg]
        layers.append(_conv_bn_act(last_in, 6 * last_in, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(6 * last_in, ch(1280)), nn.Hardswish(),
            nn.Dropout(dropout), nn.Linear(ch(1280), n_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_norm is not None:
            shift, scale = self.input_norm
            x = (x + shift) / scale
        fmap = self.features(x)
        return self.classifier(fmap), fmap.mean((2, 3))


def build_efficientat(name: str = "mn10", n_classes: int = 527,
                      input_norm: tuple[float, float] | None = None) -> EfficientAT:
    """An EfficientAT model by name (``mn04``, ``mn10``, ...), normalising its input by ``input_norm``
    (``(shift, scale)``) when given."""
    if name not in WIDTHS:
        raise ValueError(f"unknown EfficientAT model {name!r}; known: {', '.join(WIDTHS)}")
    return EfficientAT(WIDTHS[name], n_classes, input_norm=input_norm)


def load_efficientat(path: str | Path, name: str, n_classes: int = 527,
                     input_norm: tuple[float, float] | None = None) -> EfficientAT:
    """Load an official checkpoint strictly; with ``n_classes != 527`` the last layer (``classifier.5``)
    is dropped and a new one initialised, for fine-tuning."""
    state = load_torch(path, f"EfficientAT {name} checkpoint")
    model = build_efficientat(name, n_classes, input_norm)
    head = state.get("classifier.5.bias") if isinstance(state, dict) else None
    if head is not None and n_classes != head.shape[0]:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.5.")}
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("classifier.5.")})
    load_state(model, state, path, f"an EfficientAT {name} checkpoint")
    record_hash(path)  # loaded: its hash may now be recorded (trust on first use)
    return model
