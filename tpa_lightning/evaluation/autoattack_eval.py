"""AutoAttack (Croce & Hein 2020) through ``pyautoattack`` on the evaluated model, L-inf."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import Tensor

from .section import Batch, Context, Section, images_within_limit, predict
from .stats import proportion


class AutoAttackSection(Section):
    name = "autoattack"

    def __init__(self, eps: float, version: str, attacks: list[str], limit: int | None, batch_size: int,
                 seed: int) -> None:
        self.eps, self.version, self.attacks = float(eps), version, list(attacks)
        self.limit, self.batch_size, self.seed = limit, int(batch_size), seed

    def settings(self) -> dict[str, Any]:
        return {"section": "autoattack", "eps": self.eps, "norm": "Linf", "version": self.version,
                "attacks": self.attacks, "limit": self.limit, "seed": self.seed}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"clean": (1,), "robust": (1,), "total": (1,)}

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
        out["clean"][0] = float((predict(model, x) == y).sum())
        out["robust"][0] = float((predict(model, x_adv.to(x.device)) == y).sum())
        out["total"][0] = float(x.shape[0])
        return out

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        return {"eps": self.eps, "norm": "Linf", "version": self.version, "attacks": self.attacks or "standard set",
                "clean": proportion(int(t["clean"][0]), n), "robust": proportion(int(t["robust"][0]), n)}
