"""Defenses of ``defenses/`` around the evaluated model, attacked adaptively (BPDA and EOT as the
defense declares them), with the measurements the gradient-masking checks need."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from defenses import straight_through

from .attacking import run_attack
from .probes import noise_correct, zero_gradient
from .section import Batch, Context, Section, predict, reseed
from .stats import proportion


def declared(model: nn.Module) -> dict[str, Any]:
    """What a (defended) model declares to attackers: gradient, randomness, EOT samples."""
    info = {"gradient": getattr(model, "gradient", "exact"), "random": bool(getattr(model, "random", False)),
            "eot_samples": int(getattr(model, "eot_samples", 1))}
    describe = getattr(model, "describe", None)
    if callable(describe):
        info["describe"] = describe()
    return info


class BoxedInput(nn.Module):
    """``model(clamp(x, 0, 1))`` with a straight-through gradient, and the wrapped model's
    declarations. Defenses accept only [0, 1] images, while some attacks (TPA's neighbourhood
    samples) query points just outside the box; those are evaluated at the nearest image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, x: Tensor) -> Tensor:
        inside = x.clamp(0.0, 1.0)
        if x.requires_grad and torch.is_grad_enabled():
            inside = straight_through(x, inside)
        return self.inner(inside)

    def reseed(self, seed: int | None) -> None:
        fn = getattr(self.inner, "reseed", None)
        if callable(fn):
            fn(seed)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)


class DefenseSection(Section):
    def __init__(self, key: str, defense: dict[str, Any], attacks: list[dict[str, Any]], labels: list[str],
                 eps: list[float], seed: int, noise_draws: int, info: dict[str, Any]) -> None:
        self.key, self.defense, self.attacks, self.labels = key, defense, attacks, labels
        self.eps, self.seed, self.noise_draws, self.info = [float(e) for e in eps], seed, noise_draws, info
        self.name = f"defense_{key}"

    def settings(self) -> dict[str, Any]:
        return {"section": "defense", "defense": self.defense, "attacks": self.attacks, "eps": self.eps,
                "seed": self.seed, "noise_draws": self.noise_draws, "declared": self.info}

    def counters(self) -> dict[str, tuple[int, ...]]:
        a = len(self.attacks)
        return {"clean": (1,), "adaptive": (a,), "transfer": (a,), "worst_case": (a,), "noise": (a,),
                "zero_grad": (1,), "total": (1,)}

    def step(self, ctx: Context, b: Batch) -> dict[str, Tensor]:
        model = ctx.models[self.key]
        eot = int(self.info["eot_samples_used"])
        reseed(model, ctx.chunk_seed(b.chunk, 30))
        clean = float((predict(model, b.x) == b.y).sum())
        adaptive, transfer, worst, noise = (torch.zeros(len(self.attacks), dtype=torch.float64) for _ in range(4))
        for i, (atk, eps) in enumerate(zip(self.attacks, self.eps)):
            reseed(model, ctx.chunk_seed(b.chunk, 31))
            x_adv = run_attack(atk, model, b.x, b.y, ctx.seed, ctx.precision, eps=eps, eot_samples=eot)
            reseed(model, ctx.chunk_seed(b.chunk, 32))
            ok_adaptive = predict(model, x_adv) == b.y
            # The same attack on the undefended model, transferred: an evaluation of a defense is only
            # as strong as its strongest attack, so the headline figure is the per-image worst case.
            x_tr = run_attack(atk, ctx.models["model"], b.x, b.y, ctx.seed, ctx.precision, eps=eps)
            reseed(model, ctx.chunk_seed(b.chunk, 35))
            ok_transfer = predict(model, x_tr) == b.y
            adaptive[i] = float(ok_adaptive.sum())
            transfer[i] = float(ok_transfer.sum())
            worst[i] = float((ok_adaptive & ok_transfer).sum())
            noise[i] = float(noise_correct(model, b.x, b.y, eps, self.noise_draws, ctx.chunk_seed(b.chunk, 33)).sum())
        reseed(model, ctx.chunk_seed(b.chunk, 34))
        zero = float(zero_gradient(model, b.x, b.y).sum())
        return {"clean": torch.tensor([clean]), "adaptive": adaptive, "transfer": transfer, "worst_case": worst,
                "noise": noise,
                "zero_grad": torch.tensor([zero]), "total": torch.tensor([b.x.shape[0]])}

    def finalize(self, t: dict[str, Tensor]) -> dict[str, Any]:
        n = int(t["total"][0])
        return {
            "defense": self.defense, "declared": self.info,
            "clean": proportion(int(t["clean"][0]), n),
            "adaptive": [{"attack": lab, "eps": e, **proportion(int(c), n)}
                         for lab, e, c in zip(self.labels, self.eps, t["adaptive"].tolist())],
            "transfer_from_model": [{"attack": lab, "eps": e, **proportion(int(c), n)}
                                    for lab, e, c in zip(self.labels, self.eps, t["transfer"].tolist())],
            "worst_case": [{"attack": lab, "eps": e, **proportion(int(c), n)}
                           for lab, e, c in zip(self.labels, self.eps, t["worst_case"].tolist())],
            "random_noise": [{"attack_eps": e, "draws": self.noise_draws, **proportion(int(c), n)}
                             for e, c in zip(self.eps, t["noise"].tolist())],
            "zero_gradient": {"images": int(t["zero_grad"][0]), "total": n,
                              "fraction": int(t["zero_grad"][0]) / n if n else None},
        }
