"""Fashion-MNIST (28x28 grey, 10 classes): Debian's IDX files, torchvision's layout, or a download."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .arrays import DatasetInfo
from .errors import DatasetNotFoundError
from .idx import read_idx

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
INFO = DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), CLASSES)
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
HOW_TO_GET = ("Install it with `apt-get install -y dataset-fashion-mnist` (Debian), or set data.download=true "
              "where the network allows (torchvision downloads it under data.root).")


def candidate_dirs(root: str | Path) -> list[Path]:
    r = Path(root)
    return [r / "fashion-mnist", r / "FashionMNIST" / "raw", r, DEBIAN_DIR]


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(root: str | Path, train: bool, download: bool = False) -> tuple[Tensor, Tensor]:
    """``(images uint8 (N, 1, 28, 28), labels int64)`` of the train or test split."""
    img_stem, lbl_stem = _FILES[train]
    tried = candidate_dirs(root)
    for folder in tried:
        img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
        if img_path and lbl_path:
            images = torch.from_numpy(read_idx(img_path).copy()).unsqueeze(1)
            labels = torch.from_numpy(read_idx(lbl_path).astype("int64"))
            return images, labels
    if download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=train, download=True)
        return load_fashion_mnist(root, train, download=False)
    raise DatasetNotFoundError("fashion_mnist", tried, HOW_TO_GET)
