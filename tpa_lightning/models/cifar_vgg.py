"""``cifar_vgg``: a VGG-style network for 32x32 images (Simonyan & Zisserman 2015, with batch norm).

Stages of 3x3 conv + BN + ReLU, each stage ending in a 2x2 max-pool, then global average pooling
and one linear layer. The default ``blocks=(1, 1, 2, 2, 2)`` is VGG-11's layout; ``width`` is the
channel count of the first stage (the stages use width, 2, 4, 8, 8 times it; VGG itself uses 64).
Five pools need inputs of at least 32x32 pixels.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

_STAGE_MULTIPLIERS = (1, 2, 4, 8, 8)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CifarVGG(nn.Module):
    """VGG of up to five stages; children ``features`` (convolutions and pools) and ``classifier``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 64,
                 blocks: Sequence[int] = (1, 1, 2, 2, 2)) -> None:
        super().__init__()
        blocks = tuple(int(b) for b in blocks)
        if min(num_classes, in_chans, width) < 1:
            raise ValueError("cifar_vgg needs num_classes, in_chans and width >= 1")
        if not 1 <= len(blocks) <= len(_STAGE_MULTIPLIERS) or min(blocks) < 1:
            raise ValueError(f"cifar_vgg: blocks must be 1 to 5 stage depths, each >= 1, got {blocks}")
        layers: list[nn.Module] = []
        cin = in_chans
        for n, mult in zip(blocks, _STAGE_MULTIPLIERS):
            for _ in range(n):
                layers += _conv_bn_relu(cin, width * mult)
                cin = width * mult
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.classifier(self.features(x))
        return logits


def cifar_vgg(num_classes: int = 10, in_chans: int = 3, width: int = 64,
              blocks: Sequence[int] = (1, 1, 2, 2, 2)) -> CifarVGG:
    """VGG-11 with batch norm for 32x32 images (``width=64``: 9.2 M parameters, 153 M multiply-adds)."""
    return CifarVGG(num_classes=num_classes, in_chans=in_chans, width=width, blocks=blocks)
