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


class RowCounter(nn.Module):
    """Wraps a model and counts the rows of its forward calls made with gradients enabled (the attack's
    passes; the attack's no-grad class-count probe is not counted)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            self.rows += x.shape[0]
        return self.model(x)


class LinearNet(nn.Module):
    """``logits = W flatten(u) + b``: with ``loss="logit"`` the untargeted objective ``-z_y`` has the
    constant input gradient ``-W[y]`` (reshaped), wherever it is taken."""

    def __init__(self, shape: tuple[int, int, int] = (3, 8, 8), num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = shape[0] * shape[1] * shape[2]
        self.shape = shape
        self.linear = nn.Linear(n, num_classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(num_classes, n, generator=g))
            self.linear.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))

    def logit_grad(self, y: Tensor) -> Tensor:
        """The input gradient of ``-z_y`` for labels ``y``: ``-W[y]`` shaped like the images."""
        return -self.linear.weight.detach()[y].view(-1, *self.shape)
