"""RobustCollapseStop: training ends at the first validation whose robust accuracy lies more than
``max_drop`` below the best before it, and not otherwise; its state survives a checkpoint."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.callbacks import RobustCollapseStop
from tpa_lightning.config import ConfigError, load_config
from tpa_lightning.training.train_job import recipe_callbacks


class ScriptedRobustness(L.LightningModule):
    """Logs ``val/adv_acc`` from a script, one value per validation epoch."""

    def __init__(self, script: Sequence[float]) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.script = list(script)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.layer(batch[0]).sum()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/adv_acc", self.script[self.current_epoch], on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(script: Sequence[float], stop: RobustCollapseStop, tmp_path: Path) -> L.Trainer:
    data = DataLoader(TensorDataset(torch.zeros(4, 2), torch.zeros(4)), batch_size=4)
    trainer = L.Trainer(max_epochs=len(script), callbacks=[stop], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path)
    trainer.fit(ScriptedRobustness(script), data, data)
    return trainer


def _first_collapse(script: Sequence[float], max_drop: float) -> int | None:
    """Hand-written reference: the first epoch whose value is below (best before it) - max_drop."""
    best = float("-inf")
    for epoch, value in enumerate(script):
        if value < best - max_drop:
            return epoch
        best = max(best, value)
    return None


@pytest.mark.parametrize("script", [[0.30, 0.40, 0.45, 0.20, 0.50, 0.50],     # collapse at epoch 3
                                    [0.30, 0.40, 0.30, 0.35, 0.26, 0.41],     # dips of <= 0.14: no stop
                                    [0.10, 0.50, 0.29, 0.60, 0.60, 0.60]])    # 0.21 below 0.50: stop at 2
def test_stops_at_the_first_collapse(script: list[float], tmp_path: Path) -> None:
    stop = RobustCollapseStop(max_drop=0.2)
    trainer = _fit(script, stop, tmp_path)
    expected = _first_collapse(script, 0.2)
    assert stop.stopped_epoch == expected
    epochs_run = len(script) if expected is None else expected + 1
    assert trainer.current_epoch == epochs_run
    assert stop.best == pytest.approx(max(script[:epochs_run]))


def test_state_round_trip_and_key() -> None:
    stop = RobustCollapseStop(max_drop=0.1)
    stop.best, stop.stopped_epoch = 0.42, 7
    other = RobustCollapseStop(max_drop=0.1)
    other.load_state_dict(stop.state_dict())
    assert (other.best, other.stopped_epoch) == (0.42, 7)
    assert other.collapsed(0.31) and not other.collapsed(0.33)
    assert stop.state_key != RobustCollapseStop(max_drop=0.3).state_key


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_rejects_a_drop_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="max_drop"):
        RobustCollapseStop(max_drop=bad)
    with pytest.raises(ConfigError, match=r"training\.collapse_drop"):
        load_config("train", [f"training.collapse_drop={bad}"])


def test_train_config_adds_the_callback() -> None:
    (stop,) = recipe_callbacks(load_config("train", ["training.collapse_drop=0.25"]))
    assert isinstance(stop, RobustCollapseStop) and stop.max_drop == 0.25
