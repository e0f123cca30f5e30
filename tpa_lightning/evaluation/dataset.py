"""A test set whose items carry their index, so each batch knows which images (and chunk) it holds."""
from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class Indexed(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """Items ``(image, label, index)`` of ``base`` (whose items are ``(image, label)``)."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        x, y = self.base[i]
        return x, torch.as_tensor(y, dtype=torch.int64), torch.tensor(i, dtype=torch.int64)


class TensorImages(Dataset[tuple[Tensor, Tensor]]):
    """Images and labels already in memory (e.g. the foolbox samples), [0, 1] NCHW."""

    def __init__(self, x: Tensor, y: Tensor, name: str = "tensors") -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} images but {y.shape[0]} labels")
        self.x, self.y, self.name = x.float(), y.long(), name

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]


def fingerprint(ds: Any, limit: int = 100_000) -> dict[str, Any]:
    """Identity of a test set: count, sha256 over its images and labels (up to ``limit`` items)."""
    h = hashlib.sha256()
    n = len(ds)
    shape = None
    labels: dict[int, int] = {}
    for i in range(min(n, limit)):
        x, y = ds[i]
        t = torch.as_tensor(x)
        shape = list(t.shape)
        h.update((t.float() * 255).round().to(torch.uint8).numpy().tobytes())
        yi = int(y)
        h.update(yi.to_bytes(4, "little"))
        labels[yi] = labels.get(yi, 0) + 1
    return {"images": n, "image_shape": shape, "sha256": h.hexdigest(),
            "label_counts": {str(k): labels[k] for k in sorted(labels)}}
