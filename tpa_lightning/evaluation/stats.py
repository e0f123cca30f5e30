"""Confidence intervals of accuracies (exact binomial, Clopper-Pearson)."""
from __future__ import annotations


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact ``level`` confidence interval of a proportion ``k / n`` (Clopper-Pearson).

    Returns ``(0.0, 1.0)`` when ``n == 0``."""
    from scipy.stats import beta

    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def proportion(k: int, n: int, level: float = 0.95) -> dict[str, object]:
    """``{"correct": k, "total": n, "accuracy": k / n, "ci95": [lo, hi]}`` (accuracy None when n = 0)."""
    lo, hi = clopper_pearson(k, n, level)
    return {"correct": int(k), "total": int(n), "accuracy": (k / n) if n else None,
            "ci95": [round(lo, 6), round(hi, 6)]}
