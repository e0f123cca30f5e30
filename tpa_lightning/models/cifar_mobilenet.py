"""``cifar_mobilenet``: MobileNetV2 for 32x32 images (Sandler et al. 2018).

Inverted residual blocks: 1x1 expansion, 3x3 depthwise conv, 1x1 linear projection, with BN and
ReLU6, and a residual connection where stride is 1 and the channels match. The stage table is
MobileNetV2's with the CIFAR change usual since Kuang Liu's pytorch-cifar: stride 1 in the stem
and in the second stage, so a 32x32 image reaches the head as a 4x4 map. ``width`` is the stem's
channel count (32 in MobileNetV2); every other channel count scales with ``width / 32``.
``stem_stride=2`` halves the resolution in the stem (MobileNetV2's own ImageNet stem): about 4x fewer
multiply-adds, a 2x2 map before the head.
"""
from __future__ import annotations

from torch import Tensor, nn

#: (expansion t, output channels c at width 32, blocks n, stride s of the first block)
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _scaled(channels: int, width: int) -> int:
    return max(1, round(channels * width / 32))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block(x)
        return x + out if self.residual else out


class CifarMobileNetV2(nn.Module):
    """Children ``stem``, ``blocks`` (the inverted residuals), ``head`` (1x1 conv, pooling, linear)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, head_channels: int = 1280,
                 stem_stride: int = 1) -> None:
        super().__init__()
        if min(num_classes, in_chans, width, head_channels) < 1:
            raise ValueError("cifar_mobilenet needs num_classes, in_chans, width and head_channels >= 1")
        if stem_stride not in (1, 2):
            raise ValueError(f"cifar_mobilenet: stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, stride=stem_stride, padding=1, bias=False),
                                  nn.BatchNorm2d(width),
                                  nn.ReLU6(inplace=True))
        blocks: list[nn.Module] = []
        cin = width
        for t, c, n, s in STAGES:
            cout = _scaled(c, width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, head_channels, 1, bias=False), nn.BatchNorm2d(head_channels),
                                  nn.ReLU6(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(head_channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.head(self.blocks(self.stem(x)))
        return logits


def cifar_mobilenet(num_classes: int = 10, in_chans: int = 3, width: int = 32, head_channels: int = 1280,
                    stem_stride: int = 1) -> CifarMobileNetV2:
    """MobileNetV2 for 32x32 images (``width=32``, ``head_channels=1280``: 2.2 M parameters)."""
    return CifarMobileNetV2(num_classes=num_classes, in_chans=in_chans, width=width,
                            head_channels=head_channels, stem_stride=stem_stride)
