"""AutoAttack (Croce & Hein 2020) through ``pyautoattack`` on the evaluated model, L-inf."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import Tensor

from .section import Batch, Context, Section, images_within_limit, outcome_bits, outcome_marks, predict
from .stats import proportion


class AutoAttackSection(Section):
    """AutoAttack at one L-inf ``eps`` on the test images whose index is below ``limit`` (all if None).

    Args:
        eps: L-inf radius (pixel scale [0, 1]). version: ``standard`` / ``plus`` / ``rand`` /
            ``custom`` (then ``attacks`` lists the parts). batch_size: images per AutoAttack call.
        n_images: size of the test set; when given, the result also holds ``per_image_robust``, each
            attacked image's outcome ('1' = still correct), in dataset order over the first
            ``min(limit, n_images)`` images.
    """

    name = "autoattack"

    def __init__(self, eps: float, version: str, attacks: list[str], limit: int | None, batch_size: int,
                 seed: int, n_images: int | None = None) -> None:
        self.eps, self.version, self.attacks = float(eps), version, list(attacks)
        self.limit, self.batch_size, self.seed = limit, int(batch_size), seed
        self.n_images = n_images

    def settings(self) -> dict[str, Any]:
        return {"section": "autoattack", "eps": self.eps, "norm": "Linf", "version": self.version,
                "attacks": self.attacks, "limit": self.limit, "seed": self.seed,
                **({"per_image": True} if self.n_images else {})}

    def n_attacked(self) -> int:
        """How many images (the first of the test set) the section attacks; needs ``n_images``."""
        assert self.n_images is not None
        return self.n_images if self.limit is None else min(int(self.limit), self.n_images)

    def counters(self) -> dict[str, tuple[int, ...]]:
        per_image = {"robust_by_image": (self.n_attacked(),)} if self.n_images else {}
        return {"clean": (1,), "robust": (1,), "total": (1,), **per_image}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        from pyautoattack import AutoAttack

        out = self.zero_counters()
        kept = images_within_limit(b, self.limit)
        if kept is None:
            return out
        x, y = kept
        model = ctx.models["model"]
        kwargs: dict[str, Any] = {"norm": "Linf", "eps": self.eps, "version": self.version, "seed": self.seed,
                                  "device": x.device}
        if self.attacks:
            kwargs["attacks"] = self.attacks
        adversary = AutoAttack(model, **kwargs)
        with torch.enable_grad(), contextlib.redirect_stdout(io.StringIO()):
            result = adversary.run_standard_evaluation(x, y, batch_size=self.batch_size)
        x_adv = result[0] if isinstance(result, tuple) else result     # pyautoattack returns (x_adv, y_adv)
        hits = predict(model, x_adv.to(x.device)) == y
        out["clean"][0] = float((predict(model, x) == y).sum())
        out["robust"][0] = float(hits.sum())
        out["total"][0] = float(x.shape[0])
        if self.n_images:
            idx = b.idx if self.limit is None else b.idx[b.idx < self.limit]
            out["robust_by_image"] = outcome_marks(self.n_attacked(), idx, hits)
        return out

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        out = {"eps": self.eps, "norm": "Linf", "version": self.version, "attacks": self.attacks or "standard set",
               "clean": proportion(int(t["clean"][0]), n), "robust": proportion(int(t["robust"][0]), n)}
        if self.n_images:
            out["per_image_robust"] = outcome_bits(t["robust_by_image"])
        return out
