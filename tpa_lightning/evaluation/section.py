"""What every report section is: settings (its cache key), counters summed over images and processes,
a per-batch step that fills them, and a finalisation into plain JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One batch of the test set: images, labels, dataset indices and its chunk number."""

    x: Tensor
    y: Tensor
    idx: Tensor
    chunk: int


@dataclass
class Context:
    """What sections share: the models by name, the run's seed and the attack precision."""

    models: dict[str, nn.Module]
    seed: int = 0
    precision: str = "32"
    extra: dict[str, Any] = field(default_factory=dict)

    def chunk_seed(self, chunk: int, salt: int = 0) -> int:
        """Seed of random defenses / noise for one chunk (independent of the number of processes)."""
        return (self.seed * 1_000_003 + chunk * 7_919 + salt * 104_729) % (2**62)


def reseed(model: nn.Module, seed: int) -> None:
    """Reseed a randomised model (defenses' ``reseed``) so that its draws depend only on ``seed``."""
    fn = getattr(model, "reseed", None)
    if callable(fn):
        fn(seed)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).argmax(dim=1)


class Section:
    """Base class. ``name`` is unique in a report; ``settings()`` must hold everything that changes
    the numbers (it is the cache key together with the model and data identity)."""

    name: str = "section"

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def counters(self) -> dict[str, tuple[int, ...]]:
        """Counter name -> shape. All counters are summed over batches and processes."""
        raise NotImplementedError

    def step(self, ctx: Context, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def finalize(self, totals: dict[str, Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def zero_counters(self) -> dict[str, Tensor]:
        """Every counter at zero (float64), the starting point of a ``step``."""
        return {k: torch.zeros(s, dtype=torch.float64) for k, s in self.counters().items()}


def images_within_limit(b: Batch, limit: int | None) -> tuple[Tensor, Tensor] | None:
    """``(x, y)`` of the batch's images whose dataset index is below ``limit`` (all when None); None
    when there is none (the section then counts nothing for this batch)."""
    keep = b.idx < limit if limit is not None else torch.ones_like(b.y, dtype=torch.bool)
    return (b.x[keep], b.y[keep]) if bool(keep.any()) else None


def outcome_marks(n_images: int, idx: Tensor, hits: Tensor) -> Tensor:
    """A per-image counter: ``(n_images,)`` float64 zeros with ``hits`` (one bool per batch image) at
    the batch's dataset indices ``idx``. Every image is in exactly one batch of one process, so the sum
    over batches and processes is each image's own outcome (1 = hit)."""
    out = torch.zeros(n_images, dtype=torch.float64)
    out[idx.long().cpu()] = hits.detach().to("cpu", torch.float64)
    return out


def outcome_bits(marks: Tensor) -> str:
    """Per-image outcomes as a string of '0'/'1' in dataset order (how the report stores them: exact,
    and a thousand images take a thousand characters)."""
    return "".join("1" if v > 0.5 else "0" for v in marks.flatten().tolist())


def attack_label(cfgs: list[dict[str, Any]]) -> list[str]:
    """Display names of attack configs: the attack name, with ``#i`` where a name repeats."""
    names = [str(c["name"]).lower() for c in cfgs]
    return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
