"""Training losses of the adversarial-training objectives (Madry, TRADES, MART)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OBJECTIVES = ("clean", "pgd_at", "trades", "mart", "fast_at", "tpa_at", "gaussian_noise")
#: Objectives whose adversarial batch comes from the attack engine (cross-entropy on it).
ATTACK_ENGINE_OBJECTIVES = {"pgd_at": "pgd", "fast_at": "pgd", "tpa_at": "tpa"}


def trades_loss(logits_adv: Tensor, logits_clean: Tensor, y: Tensor, beta: float) -> Tensor:
    """TRADES (Zhang et al. 2019): CE(clean) + beta * KL(p_clean || p_adv), batch mean."""
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
    return F.cross_entropy(logits_clean, y) + beta * kl


def mart_loss(logits_adv: Tensor, logits_clean: Tensor, y: Tensor, beta: float) -> Tensor:
    """MART (Wang et al. 2020): boosted CE on the adversarial example plus
    beta * KL(p_clean || p_adv) weighted by (1 - p_clean[y]), batch mean."""
    p_adv = F.softmax(logits_adv, 1)
    top2 = torch.argsort(p_adv, dim=1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_clean = F.softmax(logits_clean, 1)
    true_prob = p_clean.gather(1, y[:, None]).squeeze(1)
    kl = (F.kl_div(torch.log(p_adv + 1e-12), p_clean, reduction="none").sum(1) * (1.0000001 - true_prob)).mean()
    return bce + beta * kl


def trades_example(model: nn.Module, x: Tensor, eps: float, steps: int, step_size: float,
                   generator: torch.Generator | None = None) -> Tensor:
    """TRADES' inner maximisation: sign-gradient ascent on KL(p(x) || p(x')) in the L-inf ball,
    from x + 0.001 * N(0, 1). Runs on ``model`` as given (call inside the no-param-grad context)."""
    with torch.no_grad():
        p_clean = F.softmax(model(x), 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_adv = (x + 0.001 * noise).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_clean, reduction="sum")
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = torch.min(torch.max(x_adv + step_size * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()
