"""The 20 exact test images per dataset that ship inside ``foolbox==3.3.4`` (label in the file name).

Install with ``pip install --no-deps foolbox==3.3.4`` (done by scripts/setup.sh). The files are read
directly; foolbox itself is never imported (its import needs eagerpy).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

FOOLBOX_DATASETS = ("cifar10", "cifar100", "mnist", "fashionMNIST", "imagenet")


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the foolbox sample images need: pip install --no-deps foolbox==3.3.4")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def foolbox_samples(dataset: str = "cifar10", n: int = 20) -> tuple[Tensor, Tensor]:
    """``(x, y)``: up to 20 images in [0, 1] (NCHW float32) and their labels (int64)."""
    if dataset not in FOOLBOX_DATASETS:
        raise ValueError(f"unknown foolbox sample set '{dataset}'; known: {FOOLBOX_DATASETS}")
    if not 1 <= n <= 20:
        raise ValueError(f"n must be in [1, 20], got {n}")
    folder = foolbox_data_dir()
    files = sorted(p for p in folder.iterdir() if p.name.startswith(f"{dataset}_"))
    if len(files) < 20:
        raise FileNotFoundError(f"expected 20 '{dataset}_*' images in {folder}, found {len(files)}")
    images, labels = [], []
    for p in files[:n]:
        arr = np.asarray(Image.open(p), dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        images.append(torch.from_numpy(arr.copy()))
        labels.append(int(p.stem.split("_")[-1]))
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
