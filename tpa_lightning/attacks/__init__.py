"""Attacks: TPA (both modes) and the baselines it is compared with, on one base class.

``atk = build_attack("pgd", model, eps=8/255); x_adv = atk(x, y)``; ``atk(x, y, target=t)`` targets.
"""
from .base import Attack, MomentumMixin
from .context import model_eval_no_param_grad, unwrap_model
from .gradient import BIM, FGSM, PGD
from .input_diversity import BSR, DI, SSA, TI
from .momentum import MI, NI
from .neighbourhood import GNP, PGN, VT
from .objectives import attack_objective
from .rap import RAP
from .registry import ATTACKS, attack_option_names, attack_passes_per_image, build_attack
from .tpa import TPA

__all__ = [
    "ATTACKS",
    "BIM",
    "BSR",
    "DI",
    "FGSM",
    "GNP",
    "MI",
    "NI",
    "PGD",
    "PGN",
    "RAP",
    "SSA",
    "TI",
    "TPA",
    "VT",
    "Attack",
    "MomentumMixin",
    "attack_objective",
    "attack_option_names",
    "attack_passes_per_image",
    "build_attack",
    "model_eval_no_param_grad",
    "unwrap_model",
]
