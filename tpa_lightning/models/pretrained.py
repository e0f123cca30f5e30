"""Trained weights that ship inside installed packages (nothing is downloaded)."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .checkpoint import extract_state_dict, load_into, read_checkpoint, strip_prefixes
from .cifar_resnet import cifar_resnet18
from .normalized import NormalizedClassifier


def package_file(package: str, relative: str) -> Path:
    """A data file of an installed package, or FileNotFoundError saying what to install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package '{package}' is not installed: pip install {package}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed '{package}' (reinstall it)")
    return path


def autoattack_resnet18() -> nn.Module:
    """The CIFAR-10 ResNet-18 of pyautoattack's ``examples/model_test.pt``: 10 classes, [0, 1] input
    without normalisation (86.5 % on the JPEG CIFAR-10 test copy; 20/20 on foolbox's images)."""
    state = strip_prefixes(extract_state_dict(read_checkpoint(package_file("pyautoattack", "examples/model_test.pt"))),
                           ("module.",))
    net = cifar_resnet18(num_classes=10, in_chans=3)
    load_into(net, state, "cifar_resnet18")
    return NormalizedClassifier(net).eval()


#: name -> (constructor, number of classes, input channels)
PRETRAINED: dict[str, tuple[Callable[[], nn.Module], int, int]] = {
    "autoattack_resnet18": (autoattack_resnet18, 10, 3),
}
