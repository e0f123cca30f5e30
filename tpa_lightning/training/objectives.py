"""Training losses of the adversarial-training objectives (Madry, TRADES, MART)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ATTACKS

OBJECTIVES = ("clean", "pgd_at", "trades", "mart", "fast_at", "tpa_at", "gaussian_noise")


@dataclass(frozen=True)
class ObjectiveAttack:
    """How an objective uses the training attack (the ``attack`` section of train.py's config).

    Attributes:
        default: registry name of the attack it crafts with when ``attack.name`` is null (None: it
            crafts with no registry attack).
        choosable: ``attack.name`` may name any registry attack (e.g. MI-AT, DI-AT with pgd_at);
            otherwise only ``default`` (or null) is accepted.
        reads: the attack keys it reads (``None``: ``name``, ``seed``, ``options`` and every
            option of the attack); any other key given is an error, never silently dropped.
    """

    default: str | None
    choosable: bool
    reads: tuple[str, ...] | None


#: The training attack of each objective.
OBJECTIVE_ATTACKS: dict[str, ObjectiveAttack] = {
    "clean": ObjectiveAttack(None, False, ()),
    "gaussian_noise": ObjectiveAttack(None, False, ()),
    "pgd_at": ObjectiveAttack("pgd", True, None),                   # Madry et al.: CE on the attack's examples
    "mart": ObjectiveAttack("pgd", True, None),
    "tpa_at": ObjectiveAttack("tpa", False, None),
    # FGSM-RS (Wong et al. 2020): one step of 1.25 eps from a uniform random start, fixed by the method
    "fast_at": ObjectiveAttack("pgd", False, ("name", "eps", "norm", "max_batch", "seed")),
    # TRADES' own KL ascent (trades_example)
    "trades": ObjectiveAttack(None, False, ("eps", "steps", "step_size", "seed")),
}


def training_attack_name(objective: str, name: str | None) -> str | None:
    """The registry attack ``objective`` crafts with when the config names ``name`` (or null).

    Raises:
        ValueError: ``name`` is not one ``objective`` can use (one line naming ``attack.name``).
    """
    rule = OBJECTIVE_ATTACKS[objective]
    if name is not None and str(name).lower() not in ATTACKS:
        raise ValueError(f"attack.name: unknown attack {name!r}; allowed: {', '.join(sorted(ATTACKS))} "
                         "(or null: the objective's own)")
    if name is None or (rule.default is not None and str(name).lower() == rule.default):
        return rule.default
    if rule.choosable:
        return str(name).lower()
    fixed = f"it crafts with {rule.default}" if rule.default else "it uses no attack from the registry"
    raise ValueError(f"attack.name: training.objective={objective} fixes its attack ({fixed}), got {name!r}; "
                     "leave attack.name null")


def default_training_attack(objective: str) -> dict[str, Any]:
    """The training attack of the Python API when none is given: eps 0.1 with 3 steps (TPA: and
    N = 2 copies), restricted to the keys ``objective`` reads ({} for clean and gaussian_noise)."""
    rule = OBJECTIVE_ATTACKS[objective]
    if rule.reads is None:
        return {"eps": 0.1, "steps": 3, **({"copies": 2} if rule.default == "tpa" else {})}
    return {k: v for k, v in {"eps": 0.1, "steps": 3}.items() if k in rule.reads}


def unread_attack_keys(objective: str, attack: Mapping[str, Any]) -> list[str]:
    """Keys of ``attack`` given (not None, not empty) that ``objective`` does not read."""
    reads = OBJECTIVE_ATTACKS[objective].reads
    if reads is None:
        return []
    return [k for k, v in attack.items() if k not in reads and v not in (None, {}, []) and k != "name"]


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
