"""The models the adversarial examples are sent to, each as a cached ``predict(x) -> classes``.

Kinds: ``normal`` (clean-trained zoo models and the surrogates: Tables 1 and 3), ``secured``
(PGD-AT, TPA-AT: Table 2), ``defense`` (R&P, FD, JPEG, NRP in front of one normal classifier, and
randomized smoothing on the Gaussian-noise model: Table 5). Randomised targets are re-seeded before
every evaluation, so every number is repeatable. Randomized smoothing predicts with
``PREDICT(n, alpha)``; an abstention (class -1) is never the true class, so it counts as a success
of an untargeted attack (its rate is reported beside).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import defenses

from .store import Store, settings_key

#: Column titles of the defenses.
DEFENSE_TITLES = {"rp": "R&P", "fd": "FD", "jpeg": "JPEG (q=75)", "nrp": "NRP (trained here)",
                  "rs": "RS (sigma 0.25)", "bitdepth": "bit depth (4)"}


#: Rows per forward pass of the randomised defenses (R&P's 30 draws, RS's noise samples). On one CPU
#: thread, 64 to 250 rows ran 1.7x (VGG at 35x35) to 2x (the width-16 ResNet-18) faster than 1000 or
#: more. RS's classes do not depend on it; R&P's and NRP's draws do (each chunk draws in turn), so a
#: change of it changes a few of their images' classes (the quick run: 2 of 168 cells by one image in 40).
ROWS_PER_FORWARD = 128


@dataclass
class Target:
    name: str
    kind: str
    title: str
    identity: dict[str, Any]
    predict_fn: Callable[[Tensor], Tensor]
    batch: int = 128
    seed: int | None = None
    model: nn.Module | None = field(default=None, repr=False)

    def predict(self, x: Tensor) -> Tensor:
        if self.seed is not None and self.model is not None and callable(getattr(self.model, "reseed", None)):
            self.model.reseed(self.seed)  # type: ignore[operator]
        outs = []
        with torch.no_grad():
            for s in range(0, x.shape[0], self.batch):
                outs.append(self.predict_fn(x[s:s + self.batch]).cpu())
        return torch.cat(outs) if outs else torch.empty(0, dtype=torch.int64)


def model_target(name: str, kind: str, title: str, model: nn.Module, identity: dict[str, Any]) -> Target:
    model.eval()
    return Target(name, kind, title, identity, lambda x: model(x).argmax(1), model=model)


def defense_target(defense: str, base_name: str, base: nn.Module, base_id: dict[str, Any], seed: int,
                   rs_sigma: float = 0.25, rs_n: int = 100, rs_alpha: float = 0.001,
                   nrp_weights: str | None = None, nrp_id: dict[str, Any] | None = None) -> Target:
    """A defended classifier as a target (``defense`` in rp fd jpeg nrp rs bitdepth)."""
    title = DEFENSE_TITLES.get(defense, defense)
    ident: dict[str, Any] = {"defense": defense, "base": base_name, "base_id": base_id, "seed": seed}
    if defense == "rs":
        smooth: Any = defenses.build_defense("rs", base, sigma=rs_sigma, seed=seed)
        smooth.eval()
        ident.update(sigma=rs_sigma, n=rs_n, alpha=rs_alpha)
        return Target(f"rs@{base_name}", "defense", title, ident,
                      lambda x: smooth.predict(x, n=rs_n, alpha=rs_alpha, batch_size=ROWS_PER_FORWARD), batch=100,
                      seed=seed, model=smooth)
    opts: dict[str, Any] = {"max_batch": ROWS_PER_FORWARD}
    if defense in ("rp", "nrp"):
        opts["seed"] = seed
    if defense == "nrp":
        if nrp_weights is None:
            raise ValueError("the NRP target needs trained purifier weights")
        opts["weights"] = nrp_weights
        ident["purifier"] = nrp_id
    wrapped = defenses.build_defense(defense, base, **opts)
    wrapped.eval()
    return Target(f"{defense}@{base_name}", "defense", title, ident, lambda x: wrapped(x).argmax(1), batch=100,
                  seed=seed, model=wrapped)


def cached_predictions(store: Store, target: Target, x: Tensor, what: str, what_key: str) -> Tensor:
    """``target``'s classes for ``x`` (the adversarial set ``what`` with cache key ``what_key``)."""
    key = settings_key({"what": what_key, "target": target.identity, "name": target.name})
    hit = store.get_json("eval", f"{what}--{target.name}", key)
    if hit is not None and len(hit["pred"]) == x.shape[0]:
        return torch.tensor(hit["pred"], dtype=torch.int64)
    pred = target.predict(x)
    store.put_json("eval", f"{what}--{target.name}", key, {"pred": pred.tolist()},
                   settings={"what": what, "target": target.name})
    return pred
