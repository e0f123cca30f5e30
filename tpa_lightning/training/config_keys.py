"""Which keys of train.py's config a job reads: a key the job would not read is an error, never
silently dropped (``training.objective=clean attack.eps=0.1`` fails, naming ``attack.eps``).

A key counts as *given* when its value differs from the defaults (the config dataclasses and
``configs/train.yaml``), i.e. when an experiment, ``--config`` file, group or ``key=value`` set it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from ..attacks import CONFIG_KEYS_NOT_OPTIONS, attack_option_names
from ..config import ConfigError, default_config, to_container
from .objectives import OBJECTIVE_ATTACKS, training_attack_name, unread_attack_keys

_ATTACKING = ("pgd_at", "trades", "mart", "fast_at", "tpa_at")
#: ``training.<key>`` -> the objectives that read it (keys not listed are read by every objective).
TRAINING_KEYS_READ_BY: dict[str, tuple[str, ...]] = {
    "trades_beta": ("trades",),
    "mart_beta": ("mart",),
    "noise_sigma": ("gaussian_noise",),
    "adv_ratio": _ATTACKING,
    "warmup_epochs": _ATTACKING,
    "eps_ramp_epochs": _ATTACKING,
    "clean_train_metrics": ("pgd_at", "fast_at", "tpa_at"),
}
#: ``training.<key>`` -> (``training.<other>``, the value of it under which the key is read).
TRAINING_KEYS_READ_WITH: dict[str, tuple[str, str]] = {
    "sgd_momentum": ("optimizer", "sgd"),
    "lr_warmup_epochs": ("schedule", "cosine"),
}
#: ``model.<key>`` that train.py never reads (evaluate.py's: ``arch`` describes a plain state-dict file,
#: ``weights`` is the local weight file of a timm:/torchvision: model to evaluate).
MODEL_KEYS_NOT_READ: dict[str, str] = {
    "arch": "evaluate.py reads it, for plain state-dict files",
    "weights": "evaluate.py reads it, for timm:/torchvision: models; train.py starts from model.name",
}
#: Sections each task reads (``seed``, ``out``, ``ckpt_path``, ``data``, ``trainer`` are read by both).
SECTIONS_READ_BY_TASK: dict[str, tuple[str, ...]] = {
    "classifier": ("model", "attack", "training"),
    "purifier": ("purifier",),
}


def given_keys(section: Mapping[str, Any], default: Mapping[str, Any]) -> list[str]:
    """Keys of ``section`` whose value differs from ``default``'s."""
    return [k for k, v in section.items() if v != default.get(k)]


def _reject(key: str, why: str) -> None:
    raise ConfigError(f"{key}: {why}; leave it unset")


def check_keys_are_read(cfg: DictConfig) -> None:
    """Raise a one-line ConfigError for the first given key that the job of ``cfg`` would not read.

    Raises:
        ConfigError: a section of the other task, a training key of another objective, an attack key
            the objective does not read or an ``attack.name`` the objective fixes.
    """
    conf, base = to_container(cfg), to_container(default_config("train"))
    task = str(cfg.task)
    for other, sections in SECTIONS_READ_BY_TASK.items():
        if other == task:
            continue
        for section in sections:
            if section in SECTIONS_READ_BY_TASK[task]:
                continue
            stray = given_keys(conf[section], base[section])
            if stray:
                _reject(f"{section}.{stray[0]}", f"not read by task={task}")
    if task != "classifier":
        return
    for key in given_keys(conf["model"], base["model"]):
        if key in MODEL_KEYS_NOT_READ:
            _reject(f"model.{key}", f"not read by train.py ({MODEL_KEYS_NOT_READ[key]})")
    objective = str(cfg.training.objective)
    for key in given_keys(conf["training"], base["training"]):
        readers = TRAINING_KEYS_READ_BY.get(key)
        if readers is not None and objective not in readers:
            _reject(f"training.{key}", f"not read by training.objective={objective} (only by {', '.join(readers)})")
        if key in TRAINING_KEYS_READ_WITH:
            other, needed = TRAINING_KEYS_READ_WITH[key]
            if str(conf["training"][other]) != needed:
                _reject(f"training.{key}", f"read only with training.{other}={needed}")
    try:
        training_attack_name(objective, conf["attack"].get("name"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    given = {k: conf["attack"][k] for k in given_keys(conf["attack"], base["attack"])}
    unread = unread_attack_keys(objective, given)
    if unread:
        _reject(f"attack.{unread[0]}", f"not read by training.objective={objective}")
    name = training_attack_name(objective, conf["attack"].get("name"))
    if name is None:
        return
    options = attack_option_names(name)
    for key, value in given.items():
        if key not in CONFIG_KEYS_NOT_OPTIONS and value is not None and key not in options:
            _reject(f"attack.{key}", f"not an option of {name}, the attack of training.objective={objective}")
    # The values themselves were checked by the attack's constructor when the config was loaded
    # (config.validation.check_attack_config).


def objective_attack_config(cfg: DictConfig) -> dict[str, Any]:
    """The ``attack`` section as the objective reads it: for objectives with a fixed list of keys
    (:data:`~.objectives.OBJECTIVE_ATTACKS`) those keys; for the others every key the resolved
    attack takes. Defaults of keys it does not read are dropped; given ones were rejected by
    :func:`check_keys_are_read`."""
    attack = to_container(cfg)["attack"]
    objective = str(cfg.training.objective)
    reads = OBJECTIVE_ATTACKS[objective].reads
    if reads is not None:
        return {k: v for k, v in attack.items() if k in reads or k == "name"}
    name = training_attack_name(objective, attack.get("name"))
    keep = attack_option_names(name) if name is not None else frozenset()
    return {k: v for k, v in attack.items() if k in keep or k in CONFIG_KEYS_NOT_OPTIONS}
