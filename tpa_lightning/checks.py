"""Input checks shared by attacks, defenses and evaluation.

Every public entry point that takes images calls :func:`check_images`; every one that takes labels
calls :func:`check_labels`. They raise ``ValueError`` with a message that says what was expected.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor


class OptionError(ValueError):
    """A bad value of one named option, with the option and the reason kept apart so that a caller can
    name the option in its own terms (the config reports ``attack.eps: must be >= 0, got -0.1`` for
    the attack's ``eps must be >= 0, got -0.1``). ``str()`` is ``"<option> <reason>"``.

    Args:
        option: the keyword's name as the constructor takes it (``"eps"``, ``"max_batch"`` ...).
        reason: what was expected and what was given (``"must be >= 0, got -0.1"``).
    """

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option} {reason}")
        self.option = option
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:      # picklable across DDP/worker processes
        return (type(self), (self.option, self.reason))


def check_images(x: Tensor, name: str = "x") -> None:
    """Check that ``x`` is a float NCHW batch of images with values in [0, 1] and no NaN."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{name} must be a 4-D NCHW batch of images in [0, 1], got a {x.dim()}-D tensor of shape "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); expected at least one image")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN values; expected finite values in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must have values in [0, 1] (normalisation belongs inside the model), "
            f"got min {lo:.4g} and max {hi:.4g}"
        )


def check_labels(y: Tensor, batch_size: int, num_classes: int | None = None, name: str = "y") -> None:
    """Check that ``y`` holds ``batch_size`` integer class indices in ``[0, num_classes)``."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dim() != 1 or y.shape[0] != batch_size:
        raise ValueError(
            f"{name} must be a 1-D tensor of {batch_size} class indices, got shape {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(y.min())}")
    if num_classes is not None and y.numel() and int(y.max()) >= num_classes:
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes - 1}] for a model with {num_classes} "
            f"classes, got {int(y.max())}"
        )


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise :class:`OptionError` (a ``ValueError``) unless ``value`` is > 0 (or >= 0 with ``allow_zero``)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionError(name, f"must be {bound}, got {value}")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int``; :class:`OptionError` (a ``ValueError``) unless it is an integer >=
    ``minimum`` (an integral float such as ``4.0`` is accepted, a bool is not)."""
    integral = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or int(value) < minimum:
        raise OptionError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    """``value`` unchanged; :class:`OptionError` (a ``ValueError``) unless it is one of ``allowed``."""
    if value not in allowed:
        raise OptionError(name, f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value
