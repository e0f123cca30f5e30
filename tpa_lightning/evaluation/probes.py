"""Measurements behind the sanity checks: zero input gradients, random noise, an unbounded attack."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..attacks import model_eval_no_param_grad
from .attacking import run_attack
from .section import Batch, Context, Section, predict, reseed


def zero_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Bool ``(B,)``: images whose cross-entropy input gradient is exactly zero (or absent)."""
    with model_eval_no_param_grad(model) as net, torch.enable_grad():
        u = x.detach().clone().requires_grad_(True)
        out = net(u)
        if not out.requires_grad:
            return torch.ones(x.shape[0], dtype=torch.bool)
        loss = F.cross_entropy(out.float(), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, u, allow_unused=True)
    if g is None:
        return torch.ones(x.shape[0], dtype=torch.bool)
    return g.detach().flatten(1).abs().amax(dim=1) == 0


def noise_correct(model: nn.Module, x: Tensor, y: Tensor, eps: float, draws: int, seed: int) -> Tensor:
    """Bool ``(B,)``: images still classified correctly under every one of ``draws`` random sign
    perturbations of size ``eps`` (a gradient-free attack of the same budget)."""
    ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    if eps <= 0:
        return ok & (predict(model, x) == y)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    for _ in range(draws):
        sign = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
        ok &= predict(model, (x + eps * sign).clamp(0, 1)) == y
    return ok


class ProbeSection(Section):
    """On the evaluated model: zero-gradient images, random noise at every eps, an unbounded PGD."""

    name = "probes"

    def __init__(self, eps: list[float], unbounded_eps: float, unbounded_steps: int, noise_draws: int,
                 seed: int) -> None:
        self.eps = [float(e) for e in eps]
        self.unbounded_eps, self.unbounded_steps = float(unbounded_eps), int(unbounded_steps)
        self.noise_draws, self.seed = int(noise_draws), seed
        self.attack = {"name": "pgd", "eps": self.unbounded_eps, "steps": self.unbounded_steps,
                       "step_size": 2.5 * self.unbounded_eps / self.unbounded_steps}

    def settings(self) -> dict[str, Any]:
        return {"section": "probes", "eps": self.eps, "unbounded_attack": self.attack,
                "noise_draws": self.noise_draws, "seed": self.seed}

    def counters(self) -> dict[str, tuple[int, ...]]:
        return {"zero_grad": (1,), "noise": (len(self.eps),), "unbounded": (1,), "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models["model"]
        reseed(model, ctx.chunk_seed(b.chunk, 40))
        zero = float(zero_gradient(model, b.x, b.y).sum())
        noise = torch.tensor([float(noise_correct(model, b.x, b.y, e, self.noise_draws,
                                                  ctx.chunk_seed(b.chunk, 41)).sum()) for e in self.eps],
                             dtype=torch.float64)
        reseed(model, ctx.chunk_seed(b.chunk, 42))
        x_adv = run_attack(self.attack, model, b.x, b.y, ctx.seed, ctx.precision)
        reseed(model, ctx.chunk_seed(b.chunk, 43))
        unb = float((predict(model, x_adv) == b.y).sum())
        return {"zero_grad": torch.tensor([zero]), "noise": noise, "unbounded": torch.tensor([unb]),
                "total": torch.tensor([b.x.shape[0]])}

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        return {
            "images": n,
            "zero_gradient": {"images": int(t["zero_grad"][0]), "fraction": int(t["zero_grad"][0]) / n if n else None},
            "random_noise": [{"eps": e, "draws": self.noise_draws, "correct": int(c), "total": n,
                              "accuracy": int(c) / n if n else None}
                             for e, c in zip(self.eps, t["noise"].tolist())],
            "unbounded": {"attack": self.attack, "correct": int(t["unbounded"][0]), "total": n,
                          "accuracy": int(t["unbounded"][0]) / n if n else None},
        }
