"""The defense tests run tiny workloads: one intra-op thread is faster than two, and much faster when
the cores are shared with other processes (OpenMP threads then wait on each other)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
