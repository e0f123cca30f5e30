"""Shared fixtures: real images and real weights that ship inside installed packages."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from tpa_lightning.data.samples import foolbox_samples
from tpa_lightning.models import build_model


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Every test starts from seed 0 and leaves torch's thread count as it found it (a CLI called
    in-process sets it)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cifar_samples() -> tuple[Tensor, Tensor]:
    """The 20 exact CIFAR-10 test images of foolbox==3.3.4, [0, 1] NCHW, and their labels."""
    return foolbox_samples("cifar10")


@pytest.fixture(scope="session")
def fmnist_samples() -> tuple[Tensor, Tensor]:
    """The 20 exact Fashion-MNIST test images of foolbox==3.3.4."""
    return foolbox_samples("fashionMNIST")


@pytest.fixture(scope="session")
def autoattack_resnet18() -> nn.Module:
    """pyautoattack's trained CIFAR-10 ResNet-18 (eval mode). Do not modify it in a test."""
    return build_model("pretrained:autoattack_resnet18").eval()
