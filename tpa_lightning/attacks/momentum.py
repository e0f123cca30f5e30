"""Momentum attacks: MI-FGSM and NI-FGSM."""
from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from .base import MomentumMixin


class MI(MomentumMixin):
    """MI-FGSM (Dong et al. 2018): ``m <- mu m + g / mean|g|``, ``delta += a * sign(m)``.

    Defaults: ``mu`` (``momentum``) = 1.0, ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``.
    L2 offered (step ``a * m / ||m||_2``). Cost: 1 pass per iteration.
    """

    name: ClassVar[str] = "mi"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")


class NI(MomentumMixin):
    """NI-FGSM (Lin et al. 2020): the gradient is taken at the Nesterov look-ahead
    ``x + delta + a * mu * m``, then the MI update.

    Defaults: ``mu`` = 1.0, ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``. Cost: 1 pass/iteration.
    """

    name: ClassVar[str] = "ni"

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        ahead = delta if self.m is None else delta + self.step_size * self.momentum * self.m
        return self.input_grad(x + ahead, labels)
