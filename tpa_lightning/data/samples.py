"""The 20 exact test images per dataset that ship inside ``foolbox==3.3.4`` (label in the file name).

Install with ``pip install --no-deps foolbox==3.3.4`` (done by scripts/setup.sh). The files are read
directly; foolbox itself is never imported (its import needs eagerpy).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .image_folder import load_image

FOOLBOX_DATASETS = ("cifar10", "cifar100", "mnist", "fashionMNIST", "imagenet")


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the foolbox sample images need: pip install --no-deps foolbox==3.3.4")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def foolbox_samples(dataset: str = "cifar10", n: int = 20, image_size: int | None = None) -> tuple[Tensor, Tensor]:
    """``(x, y)``: up to 20 images in [0, 1] (NCHW float32) and their labels (int64).

    Args:
        dataset: one of :data:`FOOLBOX_DATASETS`. n: how many (1 to 20), in file order.
        image_size: resize each image so its shorter side is ``round(image_size * 256 / 224)`` and
            centre-crop it to ``image_size`` (as ``data.name=image_folder`` does); None keeps the files'
            own size, which needs them to agree (the ImageNet set has one 1024x683 image among 512x512
            ones: pass ``image_size``, e.g. 224).

    Raises:
        ValueError: unknown ``dataset``, ``n`` out of range, or images of different sizes without
            ``image_size``.
        FileNotFoundError: foolbox 3.3.4 (its data folder) is not installed.
    """
    if dataset not in FOOLBOX_DATASETS:
        raise ValueError(f"unknown foolbox sample set '{dataset}'; known: {FOOLBOX_DATASETS}")
    if not 1 <= n <= 20:
        raise ValueError(f"n must be in [1, 20], got {n}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    folder = foolbox_data_dir()
    files = sorted(p for p in folder.iterdir() if p.name.startswith(f"{dataset}_"))
    if len(files) < 20:
        raise FileNotFoundError(f"expected 20 '{dataset}_*' images in {folder}, found {len(files)}")
    resize = None if image_size is None else round(image_size * 256 / 224)
    images, labels = [], []
    for p in files[:n]:
        channels = 1 if Image.open(p).mode in ("L", "1") else 3
        images.append(load_image(p, channels, resize, image_size).float() / 255.0)
        labels.append(int(p.stem.split("_")[-1]))
    sizes = sorted({tuple(x.shape[1:]) for x in images})
    if len(sizes) > 1:
        raise ValueError(f"the '{dataset}' sample images have different sizes {sizes}: pass image_size "
                         "(e.g. image_size=224) to resize and centre-crop them")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
