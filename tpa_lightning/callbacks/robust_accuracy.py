"""``RobustAccuracyCallback``: robust accuracy under an attack, measured during validation of any
LightningModule whose ``forward`` returns logits."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch

from .base import AttackCallback, gradients_enabled, plain_copy, split_batch
from .metrics import CountedAccuracy


class RobustAccuracyCallback(AttackCallback):
    """Attack the validation batches and log ``robust_acc/<attack>`` (accuracy on the adversarial
    examples, over all processes) at the end of each evaluated validation epoch.

    Works in any Lightning project: the attack runs on ``pl_module`` itself (its ``forward`` must
    return logits for [0, 1] NCHW images), in eval mode with parameter gradients off (the attacks'
    own context), and leaves parameter gradients untouched. Lightning's ``inference_mode`` is left
    inside the hook, so no ``Trainer(inference_mode=False)`` is needed.

    Args:
        attack: attack name (see ``tpa_lightning.attacks.ATTACKS``), e.g. ``"pgd"``, ``"tpa"``.
        eps: budget in [0, 1] pixel units (L-inf per element unless ``attack_options`` sets ``norm``).
        every_n_epochs: evaluate every n-th epoch (always under ``trainer.validate``).
        limit_batches: attack only the first n validation batches of each process (None: all).
        seed: seed of the attack (batch ``i`` uses a seed derived from it); repeatable results.
        name: metric name (default ``robust_acc/<attack>``).
        prog_bar: show the metric in the progress bar.
        on_sanity_check: also attack during Lightning's sanity check (default False).
        steps: attack iterations (>= 1); None: the attack's default.
        step_size: step per iteration in [0, 1] pixel units; None: the attack's default.
        copies: copies per step of the attacks that take them (``tpa``, ``vt``, ``ssa`` ...);
            None: the attack's default.
        max_batch: most rows per forward+backward pass of the attack; None: the attack's default.
        precision: ``"32"``, ``"bf16"`` or ``"16"`` (autocast of the model inside the attack);
            None: the attack's default (``"32"``).
        attack_options: any other keyword of the attack, e.g. ``{"momentum": 1.0}`` for ``mi`` or
            ``{"mode": "paper"}`` for ``tpa``; not ``eps`` or ``seed`` (parameters here), nor a key
            also given as a named parameter above.

    Raises:
        ValueError: unknown attack, ``eps < 0``, ``every_n_epochs < 1``, ``limit_batches < 1``, a
            key given both named and in ``attack_options``, or an option the attack rejects (the
            attack is built once on a stand-in model at construction to check them).

    The value is also kept in ``history`` (``{epoch: {name: value}}``), saved in checkpoints.
    Usable from ``LightningCLI`` YAML (``trainer.callbacks``): every parameter is explicit and typed.
    """

    def __init__(self, attack: str = "pgd", eps: float = 8 / 255, every_n_epochs: int = 1,
                 limit_batches: int | None = None, seed: int = 0, name: str | None = None,
                 prog_bar: bool = False, on_sanity_check: bool = False, *, steps: int | None = None,
                 step_size: float | None = None, copies: int | None = None, max_batch: int | str | None = None,
                 precision: str | None = None, attack_options: dict[str, Any] | None = None) -> None:
        super().__init__(every_n_epochs, limit_batches, seed, on_sanity_check)
        self.configure_attack(attack, eps, steps=steps, step_size=step_size, copies=copies, max_batch=max_batch,
                              precision=precision, attack_options=attack_options)
        self.attack = self.attack_name
        self.name = name or f"robust_acc/{self.attack}"
        self.prog_bar = prog_bar
        self.metric = CountedAccuracy()

    @property
    def state_key(self) -> str:
        return self._generate_state_key(attack=self.attack, eps=self.eps, name=self.name, **self.options_key())

    # ------------------------------------------------------------------ hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = self.is_active_epoch(trainer)
        with gradients_enabled():            # fresh states must not be inference tensors
            self.metric = self.metric.to(pl_module.device)
            self.metric.reset()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.wants_batch(batch_idx, dataloader_idx):
            return
        with gradients_enabled():
            x, y = (plain_copy(t) for t in split_batch(batch))
            atk = self._attack_for(pl_module)
            x_adv = atk(x, y, seed=self.batch_seed(batch_idx))
            with torch.no_grad():
                was_training = pl_module.training
                pl_module.eval()
                logits = pl_module(x_adv)
                pl_module.train(was_training)
            self.metric.update(logits.detach(), y)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        value = self.metric.compute()         # sums over every process
        if self.metric.synced_total == 0:
            return
        self.log_values(trainer, pl_module, {self.name: value}, prog_bar=self.prog_bar)
        self._active = False

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(attack=self.attack, eps=self.eps, name=self.name)
        return state
