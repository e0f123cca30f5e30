"""``RobustDataModule``: one LightningDataModule for every dataset of the toolkit."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from . import cifar10, fashion_mnist
from .arrays import ArrayImageDataset, DatasetInfo
from .image_folder import ImageFolderDataset

DATASETS = ("fashion_mnist", "cifar10", "image_folder")


def deterministic_subset(n_total: int, limit: int | None, seed: int) -> Tensor:
    """The first ``limit`` indices of a fixed permutation of ``range(n_total)`` (all when None)."""
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm if limit is None else perm[: min(limit, n_total)]


class RobustDataModule(L.LightningDataModule):
    """Train / validation / test loaders with images in [0, 1], NCHW.

    Args:
        name: ``fashion_mnist``, ``cifar10`` or ``image_folder``.
        root: where to look for (and download to) the data.
        batch_size: per process.
        num_workers: DataLoader workers.
        augment: random crop (pad 4 for CIFAR, 2 for Fashion-MNIST) and, for CIFAR, horizontal flip.
        cutout: with ``augment``, side in pixels of a random square set to 0 (DeVries & Taylor 2017;
            16 is their CIFAR-10 value); 0 (default) turns it off. Not for ``image_folder``.
        limit_train, limit_test: use a fixed subset of this many images (None: all).
        val_size: images held out of the training set for validation (a fixed split, by ``seed``).
        seed: fixes the validation split and the subsets; not the training shuffle.
        jpeg_dir: folder of the CIFAR-10 JPEG copy's tar.gz files (optional).
        image_size: for ``image_folder``: the centre-crop size (default 224).
        labels_csv: for ``image_folder``: a ``filename,label`` CSV labelling the flat folder ``root``
            (see :mod:`tpa_lightning.data.imagenet_labels` for every label layout).
        labels_offset: subtracted from the CSV's labels (1 for 1-based files).
        download: allow torchvision to download where the network allows.
    """

    def __init__(self, name: str = "fashion_mnist", root: str = "data", batch_size: int = 128,
                 num_workers: int = 0, augment: bool = False, limit_train: int | None = None,
                 limit_test: int | None = None, val_size: int = 1000, seed: int = 0,
                 jpeg_dir: str | None = None, image_size: int | None = None, download: bool = False,
                 eval_batch_size: int | None = None, cutout: int = 0, labels_csv: str | None = None,
                 labels_offset: int = 0) -> None:
        super().__init__()
        if name not in DATASETS:
            raise ValueError(f"unknown dataset '{name}'; known: {list(DATASETS)}")
        for key, value in (("batch_size", batch_size), ("limit_train", limit_train),
                           ("limit_test", limit_test)):
            if value is not None and value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
        if val_size < 0:
            raise ValueError(f"data.val_size must be >= 0, got {val_size}")
        if cutout < 0 or (cutout > 0 and name == "image_folder"):
            raise ValueError(f"data.cutout must be >= 0 and is for fashion_mnist or cifar10 only, got {cutout}")
        self.cutout = cutout
        if (labels_csv is not None or labels_offset) and name != "image_folder":
            raise ValueError(f"data.labels_csv and data.labels_offset are for image_folder only, not {name}")
        if labels_offset < 0 or (labels_offset and labels_csv is None):
            raise ValueError(f"data.labels_offset must be >= 0 and needs data.labels_csv, got {labels_offset}")
        self.labels_csv, self.labels_offset = labels_csv, labels_offset
        self.label_layout: tuple[int, tuple[str, ...], str] | None = None   # (num_classes, classes, layout)
        self.name, self.root, self.batch_size = name, root, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.augment = num_workers, augment
        self.limit_train, self.limit_test, self.val_size, self.seed = limit_train, limit_test, val_size, seed
        self.jpeg_dir, self.image_size, self.download = jpeg_dir, image_size, download
        self.source = ""
        self.train_set: Dataset[Any] | None = None
        self.val_set: Dataset[Any] | None = None
        self.test_set: Dataset[Any] | None = None

    @property
    def info(self) -> DatasetInfo:
        if self.name == "fashion_mnist":
            return fashion_mnist.INFO
        if self.name == "cifar10":
            return cifar10.INFO
        size = self.image_size or 224
        num_classes: int = 1000                # before setup(): ImageNet's count
        classes: tuple[str, ...] = ()
        if self.label_layout is not None:      # after: what the folder's layout says (imagenet_labels)
            num_classes, classes, _ = self.label_layout
        return DatasetInfo("image_folder", num_classes, 3, size, (0.485, 0.456, 0.406),
                           (0.229, 0.224, 0.225), classes)

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        if self.name == "fashion_mnist":
            x, y = fashion_mnist.load_fashion_mnist(self.root, train, self.download)
            self.source = f"Fashion-MNIST ({'train' if train else 'test'})"
            return x, y
        x, y, self.source = cifar10.load_cifar10(self.root, train, self.jpeg_dir, self.download)
        return x, y

    def setup(self, stage: str | None = None) -> None:
        if self.name == "image_folder":
            self._setup_image_folder()
            return
        pad = 4 if self.name == "cifar10" else 2
        flip = self.name == "cifar10"
        if stage in (None, "fit", "validate") and self.train_set is None:
            x, y = self._load(train=True)
            full = ArrayImageDataset(x, y, augment=False, pad=pad, flip=flip, cutout=self.cutout)
            perm = deterministic_subset(len(full), None, self.seed)
            val_idx, train_idx = perm[: self.val_size], perm[self.val_size:]
            if self.limit_train is not None:
                train_idx = train_idx[: self.limit_train]
            self.train_set = full.subset(train_idx, augment=self.augment)
            self.val_set = full.subset(val_idx[: self.limit_test] if self.limit_test else val_idx, augment=False)
        if stage in (None, "test", "predict") and self.test_set is None:
            x, y = self._load(train=False)
            full = ArrayImageDataset(x, y)
            self.test_set = full.subset(deterministic_subset(len(full), self.limit_test, self.seed))

    def _setup_image_folder(self) -> None:
        root = Path(self.root)
        size = self.image_size or 224
        if self.labels_csv is not None:        # a flat folder labelled by a CSV: root itself, no training split
            train_dir, test_dir = None, root
        else:
            train_dir = root / "train" if (root / "train").is_dir() else None
            test_dir = (root / "val" if (root / "val").is_dir() else root / "test" if (root / "test").is_dir()
                        else root)
        test = ImageFolderDataset(test_dir, image_size=size, labels_csv=self.labels_csv,
                                  labels_offset=self.labels_offset)
        self.label_layout = (test.num_classes, tuple(test.classes), test.layout)
        self.source = f"image folder {test_dir} (labels: {test.layout})"
        self.test_set = Subset(test, deterministic_subset(len(test), self.limit_test, self.seed).tolist())
        self.test_set.classes = test.classes  # type: ignore[attr-defined]
        if train_dir is not None:
            train = ImageFolderDataset(train_dir, image_size=size)
            if (train.num_classes, train.classes) != (test.num_classes, test.classes):
                raise ValueError(f"the class folders of {train_dir} ({train.layout}, {train.num_classes} classes) "
                                 f"and {test_dir} ({test.layout}, {test.num_classes} classes) do not match")
            perm = deterministic_subset(len(train), None, self.seed)
            val_idx, train_idx = perm[: self.val_size], perm[self.val_size:]
            if self.limit_train is not None:
                train_idx = train_idx[: self.limit_train]
            self.train_set, self.val_set = Subset(train, train_idx.tolist()), Subset(train, val_idx.tolist())
        else:
            self.val_set = self.test_set

    def _loader(self, ds: Dataset[Any] | None, shuffle: bool, batch_size: int) -> DataLoader[Any]:
        if ds is None:
            raise RuntimeError("call setup() before asking for a data loader")
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.val_set, False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.test_set, False, self.eval_batch_size)
