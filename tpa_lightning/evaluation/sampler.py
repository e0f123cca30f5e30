"""Split a test set over processes without padding: every image is counted exactly once.

The test set is cut into fixed chunks of ``batch_size`` consecutive indices; process ``r`` of ``w``
takes chunks ``r, r + w, r + 2w, ...``. The chunks (and so every batch an attack sees, and the seed
of every random defense, which is derived from the chunk number) do not depend on the number of
processes, so 1 and N processes give identical counts. Unlike ``DistributedSampler`` nothing is
repeated to even out the processes: some processes may get one chunk fewer.
"""
from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


def chunks(n: int, batch_size: int) -> list[list[int]]:
    """``range(n)`` cut into consecutive chunks of ``batch_size`` (the last may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]


class ChunkBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for process ``rank`` of ``world_size`` (no padding, no overlap)."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.batches = chunks(n, batch_size)[rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
