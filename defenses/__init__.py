"""Defenses of tpa-lightning: input transformations in front of a classifier, and randomized smoothing.

>>> import defenses
>>> defended = defenses.build_defense("fd", model)            # rp fd jpeg bitdepth nrp rs
>>> smooth = defenses.build_defense("rs", model, sigma=0.25)
>>> classes, radii = smooth.certify(x, n0=100, n=100_000, alpha=0.001)

Every defense declares ``gradient`` ("exact" / "bpda"), ``random`` and ``eot_samples`` for adaptive
attacks (see :mod:`defenses.base`). Importing this package does not import Lightning; the purifier
training module lives in :mod:`defenses.nrp_training` (``PurifierTrainingModule``,
``train_purifier``) and is loaded on first use.
"""
from __future__ import annotations

from typing import Any

from .base import GRAD_MODES, Defended, Preprocessor, SeededRandomness, straight_through
from .compression import BitDepthReduction, FeatureDistillation, JPEGCompression, dct_matrix, smooth_round
from .nrp import NRP, RRDB, NRPDefense, ResidualDenseBlock, load_purifier, save_purifier
from .registry import DEFENSES, build_defense, build_preprocessor, defense_options
from .rp import RandomResizePad, rp_sizes
from .smoothing import (
    ABSTAIN,
    Smoothed,
    certified_accuracy,
    gaussian_noise_augment,
    lower_confidence_bound,
)

_LAZY = {"PurifierTrainingModule", "train_purifier", "ssp_perturb", "RandomConvFeatures", "classifier_features"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import nrp_training

        return getattr(nrp_training, name)
    raise AttributeError(f"module 'defenses' has no attribute {name!r}")


__all__ = [
    "ABSTAIN",
    "DEFENSES",
    "GRAD_MODES",
    "NRP",
    "RRDB",
    "BitDepthReduction",
    "Defended",
    "FeatureDistillation",
    "JPEGCompression",
    "NRPDefense",
    "Preprocessor",
    "PurifierTrainingModule",
    "RandomConvFeatures",
    "RandomResizePad",
    "ResidualDenseBlock",
    "SeededRandomness",
    "Smoothed",
    "build_defense",
    "build_preprocessor",
    "certified_accuracy",
    "classifier_features",
    "dct_matrix",
    "defense_options",
    "gaussian_noise_augment",
    "load_purifier",
    "lower_confidence_bound",
    "rp_sizes",
    "save_purifier",
    "smooth_round",
    "ssp_perturb",
    "straight_through",
    "train_purifier",
]
