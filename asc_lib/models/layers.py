"""Building blocks shared by the study's CNNs (CP-Mobile, EfficientAT)."""
from __future__ import annotations

from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going below 90 % of it (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride=1, groups: int = 1, act=nn.ReLU,
            **bn_kwargs) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding) + BatchNorm2d (+ ``act``, none if None), indexed 0, 1, 2 like
    torchvision's ``Conv2dNormActivation`` so that official state dicts load."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_ch, **bn_kwargs)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def set_bn_momentum(model: nn.Module, momentum: float | None) -> nn.Module:
    """Set every BatchNorm's running-statistics momentum (unchanged when ``momentum`` is None)."""
    if momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum
    return model
