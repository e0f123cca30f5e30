"""Small models with known behaviour for the defense tests."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ConstantClassifier(nn.Module):
    """Always predicts ``cls`` (logits independent of the input, but connected to it)."""

    def __init__(self, cls: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.cls, self.num_classes = cls, num_classes
        self.rows_seen = 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows_seen += x.shape[0]
        logits = torch.zeros(x.shape[0], self.num_classes, device=x.device)
        logits[:, self.cls] = 10.0
        return logits + 0.0 * x.flatten(1).sum(1, keepdim=True)


class RandomClassifier(nn.Module):
    """Predicts a uniformly random class, whatever the input."""

    def __init__(self, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x: Tensor) -> Tensor:
        return torch.randn(x.shape[0], self.num_classes, generator=self.gen)


class ScriptedClassifier(nn.Module):
    """Row k (counted over all calls) of each block of ``period`` rows gets class 0 if
    ``k % period < n_a``, class 1 if ``< n_a + n_b``, else class 2 + (k % (num_classes - 2))."""

    def __init__(self, n_a: int, n_b: int, period: int, num_classes: int = 10) -> None:
        super().__init__()
        self.n_a, self.n_b, self.period, self.num_classes = n_a, n_b, period, num_classes
        self.k = 0

    def forward(self, x: Tensor) -> Tensor:
        idx = (torch.arange(x.shape[0]) + self.k) % self.period
        self.k += x.shape[0]
        cls = torch.where(idx < self.n_a, 0, torch.where(idx < self.n_a + self.n_b, 1,
                                                         2 + idx % (self.num_classes - 2)))
        return nn.functional.one_hot(cls, self.num_classes).float() * 5.0


class RecordingClassifier(nn.Module):
    """Wraps a model and records the inputs it sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        return self.model(x)
