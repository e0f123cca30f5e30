"""timm and torchvision architectures by name, random or with weights from a local file.

``timm:<name>`` (``timm:resnet50``, ``timm:resnet50.a1_in1k`` for a tag's preprocessing) and
``torchvision:<name>`` (``torchvision:resnet50``, one of ``torchvision.models.list_models()``'s
classification models) are always built without weights (``pretrained=False`` / ``weights=None``:
nothing is downloaded). With ``weights=PATH`` the file (state dict or safetensors, see
:mod:`.local_weights`) is loaded strictly and the network is wrapped in a
:class:`~.normalized.PretrainedClassifier` that applies the normalisation it was trained with:
timm's ``pretrained_cfg`` mean/std, torchvision's ImageNet mean/std (0.485, 0.456, 0.406) /
(0.229, 0.224, 0.225). Both are metadata that ship with the packages. The wrapper records
``input_size`` and ``interpolation`` but does not resize: the data pipeline must.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from .checkpoint import strip_prefixes
from .local_weights import MODULE_PREFIXES, WRAPPER_PREFIXES, load_weights, read_state_dict
from .normalized import PretrainedClassifier

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision networks whose pretrained builders set these options (torchvision's own
#: ``weights=...`` path): their published weights expect ``transform_input``.
_TORCHVISION_PRETRAINED_OPTIONS: dict[str, dict[str, Any]] = {
    "inception_v3": {"transform_input": True, "init_weights": False},
    "googlenet": {"transform_input": True, "init_weights": False},
}
#: key prefixes of the auxiliary heads, present in a file only if it has them
_TORCHVISION_AUX_KEYS = {"inception_v3": ("AuxLogits.",), "googlenet": ("aux1.", "aux2.")}


def _import_torchvision_models() -> ModuleType:
    try:
        return importlib.import_module("torchvision.models")
    except Exception as err:  # noqa: BLE001 - a broken install raises more than ImportError
        raise ImportError(f"torchvision:<name> models need torchvision, which does not import here ({err}); "
                          "pip install torchvision matching your torch") from None


def timm_network(name: str, num_classes: int, in_chans: int, **kwargs: Any) -> nn.Module:
    """The timm architecture ``name``, randomly initialised (no download unless ``pretrained=True``)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"'timm:{name}' is not a timm architecture (timm.list_models() lists them)")
    kwargs.setdefault("pretrained", False)
    net: nn.Module = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    return net


def torchvision_names() -> list[str]:
    """torchvision's classification models (``torchvision.models.list_models(module=torchvision.models)``)."""
    tvm = _import_torchvision_models()
    names: list[str] = tvm.list_models(module=tvm)
    return names


def torchvision_network(name: str, num_classes: int, in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """The torchvision classification model ``name`` with ``weights=None`` (random, nothing downloaded)."""
    tvm = _import_torchvision_models()
    if name not in torchvision_names():
        raise ValueError(f"'torchvision:{name}' is not a torchvision classification model "
                         "(torchvision.models.list_models(module=torchvision.models) lists them)")
    if int(in_chans) != 3:
        raise ValueError(f"torchvision:{name} takes 3-channel images, but in_chans={in_chans} was asked for")
    if kwargs.get("weights") is not None:
        raise ValueError(f"torchvision:{name}: give a local weight file (model.weights=PATH), "
                         "not torchvision's weights= (that downloads)")
    kwargs.pop("weights", None)
    net: nn.Module = tvm.get_model(name, weights=None, num_classes=int(num_classes), **kwargs)
    return net


def _timm_cfg(net: nn.Module, name: str) -> dict[str, Any]:
    cfg = getattr(net, "pretrained_cfg", None)
    if not cfg:
        from timm.models import get_pretrained_cfg

        found = get_pretrained_cfg(name)
        cfg = found.to_dict() if found is not None else {}
    return dict(cfg)


def _timm_num_classes(meta: Any, state: Mapping[str, Tensor]) -> int | None:
    """Classes of the classifier head in ``state`` (found by the pretrained_cfg's classifier name)."""
    heads = meta.classifier if meta is not None else None
    if not heads:
        return None
    head = heads[0] if isinstance(heads, (tuple, list)) else heads
    key = f"{head}.weight"
    for cand in (state, strip_prefixes(state, WRAPPER_PREFIXES + MODULE_PREFIXES)):
        if key in cand and cand[key].dim() >= 1:
            return int(cand[key].shape[0])
    return None


def timm_pretrained(name: str, weights: str | Path, num_classes: int | None = None, in_chans: int | None = None,
                    **kwargs: Any) -> PretrainedClassifier:
    """``timm:<name>`` with the weights of the local file ``weights`` and its pretrained_cfg's
    normalisation inside; ``num_classes`` defaults to the head in the file."""
    import timm

    spec = f"timm:{name}"
    if not timm.is_model(name):
        raise ValueError(f"'{spec}' is not a timm architecture (timm.list_models() lists them)")
    if kwargs.pop("pretrained", False):
        raise ValueError(f"{spec}: pretrained=True downloads; with model.weights=PATH the weights come from the file")
    from timm.models import get_pretrained_cfg

    meta = get_pretrained_cfg(name)
    chans = int(meta.input_size[0]) if meta is not None else 3
    if in_chans is not None and int(in_chans) != chans:
        raise ValueError(f"{spec} with pretrained weights takes {chans}-channel images, "
                         f"but in_chans={in_chans} was asked for")
    state = read_state_dict(weights)
    if num_classes is None:
        num_classes = _timm_num_classes(meta, state) or (int(meta.num_classes) if meta is not None else 1000)
    net = timm_network(name, int(num_classes), chans, pretrained=False, **kwargs)
    cfg = _timm_cfg(net, name)
    size = tuple(int(v) for v in cfg.get("input_size", (chans, 224, 224)))
    if "img_size" in kwargs:          # the network was built for another size
        s = kwargs["img_size"]
        hw = (int(s), int(s)) if isinstance(s, int) else tuple(int(v) for v in s)
        size = (chans, *hw)
    model = PretrainedClassifier(net, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD),
                                 input_size=size, interpolation=cfg.get("interpolation"),
                                 crop_pct=cfg.get("crop_pct"), spec=spec, weights=str(weights))
    load_weights(net, weights, spec, outer=model, state=state)
    return model.eval()


def _torchvision_preprocessing(name: str) -> dict[str, Any]:
    """crop size, interpolation and resize size of the DEFAULT weights of ``name`` (metadata only)."""
    tvm = _import_torchvision_models()
    out: dict[str, Any] = {"input_size": (3, 224, 224), "interpolation": "bilinear", "crop_pct": None,
                           "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    try:
        enum = tvm.get_model_weights(name)
        t = enum.DEFAULT.transforms()
    except Exception:  # noqa: BLE001 - a model without published weights, or another transform
        return out
    crop = getattr(t, "crop_size", None)
    if crop:
        out["input_size"] = (3, int(crop[0]), int(crop[-1]))
    resize = getattr(t, "resize_size", None)
    if crop and resize:
        out["crop_pct"] = round(int(crop[0]) / int(resize[0]), 4)
    interp = getattr(t, "interpolation", None)
    if interp is not None:
        out["interpolation"] = str(getattr(interp, "value", interp))
    return out


def torchvision_pretrained(name: str, weights: str | Path, num_classes: int | None = None,
                           in_chans: int | None = None, **kwargs: Any) -> PretrainedClassifier:
    """``torchvision:<name>`` with the weights of the local file ``weights`` and ImageNet's
    normalisation inside; ``num_classes`` defaults to 1000."""
    spec = f"torchvision:{name}"
    if name not in torchvision_names():
        raise ValueError(f"'{spec}' is not a torchvision classification model "
                         "(torchvision.models.list_models(module=torchvision.models) lists them)")
    state = read_state_dict(weights)
    options = {**_TORCHVISION_PRETRAINED_OPTIONS.get(name, {}), **kwargs}
    if name in _TORCHVISION_AUX_KEYS and "aux_logits" not in kwargs:
        options["aux_logits"] = any(p in k for k in state for p in _TORCHVISION_AUX_KEYS[name])
    net = torchvision_network(name, 1000 if num_classes is None else int(num_classes),
                              3 if in_chans is None else int(in_chans), **options)
    pre = _torchvision_preprocessing(name)
    model = PretrainedClassifier(net, pre["mean"], pre["std"], input_size=pre["input_size"],
                                 interpolation=pre["interpolation"], crop_pct=pre["crop_pct"],
                                 spec=spec, weights=str(weights))
    load_weights(net, weights, spec, outer=model, state=state)
    return model.eval()
