"""MEF: its sample points and direction against hand computations on models whose gradients are
known in closed form, its defaults, and its exact cost."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tpa_lightning.attacks import MEF, build_attack

from .helpers import LinearNet, RowCounter, tiny_batch, tiny_model


def uniform_draws(seed: int, shape: tuple[int, ...], radius: float, n: int) -> list[Tensor]:
    """The first ``n`` U(-radius, radius) draws of ``shape`` from a CPU generator seeded ``seed``
    (what a seeded attack without keys draws, once per iteration)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g) * (2 * radius) - radius for _ in range(n)]


class Recorder(nn.Module):
    """Keeps every input the attack's gradient passes send through ``model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            self.seen.append(x.detach().clone())
        return self.model(x)


def test_defaults_are_the_authors_and_scale_with_eps() -> None:
    atk = build_attack("mef", tiny_model())
    assert isinstance(atk, MEF)
    assert atk.copies == 20 and atk.momentum == 0.5 and atk.inner_momentum == 0.9
    assert atk.eps == pytest.approx(8 / 255) and atk.steps == 10
    assert atk.radius == pytest.approx(2 * 8 / 255) and atk.inner_radius == pytest.approx(0.15 * 8 / 255)
    big = atk.replace(eps=16 / 255)
    assert big.radius == pytest.approx(32 / 255) and big.inner_radius == pytest.approx(0.15 * 16 / 255)
    with pytest.raises(ValueError, match="inner_radius must be >= 0"):
        build_attack("mef", tiny_model(), inner_radius=-1.0)


def test_sample_points_follow_the_inner_recursion_on_a_linear_model() -> None:
    """With ``loss="logit"`` a linear model's objective ``-z_y`` has the constant gradient
    ``d = -W[y]``: every normalised sample gradient is ``d / mean|d|``, so the buffers are
    p_1 = d^, p_2 = d^ - 0.9 d^, and the iterate moves by ``a sign(d)`` per step."""
    shape, k, steps, seed, eps = (3, 4, 4), 3, 3, 11, 4 / 255
    net = LinearNet(shape)
    rec = Recorder(net)
    x = torch.full((2, *shape), 0.5)
    y = torch.tensor([1, 7])
    atk = MEF(rec, eps=eps, steps=steps, copies=k, seed=seed, loss="logit")
    out = atk(x, y)

    d = net.logit_grad(y)
    d_hat = d / d.abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    a, r, inner = eps / steps, 2 * eps, 0.15 * eps
    noise = uniform_draws(seed, (k, 1, *shape), r, steps)
    p = [torch.zeros_like(d_hat), d_hat, d_hat - 0.9 * d_hat]
    assert len(rec.seen) == steps
    for t in range(steps):
        expected = (x + t * a * d.sign()).unsqueeze(0) + noise[t] + inner * p[t]
        torch.testing.assert_close(rec.seen[t].view(k, 2, *shape), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, x + steps * a * d.sign(), atol=1e-6, rtol=0)


class Quadratic(nn.Module):
    """Class 0's logit is ``-||u - c||^2 / 2`` (class 1's is 0): towards class 0 with
    ``loss="logit"`` the objective's gradient is ``c - u``."""

    def __init__(self, c: Tensor) -> None:
        super().__init__()
        self.c = c

    def forward(self, u: Tensor) -> Tensor:
        z0 = -0.5 * ((u - self.c) ** 2).flatten(1).sum(1)
        return torch.stack([z0, torch.zeros_like(z0)], dim=1)


def test_direction_is_the_mean_gradient_at_the_shifted_samples() -> None:
    shape, k, seed, eps = (3, 4, 4), 4, 5, 8 / 255
    c = torch.rand(1, *shape, generator=torch.Generator().manual_seed(0))
    x = tiny_batch(3, size=4)
    target = torch.zeros(3, dtype=torch.long)
    atk = MEF(Quadratic(c), eps=eps, steps=2, copies=k, seed=seed, loss="logit")
    directions: list[Tensor] = []
    deltas: list[Tensor] = []
    update = atk.update

    def spy(delta: Tensor, direction: Tensor, it: int) -> Tensor:
        directions.append(direction.clone())
        deltas.append(delta.clone())
        return update(delta, direction, it)

    atk.update = spy  # type: ignore[method-assign]
    atk(x, torch.ones(3, dtype=torch.long), target=target)

    noise = uniform_draws(seed, (k, 1, *shape), 2 * eps, 2)
    z0 = x.unsqueeze(0) + noise[0]                                   # iteration 0: no inner shift
    g0 = c - z0
    torch.testing.assert_close(directions[0], g0.mean(0), atol=1e-6, rtol=1e-5)
    p1 = g0 / g0.abs().flatten(2).mean(2).view(k, 3, 1, 1, 1)
    z1 = (x + deltas[1]).unsqueeze(0) + noise[1] + 0.15 * eps * p1   # iteration 1: shifted by p_1
    torch.testing.assert_close(directions[1], (c - z1).mean(0), atol=1e-6, rtol=1e-5)


def test_passes_per_image_counts_the_gradient_rows() -> None:
    counter = RowCounter(tiny_model())
    x = tiny_batch(4)
    atk = build_attack("mef", counter, copies=3, steps=2, seed=0)
    atk(x, torch.arange(4))
    assert counter.rows / 4 == atk.passes_per_image() == 2 * 3
