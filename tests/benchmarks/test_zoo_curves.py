"""The zoo's learning curves merge Lightning's separate training and validation rows by epoch."""
from __future__ import annotations

import csv
from pathlib import Path

from benchmarks.transfer.zoo_curves import read_curve, write_curves

METRICS = """epoch,step,train/clean_acc,train/clean_loss,val/adv_acc,val/adv_loss,val/clean_acc,val/clean_loss
0,382,,,0.1,2.0,0.55,1.2
0,382,0.45,1.5,,,,
1,765,,,0.2,2.1,0.70,0.9
1,765,0.65,1.0,,,,
"""


def test_rows_of_one_epoch_are_merged_and_written(tmp_path: Path) -> None:
    (tmp_path / "zoo" / "vgg").mkdir(parents=True)
    (tmp_path / "zoo" / "vgg" / "metrics.csv").write_text(METRICS)
    curve = read_curve(tmp_path / "zoo" / "vgg" / "metrics.csv")
    assert curve == [{"epoch": 0.0, "val_clean_acc": 0.55, "train_clean_acc": 0.45},
                     {"epoch": 1.0, "val_clean_acc": 0.70, "train_clean_acc": 0.65}]
    csv_path, png_path = write_curves(tmp_path / "zoo", tmp_path / "out", ["vgg", "absent"])
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["model"], r["epoch"], r["val_clean_acc"]) for r in rows] == [("vgg", "0", "0.55"), ("vgg", "1", "0.7")]
    assert png_path.stat().st_size > 0
