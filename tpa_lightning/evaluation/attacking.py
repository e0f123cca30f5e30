"""Build an attack of the toolkit from a config entry, with the evaluation's seed and precision."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..attacks import ATTACKS, build_attack

_NOT_OPTIONS = ("name", "options", "seed")


def accepted_options(name: str) -> set[str]:
    """Keyword names the attack ``name``'s constructors (over its class hierarchy) accept."""
    import inspect

    cls = ATTACKS.get(str(name).lower())
    if cls is None:
        return set()
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p for p in inspect.signature(init).parameters if p not in ("self", "model")}
    return names


def attack_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of an attack config entry (None means: the attack's own default).

    The config's fixed keys are the union of every attack's options (``copies`` is TPA's, ...): the
    ones this attack does not take are dropped. Keys under ``options`` are passed as they are."""
    allowed = accepted_options(str(cfg["name"]))
    opts = {k: v for k, v in cfg.items() if k not in _NOT_OPTIONS and v is not None and k in allowed}
    opts.update(dict(cfg.get("options") or {}))
    return opts


def attack_seed(cfg: Mapping[str, Any], run_seed: int) -> int:
    return int(cfg["seed"]) if cfg.get("seed") is not None else int(run_seed)


def to_attack_precision(precision: str | int | None) -> str:
    p = str(precision or "32")
    return "bf16" if p.startswith("bf16") else "16" if p.startswith("16") else "32"


def make_attack(cfg: Mapping[str, Any], model: nn.Module, run_seed: int, precision: str = "32",
                **overrides: Any) -> Any:
    """``build_attack(cfg.name, model, **options)`` with the seed fixed (the config's or the run's)."""
    opts = attack_options(cfg)
    opts.update(overrides)
    opts["seed"] = attack_seed(cfg, run_seed)
    opts.setdefault("precision", to_attack_precision(precision))
    return build_attack(str(cfg["name"]), model, **opts)


def run_attack(cfg: Mapping[str, Any], model: nn.Module, x: Tensor, y: Tensor, run_seed: int,
               precision: str = "32", **overrides: Any) -> Tensor:
    """Adversarial examples of ``x`` (eps 0 returns ``x`` itself)."""
    eps = overrides.get("eps", cfg.get("eps"))
    if eps is not None and float(eps) == 0.0:
        return x
    return make_attack(cfg, model, run_seed, precision, **overrides)(x, y)
