"""``ATTACKS`` (name -> class), ``build_attack`` (with composable ``transforms``) and
``attack_passes_per_image``."""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from .base import Attack
from .gradient import BIM, FGSM, PGD
from .input_diversity import BSR, DI, SSA, TI
from .learned_transforms import L2T
from .momentum import MI, NI
from .neighbourhood import GNP, MEF, PGN, VT
from .rap import RAP
from .structure_invariance import SIA
from .tpa import TPA
from .transforms import Transform, parse_transforms, transformed_class
from .warping import DeCowA

#: Every attack by its registry name.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, BIM, MI, NI, DI, TI, VT, SSA, PGN, GNP, RAP, BSR, MEF, SIA, DeCowA,
                              L2T, TPA)
}

#: Keys of an attack's config section (``attack``, ``attacks[i]``) that are not keyword options of
#: its constructor: the registry name, the dict of extra options, and the seed (passed per call).
CONFIG_KEYS_NOT_OPTIONS = ("name", "options", "seed")


def build_attack(name: str, model: nn.Module, transforms: Iterable[str | Transform] | str | None = None,
                 **options: Any) -> Attack:
    """Build the attack ``name`` (case-insensitive; see ``ATTACKS``) on ``model`` with ``options``
    (``eps``, ``steps``, ``step_size``, ``norm``, ``seed``, ``max_batch``, ... and the attack's own).

    ``transforms``: input transformations composed with the attack, any of ``"di"``, ``"ti"``,
    ``"si"``, ``"admix"`` (e.g. ``build_attack("tpa", model, transforms=["di", "ti"])``; see
    :mod:`~tpa_lightning.attacks.transforms`); the attack is then an instance of a subclass of its
    class (:func:`~.transforms.transformed_class`) and costs the product of the factors more passes.
    None or empty: the plain attack.

    Raises:
        ValueError: an unknown attack, option or transform, or a bad value.
    """
    key = str(name).lower()
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    with_transforms = bool(parse_transforms(transforms))   # checks the names first
    try:
        if with_transforms:
            cls: type[Any] = transformed_class(ATTACKS[key])
            return cls(model, transforms=transforms, **options)   # type: ignore[no-any-return]
        return ATTACKS[key](model, **options)
    except TypeError as err:
        raise ValueError(f"bad option for attack {key!r}: {err}") from None


def attack_passes_per_image(attack: Attack) -> float:
    """Forward+backward passes per image one call of ``attack`` makes (EOT included).

    E.g. TPA with N copies and T steps: ``T * (1 + 2N)``; the throughput bound of an attack is raw
    forward+backward images/s divided by this number.
    """
    return attack.passes_per_image()


def attack_option_names(name: str) -> frozenset[str]:
    """Keyword options the attack ``name`` takes (its constructor's and its bases', ``model`` excluded),
    and ``transforms``, which :func:`build_attack` takes for every attack.

    Raises:
        ValueError: ``name`` is not in ``ATTACKS``.
    """
    key = str(name).lower()
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    names: set[str] = set()
    for cls in ATTACKS[key].__mro__:
        if isinstance(cls, type) and issubclass(cls, Attack) and "__init__" in vars(cls):
            params = inspect.signature(vars(cls)["__init__"]).parameters.values()
            names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return frozenset((names - {"self", "model"}) | {"transforms"})



def config_options(name: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of attack ``name`` from a config section (``attack``, ``attacks[i]``): the keys
    it takes that hold a value (None means the attack's own default), then ``section["options"]`` as
    given. Keys it does not take are left out (a config's fixed keys serve every attack)."""
    taken = attack_option_names(name)
    opts = {k: v for k, v in section.items() if k in taken and k not in CONFIG_KEYS_NOT_OPTIONS and v is not None}
    opts.update(dict(section.get("options") or {}))
    return opts