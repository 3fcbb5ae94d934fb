"""CP-Mobile, the DCASE2024 Task 1 baseline model (Schmid et al., DCASE 2023), written to match the
official code's state-dict names (``in_c.*``, ``stages.s1.b1.block.*``, ``feed_forward.*``).

Stem: two 3x3 stride-2 conv-BN-ReLU (1 -> 8 -> 32). Three stages of inverted-residual blocks
(widths 32 / 56 / 104, blocks 3 / 2 / 1, expansion 2.1): 1x1 expand, 3x3 depthwise (stride), 1x1
project; a shortcut only when input and output widths match (identity at stride 1, AvgPool2d(3) when
strided), ReLU after the sum. Head: 1x1 conv to the classes, BN, global average pooling.
"""
from __future__ import annotations

import torch
from torch import nn

from asc_lib.config import load_yaml, paths
from asc_lib.models.layers import conv_bn, make_divisible


class Block(nn.Module):
    """CP-Mobile inverted-residual block (kinds S, D and T of Surkov's Table 2)."""

    def __init__(self, in_ch: int, out_ch: int, expansion_rate: float, stride=(1, 1)):
        super().__init__()
        stride = tuple(stride) if not isinstance(stride, int) else (stride, stride)
        hidden = make_divisible(in_ch * expansion_rate, 8)
        self.block = nn.Sequential(
            conv_bn(in_ch, hidden, kernel=1),
            conv_bn(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            conv_bn(hidden, out_ch, kernel=1, act=None),
        )
        self.use_shortcut = in_ch == out_ch
        if self.use_shortcut and stride != (1, 1):
            self.shortcut = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        else:
            self.shortcut = nn.Identity()
        self.after_block_activation = nn.ReLU()

    @property
    def kind(self) -> str:
        if not self.use_shortcut:
            return "T"
        return "S" if isinstance(self.shortcut, nn.Identity) else "D"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.after_block_activation(y)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class CPMobile(nn.Module):
    """CP-Mobile on log-mel input ``(batch, 1, mels, frames)``; ``forward`` returns the logits."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1, base_channels: int = 32,
                 channels_multiplier: float = 1.8, expansion_rate: float = 2.1, n_blocks=(3, 2, 1),
                 strides: dict | None = None):
        super().__init__()
        strides = {k: tuple(v) for k, v in (strides or {}).items()}
        base = make_divisible(base_channels, 8)
        widths = [base] + [make_divisible(base * channels_multiplier ** i, 8) for i in range(len(n_blocks))]
        self.in_c = nn.Sequential(conv_bn(in_channels, widths[0] // 4, stride=2),
                                  conv_bn(widths[0] // 4, widths[0], stride=2))
        self.stages = nn.Sequential()
        count = 0
        for s, blocks in enumerate(n_blocks):
            stage = nn.Sequential()
            in_ch = widths[s]
            for _ in range(blocks):
                count += 1
                stage.add_module(f"b{count}", Block(in_ch, widths[s + 1], expansion_rate, strides.get(f"b{count}", (1, 1))))
                in_ch = widths[s + 1]
            self.stages.add_module(f"s{s + 1}", stage)
        self.feed_forward = self._head(widths[-1], n_classes)
        self.apply(_init_weights)

    @staticmethod
    def _head(in_ch: int, n_classes: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(in_ch, n_classes, kernel_size=1, bias=False), nn.BatchNorm2d(n_classes),
                             nn.AdaptiveAvgPool2d((1, 1)))

    @property
    def n_classes(self) -> int:
        return self.feed_forward[0].out_channels

    def replace_head(self, n_classes: int) -> "CPMobile":
        """A new, randomly initialised head with ``n_classes`` outputs (e.g. 527 -> 10 for fine-tuning)."""
        head = self._head(self.feed_forward[0].in_channels, n_classes)
        head.apply(_init_weights)
        self.feed_forward = head.to(next(self.parameters()).device)
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.in_c(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.forward_features(x)).flatten(1)


def cp_mobile_config(**overrides) -> dict:
    """The CP-Mobile settings of ``params/models.yaml`` with overrides (e.g. ``n_classes=527``)."""
    cfg = dict(load_yaml(paths.PARAMS_DIR / "models.yaml")["cp_mobile"])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown CP-Mobile setting(s) {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


def build_cp_mobile(**overrides) -> CPMobile:
    """CP-Mobile with the baseline's settings (``params/models.yaml``) and any overrides."""
    return CPMobile(**cp_mobile_config(**overrides))
