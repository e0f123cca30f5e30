"""The error raised when a dataset cannot be found: it names every path tried and the fix."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    def __init__(self, name: str, tried: Sequence[str | Path], how: str) -> None:
        listed = "; ".join(str(t) for t in tried)
        super().__init__(f"dataset '{name}' not found. Tried: {listed}. {how}")
