"""Structured configs (omegaconf dataclasses) for train.py and evaluate.py, and how they are loaded.

Order of precedence, lowest first: the dataclass defaults, ``configs/train.yaml`` (or
``evaluate.yaml``), an ``experiment=NAME`` group file, ``--config FILE``, group selections such as
``data=cifar10`` (files in ``configs/<group>/``), then ``key=value`` overrides. Config values are
data: nothing in them is ever executed or imported.
"""
from .errors import ConfigError, to_container
from .loading import CONFIG_DIR, GROUPS, REPO_ROOT, default_config, load_config
from .schema import (
    LIGHTNING_PRECISION,
    SCHEMAS,
    AttackConfig,
    AutoAttackSettings,
    CertifySettings,
    DataConfig,
    DefenseSettings,
    EvaluateConfig,
    ModelConfig,
    PurifierConfig,
    SanitySettings,
    TrainConfig,
    TrainerConfig,
    TrainingConfig,
    TransferSettings,
)
from .validation import validate

__all__ = [
    "CONFIG_DIR", "GROUPS", "LIGHTNING_PRECISION", "REPO_ROOT", "SCHEMAS", "AttackConfig", "AutoAttackSettings",
    "CertifySettings", "ConfigError", "DataConfig", "DefenseSettings", "EvaluateConfig", "ModelConfig",
    "PurifierConfig", "SanitySettings", "TrainConfig", "TrainerConfig", "TrainingConfig", "TransferSettings",
    "default_config", "load_config", "to_container", "validate",
]
