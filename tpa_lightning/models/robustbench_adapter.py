"""RobustBench's model zoo, importable and loaded safely, weights read from a local ``model_dir``.

robustbench 1.1.1 imports ``autoattack`` (the package now installs as ``pyautoattack``) and
``pkg_resources`` (``setuptools<81``); :func:`import_robustbench` supplies the alias. Weights are read
from ``model_dir/<dataset>/<threat>/<name>.pt`` (RobustBench's own layout) with ``weights_only=True``;
they are downloaded (RobustBench's Google Drive links) only with ``download=True``.

ImageNet models normalise inside (RobustBench's ``normalize_model``) and take [0, 1] images of the
size their RobustBench preprocessing crops to; :func:`imagenet_preprocessing` records it on the model
(``preprocessing``, ``input_size``, ``interpolation``, ``crop_pct``) and the data pipeline resizes.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import pickle
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError

DATASETS = ("cifar10", "cifar100", "imagenet")
THREATS = ("Linf", "L2", "corruptions")


def import_robustbench() -> ModuleType:
    """``import robustbench``, after making ``autoattack`` an alias of ``pyautoattack`` if needed."""
    if "autoattack" not in sys.modules:
        try:
            importlib.import_module("autoattack")
        except ImportError:
            aa = importlib.import_module("pyautoattack")
            sys.modules["autoattack"] = aa
            for info in pkgutil.iter_modules(aa.__path__):
                if info.name.startswith("utils_tf") or info.name == "fab_tf":
                    continue            # TensorFlow helpers, not needed
                try:
                    sys.modules[f"autoattack.{info.name}"] = importlib.import_module(f"pyautoattack.{info.name}")
                except ImportError:
                    continue
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        raise ImportError("robustbench needs pkg_resources: pip install 'setuptools<81'") from None
    return importlib.import_module("robustbench")


def parse_robustbench_spec(rest: str) -> tuple[str, str, str]:
    """``"Name@cifar10/Linf"`` -> ``("Name", "cifar10", "Linf")``; dataset and threat default to cifar10/Linf."""
    name, _, where = rest.partition("@")
    dataset, threat = "cifar10", "Linf"
    if where:
        dataset, _, threat = where.partition("/")
        threat = threat or "Linf"
    if not name:
        raise ValueError("robustbench:<name>[@dataset/threat] needs a model name")
    if dataset not in DATASETS:
        raise ValueError(f"robustbench dataset must be one of {', '.join(DATASETS)}, got '{dataset}'")
    if threat not in THREATS:
        raise ValueError(f"robustbench threat model must be one of {', '.join(THREATS)}, got '{threat}'")
    return name, dataset, threat


def weight_paths(name: str, dataset: str, threat: str, model_dir: str | Path) -> list[Path]:
    """Where RobustBench's ``load_model`` expects the weights of ``name`` (one file, or one per member
    of an ensemble)."""
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)]
    if name not in zoo:
        close = sorted(k for k in zoo if k[:4].lower() == name[:4].lower())[:5]
        raise ValueError(f"'{name}' is not in RobustBench's {dataset}/{threat} zoo ({len(zoo)} models"
                         f"{'; similar: ' + ', '.join(close) if close else ''})")
    base = Path(model_dir) / dataset / threat / f"{name}.pt"
    ids = zoo[name].get("gdrive_id")
    if isinstance(ids, list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(ids))]
    return [base]


@contextlib.contextmanager
def _weights_only_load() -> Iterator[None]:
    """Make RobustBench's own ``torch.load`` calls refuse pickled code."""
    original = torch.load
    torch.load = functools.partial(original, weights_only=True)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.load = original  # type: ignore[assignment]


def load_robustbench(rest: str, model_dir: str | Path = "models", download: bool = False, **_: Any) -> nn.Module:
    """The RobustBench model ``rest`` (``Name[@dataset/threat]``) in eval mode; it takes [0, 1] input."""
    name, dataset, threat = parse_robustbench_spec(rest)
    paths = weight_paths(name, dataset, threat, model_dir)
    missing = [p for p in paths if not p.is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"RobustBench weights for {name} are not in {missing[0]}: put the file there (RobustBench's "
            f"model_dir layout <model_dir>/{dataset}/{threat}/{name}.pt), set model.model_dir to where it is, "
            "or pass download=True where the network allows")
    rb = import_robustbench()
    try:
        with _weights_only_load():
            model: nn.Module = rb.load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat)
    except pickle.UnpicklingError:
        raise CheckpointError(f"RobustBench weights {paths[0]} contain pickled objects other than weights; "
                              "refusing to unpickle them") from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"RobustBench weights {paths[0]} do not fit {name}: {first}") from None
    setattr(model, "spec", f"robustbench:{name}@{dataset}/{threat}")  # noqa: B010 - a plain attribute
    if dataset == "imagenet":
        for key, value in imagenet_preprocessing(name, threat).items():
            setattr(model, key, value)
    return model.eval()


#: RobustBench's ImageNet preprocessings (``robustbench.data.PREPROCESSINGS``): the size the model
#: takes, the interpolation of the resize before the centre crop (None: no resize) and crop / resize.
_RB_PREPROCESSINGS: dict[str, tuple[int, str | None, float | None]] = {
    "Res256Crop224": (224, "bilinear", 224 / 256),
    "BicubicRes256Crop224": (224, "bicubic", 224 / 256),
    "Res224": (224, "bilinear", 1.0),
    "Crop288": (288, None, None),
}


def imagenet_preprocessing(name: str, threat: str) -> dict[str, object]:
    """How RobustBench prepares ImageNet images for ``name`` (metadata; the model normalises inside):
    ``preprocessing`` (RobustBench's name), ``input_size`` (C, H, W), ``interpolation``, ``crop_pct``.
    The data pipeline must produce images of ``input_size``; the model does not resize."""
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    entry = model_dicts[BenchmarkDataset("imagenet")][ThreatModel(threat)].get(name, {})
    prep = entry.get("preprocessing")
    if isinstance(prep, str) and prep in _RB_PREPROCESSINGS:
        size, interp, crop = _RB_PREPROCESSINGS[prep]
        return {"preprocessing": prep, "input_size": (3, size, size), "interpolation": interp, "crop_pct": crop}
    import timm
    from timm.models import get_pretrained_cfg

    timm_name = f"{name.lower().replace('-', '_')}_imagenet_{threat.lower()}"
    cfg = get_pretrained_cfg(timm_name) if timm.is_model(timm_name) else None
    if cfg is None:
        return {"preprocessing": prep}
    return {"preprocessing": f"timm:{timm_name}", "input_size": tuple(int(v) for v in cfg.input_size),
            "interpolation": cfg.interpolation, "crop_pct": cfg.crop_pct}
