"""Build an attack of the toolkit from a config entry, with the evaluation's seed and precision."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..attacks import ATTACKS, build_attack, config_options
from ..attacks.base import attack_precision


def attack_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of an attack config entry (None means: the attack's own default).

    The config's fixed keys are the union of every attack's options (``copies`` is TPA's, ...): the
    ones this attack does not take are dropped (:func:`~tpa_lightning.attacks.config_options`). Keys
    under ``options`` are passed as they are."""
    name = str(cfg["name"]).lower()
    return config_options(name, cfg) if name in ATTACKS else dict(cfg.get("options") or {})


def attack_seed(cfg: Mapping[str, Any], run_seed: int) -> int:
    return int(cfg["seed"]) if cfg.get("seed") is not None else int(run_seed)


def make_attack(cfg: Mapping[str, Any], model: nn.Module, run_seed: int, precision: str = "32",
                **overrides: Any) -> Any:
    """``build_attack(cfg.name, model, **options)`` with the seed fixed (the config's or the run's)."""
    opts = attack_options(cfg)
    opts.update(overrides)
    opts["seed"] = attack_seed(cfg, run_seed)
    opts.setdefault("precision", attack_precision(precision))
    return build_attack(str(cfg["name"]), model, **opts)


def run_attack(cfg: Mapping[str, Any], model: nn.Module, x: Tensor, y: Tensor, run_seed: int,
               precision: str = "32", **overrides: Any) -> Tensor:
    """Adversarial examples of ``x`` (eps 0 returns ``x`` itself)."""
    eps = overrides.get("eps", cfg.get("eps"))
    if eps is not None and float(eps) == 0.0:
        return x
    return make_attack(cfg, model, run_seed, precision, **overrides)(x, y)
