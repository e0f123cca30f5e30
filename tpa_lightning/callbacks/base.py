"""What the attack callbacks share: which batches they attack, how they get gradients inside
Lightning's validation (which runs under ``torch.inference_mode``), and their saved state."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor


def split_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """``(x, y)`` of a batch given as ``(x, y, ...)`` or a mapping with ``image``/``x``/``input``
    and ``label``/``y``/``target`` keys."""
    if isinstance(batch, Mapping):
        xs = [batch[k] for k in ("image", "images", "x", "input", "inputs") if k in batch]
        ys = [batch[k] for k in ("label", "labels", "y", "target", "targets") if k in batch]
        if xs and ys:
            return xs[0], ys[0]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError("the attack callbacks expect batches (images, labels, ...) or a dict with 'image' "
                     f"and 'label' keys, got {type(batch).__name__}")


@contextlib.contextmanager
def gradients_enabled() -> Iterator[None]:
    """Leave Lightning's ``inference_mode`` and ``no_grad`` for the body (attacks need input grads)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def plain_copy(t: Tensor) -> Tensor:
    """A normal tensor (not an inference tensor) with ``t``'s values; call inside
    :func:`gradients_enabled`."""
    return t.detach().clone()


class AttackCallback(Callback):
    """Base of the attack callbacks: the schedule (``every_n_epochs``, ``limit_batches``), state
    (per-epoch history, ``state_dict``/``load_state_dict``) and logging through ``pl_module.log``."""

    def __init__(self, every_n_epochs: int = 1, limit_batches: int | None = None, seed: int = 0,
                 on_sanity_check: bool = False) -> None:
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if limit_batches is not None and int(limit_batches) < 1:
            raise ValueError(f"limit_batches must be >= 1 or None, got {limit_batches}")
        self.every_n_epochs = int(every_n_epochs)
        self.limit_batches = None if limit_batches is None else int(limit_batches)
        self.seed = int(seed)
        self.on_sanity_check = bool(on_sanity_check)
        #: ``{epoch: {metric name: value}}`` of every evaluation so far (saved in checkpoints)
        self.history: dict[int, dict[str, float]] = {}
        self._active = False

    # ------------------------------------------------------------------ schedule
    def is_active_epoch(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking and not self.on_sanity_check:
            return False
        if trainer.state.fn != "fit":          # trainer.validate(): always evaluate
            return True
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def wants_batch(self, batch_idx: int, dataloader_idx: int = 0) -> bool:
        return self._active and dataloader_idx == 0 and (
            self.limit_batches is None or batch_idx < self.limit_batches)

    def batch_seed(self, batch_idx: int) -> int:
        return self.seed * 1_000_003 + batch_idx

    # ------------------------------------------------------------------ logging
    def log_values(self, trainer: L.Trainer, pl_module: L.LightningModule, values: Mapping[str, Tensor],
                   prog_bar: bool = False) -> None:
        """Log already-synchronised values (identical on every process) through ``pl_module.log``."""
        record: dict[str, float] = {}
        for name, value in values.items():
            pl_module.log(name, value.to(pl_module.device), on_step=False, on_epoch=True, sync_dist=False,
                          prog_bar=prog_bar, add_dataloader_idx=False)
            record[name] = float(value)
        if not trainer.sanity_checking:
            self.history[int(trainer.current_epoch)] = record

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"history": {int(k): dict(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {int(k): {str(n): float(x) for n, x in v.items()}
                        for k, v in dict(state_dict.get("history", {})).items()}
