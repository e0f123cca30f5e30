"""Validation of a loaded config: allowed values, ranges and references, one-line errors naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defenses import DEFENSES

from ..attacks import ATTACKS
from ..chunking import check_max_batch
from .errors import ConfigError
from .schema import LIGHTNING_PRECISION

_CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": ("fashion_mnist", "cifar10", "image_folder"),
    "task": ("classifier", "purifier"),
    "training.objective": ("clean", "pgd_at", "trades", "mart", "fast_at", "tpa_at", "gaussian_noise"),
    "training.optimizer": ("sgd", "adamw"),
    "training.schedule": ("none", "cosine", "onecycle"),
    "trainer.precision": (*LIGHTNING_PRECISION, *LIGHTNING_PRECISION.values(), "bf16-true"),
}


def _check_attack(prefix: str, a: DictConfig) -> None:
    if a.eps < 0:
        raise ConfigError(f"{prefix}.eps: must be >= 0, got {a.eps}")
    if a.steps is not None and a.steps < 1:
        raise ConfigError(f"{prefix}.steps: must be >= 1, got {a.steps}")
    if a.copies is not None and a.copies < 1:
        raise ConfigError(f"{prefix}.copies: must be >= 1, got {a.copies}")
    if a.step_size is not None and a.step_size <= 0:
        raise ConfigError(f"{prefix}.step_size: must be > 0, got {a.step_size}")
    try:
        check_max_batch(f"{prefix}.max_batch", a.max_batch)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if a.norm not in ("linf", "l2"):
        raise ConfigError(f"{prefix}.norm: must be one of linf, l2, got {a.norm}")
    if a.mode is not None and a.mode not in ("official", "paper"):
        raise ConfigError(f"{prefix}.mode: must be one of official, paper, got {a.mode}")


def validate(cfg: DictConfig) -> None:
    """Reject impossible values with a one-line ConfigError naming the key."""
    for key, allowed in _CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and str(value) not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {value}")
    d = cfg.data
    for key in ("batch_size", "limit_train", "limit_test", "eval_batch_size"):
        if d[key] is not None and d[key] < 1:
            raise ConfigError(f"data.{key}: must be >= 1, got {d[key]}")
    for key, dataset in (("image_size", "image_folder"), ("jpeg_dir", "cifar10")):
        if d[key] is not None and d.name != dataset:
            raise ConfigError(f"data.{key}: read only for data.name={dataset}, not {d.name}; leave it unset")
    for key, unset in (("labels_csv", None), ("labels_offset", 0)):
        if d[key] != unset and d.name != "image_folder":
            raise ConfigError(f"data.{key}: read only for data.name=image_folder, not {d.name}; leave it unset")
    if d.labels_offset < 0 or (d.labels_offset and d.labels_csv is None):
        raise ConfigError(f"data.labels_offset: must be >= 0 and needs data.labels_csv, got {d.labels_offset}")
    if d.cutout < 0:
        raise ConfigError(f"data.cutout: must be >= 0 pixels, got {d.cutout}")
    if d.cutout > 0 and not d.augment:
        raise ConfigError("data.cutout: read only with data.augment=true (it is part of the augmentation)")
    if d.val_size < 0 or d.num_workers < 0:
        raise ConfigError("data.val_size and data.num_workers: must be >= 0")
    if "attack" in cfg:
        _check_attack("attack", cfg.attack)
    if "training" in cfg:
        t = cfg.training
        _check_attack("training.val_attack", t.val_attack)
        if not 0.0 <= t.adv_ratio <= 1.0:
            raise ConfigError(f"training.adv_ratio: must be in [0, 1], got {t.adv_ratio}")
        if t.lr <= 0:
            raise ConfigError(f"training.lr: must be > 0, got {t.lr}")
        if t.noise_sigma <= 0:
            raise ConfigError(f"training.noise_sigma: must be > 0, got {t.noise_sigma}")
        for key in ("warmup_epochs", "eps_ramp_epochs"):
            if t[key] < 0:
                raise ConfigError(f"training.{key}: must be >= 0, got {t[key]}")
        if t.ema_decay is not None and not 0.0 < t.ema_decay < 1.0:
            raise ConfigError(f"training.ema_decay: must be in (0, 1) or null, got {t.ema_decay}")
    if "attacks" in cfg:
        for i, a in enumerate(cfg.attacks):
            _check_attack(f"attacks[{i}]", a)
    if "eps" in cfg:
        for e in cfg.eps:
            if e < 0:
                raise ConfigError(f"eps: every value must be >= 0, got {e}")
    if "certify" in cfg:
        _validate_evaluate(cfg)
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs: must be >= 1, got {cfg.trainer.max_epochs}")


def _check_attack_refs(key: str, refs: Any, attacks: Any) -> None:
    """``refs`` must name entries of ``attacks`` (by name, or ``name#index`` where a name repeats)."""
    names = [str(a.name).lower() for a in attacks]
    labels = set(names) | {f"{n}#{i}" for i, n in enumerate(names)}
    for r in refs:
        if str(r).lower() not in labels:
            raise ConfigError(f"{key}: '{r}' is not one of the configured attacks ({', '.join(sorted(labels))})")


def _validate_evaluate(cfg: DictConfig) -> None:
    """Keys of EvaluateConfig: names of attacks and defenses, budgets, smoothing settings."""
    for key in ("data.augment", "data.cutout", "model.channels_last"):   # training-only keys
        if OmegaConf.select(cfg, key):
            raise ConfigError(f"{key}: not read by evaluate.py (a training setting); leave it unset")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads: must be >= 1 or null, got {cfg.threads}")
    if not cfg.eps:
        raise ConfigError("eps: must hold at least one value, e.g. eps=[0,0.1]")
    for i, a in enumerate(cfg.attacks):
        if str(a.name).lower() not in ATTACKS:
            raise ConfigError(f"attacks[{i}].name: unknown attack '{a.name}'; allowed: {', '.join(sorted(ATTACKS))}")
    for i, d in enumerate(cfg.defenses):
        parts = str(d.name).split("+")
        bad = [p for p in parts if p not in DEFENSES]
        if bad:
            raise ConfigError(f"defenses[{i}].name: unknown defense '{d.name}'; allowed: "
                              f"{', '.join(sorted(DEFENSES))} (or a chain such as jpeg+fd)")
        _check_attack_refs(f"defenses[{i}].attacks", d.attacks, cfg.attacks)
        if d.eot_samples is not None and d.eot_samples < 1:
            raise ConfigError(f"defenses[{i}].eot_samples: must be >= 1, got {d.eot_samples}")
    t = cfg.transfer
    _check_attack_refs("transfer.attacks", t.attacks, cfg.attacks)
    for i, spec in enumerate(list(t.sources) + list(t.targets)):
        if not str(spec):
            raise ConfigError("transfer.sources / transfer.targets: empty model spec")
    if t.eps is not None and t.eps < 0:
        raise ConfigError(f"transfer.eps: must be >= 0, got {t.eps}")
    c = cfg.certify
    for s in c.sigmas:
        if s <= 0:
            raise ConfigError(f"certify.sigmas: every sigma must be > 0, got {s}")
    for key in ("n0", "n", "batch_size"):
        if c[key] < 1:
            raise ConfigError(f"certify.{key}: must be >= 1, got {c[key]}")
    if c.limit is not None and c.limit < 1:
        raise ConfigError(f"certify.limit: must be >= 1, got {c.limit}")
    if not 0.0 < c.alpha < 1.0:
        raise ConfigError(f"certify.alpha: must be in (0, 1), got {c.alpha}")
    if any(r < 0 for r in c.radii):
        raise ConfigError("certify.radii: every radius must be >= 0")
    aa = cfg.autoattack
    if aa.version not in ("standard", "plus", "rand", "custom"):
        raise ConfigError(f"autoattack.version: must be one of standard, plus, rand, custom, got {aa.version}")
    known_aa = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
    for name in aa.attacks:
        if name not in known_aa:
            raise ConfigError(f"autoattack.attacks: unknown attack '{name}'; allowed: {', '.join(known_aa)}")
    if aa.version == "custom" and aa.enabled and not aa.attacks:
        raise ConfigError("autoattack.attacks: version=custom needs a list of attacks, e.g. [apgd-ce]")
    if aa.eps is not None and aa.eps < 0:
        raise ConfigError(f"autoattack.eps: must be >= 0, got {aa.eps}")
    if aa.limit is not None and aa.limit < 1:
        raise ConfigError(f"autoattack.limit: must be >= 1, got {aa.limit}")
    if aa.batch_size < 1:
        raise ConfigError(f"autoattack.batch_size: must be >= 1, got {aa.batch_size}")
    s = cfg.sanity
    if s.tolerance < 0 or s.unbounded_eps < 0 or not 0.0 <= s.unbounded_max_acc <= 1.0:
        raise ConfigError("sanity.tolerance, sanity.unbounded_eps: must be >= 0; sanity.unbounded_max_acc: in [0, 1]")
    if s.unbounded_steps < 1 or s.noise_draws < 1:
        raise ConfigError("sanity.unbounded_steps and sanity.noise_draws: must be >= 1")
    if not 0.0 <= s.max_zero_grad <= 1.0:
        raise ConfigError(f"sanity.max_zero_grad: must be in [0, 1], got {s.max_zero_grad}")
    if cfg.checkpoint is not None and not Path(str(cfg.checkpoint)).is_file():
        raise ConfigError(f"checkpoint: file not found: {cfg.checkpoint}")
