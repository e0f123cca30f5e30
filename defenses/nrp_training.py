"""Training NRP purifiers here (the authors never released their training code).

Self-supervised perturbations (SSP, Naseer et al. 2020): ``x + d`` with ``||d||_inf <= eps``
(16/255) found by a few signed-gradient ascent steps on the feature distortion
``||F(x + d) - F(x)||_2^2`` of a fixed feature extractor ``F`` (no labels needed). The purifier P is
trained to minimise ``mean((F(P(x + d)) - F(x))^2) + pixel_weight * mean((P(x + d) - x)^2)``
(the paper's adversarial critic is not used).

``F`` can be the first layers of a classifier (:func:`classifier_features`, e.g. ``layer="layer2"``
of a ResNet) or, by default, a small fixed random conv net (:class:`RandomConvFeatures`).

Two ways in: :class:`PurifierTrainingModule` (a LightningModule, for ``train.py task=purifier``)
and the plain loop :func:`train_purifier`. Save with :func:`defenses.save_purifier`; load with
``build_defense("nrp", model, weights=PATH)``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.checks import check_images, check_int, check_positive

from .nrp import NRP, save_purifier

__all__ = [
    "PurifierTrainingModule", "RandomConvFeatures", "classifier_features", "save_purifier", "ssp_perturb",
    "train_purifier",
]


class RandomConvFeatures(nn.Module):
    """A fixed, randomly initialised conv net (3x3 convs + ReLU, stride 2 every other layer), seeded:
    a label-free feature extractor for SSP when no classifier is given. Parameters are frozen."""

    def __init__(self, in_chans: int = 3, width: int = 32, depth: int = 3, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        c = in_chans
        for i in range(check_int("depth", depth)):
            conv = nn.Conv2d(c, width, 3, stride=2 if i % 2 else 1, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (9 * c)) ** 0.5)
                assert conv.bias is not None
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
            c = width
        self.net = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _Stop(Exception):
    pass


class classifier_features(nn.Module):
    """The output of submodule ``layer`` (a name from ``model.named_modules()``) of a classifier, as a
    feature extractor: the forward pass stops there. The classifier is frozen and kept in eval mode."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        modules = dict(model.named_modules())
        if layer not in modules or layer == "":
            raise ValueError(f"layer {layer!r} is not a submodule of the classifier; some names: "
                             f"{[n for n in modules if n][:20]}")
        self.model = model.eval().requires_grad_(False)
        self.layer = layer
        self._target = modules[layer]

    def train(self, mode: bool = True) -> classifier_features:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        captured: list[Tensor] = []

        def hook(_m: nn.Module, _i: Any, out: Tensor) -> None:
            captured.append(out)
            raise _Stop

        handle = self._target.register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer!r} was not reached in the classifier's forward pass")
        return captured[0]


def ssp_perturb(features: nn.Module, x: Tensor, eps: float = 16 / 255, steps: int = 5,
                step_size: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """SSP examples: maximise ``||F(x + d) - F(x)||_2^2`` over ``||d||_inf <= eps`` (x + d in [0, 1]) by
    ``steps`` signed-gradient steps from a uniform random start. Gradients w.r.t. the input only."""
    check_images(x.detach())
    check_positive("eps", eps)
    steps = check_int("ssp_steps", steps, minimum=0)
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else float(step_size)
    x = x.detach()
    with torch.no_grad():
        target = features(x)
    start = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    x_adv = (x + start).clamp(0.0, 1.0)
    with torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = (features(x_adv) - target).pow(2).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


class PurifierTrainingModule(L.LightningModule):
    """Train an :class:`NRP` purifier on SSP examples (see the module docstring).

    Args:
        purifier: the NRP to train (default: ``NRP(in_chans, in_chans, nf, nb, gc)``).
        feature_extractor: F (default: :class:`RandomConvFeatures` with ``seed``). Frozen.
        nb, nf, gc, in_chans: architecture of the default purifier (small for CPUs).
        eps, ssp_steps, ssp_step_size: the SSP budget and steps.
        pixel_weight: weight of the pixel loss.
        lr: Adam learning rate.
        seed: seed of the SSP random starts (owned generator).

    Batches are ``(x, y)`` or ``x`` with x in [0, 1]; labels are ignored. Logs ``train/loss``,
    ``train/feature_loss``, ``train/pixel_loss`` (and ``val/...``)."""

    def __init__(self, purifier: NRP | None = None, feature_extractor: nn.Module | None = None, nb: int = 2,
                 nf: int = 32, gc: int = 16, in_chans: int = 3, eps: float = 16 / 255, ssp_steps: int = 5,
                 ssp_step_size: float | None = None, pixel_weight: float = 1.0, lr: float = 1e-4,
                 seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["purifier", "feature_extractor"])
        self.purifier = purifier if purifier is not None else NRP(in_chans, in_chans, nf, nb, gc)
        if feature_extractor is None:
            feature_extractor = RandomConvFeatures(in_chans=in_chans, seed=seed)
        self.feature_extractor = feature_extractor.eval().requires_grad_(False)
        check_positive("eps", eps)
        check_positive("lr", lr)
        check_positive("pixel_weight", pixel_weight, allow_zero=True)
        self.eps, self.ssp_steps, self.ssp_step_size = float(eps), int(ssp_steps), ssp_step_size
        self.pixel_weight, self.lr = float(pixel_weight), float(lr)
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}
        self.history: list[dict[str, float]] = []

    def train(self, mode: bool = True) -> PurifierTrainingModule:
        super().train(mode)
        self.feature_extractor.eval()
        return self

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def purify(self, x: Tensor) -> Tensor:
        return self.purifier(x).clamp(0.0, 1.0)

    def ssp(self, x: Tensor) -> Tensor:
        return ssp_perturb(self.feature_extractor, x, self.eps, self.ssp_steps, self.ssp_step_size,
                           self.generator(x.device))

    def losses(self, x: Tensor, x_adv: Tensor | None = None) -> dict[str, Tensor]:
        """Feature, pixel and total loss of the purifier on SSP examples of ``x`` (or ``x_adv``)."""
        check_images(x.detach())
        if x_adv is None:
            x_adv = self.ssp(x)
        with torch.no_grad():
            target = self.feature_extractor(x)
        purified = self.purify(x_adv)
        feature = F.mse_loss(self.feature_extractor(purified), target)
        pixel = F.mse_loss(purified, x)
        return {"loss": feature + self.pixel_weight * pixel, "feature_loss": feature, "pixel_loss": pixel}

    @staticmethod
    def _images(batch: Any) -> Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        out = self.losses(self._images(batch))
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss")
        return out["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        # Lightning validates under inference_mode; SSP needs input gradients.
        with torch.inference_mode(False), torch.enable_grad():
            x = self._images(batch).clone()
            x_adv = self.ssp(x)
            with torch.no_grad():
                out = self.losses(x, x_adv)
        for k, v in out.items():
            self.log(f"val/{k}", v, prog_bar=k == "loss")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.purifier.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nrp_config"] = dict(self.purifier.config)


def _batches(data: Tensor | Iterable[Any], batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless stream of image batches from a tensor (shuffled each epoch) or a dataloader."""
    if isinstance(data, Tensor):
        check_images(data, "images")
        while True:
            order = torch.randperm(data.shape[0], generator=generator)
            for i in range(0, data.shape[0], batch_size):
                yield data[order[i:i + batch_size]]
    else:
        while True:
            empty = True
            for batch in data:
                empty = False
                yield PurifierTrainingModule._images(batch)
            if empty:
                raise ValueError("the dataloader given to train_purifier yielded no batches")


def train_purifier(images: Tensor | Iterable[Any], steps: int = 100, batch_size: int = 16,
                   module: PurifierTrainingModule | None = None, device: str | torch.device | None = None,
                   **module_options: Any) -> PurifierTrainingModule:
    """Train a purifier for ``steps`` optimiser steps with a plain loop (no Trainer).

    ``images``: an (N, C, H, W) tensor in [0, 1] or a dataloader of ``(x, y)``/``x`` batches.
    ``module_options`` go to :class:`PurifierTrainingModule` (``purifier``, ``feature_extractor``,
    ``nb``, ``nf``, ``gc``, ``eps``, ``ssp_steps``, ``pixel_weight``, ``lr``, ``seed``, ...).
    Returns the module (``.purifier`` is the trained NRP; ``.history`` the per-step losses); save it
    with :func:`defenses.save_purifier`."""
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    if module is None:
        if isinstance(images, Tensor) and "in_chans" not in module_options:
            module_options["in_chans"] = images.shape[1]
        module = PurifierTrainingModule(**module_options)
    elif module_options:
        raise ValueError(f"give either module= or module options, not both (got {sorted(module_options)})")
    if device is not None:
        module = module.to(device)
    dev = next(module.purifier.parameters()).device
    module.train()
    opt = module.configure_optimizers()
    stream = _batches(images, batch_size, torch.Generator().manual_seed(module.seed))
    for _ in range(steps):
        x = next(stream).to(dev)
        out = module.losses(x)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        module.history.append({k: float(v.detach()) for k, v in out.items()})
    module.eval()
    return module

