"""Image folders (``root/<class>/<image>`` or a flat folder with a labels CSV): ImageNet-style sets.

How the labels are read (WordNet-id folders, class-index folders, a labels CSV or sorted class
names) is decided by :func:`tpa_lightning.data.imagenet_labels.scan_labelled_images`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .imagenet_labels import scan_labelled_images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".JPEG")


def scan_class_folders(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``([(file, class index)], class names)``; classes are the sorted sub-folder names."""
    r = Path(root)
    classes = sorted(d.name for d in r.iterdir() if d.is_dir()) if r.is_dir() else []
    samples = [(f, i) for i, c in enumerate(classes) for f in sorted((r / c).iterdir())
               if f.suffix in IMAGE_SUFFIXES]
    if not samples:
        raise FileNotFoundError(f"no images in class sub-folders of {r}")
    return samples, classes


def load_image(path: Path, channels: int, size: int | None, crop: int | None) -> Tensor:
    """A uint8 (C, H, W) image: resized so its shorter side is ``size``, centre-cropped to ``crop``."""
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    if size is not None:
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    if crop is not None:
        w, h = img.size
        left, top = (w - crop) // 2, (h - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())


class ImageFolderDataset(Dataset[tuple[Tensor, Tensor]]):
    """Lazily decoded images as float [0, 1] tensors of one size (``crop``), labelled per the layout.

    ``classes``, ``num_classes`` and ``layout`` (``wnid``, ``index``, ``csv`` or ``class_names``) say
    how the labels were read; ``labels_csv`` / ``labels_offset`` select the flat-folder-plus-CSV layout.
    """

    def __init__(self, root: str | Path, image_size: int = 224, resize: int | None = None,
                 channels: int = 3, labels_csv: str | Path | None = None, labels_offset: int = 0) -> None:
        found = scan_labelled_images(root, labels_csv, labels_offset)
        self.samples, self.classes = found.samples, found.classes
        self.num_classes, self.layout = found.num_classes, found.layout
        self.crop = image_size
        self.resize = resize if resize is not None else round(image_size * 256 / 224)
        self.channels = channels
        self.labels = torch.tensor([c for _, c in self.samples], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, _label = self.samples[index]
        img = load_image(path, self.channels, self.resize, self.crop)
        return img.to(torch.float32).div_(255.0), self.labels[index]
