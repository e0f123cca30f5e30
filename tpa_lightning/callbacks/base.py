"""What the attack callbacks share: the attack (its name, checked options, one cached instance per
model), which batches they attack, how they get gradients inside Lightning's validation (which runs
under ``torch.inference_mode``), and their saved state."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ..attacks import ATTACKS, build_attack

#: attack options the callbacks name as parameters (None: the attack's own default)
NAMED_OPTIONS: tuple[str, ...] = ("steps", "step_size", "copies", "max_batch", "precision")
#: keywords of an attack the callbacks set themselves (not accepted inside ``attack_options``)
RESERVED_OPTIONS: tuple[str, ...] = ("model", "eps", "seed")


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


def merge_attack_options(named: Mapping[str, Any], attack_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keywords to build an attack with: the named options that are not None, plus
    ``attack_options`` (which may also hold a named option left at None).

    Raises:
        ValueError: a key given both named and in ``attack_options``, a reserved key (``model``,
            ``eps``, ``seed``: the callbacks' own parameters) in ``attack_options``.
        TypeError: ``attack_options`` is not a mapping, or has a non-string key.
    """
    extra = {} if attack_options is None else attack_options
    if not isinstance(extra, Mapping):
        raise TypeError(f"attack_options must be a mapping of keyword -> value, got {type(extra).__name__}")
    options = {k: v for k, v in named.items() if v is not None}
    for key in extra:
        if not isinstance(key, str):
            raise TypeError(f"attack_options keys must be strings, got {key!r}")
        if key in RESERVED_OPTIONS:
            raise ValueError(f"attack_options may not set {key!r}: it is the callback's own parameter")
        if named.get(key) is not None:
            raise ValueError(f"attack option {key!r} is given both as a parameter and in attack_options; "
                             "give it once")
    options.update(extra)
    return options


class AttackCallback(Callback):
    """Base of the attack callbacks: the attack (:meth:`configure_attack`, :meth:`_attack_for`), the
    schedule (``every_n_epochs``, ``limit_batches``), state (per-epoch history,
    ``state_dict``/``load_state_dict``) and logging through ``pl_module.log``.

    Args:
        every_n_epochs: evaluate every n-th epoch (always under ``trainer.validate``); >= 1.
        limit_batches: attack only the first n validation batches of each process (None: all).
        seed: seed of the attack: batch ``i`` is attacked with :meth:`batch_seed` ``(i)``.
        on_sanity_check: also attack during Lightning's sanity check.

    Raises:
        ValueError: ``every_n_epochs < 1`` or ``limit_batches < 1``.
    """

    #: stands in for the model when the options are checked at construction (attacks do not run it then)
    _stand_in: nn.Module = nn.Identity()

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
        #: the attack's registry name, budget and build keywords (set by :meth:`configure_attack`)
        self.attack_name = ""
        self.eps = 0.0
        self.steps: int | None = None
        self.step_size: float | None = None
        self.copies: int | None = None
        self.max_batch: int | str | None = None
        self.precision: str | None = None
        self.attack_options: dict[str, Any] = {}
        self.options: dict[str, Any] = {}
        self._atk: Any = None
        self._atk_model: nn.Module | None = None

    # ------------------------------------------------------------------ attack
    def configure_attack(self, attack: str, eps: float, *, steps: int | None = None,
                         step_size: float | None = None, copies: int | None = None,
                         max_batch: int | str | None = None, precision: str | None = None,
                         attack_options: Mapping[str, Any] | None = None) -> None:
        """Check and record the attack: its name (one of ``ATTACKS``), ``eps`` and the keywords it
        is built with (:func:`merge_attack_options` of the named options and ``attack_options``).
        The attack is built once here on a stand-in model, so a bad or unknown option fails now,
        with the constructor's own checks. The arguments are kept as attributes of the same names.

        Raises:
            ValueError: unknown attack, ``eps < 0``, or an option the attack rejects (named in the
                message).
        """
        key = str(attack).lower()
        if key not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}; known: {', '.join(sorted(ATTACKS))}")
        if float(eps) < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        named = dict(zip(NAMED_OPTIONS, (steps, step_size, copies, max_batch, precision), strict=True))
        options = merge_attack_options(named, attack_options)
        try:
            build_attack(key, self._stand_in, eps=float(eps), **options)
        except (TypeError, ValueError) as err:
            msg = str(err) if repr(key) in str(err) else f"attack {key!r}: {err}"
            raise ValueError(f"{type(self).__name__}: {msg}") from None
        self.attack_name = key
        self.eps = float(eps)
        self.steps, self.step_size, self.copies = steps, step_size, copies
        self.max_batch, self.precision = max_batch, precision
        self.attack_options = dict(attack_options or {})
        #: the keywords the attack is built with (besides the model and eps)
        self.options = options
        self._atk = None
        self._atk_model = None

    def _attack_for(self, model: nn.Module) -> Any:
        """The attack on ``model``, built on first use and cached per model; never modified
        afterwards (each call passes its own seed)."""
        if self._atk is None or self._atk_model is not model:
            self._atk = build_attack(self.attack_name, model, eps=self.eps, **self.options)
            self._atk_model = model
        return self._atk

    def options_key(self) -> dict[str, Any]:
        """The effective attack options, sorted by name (part of the subclasses' ``state_key``)."""
        return {k: self.options[k] for k in sorted(self.options)}

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
