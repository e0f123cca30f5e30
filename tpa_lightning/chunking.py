"""How many rows go through a model at once: the one place that resolves a chunk size.

Attacks (``max_batch``), defenses (``Defended.max_batch``) and randomized smoothing
(``Smoothed.batch_size``) all send large stacked batches through a model in chunks. Each takes an
int (rows per chunk, fixed) or :data:`AUTO`, the default, which is resolved here per device:

- CPU: :data:`CPU_ROWS` rows (or the caller's own measured CPU value). On a CPU a large batch is
  SLOWER per image than a moderate one (caches); see ``docs/benchmarks/attacks.md``.
- any accelerator (CUDA, MPS, XPU, ...): every row at once (GPUs want large batches).

With ``"auto"`` (on any device) an out-of-memory error halves the chunk and retries it
(:class:`ChunkSize`), down to one row; the size that worked is remembered for the next chunks and
calls.

An explicit int is never changed: an out-of-memory error with an int is raised as it is.

This module imports only torch (attacks and defenses both use it).
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import torch

from .checks import OptionError

#: the ``max_batch`` value that lets this module choose the chunk per device
AUTO = "auto"

#: Rows per chunk of ``"auto"`` on a CPU. Measured in docs/benchmarks/attacks.md (CIFAR ResNet-18 of
#: pyautoattack, batch 16, TPA N = 10, idle 2-core AVX512 CPU): 64-row chunks ran TPA at 0.949 of
#: the raw forward+backward bound, the whole 176-row stacked batch (max_batch 1024) at 0.764.
CPU_ROWS = 64

#: what an accelerator raises when it runs out of memory (``torch.OutOfMemoryError`` from torch 2.5;
#: ``torch.cuda.OutOfMemoryError`` is the same class there and the only one before)
OutOfMemoryError: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def check_max_batch(name: str, value: object) -> int | str:
    """Check a chunk-size option.

    Args:
        name: the option's name, for the error message (``"max_batch"``, ``"batch_size"``).
        value: :data:`AUTO` or an integer >= 1 (an integral float such as ``64.0`` is accepted and
            converted; a bool is not).

    Returns:
        ``"auto"`` or the value as an ``int``.

    Raises:
        ValueError: anything else, with ``name`` in the message.
    """
    if isinstance(value, str) and value == AUTO:
        return AUTO
    rows = 0
    if (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    ):
        rows = int(value)
    if rows < 1:
        raise OptionError(name, f"must be an integer >= 1 or {AUTO!r}, got {value!r}")
    return rows


def rows_per_chunk(max_batch: int | str, device: torch.device | str, total_rows: int,
                   cpu_rows: int = CPU_ROWS) -> int:
    """Rows per chunk for ``total_rows`` rows on ``device`` (before any out-of-memory back-off).

    Args:
        max_batch: an int >= 1 (used as it is, capped at ``total_rows``) or :data:`AUTO`.
        device: where the rows are (only its type matters).
        total_rows: rows to process.
        cpu_rows: the chunk of ``"auto"`` on a CPU (default :data:`CPU_ROWS`).

    Returns:
        ``min(max_batch, total_rows)``; for ``"auto"``: ``min(cpu_rows, total_rows)`` on a CPU,
        ``total_rows`` (everything at once) on any other device. Never below 1.

    Raises:
        ValueError: a bad ``max_batch`` or ``cpu_rows``.
    """
    mb = check_max_batch("max_batch", max_batch)
    if mb == AUTO:
        on_cpu = torch.device(device).type == "cpu"
        mb = int(check_max_batch("cpu_rows", cpu_rows)) if on_cpu else max(int(total_rows), 1)
    return max(1, min(int(mb), int(total_rows)))


class ChunkSize:
    """The chunk size of one owner (an attack, a defense), with the out-of-memory back-off of
    ``"auto"``.

    Args:
        max_batch: an int >= 1 (fixed chunk) or :data:`AUTO` (see :func:`rows_per_chunk`).
        cpu_rows: the chunk of ``"auto"`` on a CPU (default :data:`CPU_ROWS`).
        oom_error: the exception that means "out of memory" (default :data:`OutOfMemoryError`;
            a parameter so that tests can use a stand-in).

    With ``"auto"``, :meth:`run` catches ``oom_error``, frees the CUDA cache, halves the chunk and
    retries the same rows; the size that worked is kept (per device) as a cap for the following
    chunks and calls. It is never raised again: a fresh object starts from the full size.

    Raises:
        ValueError: a bad ``max_batch`` or ``cpu_rows``.
    """

    def __init__(self, max_batch: int | str = AUTO, *, cpu_rows: int = CPU_ROWS,
                 oom_error: type[BaseException] = OutOfMemoryError) -> None:
        self.max_batch = check_max_batch("max_batch", max_batch)
        self.cpu_rows = int(check_max_batch("cpu_rows", cpu_rows))
        self.oom_error = oom_error
        #: device -> the largest chunk known to fit there (set by a back-off)
        self.limits: dict[str, int] = {}

    def rows(self, device: torch.device | str, total_rows: int) -> int:
        """Rows of the next chunk for ``total_rows`` rows on ``device``: :func:`rows_per_chunk`,
        capped by the size remembered from an earlier back-off on that device."""
        rows = rows_per_chunk(self.max_batch, device, total_rows, self.cpu_rows)
        return min(rows, self.limits.get(str(torch.device(device)), rows))

    def run(self, fn: Callable[[int, int], object], total_rows: int, device: torch.device | str) -> None:
        """Call ``fn(start, stop)`` on consecutive chunks that cover rows ``[0, total_rows)`` once
        each, in order.

        Args:
            fn: processes rows ``start:stop``. With ``"auto"`` it may be called again on a smaller
                chunk starting at the same row after it raised ``oom_error``, so it must not
                record anything for a chunk before the chunk has succeeded.
            total_rows: rows to cover (0: ``fn`` is not called).
            device: where the rows are.

        Raises:
            ``oom_error``: with an int ``max_batch``, as raised; with ``"auto"``, when even a
                one-row chunk runs out of memory.
            Whatever ``fn`` raises otherwise.
        """
        key = str(torch.device(device))
        size = self.rows(device, total_rows)
        start = 0
        while start < total_rows:
            stop = min(start + size, total_rows)
            try:
                fn(start, stop)
            except self.oom_error:
                if self.max_batch != AUTO or stop - start <= 1:
                    raise
                failed = stop - start
            else:
                start = stop
                continue
            # outside the except block, so the failed chunk's tensors (held by the traceback) are freed
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.empty_cache()
            size = max(1, failed // 2)
            self.limits[key] = size

    def __repr__(self) -> str:
        return f"ChunkSize(max_batch={self.max_batch!r}, cpu_rows={self.cpu_rows}, limits={self.limits})"


def chunked(fn: Callable[[int, int], object], total_rows: int, max_batch: int | str,
            device: torch.device | str, *, cpu_rows: int = CPU_ROWS,
            oom_error: type[BaseException] = OutOfMemoryError) -> None:
    """One-off :meth:`ChunkSize.run` (nothing is remembered between calls).

    Args:
        fn: processes rows ``start:stop`` (see :meth:`ChunkSize.run`).
        total_rows: rows to cover.
        max_batch: an int >= 1 or :data:`AUTO`.
        device: where the rows are.
        cpu_rows: the chunk of ``"auto"`` on a CPU.
        oom_error: the out-of-memory exception type.

    Raises:
        ValueError: a bad ``max_batch``; otherwise as :meth:`ChunkSize.run`.
    """
    ChunkSize(max_batch, cpu_rows=cpu_rows, oom_error=oom_error).run(fn, total_rows, device)


__all__ = ["AUTO", "CPU_ROWS", "ChunkSize", "OutOfMemoryError", "check_max_batch", "chunked", "rows_per_chunk"]
