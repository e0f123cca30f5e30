"""``cifar_densenet``: DenseNet-BC for 32x32 images (Huang et al. 2017).

Dense blocks of bottleneck layers (BN-ReLU-1x1 conv to ``4 * growth`` channels, BN-ReLU-3x3 conv
to ``growth`` channels, output concatenated to the input), joined by transition layers (BN-ReLU-1x1
conv that keeps ``compression`` of the channels, 2x2 average pool). ``width`` is the growth rate k
(DenseNet-BC-100 uses k=12 and three blocks of 16 layers); the stem is a 3x3 conv to 2k channels,
with ``stem_stride=2`` a strided one (16x16 maps in the first block: about 4x fewer multiply-adds).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Bottleneck(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class CifarDenseNet(nn.Module):
    """Children ``stem``, ``features`` (dense blocks and transitions), ``bn`` and ``linear``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 12,
                 blocks: Sequence[int] = (16, 16, 16), compression: float = 0.5,
                 stem_stride: int = 1) -> None:
        super().__init__()
        blocks = tuple(int(b) for b in blocks)
        if min(num_classes, in_chans, width) < 1:
            raise ValueError("cifar_densenet needs num_classes, in_chans and width (growth rate) >= 1")
        if not blocks or min(blocks) < 1:
            raise ValueError(f"cifar_densenet: blocks must be one or more block depths >= 1, got {blocks}")
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"cifar_densenet: compression must be in (0, 1], got {compression}")
        if stem_stride not in (1, 2):
            raise ValueError(f"cifar_densenet: stem_stride must be 1 or 2, got {stem_stride}")
        channels = 2 * width
        self.stem = nn.Conv2d(in_chans, channels, 3, stride=stem_stride, padding=1, bias=False)
        layers: list[nn.Module] = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(Bottleneck(channels, width))
                channels += width
            if i < len(blocks) - 1:
                out = max(1, int(channels * compression))
                layers.append(Transition(channels, out))
                channels = out
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(channels)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.features(self.stem(x))))
        logits: Tensor = self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
        return logits


def cifar_densenet(num_classes: int = 10, in_chans: int = 3, width: int = 12,
                   blocks: Sequence[int] = (16, 16, 16), compression: float = 0.5,
                   stem_stride: int = 1) -> CifarDenseNet:
    """DenseNet-BC for 32x32 images (defaults: DenseNet-BC-100, k=12, 0.8 M parameters)."""
    return CifarDenseNet(num_classes=num_classes, in_chans=in_chans, width=width, blocks=blocks,
                         compression=compression, stem_stride=stem_stride)
