"""Counting metrics of the callbacks: plain sums, so that they are exact across processes.

Each state is a scalar sum reduced with ``dist_reduce_fx="sum"``: under DDP ``compute()`` adds the
counts of every process (torchmetrics' own synchronisation) before dividing.
"""
from __future__ import annotations

import torch
import torchmetrics
from torch import Tensor


class CountedAccuracy(torchmetrics.Metric):
    """Accuracy as ``correct / total`` over every image seen (by every process)."""

    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.synced_total = 0

    def update(self, logits: Tensor, y: Tensor) -> None:  # type: ignore[override]
        self.correct += (logits.argmax(1) == y).sum().to(self.correct.device)
        self.total += torch.tensor(y.numel(), device=self.total.device)

    def compute(self) -> Tensor:  # type: ignore[override]
        #: images counted by every process (set here, where the states are synchronised)
        self.synced_total = int(self.total)
        return self.correct.float() / self.total.clamp_min(1).float()


class TransferRate(torchmetrics.Metric):
    """Transfer success of adversarial examples on one target model (untargeted: the target's
    prediction on ``x_adv`` is not the true label).

    ``compute()`` returns ``(rate over all images, rate over the images the target classified
    correctly when clean, clean accuracy of the target)``.
    """

    full_state_update = False
    fooled: Tensor
    total: Tensor
    clean_correct: Tensor
    fooled_of_correct: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        for name in ("fooled", "total", "clean_correct", "fooled_of_correct"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.synced_total = 0

    def update(self, logits_clean: Tensor, logits_adv: Tensor, y: Tensor) -> None:  # type: ignore[override]
        right = logits_clean.argmax(1) == y
        fooled = logits_adv.argmax(1) != y
        dev = self.total.device
        self.fooled += fooled.sum().to(dev)
        self.total += torch.tensor(y.numel(), device=dev)
        self.clean_correct += right.sum().to(dev)
        self.fooled_of_correct += (fooled & right).sum().to(dev)

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        self.synced_total = int(self.total)
        total = self.total.clamp_min(1).float()
        return (self.fooled.float() / total,
                self.fooled_of_correct.float() / self.clean_correct.clamp_min(1).float(),
                self.clean_correct.float() / total)
