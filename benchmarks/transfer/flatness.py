"""Flatness of adversarial examples: the mean input-gradient norm of the surrogate's loss around them.

``flatness(x_adv) = E_{u ~ U(-r, r)^d} || grad_u CE(f(x_adv + u), y) ||_2`` (the point clamped to
[0, 1]), estimated with ``samples`` draws per image; lower = flatter. This is the quantity TPA's
penalty ``lambda * E ||g(x + delta + noise)||`` pushes down (paper Eq. 5). For targeted sets, use the
targeted objective (``-CE`` towards the target; its gradient norm is that of CE).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.attacks import model_eval_no_param_grad

Objective = Callable[[Tensor, Tensor], Tensor]

#: white-box success at or above which an attack counts as one that fools the surrogate (the control
#: for "a failed attack looks flat": an example still classified correctly sits at low loss)
FOOLS_SURROGATE = 0.99



def ce_per_sample(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), y, reduction="none")


def neighbourhood_grad_norm(model: nn.Module, x: Tensor, y: Tensor, radius: float, samples: int, seed: int,
                            batch: int = 128, objective: Objective = ce_per_sample) -> Tensor:
    """Per-image mean L2 norm of ``d objective / d u`` over ``samples`` points ``u = clamp(x + U(-r, r))``.

    ``objective(logits, y)`` returns one value per sample (summed before the gradient, so each image's
    gradient is its own). With ``radius = 0`` one draw is used (the local gradient norm)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    draws = 1 if radius == 0 else samples
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    out = torch.zeros(x.shape[0], dtype=torch.float64)
    with model_eval_no_param_grad(model) as net, torch.enable_grad():
        for s in range(0, x.shape[0], batch):
            xb, yb = x[s:s + batch].float(), y[s:s + batch]
            total = torch.zeros(xb.shape[0], dtype=torch.float64)
            for _ in range(draws):
                noise = (torch.rand(xb.shape, generator=gen, device=xb.device) * 2 - 1) * radius
                u = (xb + noise).clamp(0.0, 1.0).requires_grad_(True)
                (g,) = torch.autograd.grad(objective(net(u), yb).sum(), u)
                total += g.flatten(1).norm(dim=1).double().cpu()
            out[s:s + batch] = total / draws
    return out


def rank_correlation(flat: list[float], success: list[float]) -> dict[str, float | int | None]:
    """Spearman's rho (scipy) between flatness (gradient norm: LOWER = flatter) and transfer success,
    its two-sided p-value, and the pairs that contradict "flatter transfers better": pairs where one
    set is flatter but transfers strictly worse (``discordant``) out of pairs differing in both."""
    from scipy.stats import spearmanr

    n = len(flat)
    if n != len(success):
        raise ValueError("flat and success must have the same length")
    if n < 3:
        return {"n": n, "rho": None, "p": None, "discordant": None, "pairs": None}
    if len(set(flat)) < 2 or len(set(success)) < 2:   # constant input: rho undefined
        rho = p = float("nan")
    else:
        res = spearmanr(flat, success)
        rho, p = float(res.statistic), float(res.pvalue)
    disc, pairs = discordant_pairs(flat, success)
    return {"n": n, "rho": None if math.isnan(rho) else rho, "p": None if math.isnan(p) else p,
            "discordant": disc, "pairs": pairs}


def discordant_pairs(flat: Sequence[float], success: Sequence[float], block: int = 256) -> tuple[int, int]:
    """``(discordant, pairs)`` over the pairs ``i < j``: ``pairs`` differ in both lists, ``discordant`` of
    them have the flatter (smaller norm) one transferring worse (both differences of one sign). Exact:
    float64 differences, as Python's, compared ``block`` rows at a time (the per-image correlation has
    over 10^4 points, 10^8 pairs)."""
    f = np.asarray(flat, dtype=np.float64)
    s = np.asarray(success, dtype=np.float64)
    n = f.size
    disc = pairs = 0
    for i in range(0, n, block):
        rows = slice(i, min(i + block, n))
        df = f[rows, None] - f[None, i:]
        ds = s[rows, None] - s[None, i:]
        upper = np.arange(rows.start, rows.stop)[:, None] < np.arange(i, n)[None, :]   # j > i only
        both = upper & (df != 0) & (ds != 0)
        pairs += int(both.sum())
        # flatter (smaller norm) but worse transfer: the norm and the success move together
        disc += int((both & (((df < 0) & (ds < 0)) | ((df > 0) & (ds > 0)))).sum())
    return disc, pairs


def fooling_correlation(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, float | int | None]]:
    """The entries (one per attack: ``flatness``, ``mean_asr``, ``whitebox_asr``) whose attack fools the
    surrogate on at least :data:`FOOLS_SURROGATE` of the images, and :func:`rank_correlation` among them."""
    ok = [e for e in entries if e.get("whitebox_asr") is not None and e["whitebox_asr"] >= FOOLS_SURROGATE]
    return ok, rank_correlation([e["flatness"] for e in ok], [e["mean_asr"] for e in ok])
