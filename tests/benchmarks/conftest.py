"""Fixtures of the benchmark tests: a tiny random classifier (fast; for shapes, caching and keys only)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


def make_tiny(seed: int) -> nn.Module:
    """A 4-channel conv net with N(0, 0.25) weights drawn from ``seed``, frozen, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                      nn.Linear(16, 10))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


@pytest.fixture
def tiny() -> Callable[[int], nn.Module]:
    return make_tiny
