"""Clean accuracy and white-box robust accuracy per attack per eps (a curve)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .attacking import run_attack
from .section import Batch, Context, Section, outcome_bits, outcome_marks, predict, reseed
from .stats import proportion


class CleanSection(Section):
    """Accuracy of the evaluated model on the clean test images.

    Args:
        n_images: size of the test set; when given, the result also holds ``per_image``, each image's
            outcome ('1' = correct) in dataset order, for paired comparisons between models.
    """

    name = "clean"

    def __init__(self, n_images: int | None = None) -> None:
        self.n_images = n_images

    def settings(self) -> dict[str, Any]:
        return {"section": "clean", **({"per_image": True} if self.n_images else {})}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"correct": (1,), "total": (1,), **({"correct_by_image": (self.n_images,)} if self.n_images else {})}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models["model"]
        reseed(model, ctx.chunk_seed(b.chunk))
        hits = predict(model, b.x) == b.y
        out = {"correct": hits.sum().view(1), "total": torch.tensor([b.x.shape[0]])}
        if self.n_images:
            out["correct_by_image"] = outcome_marks(self.n_images, b.idx, hits)
        return out

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        out = proportion(int(t["correct"][0]), int(t["total"][0]))
        if self.n_images:
            out["per_image"] = outcome_bits(t["correct_by_image"])
        return out


class WhiteBoxSection(Section):
    """One attack on the evaluated model at every eps of the list.

    Args:
        attack: the attack's config entry; label: its name in the report; eps: L-inf radii (pixel
            scale [0, 1]); seed: the run's seed.
        n_images: size of the test set; when given, each point of the curve also holds ``per_image``
            ('1' = still correct after the attack), in dataset order.
    """

    def __init__(self, attack: dict[str, Any], label: str, eps: list[float], seed: int,
                 n_images: int | None = None) -> None:
        self.attack, self.label, self.eps, self.seed = attack, label, [float(e) for e in eps], seed
        self.n_images = n_images
        self.name = f"whitebox_{label}"

    def settings(self) -> dict[str, Any]:
        return {"section": "whitebox", "attack": self.attack, "eps": self.eps, "seed": self.seed,
                **({"per_image": True} if self.n_images else {})}

    def counters(self) -> dict[str, tuple[int, ...]]:
        per_image = {"correct_by_image": (len(self.eps), self.n_images)} if self.n_images else {}
        return {"correct": (len(self.eps),), "total": (1,), **per_image}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models["model"]
        out = self.zero_counters()
        for i, eps in enumerate(self.eps):
            reseed(model, ctx.chunk_seed(b.chunk))
            x_adv = run_attack(self.attack, model, b.x, b.y, ctx.seed, ctx.precision, eps=eps)
            reseed(model, ctx.chunk_seed(b.chunk, 1))
            hits = predict(model, x_adv) == b.y
            out["correct"][i] = float(hits.sum())
            if self.n_images:
                out["correct_by_image"][i] = outcome_marks(self.n_images, b.idx, hits)
        out["total"][0] = float(b.x.shape[0])
        return out

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        curve = [{"eps": e, **proportion(int(c), n)} for e, c in zip(self.eps, t["correct"].tolist())]
        if self.n_images:
            for point, marks in zip(curve, t["correct_by_image"]):
                point["per_image"] = outcome_bits(marks)
        return {"attack": self.label, "settings": self.attack, "curve": curve}
