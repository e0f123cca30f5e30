"""The callbacks configured from a foreign project's LightningCLI YAML (``trainer.callbacks``).

The project here (module, datamodule) is written for this test and knows nothing of the toolkit;
only its YAML names our callbacks, with attack options given as typed parameters
(``steps``, ``copies``) and through ``attack_options``. Before the callbacks had explicit
parameters this failed in jsonargparse with "Option 'steps' is not accepted"-like errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("jsonargparse", reason="LightningCLI needs jsonargparse (the 'dev' extras)")
from lightning.pytorch.cli import LightningCLI

from tpa_lightning.callbacks import RobustAccuracyCallback, TransferCallback

SIZE, CLASSES = 8, 10


class TinyClassifier(L.LightningModule):
    """A foreign project's model: a linear classifier of 1x8x8 images in [0, 1]; forward returns logits."""

    def __init__(self, lr: float = 0.05, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


class RandomImages(L.LightningDataModule):
    """Seeded random 1x8x8 images in [0, 1] with labels from a fixed random linear rule."""

    def __init__(self, n_train: int = 32, n_val: int = 16, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n_train + n_val, 1, SIZE, SIZE, generator=g)
        w = torch.randn(SIZE * SIZE, CLASSES, generator=g)
        y = (x.flatten(1) @ w).argmax(1)
        self.train_set = TensorDataset(x[:n_train], y[:n_train])
        self.val_set = TensorDataset(x[n_train:], y[n_train:])
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


CALLBACKS: list[dict[str, Any]] = [
    {"class_path": "tpa_lightning.callbacks.RobustAccuracyCallback",
     "init_args": {"attack": "tpa", "eps": 0.1, "steps": 3, "copies": 2}},
    {"class_path": "tpa_lightning.callbacks.TransferCallback",
     "init_args": {"source_attack": "pgd", "eps": 0.1, "steps": 2, "targets": {"fresh": "small_cnn"},
                   "target_kwargs": {"num_classes": CLASSES, "in_chans": 1}}},
    {"class_path": "tpa_lightning.callbacks.RobustAccuracyCallback",
     "init_args": {"attack": "mi", "eps": 0.1, "steps": 2, "attack_options": {"momentum": 1.0}}},
]


def _config(tmp_path: Path, callbacks: list[dict[str, Any]]) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 2,
                    "limit_val_batches": 1, "num_sanity_val_steps": 0, "logger": False,
                    "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path), "callbacks": callbacks},
    }
    path = tmp_path / "config.in.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _cli(args: list[str]) -> LightningCLI:
    return LightningCLI(TinyClassifier, RandomImages, args=args, save_config_kwargs={"overwrite": True})


def test_lightning_cli_fit_with_our_callbacks_in_yaml(tmp_path: Path) -> None:
    cli = _cli(["fit", "--config", str(_config(tmp_path, CALLBACKS))])
    callbacks: list[L.Callback] = cli.trainer.callbacks  # type: ignore[attr-defined]  # set in Trainer.__init__
    ours = [cb for cb in callbacks if isinstance(cb, (RobustAccuracyCallback, TransferCallback))]
    assert [type(cb).__name__ for cb in ours] == ["RobustAccuracyCallback", "TransferCallback",
                                                   "RobustAccuracyCallback"]
    tpa, transfer, mi = ours
    assert isinstance(tpa, RobustAccuracyCallback) and isinstance(mi, RobustAccuracyCallback)
    assert isinstance(transfer, TransferCallback)
    # the YAML values reached the callbacks (named options, and the others through attack_options)
    assert (tpa.attack, tpa.eps, tpa.steps, tpa.copies) == ("tpa", 0.1, 3, 2)
    assert tpa.options == {"steps": 3, "copies": 2}
    assert (transfer.source_attack, transfer.options, sorted(transfer.target_specs)) == ("pgd", {"steps": 2}, ["fresh"])
    assert transfer.target_kwargs == {"num_classes": CLASSES, "in_chans": 1}
    assert mi.attack_options == {"momentum": 1.0} and mi.options == {"steps": 2, "momentum": 1.0}
    assert len({cb.state_key for cb in ours}) == 3
    # the attacks were built with those options, on the trained module
    assert tpa._atk is not None and (tpa._atk.steps, tpa._atk.copies) == (3, 2)
    assert mi._atk is not None and mi._atk.momentum == 1.0 and mi._atk.steps == 2
    assert tpa._atk_model is cli.model and transfer._atk_model is cli.model
    # fit ran the callbacks and logged their metrics
    m = cli.trainer.callback_metrics
    for key in ("robust_acc/tpa", "robust_acc/mi", "transfer/fresh", "transfer/fresh/on_correct",
                "transfer/fresh/clean_acc", "transfer/source"):
        assert key in m, key
        assert 0.0 <= float(m[key]) <= 1.0, (key, float(m[key]))
    assert tpa.history == {0: {"robust_acc/tpa": pytest.approx(float(m["robust_acc/tpa"]))}}
    # LightningCLI saved the resolved config, with our callbacks' typed parameters in it
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    init = saved["trainer"]["callbacks"][0]["init_args"]
    assert (init["steps"], init["copies"], init["attack_options"]) == (3, 2, None)
    assert saved["trainer"]["callbacks"][2]["init_args"]["attack_options"] == {"momentum": 1.0}


def test_lightning_cli_type_checks_the_options(tmp_path: Path) -> None:
    bad = [{"class_path": "tpa_lightning.callbacks.RobustAccuracyCallback",
            "init_args": {"attack": "tpa", "eps": 0.1, "steps": "three"}}]
    with pytest.raises(SystemExit):              # jsonargparse rejects a non-int steps while parsing
        _cli(["fit", "--config", str(_config(tmp_path, bad))])


def test_lightning_cli_reports_a_bad_attack_option(tmp_path: Path) -> None:
    bad = [{"class_path": "tpa_lightning.callbacks.RobustAccuracyCallback",
            "init_args": {"attack": "pgd", "eps": 0.1, "attack_options": {"momentun": 1.0}}}]
    with pytest.raises(ValueError, match="momentun"):
        LightningCLI(TinyClassifier, RandomImages, run=False,
                     args=["--config", str(_config(tmp_path, bad))])
