"""Fixtures of the benchmark tests: a tiny random classifier (fast; for shapes, caching and keys only) and a
synthetic Table 1 run state with known success counts (for the tables, the paper comparison and the report)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from benchmarks.transfer.crafting import Unit
from benchmarks.transfer.images import Images
from benchmarks.transfer.results import RunState, UnitResult
from benchmarks.transfer.settings import QUICK, Settings
from benchmarks.transfer.stats import rate
from benchmarks.transfer.store import Store
from benchmarks.transfer.targets import Target

StateFactory = Callable[..., RunState]


def make_tiny(seed: int) -> nn.Module:
    """A 4-channel conv net with N(0, 0.25) weights drawn from ``seed``, frozen, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                      nn.Linear(16, 10))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


@pytest.fixture
def tiny() -> Callable[[int], nn.Module]:
    return make_tiny


def make_table1_state(means: dict[str, float], n: int = 200, settings: Settings = QUICK) -> RunState:
    """Table 1 rows at 16/255 on surrogate ``sur`` and two black-box columns ``a`` and ``b``: attack
    ``label`` (with success ``m`` in ``means``) fools the first ``round(m * n)`` of ``n`` images on each."""
    s = settings.replace(attacks=tuple(means), surrogates=("sur",), defenses=(), targeted_eps=(), eps=(16 / 255,))
    y = torch.arange(n) % 10
    names = ["sur", "a", "b"]
    targets = [Target(t, "normal", t, {}, lambda x: x) for t in names]
    state = RunState(s, Store("/nonexistent"), Images(torch.zeros(n, 3, 2, 2), y, torch.arange(n), "synthetic", "all"),
                     y, {}, {}, {}, targets, {t: y.clone() for t in names})
    for label, m in means.items():
        r = UnitResult(Unit("sur", label, 16 / 255, False, 10), "main", "k", 1.0, 1.0, 1.0, n)
        k = round(m * n)
        for t in names:
            r.hits[t] = [1] * k + [0] * (n - k)
            e = rate(k, n)
            r.evals[t] = {"all": e, "correct": e}
        state.results.append(r)
    return state


@pytest.fixture
def table1_state() -> StateFactory:
    return make_table1_state
