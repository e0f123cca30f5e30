"""Learning curves of the trained zoo: per epoch, the training and validation clean accuracy that
train.py logged (``<root>/<name>/metrics.csv``), as ``zoo_curves.csv`` and ``zoo_curves.png``.

``python -m benchmarks.transfer.zoo_curves --root outputs/zoo_converged --out docs/results [names...]``

The validation split is train.py's own (the last ``data.val_size`` training images), never test
images; the held-out test accuracy of each final checkpoint is in the zoo card (``zoo.md``). Runs
resumed with ``ckpt_path=last`` before train.py kept the earlier rows (2026-12-03,
:mod:`tpa_lightning.training.metrics_history`) lost them: Lightning's CSVLogger deletes metrics.csv on
resume, so those curves hold the epochs after the last resume only (convnext from epoch 7, mobilenet
from epoch 30 of 35).
"""
from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .plots import save_axes
from .zoo import ZOO

#: metrics.csv columns read, and the names they get in zoo_curves.csv
COLUMNS = {"train/clean_acc": "train_clean_acc", "val/clean_acc": "val_clean_acc"}


def read_curve(metrics_csv: Path, columns: dict[str, str] = COLUMNS) -> list[dict[str, float]]:
    """One row per epoch (0-based ``epoch``) with the ``columns`` (metrics.csv name -> name given;
    default :data:`COLUMNS`) that were logged.

    Lightning's CSVLogger writes the training and the validation metrics of an epoch on separate
    rows; they are merged here by epoch."""
    by_epoch: dict[int, dict[str, float]] = {}
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            epoch = int(float(row["epoch"]))
            for col, name in columns.items():
                if row.get(col):
                    by_epoch.setdefault(epoch, {"epoch": float(epoch)})[name] = float(row[col])
    return [by_epoch[e] for e in sorted(by_epoch)]


def write_curves(root: Path, out: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """``out/zoo_curves.csv`` (model, epoch, accuracies) and ``out/zoo_curves.png`` for ``names``."""
    curves = {n: read_curve(root / n / "metrics.csv") for n in names if (root / n / "metrics.csv").is_file()}
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "zoo_curves.csv", out / "zoo_curves.png"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "epoch", *COLUMNS.values()])
        writer.writeheader()
        for name, rows in curves.items():
            for r in rows:
                writer.writerow({"model": name, **{k: (int(v) if k == "epoch" else round(v, 4)) for k, v in r.items()}})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in curves.items():
        pts = [(r["epoch"] + 1, 100 * r["val_clean_acc"]) for r in rows if "val_clean_acc" in r]
        ax.plot(*zip(*pts), label=name) if pts else None
    save_axes(fig, ax, png_path, "epoch", "validation clean accuracy (%)",
              "Zoo learning curves (train.py's validation split, 1000 training images)")
    return csv_path, png_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder of the trained zoo models")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("names", nargs="*", help="zoo models (default: every trained one)")
    a = parser.parse_args(argv)
    names = a.names or [m.name for m in ZOO]
    for path in write_curves(a.root, a.out, names):
        print(f"[zoo] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
