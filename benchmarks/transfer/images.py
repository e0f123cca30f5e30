"""The benchmark's images: a class-balanced, deterministic slice of the CIFAR-10 (JPEG copy) test split,
and the fixed target classes of the targeted attacks."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .store import settings_key


@dataclass
class Images:
    x: Tensor          # (N, 3, 32, 32) float32 in [0, 1]
    y: Tensor          # (N,) int64
    index: Tensor      # (N,) positions in the loaded test split
    source: str        # where the images came from
    rule: str          # how they were chosen

    def first(self, k: int) -> Images:
        """The first ``k`` images (all if fewer), same source and rule."""
        return Images(self.x[:k], self.y[:k], self.index[:k], self.source, self.rule)

    def identity(self) -> dict[str, Any]:
        """What the cache keys hold about the images: the rule, a hash of indices and labels, and a hash
        of the pixels themselves (never the path they were read from, which differs between machines)."""
        pixels = (self.x * 255).round().clamp(0, 255).to(torch.uint8).contiguous().numpy().tobytes()
        return {"rule": self.rule, "n": int(self.y.numel()),
                "sha": settings_key([self.index.tolist(), self.y.tolist()])[:32],
                "pixels_sha256": hashlib.sha256(pixels).hexdigest()}


BALANCED_RULE = ("class-balanced: the k-th image of every class in the official test order, k = 0, 1, ..., "
                 "interleaved by class (airplane, automobile, ...) and cut at N")


def balanced_indices(labels: Tensor, n: int) -> Tensor:
    """The first ``n`` of: image 0 of class 0, image 0 of class 1, ..., image 1 of class 0, ...
    (within a class, the split's own order)."""
    classes = sorted(int(c) for c in labels.unique())
    per = [torch.nonzero(labels == c).flatten() for c in classes]
    order: list[int] = []
    depth = max(len(p) for p in per)
    for k in range(depth):
        for p in per:
            if k < len(p):
                order.append(int(p[k]))
            if len(order) == n:
                return torch.tensor(order, dtype=torch.int64)
    return torch.tensor(order, dtype=torch.int64)


HELDOUT_RULE = ("held out: every test image outside the benchmark's class-balanced N (the benchmark never "
                "attacks them), in the official test order")


def load_heldout_images(n_benchmark: int, root: str = "data") -> Images:
    """The CIFAR-10 test images the benchmark does not use: all but its ``n_benchmark`` class-balanced
    ones (9,000 of 10,000 for the full benchmark's 1,000); where the zoo's accuracy floors are measured."""
    from tpa_lightning.data.cifar10 import load_cifar10

    images, labels, source = load_cifar10(root, train=False)
    used = balanced_indices(labels, n_benchmark)
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[used] = False
    idx = torch.nonzero(keep).flatten()
    return Images(images[idx].float() / 255.0, labels[idx].clone(), idx, source, HELDOUT_RULE)


def load_test_images(n: int, root: str = "data") -> Images:
    """``n`` class-balanced CIFAR-10 test images (the JPEG copy unless torchvision's files are in ``root``)."""
    from tpa_lightning.data.cifar10 import load_cifar10

    images, labels, source = load_cifar10(root, train=False)
    if n < 1 or n > labels.numel():
        raise ValueError(f"images must be in [1, {labels.numel()}], got {n}")
    idx = balanced_indices(labels, n)
    return Images(images[idx].float() / 255.0, labels[idx].clone(), idx, source, BALANCED_RULE)


def target_classes(y: Tensor, index: Tensor, num_classes: int, seed: int) -> Tensor:
    """Target class per image: ``(y + r) mod C``, r uniform in 1..C-1 (so never ``y``), drawn from
    ``seed`` once for every position of the split, so an image's target does not depend on N."""
    g = torch.Generator().manual_seed(int(seed))
    size = max(10_000, int(index.max()) + 1 if index.numel() else 0)
    r = torch.randint(1, num_classes, (size,), generator=g)[index]
    return (y + r) % num_classes
