"""NRP: neural representation purifier (Naseer et al., CVPR 2020).

The network keeps the parameter names of the authors' ``networks.py`` (``conv_first``,
``RRDB_trunk.N.RDB1..RDB3.conv1..conv5``, ``trunk_conv``), so their released ``NRP.pth``
(``NRP(3, 3, 64, 23)``) loads unchanged through ``build_defense("nrp", model, weights=PATH)``.
Purifiers trained here are saved by :func:`save_purifier` and load the same way (the architecture
is read back from the weights' shapes).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tpa_lightning.checks import check_int, check_positive
from tpa_lightning.models.checkpoint import (
    CheckpointError,
    extract_state_dict,
    read_checkpoint,
    strip_prefixes,
)

from .base import Preprocessor

NRP_CONFIG_KEY = "nrp_config"


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections (growth ``gc``), LeakyReLU 0.2, output ``x + 0.2 * conv5``."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, outer residual scale 0.2."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc)
        self.RDB2 = ResidualDenseBlock(nf, gc)
        self.RDB3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


class NRP(nn.Module):
    """The purifier network ``NRP(in_nc, out_nc, nf, nb, gc)``: conv3x3 in_nc->nf (``conv_first``),
    ``nb`` RRDB blocks (``RRDB_trunk``), conv3x3 nf->out_nc (``trunk_conv``); no output activation.
    The official purifier is ``NRP(3, 3, 64, 23, 32)`` (16.6 M parameters); use a small ``nb``/``nf``
    on a CPU. :meth:`forward` returns the raw output; :class:`NRPDefense` clamps it to [0, 1]."""

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32) -> None:
        super().__init__()
        self.config = {
            "in_nc": check_int("in_nc", in_nc), "out_nc": check_int("out_nc", out_nc),
            "nf": check_int("nf", nf), "nb": check_int("nb", nb), "gc": check_int("gc", gc),
        }
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, out_nc, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk_conv(self.RRDB_trunk(self.conv_first(x)))


def nrp_config_from_state_dict(state: dict[str, Tensor]) -> dict[str, int]:
    """Read ``in_nc, out_nc, nf, nb, gc`` back from an NRP state dict's shapes."""
    try:
        first, last = state["conv_first.weight"], state["trunk_conv.weight"]
        gc = state["RRDB_trunk.0.RDB1.conv1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(
            f"not an NRP purifier state dict: missing {err.args[0]!r} (expected keys like 'conv_first.weight', "
            "'RRDB_trunk.0.RDB1.conv1.weight', 'trunk_conv.weight')"
        ) from None
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"RRDB_trunk\.(\d+)\.", k))}
    return {"in_nc": int(first.shape[1]), "out_nc": int(last.shape[0]), "nf": int(first.shape[0]),
            "nb": max(blocks) + 1, "gc": int(gc)}


def load_purifier(path: str | Path) -> NRP:
    """An :class:`NRP` from a checkpoint: the official ``NRP.pth`` (a flat state dict), a file of
    :func:`save_purifier`, or a Lightning checkpoint of ``PurifierTrainingModule``. Read with
    ``weights_only=True``; the architecture comes from the weights."""
    ckpt = read_checkpoint(path)
    state = extract_state_dict(ckpt)
    state = strip_prefixes(state, ("module.", "purifier.", "netG."))
    state = {k: v for k, v in state.items() if k.startswith(("conv_first.", "RRDB_trunk.", "trunk_conv."))}
    purifier = NRP(**nrp_config_from_state_dict(state))
    missing, unexpected = purifier.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit NRP{tuple(purifier.config.values())}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return purifier


def save_purifier(module_or_purifier: nn.Module, path: str | Path) -> Path:
    """Write a purifier checkpoint that ``build_defense("nrp", model, weights=path)`` loads.

    Accepts an :class:`NRP`, an :class:`NRPDefense`, or anything with a ``purifier`` attribute
    (``PurifierTrainingModule``). The file holds ``{"state_dict": ..., "nrp_config": {...}}``
    (tensors and ints only, loadable with ``weights_only=True``); the keys are the official ones."""
    purifier = module_or_purifier
    while not isinstance(purifier, NRP):
        inner = getattr(purifier, "purifier", None)
        if inner is None:
            raise ValueError(f"save_purifier needs an NRP purifier or a module holding one as .purifier, "
                             f"got {type(module_or_purifier).__name__}")
        purifier = inner
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in purifier.state_dict().items()}
    torch.save({"state_dict": state, NRP_CONFIG_KEY: dict(purifier.config)}, str(path))
    return path


def dynamic_inference_input(x: Tensor, noise_std: float, eps: float, generator: torch.Generator | None) -> Tensor:
    """``clamp(clamp(x + N(0, noise_std^2), x - eps, x + eps), 0, 1)`` (the reference's ``--dynamic``)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    xm = x + noise_std * noise
    return torch.clamp(torch.minimum(torch.maximum(xm, x - eps), x + eps), 0.0, 1.0)


class NRPDefense(Preprocessor):
    """Purify with an NRP network: ``clamp(P(x'), 0, 1)``.

    With ``dynamic=True`` (default, the reference's dynamic inference) ``x' = clamp(clamp(x +
    N(0, noise_std^2), x - eps, x + eps), 0, 1)`` with ``noise_std = 0.05``, ``eps = 16/255``, a new
    draw per image and call (owned generator, ``seed``); else ``x' = x``. Exact gradients; random in
    dynamic mode (``eot_samples``, default 10)."""

    name = "nrp"
    gradient = "exact"

    def __init__(self, purifier: NRP, dynamic: bool = True, noise_std: float = 0.05, eps: float = 16 / 255,
                 eot_samples: int = 10, seed: int | None = None) -> None:
        self.random = bool(dynamic)  # instance attribute: set before the base class builds the RNG
        super().__init__(eot_samples=eot_samples if dynamic else 1, seed=seed)
        if not isinstance(purifier, nn.Module):
            raise TypeError(f"purifier must be an NRP nn.Module, got {type(purifier).__name__}")
        check_positive("noise_std", noise_std, allow_zero=True)
        check_positive("eps", eps, allow_zero=True)
        self.purifier = purifier
        self.dynamic, self.noise_std, self.eps = bool(dynamic), float(noise_std), float(eps)

    def transform(self, x: Tensor) -> Tensor:
        if self.dynamic:
            x = dynamic_inference_input(x, self.noise_std, self.eps, self._generator(x))
        return self.purifier(x).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"dynamic={self.dynamic}, noise_std={self.noise_std}, eps={self.eps:.4g}, " + super().extra_repr()


def build_purifier(weights: str | Path | None = None, purifier: nn.Module | None = None,
                   **config: Any) -> nn.Module:
    """The purifier for ``build_defense("nrp", ...)``: loaded from ``weights``, the given module, or
    (``untrained=True`` only) a freshly initialised ``NRP(**config)``."""
    untrained = bool(config.pop("untrained", False))
    if weights is not None and purifier is not None:
        raise ValueError("give either weights= (a checkpoint path) or purifier= (a module) for 'nrp', not both")
    if weights is not None:
        if config:
            loaded = load_purifier(weights)
            for k, v in config.items():
                if loaded.config.get(k) != v:
                    raise ValueError(f"nrp option {k}={v} does not match the checkpoint {weights} ({k}="
                                     f"{loaded.config.get(k)}); the architecture is read from the weights")
            return loaded
        return load_purifier(weights)
    if purifier is not None:
        return purifier
    if not untrained:
        raise ValueError(
            "the 'nrp' defense needs trained purifier weights: weights=PATH (the official NRP.pth or a file "
            "of defenses.save_purifier / train_purifier), or purifier=MODULE; pass untrained=True to use a "
            "randomly initialised NRP (tests, benchmarks)"
        )
    return NRP(**config)
