"""``RobustCollapseStop``: end adversarial training when validation robust accuracy collapses."""
from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class RobustCollapseStop(Callback):
    """Stop training when the monitored robust accuracy falls more than ``max_drop`` below its best.

    The safeguard of fast adversarial training against catastrophic overfitting (Wong, Rice and Kolter
    2020, "Fast is better than free", Sec. 5.3): a single-step attack can suddenly stop finding
    adversarial examples, after which the model's robust accuracy against a multi-step attack drops
    towards 0 within an epoch while its clean accuracy rises. Wong et al. check PGD accuracy on a
    training minibatch each epoch and keep the model from before the drop; here the check runs on
    the validation split after each validation, and the checkpoint kept is the one selected on the
    same metric (train.py's ``best-epoch*.ckpt``, monitored on ``val/adv_acc``), so no test image is
    used for the decision.

    Args:
        max_drop: largest allowed fall of the metric below its best value so far, in the metric's
            units (accuracy as a fraction: 0.2 = 20 points, the drop Wong et al. report as the sign
            of collapse). Must be in (0, 1].
        monitor: the logged metric (default ``val/adv_acc``).

    Raises:
        ValueError: ``max_drop`` is not in (0, 1].

    The decision is taken from the synchronised metric, so every DDP process takes the same one; it
    is also reduced across processes so that none stops alone. ``best`` and ``stopped_epoch`` are saved
    in checkpoints under :attr:`state_key`.
    """

    def __init__(self, max_drop: float = 0.2, monitor: str = "val/adv_acc") -> None:
        super().__init__()
        if not 0.0 < float(max_drop) <= 1.0:
            raise ValueError(f"max_drop must be in (0, 1], got {max_drop}")
        self.max_drop = float(max_drop)
        self.monitor = monitor
        self.best = -math.inf
        self.stopped_epoch: int | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, max_drop=self.max_drop)

    def collapsed(self, value: float) -> bool:
        """Whether ``value`` lies more than ``max_drop`` below the best value seen before it."""
        return value < self.best - self.max_drop

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        stop = trainer.strategy.reduce_boolean_decision(self.collapsed(value), all=False)
        self.best = max(self.best, value)
        if stop:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(f"RobustCollapseStop: {self.monitor} fell to {value:.4f}, more than {self.max_drop} "
                      f"below its best {self.best:.4f}; training stops after epoch {trainer.current_epoch}")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict["best"])
        self.stopped_epoch = state_dict["stopped_epoch"]

