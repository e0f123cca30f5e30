"""Clean accuracy and white-box robust accuracy per attack per eps (a curve)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .attacking import run_attack
from .section import Batch, Context, Section, predict, reseed
from .stats import proportion


class CleanSection(Section):
    """Accuracy of the evaluated model on the clean test images."""

    name = "clean"

    def settings(self) -> dict[str, Any]:
        return {"section": "clean"}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"correct": (1,), "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models["model"]
        reseed(model, ctx.chunk_seed(b.chunk))
        correct = (predict(model, b.x) == b.y).sum()
        return {"correct": correct.view(1), "total": torch.tensor([b.x.shape[0]])}

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        return proportion(int(t["correct"][0]), int(t["total"][0]))


class WhiteBoxSection(Section):
    """One attack on the evaluated model at every eps of the list."""

    def __init__(self, attack: dict[str, Any], label: str, eps: list[float], seed: int) -> None:
        self.attack, self.label, self.eps, self.seed = attack, label, [float(e) for e in eps], seed
        self.name = f"whitebox_{label}"

    def settings(self) -> dict[str, Any]:
        return {"section": "whitebox", "attack": self.attack, "eps": self.eps, "seed": self.seed}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"correct": (len(self.eps),), "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models["model"]
        correct = torch.zeros(len(self.eps), dtype=torch.float64)
        for i, eps in enumerate(self.eps):
            reseed(model, ctx.chunk_seed(b.chunk))
            x_adv = run_attack(self.attack, model, b.x, b.y, ctx.seed, ctx.precision, eps=eps)
            reseed(model, ctx.chunk_seed(b.chunk, 1))
            correct[i] = float((predict(model, x_adv) == b.y).sum())
        return {"correct": correct, "total": torch.tensor([b.x.shape[0]])}

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        curve = [{"eps": e, **proportion(int(c), n)} for e, c in zip(self.eps, t["correct"].tolist())]
        return {"attack": self.label, "settings": self.attack, "curve": curve}
