"""Input checks shared by attacks, defenses and evaluation.

Every public entry point that takes images calls :func:`check_images`; every one that takes labels
calls :func:`check_labels`. They raise ``ValueError`` with a message that says what was expected.
"""
from __future__ import annotations

import torch
from torch import Tensor


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
    """Raise ``ValueError`` unless ``value`` is > 0 (or >= 0 with ``allow_zero``)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
