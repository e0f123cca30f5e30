"""tpa-lightning: adversarial training and robustness evaluation with TPA and classic transfer attacks.

The top-level names below are imported on first use, so ``import tpa_lightning`` stays light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AdversarialTrainingModule": "tpa_lightning.training",
    "RobustDataModule": "tpa_lightning.data",
    "build_model": "tpa_lightning.models",
    "build_attack": "tpa_lightning.attacks",
    "TPA": "tpa_lightning.attacks",
    "ATTACKS": "tpa_lightning.attacks",
    "RobustAccuracyCallback": "tpa_lightning.callbacks",
    "TransferCallback": "tpa_lightning.callbacks",
}

__all__ = ["ATTACKS", "TPA", "AdversarialTrainingModule", "RobustAccuracyCallback", "RobustDataModule",
           "TransferCallback", "__version__", "build_attack", "build_model"]

if TYPE_CHECKING:
    from .attacks import ATTACKS, TPA, build_attack
    from .callbacks import RobustAccuracyCallback, TransferCallback
    from .data import RobustDataModule
    from .models import build_model
    from .training import AdversarialTrainingModule


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tpa_lightning' has no attribute '{name}'")
