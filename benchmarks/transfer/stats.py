"""Success rates with Wilson 95 % score intervals, and paired comparisons of two attacks on the same images."""
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


def paired_difference(a: Tensor, b: Tensor, level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` over images, with its two-sided t interval (the paired t-test's, as
    ``scipy.stats.ttest_rel(a, b).confidence_interval(level)``) and p-value.

    ``a``, ``b``: per-image success of two attacks on the SAME images (0/1, or the share of the
    columns of a table fooled), so the image-to-image variation common to both cancels out."""
    from scipy import stats as st

    if a.shape != b.shape or a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"need two 1-D series of the same length >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    d = (a.double() - b.double())
    n = d.numel()
    mean = float(d.mean())
    se = float(d.std(unbiased=True)) / math.sqrt(n)
    if se == 0.0:
        return {"diff": mean, "lo": mean, "hi": mean, "p": 1.0 if mean == 0.0 else 0.0, "n": n}
    q = float(st.t.ppf(0.5 + level / 2, n - 1))
    p = float(2 * st.t.sf(abs(mean) / se, n - 1))
    return {"diff": mean, "lo": mean - q * se, "hi": mean + q * se, "p": p, "n": n}
