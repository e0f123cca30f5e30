"""train.py task=purifier writes a purifier that build_defense("nrp", ..., weights=PATH) loads."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import defenses
from tpa_lightning.config import load_config
from tpa_lightning.models import build_model
from tpa_lightning.training.train_job import train


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST (dataset-fashion-mnist) not installed")
def test_purifier_task_trains_and_saves_a_loadable_purifier(tmp_path: Path) -> None:
    cfg = load_config("train", [
        "task=purifier", "data.limit_train=32", "data.limit_test=16", "data.val_size=16", "data.batch_size=16",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "purifier.nb=1", "purifier.nf=8",
        "purifier.gc=4", "purifier.ssp_steps=1", f"out={tmp_path}",
    ])
    summary = train(cfg)
    path = Path(summary["purifier"])
    assert path.is_file() and "train/loss" in summary["metrics"]
    model = build_model("small_cnn", 10, 1)
    defended = defenses.build_defense("nrp", model, weights=str(path))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert defended(x).shape == (3, 10)
    state = torch.load(path, weights_only=True)
    assert any(k.startswith("RRDB_trunk.0.RDB1.conv1") for k in state["state_dict"])
