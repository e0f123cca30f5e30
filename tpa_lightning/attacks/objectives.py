"""Attack objectives ``A(u)`` to MAXIMISE, summed over the batch (never averaged).

Summing keeps each sample's input gradient independent of the batch size and of the other samples.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

LossName = Literal["ce", "logit"]
LOSSES: tuple[str, ...] = ("ce", "logit")


def per_sample_objective(logits: Tensor, labels: Tensor, targeted: bool, loss: str = "ce") -> Tensor:
    """The per-sample terms of the objective, shape (N,) (:func:`attack_objective` is their sum).

    - ``ce`` untargeted: ``CE(f(u), y)``; targeted towards ``t``: ``-CE(f(u), t)``.
    - ``logit`` (Zhao et al. 2021): targeted ``z_t(u)`` (the target's logit); untargeted ``-z_y(u)``.

    ``logits`` are cast to fp32 first (autocast may hand back bf16/fp16 logits).
    """
    logits = logits.float()
    if loss == "ce":
        ce = F.cross_entropy(logits, labels, reduction="none")
        return -ce if targeted else ce
    if loss == "logit":
        picked = logits.gather(1, labels[:, None])[:, 0]
        return picked if targeted else -picked
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def attack_objective(logits: Tensor, labels: Tensor, targeted: bool, loss: str = "ce") -> Tensor:
    """Scalar objective to maximise, the SUM of the per-sample terms of :func:`per_sample_objective`."""
    return per_sample_objective(logits, labels, targeted, loss).sum()
