"""``build_model(spec, ...)``: every model the toolkit knows, as a classifier of [0, 1] images.

Specs: an architecture of :data:`ARCHITECTURES` (``small_cnn``, ``cifar_resnet18``, ``cifar_vgg``,
``cifar_mobilenet``, ``cifar_densenet``, ``cifar_convnext``, ``cifar_vit``), ``timm:<name>`` (random
init; no hub download unless ``pretrained=True`` is passed where the network allows),
``torchvision:<name>`` (a torchvision classification model, random init), ``pretrained:<name>``
(weights shipped in an installed package), ``robustbench:<name>[@dataset/threat]`` (weights from
``model_dir``; ImageNet models record their resize/crop as ``input_size``/``preprocessing``), or the
path of a weight file (a train.py checkpoint rebuilds itself; a plain state dict needs ``arch=``).

``timm:<name>`` and ``torchvision:<name>`` with ``weights=PATH`` (``model.weights``): the weights of a
local state-dict or safetensors file (read with ``weights_only=True``, never unpickled), with the
normalisation they were trained with inside the model (timm's ``pretrained_cfg`` mean/std;
ImageNet's for torchvision) and ``input_size``/``interpolation`` recorded but not applied: see
:mod:`.timm_torchvision`. Nothing is downloaded.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import (
    CHECKPOINT_SUFFIXES,
    MODEL_META_KEY,
    CheckpointError,
    extract_state_dict,
    load_into,
    read_checkpoint,
    strip_prefixes,
)
from .cifar_convnext import cifar_convnext
from .cifar_densenet import cifar_densenet
from .cifar_mobilenet import cifar_mobilenet
from .cifar_resnet import cifar_resnet18
from .cifar_vgg import cifar_vgg
from .cifar_vit import cifar_vit
from .normalized import NormalizedClassifier
from .pretrained import PRETRAINED
from .robustbench_adapter import load_robustbench
from .small_cnn import SmallCNN
from .timm_torchvision import timm_network, timm_pretrained, torchvision_network, torchvision_pretrained

#: architecture name -> constructor(num_classes, in_chans, **options)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "cifar_resnet18": cifar_resnet18,
    "cifar_vgg": cifar_vgg,
    "cifar_mobilenet": cifar_mobilenet,
    "cifar_densenet": cifar_densenet,
    "cifar_convnext": cifar_convnext,
    "cifar_vit": cifar_vit,
}

KNOWN_SPECS = (f"{', '.join(ARCHITECTURES)}, timm:<name>, torchvision:<name>, pretrained:<name> "
               f"({', '.join(PRETRAINED)}), robustbench:<name>[@dataset/threat], "
               f"or the path of a weight file ({' '.join(CHECKPOINT_SUFFIXES)})")


def _architecture(spec: str, num_classes: int, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
    if spec.startswith("timm:"):
        return timm_network(spec[len("timm:"):], num_classes, in_chans, **kwargs)
    if spec.startswith("torchvision:"):
        return torchvision_network(spec[len("torchvision:"):], num_classes, in_chans, **kwargs)
    if spec in ARCHITECTURES:
        return ARCHITECTURES[spec](num_classes=num_classes, in_chans=in_chans, **kwargs)
    raise ValueError(f"unknown model '{spec}'; known: {KNOWN_SPECS}")


def _is_path(spec: str) -> bool:
    return spec.endswith(CHECKPOINT_SUFFIXES) or Path(spec).exists() or "/" in spec or "\\" in spec


def _check_count(what: str, given: int | None, actual: int, spec: str) -> None:
    if given is not None and int(given) != actual:
        raise ValueError(f"model '{spec}' has {actual} {what}, but {given} were asked for")


def build_model(spec: str, num_classes: int | None = None, in_chans: int | None = None, *,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                model_dir: str | Path = "models", arch: str | None = None, weights: str | Path | None = None,
                **kwargs: Any) -> nn.Module:
    """A classifier of ``spec`` that takes images in [0, 1] (NCHW) and returns logits.

    Args:
        spec: see the module docstring.
        num_classes: classes of a new architecture (default 10); for trained weights, a check.
        in_chans: input channels of a new architecture (default 3); for trained weights, a check.
        mean, std: per-channel normalisation put inside a new architecture (train.py passes the
            dataset's); ignored by pretrained, RobustBench and train.py models, which carry their own.
        model_dir: where RobustBench weights are read from (``<model_dir>/<dataset>/<threat>/<name>.pt``).
        arch: the architecture spec of a plain state-dict file.
        weights: a local weight file for a ``timm:`` or ``torchvision:`` spec (state dict or
            safetensors); the model then carries the network's own normalisation (``mean``/``std``
            are ignored) and ``input_size``; ``num_classes`` defaults to the file's head (timm) or
            1000 (torchvision). None: random initialisation.
        **kwargs: options of the architecture (``width`` of small_cnn, timm's ``img_size`` ...).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"model spec must be a non-empty string; known: {KNOWN_SPECS}")
    if weights is not None:
        return _with_weights(spec, Path(weights), num_classes, in_chans, kwargs)
    if spec.startswith("pretrained:"):
        name = spec[len("pretrained:"):]
        if name not in PRETRAINED:
            raise ValueError(f"unknown pretrained model '{name}'; known: {', '.join(PRETRAINED)}")
        make, classes, chans = PRETRAINED[name]
        _check_count("classes", num_classes, classes, spec)
        _check_count("input channels", in_chans, chans, spec)
        return make()
    if spec.startswith("robustbench:"):
        return load_robustbench(spec[len("robustbench:"):], model_dir=model_dir, **kwargs)
    if spec.startswith(("timm:", "torchvision:")) or spec in ARCHITECTURES:
        net = _architecture(spec, 10 if num_classes is None else int(num_classes),
                            3 if in_chans is None else int(in_chans), dict(kwargs))
        return NormalizedClassifier(net, mean, std, in_chans=in_chans)
    if _is_path(spec):
        return _from_file(Path(spec), num_classes, in_chans, mean, std, model_dir, arch, kwargs)
    raise ValueError(f"unknown model '{spec}'; known: {KNOWN_SPECS}")


def _with_weights(spec: str, weights: Path, num_classes: int | None, in_chans: int | None,
                  kwargs: dict[str, Any]) -> nn.Module:
    if spec.startswith("timm:"):
        return timm_pretrained(spec[len("timm:"):], weights, num_classes, in_chans, **kwargs)
    if spec.startswith("torchvision:"):
        return torchvision_pretrained(spec[len("torchvision:"):], weights, num_classes, in_chans, **kwargs)
    raise ValueError(f"weights= (model.weights) is for timm:<name> and torchvision:<name> specs, not '{spec}'; "
                     "a weight file of another architecture is given as the spec itself (with arch=)")


def _from_file(path: Path, num_classes: int | None, in_chans: int | None, mean: Sequence[float] | None,
               std: Sequence[float] | None, model_dir: str | Path, arch: str | None,
               kwargs: dict[str, Any]) -> nn.Module:
    ckpt = read_checkpoint(path)
    meta = ckpt.get(MODEL_META_KEY) if isinstance(ckpt, dict) else None
    state = extract_state_dict(ckpt)
    if meta is not None:
        model = build_model(str(meta["spec"]), int(meta["num_classes"]), int(meta["in_chans"]),
                            mean=meta.get("mean"), std=meta.get("std"), model_dir=model_dir,
                            **dict(meta.get("kwargs") or {}))
        _check_count("classes", num_classes, int(meta["num_classes"]), str(path))
        _check_count("input channels", in_chans, int(meta["in_chans"]), str(path))
        own = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        load_into(model, own, f"{meta['spec']} (as recorded in {path})")
        return model.eval()
    if arch is None:
        raise CheckpointError(f"{path} is a plain state dict: name its architecture with arch= "
                              "(model.arch=... in the config), e.g. arch=cifar_resnet18")
    model = build_model(arch, num_classes, in_chans, mean=mean, std=std, model_dir=model_dir, **kwargs)
    state = strip_prefixes(state, ("module.", "model."))
    if isinstance(model, NormalizedClassifier) and not any(k.startswith("net.") for k in state):
        load_into(model.net, state, arch)
    else:
        load_into(model, state, arch)
    return model.eval()
