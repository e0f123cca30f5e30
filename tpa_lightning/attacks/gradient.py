"""Plain gradient-sign attacks: FGSM, PGD (random start), BIM (I-FGSM). L-inf and L2."""
from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from .base import Attack, per_sample_norm


class FGSM(Attack):
    """FGSM (Goodfellow et al. 2015): one step ``x + eps * sign(grad)`` (L2: ``eps * g / ||g||_2``).

    Defaults: ``steps=1``, ``step_size=eps``, ``eps=8/255``. Cost: 1 forward+backward per image.
    """

    name: ClassVar[str] = "fgsm"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    default_steps: ClassVar[int] = 1

    def __init__(self, model: nn.Module, eps: float | None = None, steps: int | None = None,
                 step_size: float | None = None, **kwargs: Any) -> None:
        e = self.default_eps if eps is None else eps
        super().__init__(model, eps=e, steps=steps, step_size=e if step_size is None else step_size,
                         **kwargs)


class BIM(Attack):
    """BIM / I-FGSM (Kurakin et al. 2017): ``steps`` sign steps from ``x`` (no random start).

    Defaults: ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``. Cost: 1 pass per iteration.
    """

    name: ClassVar[str] = "bim"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")


class PGD(BIM):
    """PGD (Madry et al. 2018): BIM from a random start, U(-eps, eps) per element (L-inf) or a
    uniformly random direction with radius U(0, eps) (L2).

    Defaults: ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``. Cost: 1 pass per iteration.
    """

    name: ClassVar[str] = "pgd"

    def init_delta(self, x: Tensor) -> Tensor:
        if self.norm == "linf":
            return self.rand_like_sample(x, low=-self.eps, high=self.eps).clone()
        d = self.rand_like_sample(x, normal=True)
        r = self.rand_like_sample(x[:, :1, :1, :1])
        return (d / per_sample_norm(d).clamp_min(1e-12) * r * self.eps).clone()
