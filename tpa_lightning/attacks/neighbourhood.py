"""Neighbourhood / flatness attacks: VT (VMI), PGN, GNP and MEF (all with the MI update)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..checks import OptionError, check_int, check_positive
from .base import MomentumMixin, per_sample_mean_abs


class VT(MomentumMixin):
    """VMI-FGSM (Wang & He 2021, variance tuning): ``g = grad(x')``,
    ``m <- mu m + (g + v) / mean|g + v|``, then ``v <- mean_j grad(x' + U(-beta eps, beta eps)) - g``
    is used at the NEXT iteration (v = 0 at the first).

    Defaults: ``copies`` N = 20, ``beta=1.5``, ``momentum=1.0``, ``eps=8/255``, ``steps=10``.
    Cost: 1 + N passes per iteration, as ONE batched call of B*(N+1) rows (chunked by max_batch).
    """

    name: ClassVar[str] = "vt"

    def __init__(self, model: nn.Module, *, copies: int = 20, beta: float = 1.5, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.copies = check_int("copies", copies, 1)
        check_positive("beta", beta, allow_zero=True)
        self.beta = float(beta)
        self.v: Tensor | None = None

    def passes_per_step(self) -> float:
        return float(1 + self.copies)

    def reset(self, x: Tensor) -> None:
        super().reset(x)
        self.v = None

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        u = x + delta
        r = self.beta * self.eps
        nb = u.unsqueeze(0) + self.rand_like_sample(x, self.copies, -r, r)
        grads = self.stacked_grad(torch.cat([u.unsqueeze(0), nb]), labels)
        g = grads[0]
        out = g if self.v is None else g + self.v
        self.v = grads[1:].mean(0) - g
        return out


class PGN(MomentumMixin):
    """PGN (Ge et al. 2023, penalizing gradient norm): for N samples ``z = x' + U(-zeta, zeta)``,
    ``g1 = grad(z)``, ``z* = z - a * g1 / mean|g1|``, ``g2 = grad(z*)``; direction
    ``mean_n ((1 - delta) g1 + delta g2)``; MI update.

    Defaults: ``copies`` N = 20, ``balance`` delta = 0.5, ``radius`` zeta = 3 eps, ``a`` = the step
    size, ``momentum=1.0``, ``eps=8/255``, ``steps=10``. Cost: 2N passes per iteration, as two
    batched calls of B*N rows.
    """

    name: ClassVar[str] = "pgn"

    def __init__(self, model: nn.Module, *, copies: int = 20, balance: float = 0.5,
                 radius: float | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.copies = check_int("copies", copies, 1)
        if not 0.0 <= balance <= 1.0:
            raise OptionError("balance", f"must be in [0, 1], got {balance}")
        self.balance = float(balance)
        self.radius = float(3 * self.eps if radius is None else radius)
        check_positive("radius", self.radius, allow_zero=True)

    def passes_per_step(self) -> float:
        return float(2 * self.copies)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        z = (x + delta).unsqueeze(0) + self.rand_like_sample(x, self.copies, -self.radius, self.radius)
        g1 = self.stacked_grad(z, labels)
        norm = per_sample_mean_abs(g1.flatten(0, 1)).view(self.copies, -1, 1, 1, 1).clamp_min(1e-12)
        g2 = self.stacked_grad(z - self.step_size * g1 / norm, labels)
        return ((1 - self.balance) * g1 + self.balance * g2).mean(0)


class GNP(MomentumMixin):
    """GNP (Wu et al. 2023, gradient norm penalty): ``g1 = grad(x')``,
    ``g2 = grad(x' + r * g1 / mean|g1|)``, ``g = (1 + beta) g1 + sign * beta * g2``; MI update.

    The paper's first-order estimate of ``A - beta ||grad A||`` gives ``sign = -1`` (the DEFAULT
    here: ``(1 + beta) g1 - beta g2``); the published code adds ``beta * g2`` (``penalty_sign=+1``).
    Defaults: ``r=0.01``, ``beta=0.8``, ``momentum=1.0``, ``eps=8/255``, ``steps=10``.
    Cost: 2 passes per iteration (sequential: the second point depends on the first gradient).
    """

    name: ClassVar[str] = "gnp"

    def __init__(self, model: nn.Module, *, r: float = 0.01, beta: float = 0.8, penalty_sign: float = -1.0,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        check_positive("r", r, allow_zero=True)
        check_positive("beta", beta, allow_zero=True)
        if penalty_sign not in (-1.0, 1.0):
            raise OptionError("penalty_sign", f"must be -1 (paper) or +1 (published code), got {penalty_sign}")
        self.r, self.beta, self.penalty_sign = float(r), float(beta), float(penalty_sign)

    def passes_per_step(self) -> float:
        return 2.0

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        u = x + delta
        g1 = self.input_grad(u, labels)
        g2 = self.input_grad(u + self.r * g1 / per_sample_mean_abs(g1).clamp_min(1e-12), labels)
        return (1 + self.beta) * g1 + self.penalty_sign * self.beta * g2


class MEF(MomentumMixin):
    """MEF (Qiu et al. 2024, "Boosting Adversarial Transferability with Low-Cost Optimization via
    Maximin Expected Flatness", arXiv 2405.16181): the expected loss over a neighbourhood, each
    sample moved by a remembered normalised gradient (the "previous gradient inversion
    approximation" of the inner problem). One iteration, for k = 1..N with its own buffer ``p_k``
    (zero at the first iteration)::

        z_k = x' + U(-radius, radius) + inner_radius * p_k      # per element, per image
        g_k = grad(z_k)
        p_k <- g_k / mean|g_k| - inner_momentum * p_k
        direction = mean_k g_k;  MI update with momentum mu

    The sample points are not clipped to [0, 1] (as in the published code).

    Defaults, the authors' (official code and TransferAttack's ``mef.py``): ``copies`` N = 20,
    ``radius`` = 2 eps (their gamma = 2, a multiple of eps), ``inner_radius`` = 0.15 eps (kesai =
    0.15), ``inner_momentum`` = 0.9, ``momentum`` mu = 0.5; ``eps=8/255``, ``steps=10``,
    ``step_size=eps/steps`` (this library's; they ran 20 iterations of 1.6/255 at eps 16/255:
    ``steps=20, step_size=eps/10``). The radii are multiples of eps, so they carry over to any
    image size. Cost: N passes per iteration, as ONE batched call of B*N rows (chunked by
    ``max_batch``).
    """

    name: ClassVar[str] = "mef"

    def __init__(self, model: nn.Module, *, copies: int = 20, radius: float | None = None,
                 inner_radius: float | None = None, inner_momentum: float = 0.9, momentum: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(model, momentum=momentum, **kwargs)
        self.copies = check_int("copies", copies, 1)
        self.radius = float(2 * self.eps if radius is None else radius)
        check_positive("radius", self.radius, allow_zero=True)
        self.inner_radius = float(0.15 * self.eps if inner_radius is None else inner_radius)
        check_positive("inner_radius", self.inner_radius, allow_zero=True)
        check_positive("inner_momentum", inner_momentum, allow_zero=True)
        self.inner_momentum = float(inner_momentum)
        self.p: Tensor | None = None

    def passes_per_step(self) -> float:
        return float(self.copies)

    def reset(self, x: Tensor) -> None:
        super().reset(x)
        self.p = None

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        z = (x + delta).unsqueeze(0) + self.rand_like_sample(x, self.copies, -self.radius, self.radius)
        if self.p is not None:
            z = z + self.inner_radius * self.p
        g = self.stacked_grad(z, labels)                                  # (N, B, C, H, W)
        scale = per_sample_mean_abs(g.flatten(0, 1)).view(self.copies, -1, 1, 1, 1).clamp_min(1e-12)
        self.p = g / scale if self.p is None else g / scale - self.inner_momentum * self.p
        return g.mean(0)
