"""Validation of a loaded config: allowed values, ranges and references, one-line errors naming the key."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from defenses import DEFENSES, build_defense

from ..attacks import ATTACKS, build_attack, config_options
from ..callbacks.collapse_stop import RobustCollapseStop
from ..checks import OptionError
from ..data.datamodule import DATASETS
from ..training.module import OPTIMIZERS, SCHEDULES
from ..training.objectives import OBJECTIVES, training_attack_name
from .errors import ConfigError, to_container
from .schema import LIGHTNING_PRECISION

TASKS = ("classifier", "purifier")
#: Keys with a fixed set of values, each taken from the registry that reads it.
_CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": DATASETS,
    "task": TASKS,
    "training.objective": OBJECTIVES,
    "training.optimizer": OPTIMIZERS,
    "training.schedule": SCHEDULES,
    "trainer.precision": (*LIGHTNING_PRECISION, *LIGHTNING_PRECISION.values(), "bf16-true"),
}


def _stand_in_error(key: str, err: Exception, given: Mapping[str, Any]) -> ConfigError:
    """A constructor's error as one config line: ``<key>.<option>: <reason>`` when it names an option
    the config gave (at ``key`` itself or under ``key.options``), else ``<key>: <message>``."""
    if isinstance(err, OptionError) and err.option in (given.get("options") or {}):
        return ConfigError(f"{key}.options.{err.option}: {err.reason}")
    if isinstance(err, OptionError) and err.option in given:
        return ConfigError(f"{key}.{err.option}: {err.reason}")
    return ConfigError(f"{key}: {str(err).splitlines()[0]}")


def check_attack_config(key: str, section: Mapping[str, Any], name: str) -> None:
    """Build attack ``name`` on a stand-in model (nothing runs) with the options of the config
    ``section`` it takes, so that the attack's own constructor is the one check of their values.

    Keys of ``section`` that ``name`` does not take are not checked here (train.py rejects them, see
    :mod:`tpa_lightning.training.config_keys`; evaluate.py's attack list shares one set of keys).

    Raises:
        ConfigError: one line naming ``<key>.<option>`` (``attack.eps: must be >= 0, got -0.1``), or
            ``<key>.name`` for an unknown attack.
    """
    if name not in ATTACKS:
        raise ConfigError(f"{key}.name: unknown attack '{name}'; allowed: {', '.join(sorted(ATTACKS))}")
    try:
        build_attack(name, nn.Flatten(), **config_options(name, section))
    except (TypeError, ValueError) as err:
        raise _stand_in_error(key, err, section) from None


def check_defense_config(key: str, section: Mapping[str, Any]) -> None:
    """Build defense ``section.name`` with ``section.options`` around a stand-in model (nothing runs;
    an NRP ``weights`` file is read), so that the defense's own constructor checks the options.

    Raises:
        ConfigError: one line naming ``<key>.options.<option>`` or ``<key>``.
    """
    try:
        build_defense(str(section["name"]), nn.Flatten(), **dict(section.get("options") or {}))
    except (TypeError, ValueError, FileNotFoundError) as err:
        raise _stand_in_error(key, err, {"options": section.get("options")}) from None


def _check_train_attacks(cfg: DictConfig) -> None:
    """train.py's ``attack`` (the objective's attack, if it uses one) and ``training.val_attack``."""
    try:
        name = training_attack_name(str(cfg.training.objective), cfg.attack.name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if name is not None:
        check_attack_config("attack", to_container(cfg.attack), name)
    val = cfg.training.val_attack
    check_attack_config("training.val_attack", to_container(val), str(val.name).lower())


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
    if "training" in cfg:
        _check_train_attacks(cfg)
        t = cfg.training
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
        if t.collapse_drop is not None:
            try:
                RobustCollapseStop(max_drop=t.collapse_drop)
            except ValueError as err:
                raise ConfigError(f"training.collapse_drop: {err}") from None
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
        check_attack_config(f"attacks[{i}]", to_container(a), str(a.name).lower())
    for i, d in enumerate(cfg.defenses):
        parts = str(d.name).split("+")
        bad = [p for p in parts if p not in DEFENSES]
        if bad:
            raise ConfigError(f"defenses[{i}].name: unknown defense '{d.name}'; allowed: "
                              f"{', '.join(sorted(DEFENSES))} (or a chain such as jpeg+fd)")
        check_defense_config(f"defenses[{i}]", to_container(d))
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
    if aa.version != "custom" and aa.enabled and aa.attacks:
        raise ConfigError(f"autoattack.attacks: only read with version=custom (version={aa.version} runs its own "
                          "set): set autoattack.attacks=[] or autoattack.version=custom")
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
