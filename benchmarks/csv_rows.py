"""Write a benchmark's rows (one dict per row, same keys) as a CSV file."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any


def write_rows(path: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` with a header of the first row's keys (nothing for no rows)."""
    if not rows:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
