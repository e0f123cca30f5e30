"""RAP (Qin et al. 2022, reverse adversarial perturbation), with late start (RAP-LS)."""
from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from ..checks import check_int, check_positive
from .base import MomentumMixin


class RAP(MomentumMixin):
    """RAP: from iteration ``late_start`` on, an inner minimisation finds the reverse perturbation
    ``n* = argmin_{||n||_inf <= eps_n} A(x' + n)`` by ``inner_steps`` sign-descent steps of
    ``eps_n / inner_steps`` from a random start U(-eps_n, eps_n); the outer step is a sign step on
    ``grad A(x' + n*)``. Before ``late_start``, ``n = 0`` (plain I-FGSM).

    Defaults (ImageNet, the paper's): ``steps=400``, ``step_size=2/255``, ``eps=16/255``,
    ``eps_n = eps``, ``late_start=100`` (RAP-LS), ``inner_steps=8``, ``momentum=0`` (sign step;
    ``momentum=1`` gives the MI combination). Everything accepts smaller settings (e.g. CIFAR).
    Cost: 1 pass per iteration before the late start, ``inner_steps + 1`` = 9 after it.
    """

    name: ClassVar[str] = "rap"
    default_eps: ClassVar[float] = 16 / 255
    default_steps: ClassVar[int] = 400

    def __init__(self, model: nn.Module, eps: float | None = None, steps: int | None = None,
                 step_size: float | None = 2 / 255, *, late_start: int = 100, inner_steps: int = 8,
                 eps_n: float | None = None, momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(model, eps=eps, steps=steps, step_size=step_size, momentum=momentum, **kwargs)
        self.late_start = check_int("late_start", late_start, 0)
        self.inner_steps = check_int("inner_steps", inner_steps, 1)
        self.eps_n = float(self.eps if eps_n is None else eps_n)
        check_positive("eps_n", self.eps_n, allow_zero=True)

    def passes_per_image(self) -> float:
        plain = min(self.late_start, self.steps)
        return float((plain + (self.steps - plain) * (self.inner_steps + 1)) * self.eot_samples)

    def reverse_perturbation(self, u: Tensor, labels: Tensor) -> Tensor:
        """``n*``: inner sign DESCENT on the objective inside the eps_n ball, x' + n kept in [0, 1]."""
        n = self.rand_like_sample(u, low=-self.eps_n, high=self.eps_n).clone()
        a = self.eps_n / self.inner_steps
        for _ in range(self.inner_steps):
            n = (n - a * self.input_grad(u + n, labels).sign()).clamp(-self.eps_n, self.eps_n)
            n = (u + n).clamp(0.0, 1.0) - u
        return n

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        u = x + delta
        if it >= self.late_start:
            u = u + self.reverse_perturbation(u, labels)
        return self.input_grad(u, labels)
