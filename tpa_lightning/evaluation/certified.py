"""Certified accuracy against L2 radius of the randomized-smoothing version of the model
(``defenses`` ``rs``: CERTIFY of Cohen et al. 2019)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

import defenses

from .section import Batch, Context, Section, images_within_limit
from .stats import proportion


class CertifySection(Section):
    def __init__(self, sigma: float, n0: int, n: int, alpha: float, limit: int | None, batch_size: int,
                 radii: list[float], seed: int) -> None:
        self.sigma, self.n0, self.n, self.alpha = float(sigma), int(n0), int(n), float(alpha)
        self.limit, self.batch_size, self.radii, self.seed = limit, int(batch_size), [float(r) for r in radii], seed
        self.name = f"certify_sigma{self.sigma:g}"

    def settings(self) -> dict[str, Any]:
        return {"section": "certify", "sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha,
                "limit": self.limit, "radii": self.radii, "seed": self.seed}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"certified": (len(self.radii),), "correct": (1,), "abstain": (1,), "radius_sum": (1,),
                "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        out = self.zero_counters()
        kept = images_within_limit(b, self.limit)
        if kept is None:
            return out
        x, y = kept
        smooth: Any = defenses.build_defense("rs", ctx.models["model"], sigma=self.sigma, batch_size=self.batch_size,
                                        seed=ctx.chunk_seed(b.chunk, 50))
        classes, radii = smooth.certify(x, n0=self.n0, n=self.n, alpha=self.alpha)
        ok = (classes.cpu() == y.cpu()) & (classes.cpu() != defenses.ABSTAIN)
        for i, r in enumerate(self.radii):
            out["certified"][i] = float((ok & (radii >= r)).sum())
        out["correct"][0] = float(ok.sum())
        out["abstain"][0] = float((classes == defenses.ABSTAIN).sum())
        out["radius_sum"][0] = float(radii[ok].sum())
        out["total"][0] = float(x.shape[0])
        return out

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        correct = int(t["correct"][0])
        return {
            "sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "images": n,
            "abstain": int(t["abstain"][0]), "correct": correct,
            "mean_radius_of_correct": float(t["radius_sum"][0]) / correct if correct else 0.0,
            "curve": [{"radius": r, **proportion(int(c), n)} for r, c in zip(self.radii, t["certified"].tolist())],
        }
