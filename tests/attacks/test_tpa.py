"""TPA: one iteration of each mode equals an independent sequential reference of spec/tpa.md."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.attacks import TPA

from .helpers import tiny_batch, tiny_model


def grad_one(model: nn.Module, u: Tensor, y: Tensor) -> Tensor:
    """g(u) = d CE(f(u), y) / du for ONE image (1, C, H, W), plain autograd."""
    u = u.clone().requires_grad_(True)
    loss = F.cross_entropy(model(u), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, u)
    return g


class FixedNoise(TPA):
    """TPA with injected noise (N, B, C, H, W) (the hook tests use to share noise)."""

    noise: Tensor

    def sample_noise(self, x: Tensor, it: int) -> Tensor:
        return self.noise


def _setup(n_copies: int) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    model = tiny_model()
    x = tiny_batch(3)
    y = model(x).argmax(1)
    noise = (torch.rand(n_copies, *x.shape, generator=torch.Generator().manual_seed(5)) * 2 - 1) * 0.1
    return model, x, y, noise


@pytest.mark.parametrize("use_noise", [False, True])
def test_official_one_iteration_matches_reference(use_noise: bool) -> None:
    n, eps, step, k, mix = 3, 16 / 255, 2 / 255, 0.0113, 0.8
    model, x, y, noise = _setup(n)
    if not use_noise:
        noise = torch.zeros_like(noise)
    atk = FixedNoise(model, eps=eps, steps=1, step_size=step, copies=n, init="zeros",
                     noise_radius=0.1, lookahead=k, mix=mix)
    atk.noise = noise
    out = atk(x, y)
    for b in range(x.shape[0]):
        xb, yb = x[b:b + 1], y[b:b + 1]
        d0 = grad_one(model, xb, yb)
        acc = torch.zeros_like(xb)
        for i in range(n):
            z = xb + noise[i, b:b + 1]
            w = z - k * torch.sign(grad_one(model, z, yb))
            acc += grad_one(model, w, yb)
        d = (1 - mix) * d0 + mix * acc / n
        ref = (xb + torch.clamp(step * torch.sign(d), -eps, eps)).clamp(0, 1)
        torch.testing.assert_close(out[b:b + 1], ref, atol=1e-6, rtol=0)


def test_official_zero_noise_is_deterministic_without_seed() -> None:
    model, x, y, _ = _setup(2)
    atk = TPA(model, steps=3, copies=2, noise_radius=0.0, init="zeros")  # seed=None
    assert torch.equal(atk(x, y), atk(x, y))


def test_official_two_iterations_use_sgd_momentum_on_sign() -> None:
    model, x, y, noise = _setup(2)
    noise.zero_()
    eps, step, mom = 16 / 255, 1 / 255, 0.9
    atk = FixedNoise(model, eps=eps, steps=2, step_size=step, copies=2, init="zeros", lookahead=0.01,
                     momentum=mom)
    atk.noise = noise
    out = atk(x, y)
    for b in range(x.shape[0]):
        xb, yb = x[b:b + 1], y[b:b + 1]
        delta = torch.zeros_like(xb)
        buf = None
        for _ in range(2):
            u = xb + delta
            d0 = grad_one(model, u, yb)
            dw = grad_one(model, u - 0.01 * torch.sign(grad_one(model, u, yb)), yb)
            d = 0.2 * d0 + 0.8 * dw
            buf = torch.sign(d) if buf is None else mom * buf + torch.sign(d)
            delta = torch.clamp(delta + step * buf, -eps, eps)  # no box clamp in official mode
        torch.testing.assert_close(out[b:b + 1], (xb + delta).clamp(0, 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_noise", [False, True])
def test_paper_one_iteration_matches_reference(use_noise: bool) -> None:
    n, eps, step, k, lam = 3, 16 / 255, 1.6 / 255, 0.05, 5.0
    model, x, y, noise = _setup(n)
    if not use_noise:
        noise = torch.zeros_like(noise)
    atk = FixedNoise(model, mode="paper", eps=eps, steps=1, step_size=step, copies=n, lookahead=k, lam=lam)
    atk.noise = noise
    out = atk(x, y)
    for b in range(x.shape[0]):
        xb, yb = x[b:b + 1], y[b:b + 1]
        d0 = grad_one(model, xb, yb)
        hsum = torch.zeros_like(xb)
        for i in range(n):
            z = xb + noise[i, b:b + 1]
            ga = grad_one(model, z, yb)
            v = ga / ga.norm()
            gb = grad_one(model, z + k * v, yb)
            hsum += (gb - ga) / k
        d = d0 - lam / n * hsum
        ref = (xb + torch.clamp(step * torch.sign(d), -eps, eps)).clamp(0, 1)
        torch.testing.assert_close(out[b:b + 1], ref, atol=1e-6, rtol=0)


def test_paper_defaults() -> None:
    atk = TPA(tiny_model(), mode="paper")
    assert (atk.steps, atk.copies, atk.lam, atk.lookahead, atk.noise_radius) == (20, 10, 5.0, 0.05, 0.112)
    assert atk.step_size == pytest.approx(1.6 / 255) and atk.momentum == 0 and atk.clamp_each_step


def test_official_defaults() -> None:
    atk = TPA(tiny_model())
    assert atk.mode == "official" and atk.eps == pytest.approx(16 / 255) and atk.steps == 10
    assert atk.step_size == pytest.approx(1.6 / 255) and atk.copies == 10
    assert (atk.noise_radius, atk.lookahead, atk.mix, atk.momentum) == (0.112, 0.0113, 0.8, 0.9)
    assert atk.init == "released" and not atk.clamp_each_step


def test_released_init_range() -> None:
    model, x, y, _ = _setup(1)
    atk = TPA(model, steps=1, copies=1, seed=0, step_size=0.0)
    d = atk(x, y) - x
    assert d.min() >= -1e-7 and d.max() <= 0.0011 + 1e-6 and d.abs().max() > 0


@pytest.mark.parametrize("mode", ["official", "paper"])
def test_batched_passes_equal_unbatched(mode: str) -> None:
    model, x, y, _ = _setup(1)
    a = TPA(model, mode=mode, steps=2, copies=3, seed=4, max_batch=1)(x, y)
    b = TPA(model, mode=mode, steps=2, copies=3, seed=4, max_batch=10_000)(x, y)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_bad_tpa_options() -> None:
    m = tiny_model()
    with pytest.raises(ValueError, match="copies must be an integer >= 1"):
        TPA(m, copies=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        TPA(m, mode="fast")
    with pytest.raises(ValueError, match="init must be one of"):
        TPA(m, init="gauss")
