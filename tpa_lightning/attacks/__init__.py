"""Attacks: TPA (both modes) and the baselines it is compared with, on one base class.

``atk = build_attack("pgd", model, eps=8/255); x_adv = atk(x, y)``; ``atk(x, y, target=t)`` targets.
``build_attack("tpa", model, transforms=["di", "ti"])`` composes input transformations (DI, TI, SI,
Admix) with any gradient attack (:mod:`.transforms`).
"""
from .base import Attack, MomentumMixin
from .context import model_eval_no_param_grad, unwrap_model
from .gradient import BIM, FGSM, PGD
from .input_diversity import BSR, DI, SSA, TI
from .learned_transforms import L2T
from .momentum import MI, NI
from .neighbourhood import GNP, MEF, PGN, VT
from .objectives import attack_objective, per_sample_objective
from .rap import RAP
from .registry import (
    ATTACKS,
    CONFIG_KEYS_NOT_OPTIONS,
    attack_option_names,
    attack_passes_per_image,
    build_attack,
    config_options,
)
from .structure_invariance import SIA
from .tpa import TPA
from .transforms import (
    TRANSFORMS,
    Admix,
    DiverseInputs,
    GradientTransform,
    InputTransform,
    ScaleInvariance,
    TransformedAttack,
    TranslationInvariance,
    parse_transforms,
    transformed_class,
    with_transforms,
)
from .warping import DeCowA

__all__ = [
    "ATTACKS",
    "BIM",
    "BSR",
    "CONFIG_KEYS_NOT_OPTIONS",
    "DI",
    "FGSM",
    "GNP",
    "L2T",
    "MEF",
    "MI",
    "NI",
    "PGD",
    "PGN",
    "RAP",
    "SIA",
    "SSA",
    "TI",
    "TPA",
    "TRANSFORMS",
    "VT",
    "Admix",
    "Attack",
    "DeCowA",
    "DiverseInputs",
    "GradientTransform",
    "InputTransform",
    "MomentumMixin",
    "ScaleInvariance",
    "TransformedAttack",
    "TranslationInvariance",
    "attack_objective",
    "attack_option_names",
    "attack_passes_per_image",
    "build_attack",
    "config_options",
    "model_eval_no_param_grad",
    "parse_transforms",
    "per_sample_objective",
    "transformed_class",
    "unwrap_model",
    "with_transforms",
]
