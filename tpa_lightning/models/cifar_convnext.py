"""``cifar_convnext``: a ConvNeXt for 32x32 images (Liu et al. 2022).

A patchify stem (2x2 conv, stride 2, then LayerNorm: 32x32 becomes 16x16), four stages of ConvNeXt
blocks separated by downsampling layers (LayerNorm, 2x2 conv, stride 2: 16, 8, 4, 2 pixels), global
average pooling, LayerNorm and a linear head. A block: 7x7 depthwise conv, LayerNorm, Linear to 4x
channels, GELU, Linear back, per-channel layer scale, residual add (no stochastic depth). ``width``
is the first stage's channel count; the stages use width, 2, 4, 8 times it (ConvNeXt-T: 96).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: Tensor) -> Tensor:
        out = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, layer_scale_init: float, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, x: Tensor) -> Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)      # NHWC for LayerNorm and the MLP
        out = self.fc2(F.gelu(self.fc1(self.norm(out)))) * self.gamma
        return x + out.permute(0, 3, 1, 2)


class CifarConvNeXt(nn.Module):
    """Children ``stem``, ``stages`` (blocks, with a downsampling layer in front of stages 2..4),
    ``norm`` and ``head``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        if min(num_classes, in_chans, width) < 1:
            raise ValueError("cifar_convnext needs num_classes, in_chans and width >= 1")
        if not 1 <= len(depths) <= 4 or min(depths) < 1:
            raise ValueError(f"cifar_convnext: depths must be 1 to 4 stage depths, each >= 1, got {depths}")
        if layer_scale_init <= 0:
            raise ValueError(f"cifar_convnext: layer_scale_init must be > 0, got {layer_scale_init}")
        dims = [width * 2 ** i for i in range(len(depths))]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 2, stride=2), LayerNorm2d(dims[0], eps=1e-6))
        stages: list[nn.Module] = []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down: list[nn.Module] = [] if i == 0 else [LayerNorm2d(dims[i - 1], eps=1e-6),
                                                       nn.Conv2d(dims[i - 1], dim, 2, stride=2)]
            stages.append(nn.Sequential(*down, *(ConvNeXtBlock(dim, layer_scale_init) for _ in range(depth))))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stages(self.stem(x)).mean(dim=(2, 3))
        logits: Tensor = self.head(self.norm(out))
        return logits


def cifar_convnext(num_classes: int = 10, in_chans: int = 3, width: int = 96,
                   depths: Sequence[int] = (2, 2, 6, 2), layer_scale_init: float = 1e-6) -> CifarConvNeXt:
    """ConvNeXt for 32x32 images (defaults: ConvNeXt-T's widths and depths with a 2x2 patch stem)."""
    return CifarConvNeXt(num_classes=num_classes, in_chans=in_chans, width=width, depths=depths,
                         layer_scale_init=layer_scale_init)
