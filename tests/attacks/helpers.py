"""Tiny models and inputs for fast attack tests."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyNet(nn.Module):
    """A small conv net with BatchNorm and Dropout (so train/eval mode matters), 10 classes."""

    def __init__(self, in_chans: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Dropout(0.5), nn.Linear(32, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def tiny_model(seed: int = 1, in_chans: int = 3) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = TinyNet(in_chans)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m.eval()


def tiny_batch(n: int = 4, size: int = 8, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)
