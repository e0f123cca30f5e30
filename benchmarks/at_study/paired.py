"""Paired comparison of two models on the same images: each image's outcome under the same attack
(1 = still classified correctly), so image difficulty, common to both, cancels out."""
from __future__ import annotations

from typing import Any

from scipy.stats import binomtest

from benchmarks.transfer.stats import as_tensor, paired_difference


def bits_to_ints(bits: str) -> list[int]:
    """A report's per-image outcome string ('0'/'1' per image) as integers."""
    if set(bits) - {"0", "1"}:
        raise ValueError("per-image outcomes are a string of '0' and '1'")
    return [int(c) for c in bits]


def compare(a_bits: str, b_bits: str) -> dict[str, Any]:
    """Model A against model B on the same images.

    Returns ``n``; ``a_only`` / ``b_only``, the images only A / only B gets right (the discordant
    pairs); ``diff``, A's accuracy minus B's (a fraction), with ``lo``/``hi``, the paired t interval
    at 95 %; and ``p``, McNemar's exact two-sided p-value (binomial test of ``a_only`` among the
    discordant pairs at 1/2; 1.0 when there are none).

    Raises:
        ValueError: the two strings differ in length (they must be the same images).
    """
    a, b = bits_to_ints(a_bits), bits_to_ints(b_bits)
    if len(a) != len(b):
        raise ValueError(f"the outcomes are of {len(a)} and {len(b)} images: not the same images")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    d = paired_difference(as_tensor(a), as_tensor(b))
    p = float(binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return {"n": len(a), "a_only": a_only, "b_only": b_only, "diff": d["diff"], "lo": d["lo"], "hi": d["hi"],
            "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (same order): the k-th smallest p is multiplied by
    ``m - k + 1`` (k from 1), made non-decreasing in that order and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
