"""CIFAR-10 (32x32 RGB, 10 classes) from torchvision's files, a class-per-folder tree, or the
JPEG tar.gz copy in ``shared/data/cifar10-jpeg`` (decoded once into a cache)."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .arrays import DatasetInfo
from .errors import DatasetNotFoundError
from .image_folder import load_image, scan_class_folders

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
INFO = DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CLASSES)
REPO_ROOT = Path(__file__).resolve().parents[2]
HOW_TO_GET = ("Point data.root at torchvision's CIFAR-10 files or a class-per-folder tree, set "
              "data.jpeg_dir (or TPA_CIFAR10_JPEG) to the folder holding train.tar.gz/test.tar.gz, or set "
              "data.download=true where the network allows.")

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches while refusing any global but numpy's array rebuilders."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _read_python_batches(folder: Path, train: bool) -> tuple[Tensor, Tensor]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as fh:
            entry = _ArraysOnlyUnpickler(fh, encoding="latin1").load()
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _read_binary_batches(folder: Path, train: bool) -> tuple[Tensor, Tensor]:
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(folder / n, dtype=np.uint8).reshape(-1, 3073) for n in names])
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


def _read_folder_tree(folder: Path) -> tuple[Tensor, Tensor]:
    samples, classes = scan_class_folders(folder)
    if sorted(classes) != sorted(CLASSES):
        raise ValueError(f"{folder}: class folders {classes} are not CIFAR-10's {list(CLASSES)}")
    order = {c: i for i, c in enumerate(CLASSES)}
    images = torch.stack([load_image(p, 3, None, None) for p, _ in samples])
    labels = torch.tensor([order[classes[c]] for _, c in samples], dtype=torch.int64)
    return images, labels


def decode_jpeg_tar(tar_path: Path) -> tuple[Tensor, Tensor]:
    """Decode ``<split>/<class>/NNNN.jpg`` members of a tar.gz in place, in (class, file) order."""
    order = {c: i for i, c in enumerate(CLASSES)}
    items: list[tuple[int, str, np.ndarray]] = []
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-2] not in order:
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            arr = np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"), dtype=np.uint8)
            items.append((order[parts[-2]], parts[-1], arr.transpose(2, 0, 1)))
    if not items:
        raise ValueError(f"{tar_path} holds no <split>/<class>/<image> members of CIFAR-10's classes")
    items.sort(key=lambda t: (t[0], t[1]))
    images = torch.from_numpy(np.stack([a for _, _, a in items]))
    labels = torch.tensor([c for c, _, _ in items], dtype=torch.int64)
    return images, labels


def default_cache_dir() -> Path:
    return Path(os.environ.get("TPA_CACHE_DIR", Path.home() / ".cache" / "tpa_lightning"))


def load_jpeg_copy(jpeg_dir: Path, train: bool, cache_dir: Path | None = None) -> tuple[Tensor, Tensor]:
    """The JPEG copy's split, decoded once and cached as an ``.npz`` of uint8 arrays (no pickle)."""
    tar_path = jpeg_dir / ("train.tar.gz" if train else "test.tar.gz")
    stat = tar_path.stat()
    cache = (cache_dir or default_cache_dir()) / f"cifar10-jpeg-{tar_path.stem.split('.')[0]}-{stat.st_size}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            return torch.from_numpy(npz["images"]), torch.from_numpy(npz["labels"])
    images, labels = decode_jpeg_tar(tar_path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")   # processes decoding at once never share a file
    np.savez(tmp, images=images.numpy(), labels=labels.numpy())
    tmp.replace(cache)
    return images, labels


def jpeg_dir_candidates(root: str | Path, jpeg_dir: str | Path | None) -> list[Path]:
    out = [Path(jpeg_dir)] if jpeg_dir else []
    if os.environ.get("TPA_CIFAR10_JPEG"):
        out.append(Path(os.environ["TPA_CIFAR10_JPEG"]))
    out += [Path(root) / "cifar10-jpeg", REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg"]
    return out


def load_cifar10(root: str | Path, train: bool, jpeg_dir: str | Path | None = None, download: bool = False,
                 cache_dir: Path | None = None) -> tuple[Tensor, Tensor, str]:
    """``(images uint8 (N, 3, 32, 32), labels, source description)``; sources tried in order:
    torchvision's python or binary batches under ``root``, a class-per-folder tree
    (``root/cifar10/<split>`` or ``root/<split>``), the JPEG tar.gz copy, then a download."""
    r = Path(root)
    split = "train" if train else "test"
    tried: list[Path] = []
    py_dir, bin_dir = r / "cifar-10-batches-py", r / "cifar-10-batches-bin"
    tried += [py_dir, bin_dir]
    if py_dir.is_dir():
        return (*_read_python_batches(py_dir, train), f"torchvision CIFAR-10 files in {py_dir}")
    if bin_dir.is_dir():
        return (*_read_binary_batches(bin_dir, train), f"CIFAR-10 binary files in {bin_dir}")
    for folder in (r / "cifar10" / split, r / split):
        tried.append(folder)
        if folder.is_dir() and any((folder / c).is_dir() for c in CLASSES):
            return (*_read_folder_tree(folder), f"class-per-folder tree {folder}")
    for d in jpeg_dir_candidates(root, jpeg_dir):
        tried.append(d / f"{split}.tar.gz")
        if (d / f"{split}.tar.gz").is_file():
            images, labels = load_jpeg_copy(d, train, cache_dir)
            return images, labels, f"CIFAR-10 (JPEG copy) {d / f'{split}.tar.gz'}"
    if download:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(r), train=train, download=True)
        return (*_read_python_batches(py_dir, train), f"torchvision CIFAR-10 files in {py_dir}")
    raise DatasetNotFoundError("cifar10", tried, HOW_TO_GET)
