"""A resumed run keeps the learning curve of its earlier epochs.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts in a folder that has one, so a run
resumed with ``ckpt_path=last`` would lose every row written before the interruption (its curve would
start at the resumed epoch). The train jobs move the file aside before the logger starts
(:func:`set_aside_metrics`); :class:`EarlierMetrics` writes back the rows of the epochs the checkpoint
had finished, once the trainer has restored it, and drops the rows of the epoch that was cut short
(it is trained again).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

METRICS_FILE = "metrics.csv"
EARLIER_FILE = "metrics.earlier.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics CSV (``[]`` if there is no file)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as a CSV whose header is the union of their keys (sorted, as Lightning writes)."""
    keys = sorted({k for r in rows for k in r})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def set_aside_metrics(out: Path) -> Path | None:
    """Move ``out/metrics.csv`` to ``out/metrics.earlier.csv`` before a resumed run's logger starts.

    Rows already set aside by an earlier resume that was itself interrupted come first. Returns the
    set-aside file, or None when there is nothing to keep."""
    current, earlier = Path(out) / METRICS_FILE, Path(out) / EARLIER_FILE
    rows = read_rows(earlier) + read_rows(current)
    if not rows:
        return None
    write_rows(earlier, rows)
    current.unlink(missing_ok=True)
    return earlier


def row_values(row: dict[str, str]) -> tuple[dict[str, Any], int]:
    """One CSV row as the logger's ``(metrics, step)``: empty cells dropped, ``epoch`` an int."""
    metrics: dict[str, Any] = {k: float(v) for k, v in row.items() if k != "step" and v not in ("", None)}
    if "epoch" in metrics:
        metrics["epoch"] = int(metrics["epoch"])
    return metrics, int(float(row["step"]))


class EarlierMetrics(Callback):
    """Writes the set-aside rows of the finished epochs back into the run's ``CSVLogger``.

    Args:
        earlier: the file :func:`set_aside_metrics` returned; deleted once its rows are back.
    """

    def __init__(self, earlier: Path) -> None:
        self.earlier = Path(earlier)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.earlier.is_file():
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if logger is None:
            return
        finished = trainer.current_epoch       # the restored checkpoint's epochs 0 .. finished - 1
        for row in read_rows(self.earlier):
            metrics, step = row_values(row)
            if metrics.get("epoch", finished) < finished:
                logger.experiment.log_metrics(metrics, step)
        logger.save()
        self.earlier.unlink()


def history_callbacks(out: Path, resume: str | None) -> list[Callback]:
    """``[EarlierMetrics]`` for a resumed run whose folder has a learning curve, else ``[]``. Only the
    first process moves the file (DDP's other processes run this too, later)."""
    if resume is None or getattr(rank_zero_only, "rank", 0) != 0:
        return []
    earlier = set_aside_metrics(Path(out))
    return [EarlierMetrics(earlier)] if earlier is not None else []
