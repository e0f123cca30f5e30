"""``small_cnn``: a two-block CNN that trains in minutes on a CPU (Fashion-MNIST, CIFAR-10)."""
from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, 4x4 average pooling, FC(128)-ReLU-FC.

    Any input size of at least 4x4 pixels works (the pooling before the head is adaptive); about
    4 M multiply-adds per 28x28 image. Children are named ``layer1``, ``layer2``, ``head``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        if min(num_classes, in_chans, width, hidden) < 1:
            raise ValueError("small_cnn needs num_classes, in_chans, width and hidden >= 1")
        self.layer1 = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(2 * width * 16, hidden),
                                  nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.layer2(self.layer1(x)))
        return out
