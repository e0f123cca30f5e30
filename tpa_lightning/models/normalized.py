"""A classifier with its input normalisation inside: the model takes images in [0, 1]."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


class NormalizedClassifier(nn.Module):
    """``net((x - mean) / std)`` for ``x`` in [0, 1], NCHW; returns logits.

    ``mean`` and ``std`` are per channel (one value per input channel, or one value for all); with
    both ``None`` the input goes to ``net`` unchanged. They are buffers, so they follow ``.to(device)``
    and are saved with the weights. The wrapped network is ``.net``.
    """

    mean: Tensor | None
    std: Tensor | None

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, in_chans: int | None = None) -> None:
        super().__init__()
        self.net = net
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std for the normalisation, or neither")
        if mean is None or std is None:
            self.register_buffer("mean", None)
            self.register_buffer("std", None)
            return
        m = torch.as_tensor(list(mean), dtype=torch.float32).flatten()
        s = torch.as_tensor(list(std), dtype=torch.float32).flatten()
        if m.numel() != s.numel():
            raise ValueError(f"mean has {m.numel()} values but std has {s.numel()}")
        if in_chans is not None and m.numel() not in (1, in_chans):
            raise ValueError(f"mean/std need 1 or {in_chans} values (one per input channel), got {m.numel()}")
        if bool((s <= 0).any()) or not bool(torch.isfinite(s).all() and torch.isfinite(m).all()):
            raise ValueError(f"std must be finite and > 0 and mean finite, got mean={list(mean)}, std={list(std)}")
        self.register_buffer("mean", m.view(1, -1, 1, 1))
        self.register_buffer("std", s.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.mean is not None and self.std is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: Tensor = self.net(x)
        return out


class PretrainedClassifier(NormalizedClassifier):
    """A pretrained network (``timm:``/``torchvision:`` with local weights) with the normalisation it
    was trained with inside: it takes images in [0, 1], NCHW.

    The model does **not** resize its input: images must already have the size it was trained at,
    ``input_size`` (C, H, W), made by the data pipeline (``data.image_size``; ``interpolation`` and
    ``crop_pct`` say how the network's authors resized and cropped). :func:`check_input_size` checks
    a size against it. :meth:`describe` gives all of it as a dict.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                 input_size: Sequence[int], interpolation: str | None = None, crop_pct: float | None = None,
                 spec: str | None = None, weights: str | None = None) -> None:
        super().__init__(net, mean, std, in_chans=int(input_size[0]))
        self.input_size: tuple[int, ...] = tuple(int(v) for v in input_size)
        self.interpolation = interpolation
        self.crop_pct = crop_pct
        self.spec = spec
        self.weights = weights

    def describe(self) -> dict[str, Any]:
        """Spec, weight file and preprocessing (mean, std, input size, interpolation, crop_pct)."""
        assert self.mean is not None and self.std is not None
        return {"spec": self.spec, "weights": self.weights,
                "mean": [round(float(v), 6) for v in self.mean.flatten()],
                "std": [round(float(v), 6) for v in self.std.flatten()],
                "input_size": list(self.input_size), "interpolation": self.interpolation,
                "crop_pct": self.crop_pct}


def expected_input_size(model: nn.Module) -> tuple[int, int] | None:
    """(H, W) the model was trained at (its ``input_size`` attribute, (C, H, W)), or None if it
    does not say."""
    size = getattr(model, "input_size", None)
    if size is None:
        return None
    size = tuple(int(v) for v in size)
    return (size[-2], size[-1]) if len(size) >= 2 else (size[0], size[0])


def check_input_size(model: nn.Module, height: int, width: int | None = None) -> None:
    """Raise ValueError if ``model`` declares an ``input_size`` other than ``height`` x ``width``.

    Pretrained models do not resize their input, so evaluating them at another size silently
    changes what they compute; the data pipeline must resize (``data.image_size``).
    """
    want = expected_input_size(model)
    width = height if width is None else width
    if want is None or want == (int(height), int(width)):
        return
    name = getattr(model, "spec", None) or type(model).__name__
    how = getattr(model, "interpolation", None)
    raise ValueError(f"{name} expects {want[0]}x{want[1]} images{f' (resized with {how} interpolation)' if how else ''}, "
                     f"got {height}x{width}; the model does not resize its input: set data.image_size={want[0]}")
