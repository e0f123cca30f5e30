"""Real images, real weights: the 20 exact CIFAR-10 test images and the trained ResNet-18."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tpa_lightning.attacks import ATTACKS, build_attack


def correct(model: nn.Module, x: Tensor, y: Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def test_clean_accuracy(cifar_samples: tuple[Tensor, Tensor], autoattack_resnet18: nn.Module) -> None:
    x, y = cifar_samples
    assert correct(autoattack_resnet18, x, y) == 20


def test_pgd_8_255(cifar_samples: tuple[Tensor, Tensor], autoattack_resnet18: nn.Module) -> None:
    x, y = cifar_samples
    x_adv = build_attack("pgd", autoattack_resnet18, eps=8 / 255, steps=3, step_size=4 / 255, seed=0)(x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert correct(autoattack_resnet18, x_adv, y) <= 2


def test_tpa_official_8_255(cifar_samples: tuple[Tensor, Tensor], autoattack_resnet18: nn.Module) -> None:
    x, y = cifar_samples
    atk = build_attack("tpa", autoattack_resnet18, eps=8 / 255, steps=3, copies=1, step_size=8 / 255 / 3,
                       seed=0, max_batch=64)
    x_adv = atk(x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert correct(autoattack_resnet18, x_adv, y) <= 2


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_on_resnet(name: str, cifar_samples: tuple[Tensor, Tensor],
                                autoattack_resnet18: nn.Module) -> None:
    x, y = cifar_samples
    opts: dict[str, object] = {"eps": 8 / 255, "steps": 3, "seed": 0}
    if name in ("vt", "ssa", "pgn", "bsr", "mef", "sia", "decowa", "tpa"):
        opts["copies"] = 2
    if name == "l2t":
        opts.update(paths=1, ops_per_path=1)      # about 6 copies per iteration instead of about 100
    if name == "rap":
        opts.update(late_start=1, inner_steps=2, step_size=None)
    x_adv = build_attack(name, autoattack_resnet18, **opts)(x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert correct(autoattack_resnet18, x_adv, y) < 20
