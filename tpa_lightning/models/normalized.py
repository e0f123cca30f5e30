"""A classifier with its input normalisation inside: the model takes images in [0, 1]."""
from __future__ import annotations

from collections.abc import Sequence

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
