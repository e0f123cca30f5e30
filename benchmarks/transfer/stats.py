"""Success rates with Wilson 95 % score intervals."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n`` (no continuity correction), as
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``; ``(0, 1)`` when ``n == 0``."""
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "rate", "lo", "hi"}`` (rate None when n == 0)."""
    lo, hi = wilson(k, n)
    return {"k": int(k), "n": int(n), "rate": (k / n) if n else None, "lo": lo, "hi": hi}


def success_counts(pred: Tensor, y: Tensor, clean_pred: Tensor, target: Tensor | None = None) -> dict[str, Any]:
    """Attack success of one target model on one adversarial set.

    Untargeted (``target`` None): success = the adversarial image is not classified as its true class
    (an abstention, class -1, counts as success). Targeted: success = classified as ``target``.
    ``all``: over every image (the paper's ASR); ``correct``: over the images the target classified
    correctly before the attack (``clean_pred == y``)."""
    ok = (pred == target) if target is not None else (pred != y)
    correct = clean_pred == y
    return {"all": rate(int(ok.sum()), int(ok.numel())),
            "correct": rate(int((ok & correct).sum()), int(correct.sum()))}


def as_tensor(values: list[int]) -> Tensor:
    return torch.tensor(values, dtype=torch.int64)
