"""Transfer matrix: examples crafted on each source by each attack, success rate on each target.

Success rate (ASR) of a target = share of the adversarial images it misclassifies, over all images
(``asr_all``) and over the images it classified correctly before the attack (``asr_correct``)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .attacking import run_attack
from .section import Batch, Context, Section, predict, reseed


class TransferSection(Section):
    name = "transfer"

    def __init__(self, sources: list[str], targets: list[str], attacks: list[dict[str, Any]],
                 labels: list[str], eps: list[float], seed: int, identities: dict[str, Any]) -> None:
        self.sources, self.targets, self.attacks, self.labels = sources, targets, attacks, labels
        self.eps, self.seed, self.identities = [float(e) for e in eps], seed, identities

    def settings(self) -> dict[str, Any]:
        return {"section": "transfer", "sources": self.sources, "targets": self.targets,
                "attacks": self.attacks, "eps": self.eps, "seed": self.seed, "models": self.identities}

    def counters(self) -> dict[str, tuple[int, ...]]:
        s, a, t = len(self.sources), len(self.attacks), len(self.targets)
        return {"cells": (s, a, t, 2), "clean_correct": (t,), "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        s_n, a_n, t_n = len(self.sources), len(self.attacks), len(self.targets)
        cells = torch.zeros(s_n, a_n, t_n, 2, dtype=torch.float64)
        clean_ok = []
        for ti, t in enumerate(self.targets):
            reseed(ctx.models[t], ctx.chunk_seed(b.chunk, 10 + ti))
            clean_ok.append(predict(ctx.models[t], b.x) == b.y)
        for si, s in enumerate(self.sources):
            src = ctx.models[s]
            for ai, (atk, eps) in enumerate(zip(self.attacks, self.eps)):
                reseed(src, ctx.chunk_seed(b.chunk, 2))
                x_adv = run_attack(atk, src, b.x, b.y, ctx.seed, ctx.precision, eps=eps)
                for ti, t in enumerate(self.targets):
                    reseed(ctx.models[t], ctx.chunk_seed(b.chunk, 20 + ti))
                    fooled = predict(ctx.models[t], x_adv) != b.y
                    cells[si, ai, ti, 0] = float(fooled.sum())
                    cells[si, ai, ti, 1] = float((fooled & clean_ok[ti]).sum())
        clean = torch.tensor([float(c.sum()) for c in clean_ok], dtype=torch.float64)
        return {"cells": cells, "clean_correct": clean, "total": torch.tensor([b.x.shape[0]])}

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        rows = []
        for si, s in enumerate(self.sources):
            for ai, a in enumerate(self.labels):
                for ti, tg in enumerate(self.targets):
                    fooled, fooled_c = (int(v) for v in t["cells"][si, ai, ti].tolist())
                    n_c = int(t["clean_correct"][ti])
                    rows.append({"source": s, "attack": a, "eps": self.eps[ai], "target": tg,
                                 "white_box": s == tg, "images": n, "fooled": fooled,
                                 "asr_all": fooled / n if n else None, "target_clean_correct": n_c,
                                 "fooled_of_correct": fooled_c, "asr_correct": fooled_c / n_c if n_c else None})
        return {"sources": self.sources, "targets": self.targets, "attacks": self.labels, "eps": self.eps,
                "cells": rows}
