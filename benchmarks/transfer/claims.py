"""Unit claims: how several benchmark processes share one queue of units.

A process works on a unit only while it holds an exclusive, non-blocking ``flock`` on the unit's claim
file; a process that finds the lock taken skips the unit and goes on to the next. Two processes
started side by side (``--threads 1`` each) thus split the pending units between them as they go,
balanced whatever each unit costs, with no fixed partition. The operating system drops the lock when
its holder exits or is killed, so a stopped run leaves nothing to clean up. The files stay (empty
but for the last holder's pid). Without ``fcntl`` (Windows) every claim is granted: run one process.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:          # pragma: no cover - not on Linux or macOS
    fcntl = None  # type: ignore[assignment]


@contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Hold the claim ``path`` for the ``with`` block: yields True if this process holds it, False if
    another process (or another open claim in this one) does."""
    if fcntl is None:        # pragma: no cover
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)         # closing the only descriptor releases the lock
