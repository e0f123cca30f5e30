"""``build_defense(name, model, **options)`` and the ``DEFENSES`` registry."""
from __future__ import annotations

import inspect
from typing import Any, cast

from torch import nn

from .base import Defended, Preprocessor
from .compression import BitDepthReduction, FeatureDistillation, JPEGCompression
from .nrp import NRPDefense, build_purifier
from .rp import RandomResizePad
from .smoothing import Smoothed

#: name -> class. Preprocessors are wrapped in :class:`Defended`; ``rs`` builds :class:`Smoothed`.
DEFENSES: dict[str, type[nn.Module]] = {
    "rp": RandomResizePad,
    "fd": FeatureDistillation,
    "jpeg": JPEGCompression,
    "bitdepth": BitDepthReduction,
    "nrp": NRPDefense,
    "rs": Smoothed,
}

_WRAPPER_OPTIONS = ("draws", "max_batch", "grad_mode")
_PURIFIER_OPTIONS = ("weights", "purifier", "in_nc", "out_nc", "nf", "nb", "gc", "untrained")
#: Defaults that differ from the class defaults, per defense (wrapper options included).
_DEFAULTS: dict[str, dict[str, Any]] = {"rp": {"draws": 30}}


def _allowed(cls: type) -> list[str]:
    params = inspect.signature(cls).parameters
    return [p for p in params if p not in ("self", "model", "purifier")]


def defense_options(name: str) -> list[str]:
    """The option names ``build_defense(name, ...)`` accepts."""
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; known: {sorted(DEFENSES)}")
    if name == "rs":
        return _allowed(Smoothed)
    opts = _allowed(DEFENSES[name]) + list(_WRAPPER_OPTIONS)
    if name == "nrp":
        opts += list(_PURIFIER_OPTIONS)
    return opts


def build_preprocessor(name: str, **options: Any) -> Preprocessor:
    """One preprocessor by name (``rp fd jpeg bitdepth nrp``), for chains:
    ``Defended(model, [build_preprocessor("jpeg"), build_preprocessor("fd")])``."""
    if name not in DEFENSES or name == "rs":
        raise ValueError(f"unknown preprocessor {name!r}; known: {sorted(k for k in DEFENSES if k != 'rs')}")
    allowed = defense_options(name)
    bad = [k for k in options if k not in allowed or k in _WRAPPER_OPTIONS]
    if bad:
        raise ValueError(f"unknown option(s) {bad} for defense {name!r}; allowed: "
                         f"{[a for a in allowed if a not in _WRAPPER_OPTIONS]}")
    if name == "nrp":
        purifier_kw = {k: options.pop(k) for k in _PURIFIER_OPTIONS if k in options}
        return NRPDefense(cast(Any, build_purifier(**purifier_kw)), **options)
    return cast(Preprocessor, DEFENSES[name](**options))


def build_defense(name: str, model: nn.Module, **options: Any) -> nn.Module:
    """A defended classifier by name.

    * ``rp``: :class:`RandomResizePad` in a :class:`Defended` with ``draws=30`` (softmax averaged
      over 30 draws, as the reference); options ``low high pad flip_p eot_samples seed``.
    * ``fd``: :class:`FeatureDistillation`; ``q_low q_high``.
    * ``jpeg``: :class:`JPEGCompression`; ``quality`` (75).
    * ``bitdepth``: :class:`BitDepthReduction`; ``bits`` (4).
    * ``nrp``: :class:`NRPDefense`; ``weights`` (checkpoint path) or ``purifier`` (module) or
      ``untrained=True`` with ``nb nf gc in_nc out_nc``; ``dynamic noise_std eps eot_samples seed``.
    * ``rs``: :class:`Smoothed`; ``sigma num_classes batch_size forward_samples vote eot_samples seed``.

    Every preprocessor defense also takes the wrapper options ``draws max_batch grad_mode``.
    Several preprocessors: ``"jpeg+fd"`` (each with its defaults) or build a :class:`Defended`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module classifier, got {type(model).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"defense name must be a string, one of {sorted(DEFENSES)}")
    if "+" in name:
        parts = name.split("+")
        if "rs" in parts:
            raise ValueError("'rs' cannot be chained with '+'; wrap a Defended in defenses.Smoothed instead")
        bad = [k for k in options if k not in _WRAPPER_OPTIONS]
        if bad:
            raise ValueError(f"a chain {name!r} takes only the options {list(_WRAPPER_OPTIONS)}, got {bad}")
        return Defended(model, [build_preprocessor(p) for p in parts], **options)
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; known: {sorted(DEFENSES)}")
    allowed = defense_options(name)
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ValueError(f"unknown option(s) {bad} for defense {name!r}; allowed: {allowed}")
    if name == "rs":
        return Smoothed(model, **options)
    opts = {**_DEFAULTS.get(name, {}), **options}
    wrapper = {k: opts.pop(k) for k in _WRAPPER_OPTIONS if k in opts}
    return Defended(model, build_preprocessor(name, **opts), **wrapper)
