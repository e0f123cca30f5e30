"""The run's data model: one finished unit's numbers (:class:`UnitResult`) and everything a run knows
(:class:`RunState`), filled by :mod:`.runner` and read by the report's modules (tables, plots, summary, ...),
which need nothing of the orchestration."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .crafting import Unit
from .images import Images
from .settings import Settings
from .store import Store
from .targets import Target


@dataclass
class UnitResult:
    unit: Unit
    group: str                      # "main", "targeted", "ablation" or "seeds"
    key: str
    seconds: float
    images_per_s: float
    passes_per_image: float
    n: int
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)   # target name -> success_counts
    flat_mean: float | None = None
    flat_sem: float | None = None
    flat_images: list[float] | None = None
    load_avg: float | None = None     # 1-minute load average when the set was finished (None: not recorded)
    threads: int | None = None        # torch threads that crafted it
    cpu_seconds: float | None = None  # CPU seconds the crafting process got (None: not recorded)
    hits: dict[str, list[int]] = field(default_factory=dict)   # target name -> per-image success (0/1)
    #: seconds per image-pass over the fastest twin's (the same attack and settings but eps or targeting,
    #: crafted with as many threads); set by :func:`compare_twins`, None without a twin
    twin_ratio: float | None = None

    def fooled(self, targets: Sequence[str]) -> list[int] | None:
        """Per image: how many of ``targets`` it fools (untargeted; for a targeted unit, how many
        predict the target class); None unless every one of them is evaluated."""
        if not targets or any(t not in self.hits for t in targets):
            return None
        return [sum(col) for col in zip(*(self.hits[t] for t in targets), strict=True)]

    @property
    def contended(self) -> bool | None:
        """Whether the crafting time is inflated by other work: the process got less than 85 % of its
        threads' time. For sets recorded before CPU time was: it took over 1.4x as long per image-pass
        as a twin (:func:`compare_twins`), or the load average exceeded 2.5 on the 2 cores. None if
        unknown."""
        if self.cpu_seconds is not None and self.threads and self.seconds > 0:
            return self.cpu_seconds / (self.seconds * self.threads) < 0.85
        if self.twin_ratio is not None and self.twin_ratio > TWIN_SLOWER:
            return True
        if self.load_avg is not None:
            return self.load_avg > 2.5
        return None


#: a set slower per image-pass than its fastest twin by more than this waited for the cores
TWIN_SLOWER = 1.4


def compare_twins(results: list[UnitResult]) -> None:
    """Set each result's ``twin_ratio``: its seconds per image-pass over the lowest among the results
    with the same surrogate, attack, steps, option overrides and threads (the same computation per
    image-pass; only eps or targeting differ)."""
    groups: dict[tuple[Any, ...], list[UnitResult]] = {}
    for r in results:
        u = r.unit
        groups.setdefault((u.surrogate, u.label, u.steps, u.overrides, r.threads), []).append(r)
    for same in groups.values():
        cost = {id(r): r.seconds / (r.n * r.passes_per_image) for r in same
                if r.seconds > 0 and r.n > 0 and r.passes_per_image > 0}
        for r in same:
            others = [c for k, c in cost.items() if k != id(r)]
            r.twin_ratio = cost[id(r)] / min(others) if others and id(r) in cost and min(others) > 0 else None


@dataclass
class RunState:
    settings: Settings
    store: Store
    images: Images
    targets_cls: Tensor
    models: dict[str, nn.Module]
    ids: dict[str, dict[str, Any]]
    specs: dict[str, str]
    targets: list[Target]
    clean: dict[str, Tensor]
    results: list[UnitResult] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # models / purifier not available
    timings: dict[str, float] = field(default_factory=dict)
    purifier: str | None = None
    computed: set[str] = field(default_factory=set)   # units this invocation had to compute something for
    timing: dict[str, Any] | None = None   # the one-run crafting cost of every attack (timing.py)

    def __post_init__(self) -> None:
        compare_twins(self.results)

    def set_results(self, results: Iterable[UnitResult]) -> None:
        """Record the finished units, each compared with its twins (:func:`compare_twins`)."""
        self.results = list(results)
        compare_twins(self.results)

    @property
    def made(self) -> int:
        return len(self.computed)
