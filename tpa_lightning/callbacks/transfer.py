"""``TransferCallback``: transfer success rates of adversarial examples crafted on the model being
trained (or a fixed surrogate), measured on other models during validation."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from ..models import build_model
from .base import AttackCallback, gradients_enabled, plain_copy, split_batch
from .metrics import TransferRate

Target = nn.Module | str


def _target_name(target: Target, taken: set[str]) -> str:
    if isinstance(target, str):
        base = Path(target).stem if target.endswith((".ckpt", ".pt", ".pth", ".safetensors")) else target
    else:
        base = type(target).__name__
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


class TransferCallback(AttackCallback):
    """Craft adversarial examples on the validation batches with ``source_attack`` on the module being
    trained (or on ``surrogate``, a fixed ``nn.Module``) and log, per target model ``T``:

    - ``transfer/<T>``: share of the attacked images that ``T`` misclassifies (over all images);
    - ``transfer/<T>/on_correct``: the same over the images ``T`` classifies correctly when clean
      (the usual "transfer success rate");
    - ``transfer/<T>/clean_acc``: ``T``'s clean accuracy on those images;
    - ``transfer/source``: white-box success rate on the model the examples were made on.

    All counts are summed over processes before dividing (torchmetrics), so they are exact under DDP.

    Args:
        source_attack: attack name (see ``tpa_lightning.attacks.ATTACKS``), default ``"tpa"``.
        targets: target models: ``nn.Module`` instances or ``build_model`` specs (``"small_cnn"``,
            ``"timm:resnet18"``, a train.py checkpoint path ...), as a list (names from the spec or
            class) or a ``{name: model or spec}`` mapping. Targets run in eval mode and are not saved
            in checkpoints (they are not submodules of the LightningModule).
        surrogate: a fixed ``nn.Module`` to craft on instead of the module being trained.
        eps: budget in [0, 1] pixel units.
        target_kwargs: keyword arguments of ``build_model`` for targets given as specs (e.g.
            ``{"num_classes": 10, "in_chans": 1}``). Models are run in eval mode (their mode is
            restored) under ``no_grad``; nothing else about them is changed.
        every_n_epochs, limit_batches, seed, on_sanity_check: as in ``RobustAccuracyCallback``.
        steps: attack iterations (>= 1); None: the attack's default.
        step_size: step per iteration in [0, 1] pixel units; None: the attack's default.
        copies: copies per step of the attacks that take them (``tpa``, ``vt``, ``ssa`` ...);
            None: the attack's default.
        max_batch: most rows per forward+backward pass of the attack; None: the attack's default.
        precision: ``"32"``, ``"bf16"`` or ``"16"`` (autocast inside the attack); None: the
            attack's default (``"32"``).
        attack_options: any other keyword of the attack, e.g. ``{"momentum": 1.0}`` for ``mi`` or
            ``{"mode": "paper"}`` for ``tpa``; not ``eps`` or ``seed`` (parameters here), nor a key
            also given as a named parameter above.

    Raises:
        ValueError: unknown attack, ``eps < 0``, no target, ``every_n_epochs < 1``,
            ``limit_batches < 1``, a key given both named and in ``attack_options``, or an option the
            attack rejects (checked at construction by building the attack on a stand-in model).
        TypeError: a target that is neither an ``nn.Module`` nor a string, or a surrogate that is
            not an ``nn.Module``.

    From ``LightningCLI`` YAML, give targets as build_model specs, e.g.
    ``targets: {fresh: small_cnn}`` with ``target_kwargs: {num_classes: 10, in_chans: 1}``.
    """

    def __init__(self, source_attack: str = "tpa", targets: Sequence[Target] | Mapping[str, Target] = (),
                 surrogate: nn.Module | None = None, eps: float = 8 / 255, every_n_epochs: int = 1,
                 limit_batches: int | None = None, seed: int = 0,
                 target_kwargs: Mapping[str, Any] | None = None, on_sanity_check: bool = False, *,
                 steps: int | None = None, step_size: float | None = None, copies: int | None = None,
                 max_batch: int | str | None = None, precision: str | None = None,
                 attack_options: dict[str, Any] | None = None) -> None:
        super().__init__(every_n_epochs, limit_batches, seed, on_sanity_check)
        self.configure_attack(source_attack, eps, steps=steps, step_size=step_size, copies=copies, max_batch=max_batch,
                              precision=precision, attack_options=attack_options)
        if surrogate is not None and not isinstance(surrogate, nn.Module):
            raise TypeError(f"surrogate must be an nn.Module or None, got {type(surrogate).__name__}")
        items: list[tuple[str, Target]] = []
        if isinstance(targets, Mapping):
            items = [(str(k), v) for k, v in targets.items()]
        else:
            taken: set[str] = set()
            for t in targets:
                n = _target_name(t, taken)
                taken.add(n)
                items.append((n, t))
        if not items:
            raise ValueError("TransferCallback needs at least one target model")
        for n, t in items:
            if not isinstance(t, (nn.Module, str)):
                raise TypeError(f"target {n!r} must be an nn.Module or a build_model spec, got {type(t).__name__}")
        self.source_attack = self.attack_name
        self.target_specs: dict[str, Target] = dict(items)
        self.target_kwargs = dict(target_kwargs or {})
        self.surrogate = surrogate
        self.targets: dict[str, nn.Module] = {}
        self.metrics = {n: TransferRate() for n in self.target_specs}
        self.source_metric = TransferRate()

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            source_attack=self.source_attack, eps=self.eps, targets=sorted(self.target_specs),
            surrogate=type(self.surrogate).__name__ if self.surrogate is not None else None,
            **self.options_key())

    # ------------------------------------------------------------------ models
    def _materialise(self, device: torch.device) -> None:
        for name, spec in self.target_specs.items():
            model = self.targets.get(name)
            if model is None:
                model = build_model(spec, **self.target_kwargs) if isinstance(spec, str) else spec
            self.targets[name] = model.to(device)
        if self.surrogate is not None:
            self.surrogate = self.surrogate.to(device)

    # ------------------------------------------------------------------ hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = self.is_active_epoch(trainer)
        if not self._active:
            return
        self._materialise(pl_module.device)
        with gradients_enabled():            # fresh states must not be inference tensors
            for name in list(self.metrics):
                self.metrics[name] = self.metrics[name].to(pl_module.device)
                self.metrics[name].reset()
            self.source_metric = self.source_metric.to(pl_module.device)
            self.source_metric.reset()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.wants_batch(batch_idx, dataloader_idx):
            return
        source: nn.Module = self.surrogate if self.surrogate is not None else pl_module
        with gradients_enabled():
            x, y = (plain_copy(t) for t in split_batch(batch))
            atk = self._attack_for(source)
            x_adv = atk(x, y, seed=self.batch_seed(batch_idx))
            with torch.no_grad():
                for metric, model in ((self.source_metric, source), *((self.metrics[n], t)
                                                                       for n, t in self.targets.items())):
                    was_training = model.training
                    model.eval()                # targets may be submodules of a training model
                    metric.update(model(x), model(x_adv), y)
                    model.train(was_training)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        values = {}
        for name, metric in self.metrics.items():
            rate, rate_on_correct, clean = metric.compute()      # sums over every process
            values[f"transfer/{name}"] = rate
            values[f"transfer/{name}/on_correct"] = rate_on_correct
            values[f"transfer/{name}/clean_acc"] = clean
        values["transfer/source"] = self.source_metric.compute()[0]
        if self.source_metric.synced_total == 0:
            return
        self.log_values(trainer, pl_module, values)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(source_attack=self.source_attack, eps=self.eps, targets=sorted(self.target_specs))
        return state
