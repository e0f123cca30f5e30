"""In-memory image datasets: uint8 NCHW arrays that yield float [0, 1] tensors."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: classes, channels, size, normalisation."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = field(default=())


class ArrayImageDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images held as a uint8 tensor (N, C, H, W); items are (float image in [0, 1], int64 label).

    ``augment=True`` applies a random crop (zero padding ``pad`` pixels), when ``flip`` is set a
    random horizontal flip, and when ``cutout`` > 0 a cutout (DeVries & Taylor 2017): a ``cutout`` x
    ``cutout`` pixel square, centred anywhere in the image and clipped at its border, set to 0. All
    draws come from torch's global RNG (seeded per worker by Lightning).
    """

    def __init__(self, images: Tensor, labels: Tensor, augment: bool = False, pad: int = 4,
                 flip: bool = True, cutout: int = 0) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.augment = augment
        self.pad = pad
        self.flip = flip
        if cutout < 0:
            raise ValueError(f"cutout must be >= 0 pixels, got {cutout}")
        self.cutout = cutout

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        img = self.images[index].to(torch.float32).div_(255.0)
        if self.augment:
            img = self._augment(img)
        return img, self.labels[index]

    def _augment(self, img: Tensor) -> Tensor:
        _, h, w = img.shape
        if self.pad > 0:
            padded = torch.nn.functional.pad(img, (self.pad,) * 4)
            top, left = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
            img = padded[:, top:top + h, left:left + w]
        if self.flip and bool(torch.rand(()) < 0.5):
            img = img.flip(-1)
        if self.cutout > 0:
            cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
            img = cutout(img, self.cutout, cy, cx)
        return img

    def subset(self, indices: Sequence[int] | Tensor, augment: bool | None = None) -> ArrayImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayImageDataset(self.images[idx], self.labels[idx],
                                 self.augment if augment is None else augment, self.pad, self.flip,
                                 self.cutout)


def cutout(img: Tensor, size: int, cy: int, cx: int) -> Tensor:
    """A copy of ``img`` (C, H, W) with the ``size`` x ``size`` square centred at row ``cy``, column
    ``cx`` (top-left corner ``cy - size // 2``, ``cx - size // 2``) set to 0, clipped at the border."""
    _, h, w = img.shape
    top, left = max(0, cy - size // 2), max(0, cx - size // 2)
    bottom, right = min(h, cy - size // 2 + size), min(w, cx - size // 2 + size)
    out = img.clone()
    out[:, top:bottom, left:right] = 0.0
    return out
