"""``cifar_vit``: a small Vision Transformer for 32x32 images (Dosovitskiy et al. 2021).

Non-overlapping ``patch_size`` patches (4: 64 tokens of a 32x32 image) embedded by a strided conv,
learned position embeddings, an optional class token, ``depth`` pre-norm transformer blocks
(multi-head self-attention, then an MLP with GELU), a final LayerNorm and a linear head on the class
token (``pool="cls"``) or on the mean of the patch tokens (``pool="mean"``). ``width`` is the
embedding dimension. The image size is fixed at construction (``img_size``, default 32).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        projected: Tensor = self.proj(out.transpose(1, 2).reshape(b, n, d))
        return projected


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        out: Tensor = x + self.mlp(self.norm2(x))
        return out


class CifarViT(nn.Module):
    """Children ``patch_embed``, ``blocks``, ``norm``, ``head``; parameters ``pos_embed`` and
    (with ``pool="cls"``) ``cls_token``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 192, depth: int = 6,
                 heads: int = 3, patch_size: int = 4, img_size: int = 32, mlp_ratio: float = 2.0,
                 pool: str = "cls") -> None:
        super().__init__()
        if min(num_classes, in_chans, width, depth, heads, patch_size, img_size) < 1:
            raise ValueError("cifar_vit needs num_classes, in_chans, width, depth, heads, patch_size "
                             "and img_size >= 1")
        if width % heads:
            raise ValueError(f"cifar_vit: width ({width}) must be divisible by heads ({heads})")
        if img_size % patch_size:
            raise ValueError(f"cifar_vit: img_size ({img_size}) must be divisible by "
                             f"patch_size ({patch_size})")
        if pool not in ("cls", "mean"):
            raise ValueError(f"cifar_vit: pool must be 'cls' or 'mean', got {pool!r}")
        if mlp_ratio <= 0:
            raise ValueError(f"cifar_vit: mlp_ratio must be > 0, got {mlp_ratio}")
        self.pool = pool
        self.img_size = img_size
        tokens = (img_size // patch_size) ** 2 + (pool == "cls")
        self.patch_embed = nn.Conv2d(in_chans, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"cifar_vit was built for {self.img_size}x{self.img_size} images, "
                             f"got {tuple(x.shape[-2:])}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        out = self.norm(self.blocks(tokens + self.pos_embed))
        pooled = out[:, 0] if self.cls_token is not None else out.mean(dim=1)
        logits: Tensor = self.head(pooled)
        return logits


def cifar_vit(num_classes: int = 10, in_chans: int = 3, width: int = 192, depth: int = 6, heads: int = 3,
              patch_size: int = 4, img_size: int = 32, mlp_ratio: float = 2.0, pool: str = "cls") -> CifarViT:
    """A ViT of ``depth`` blocks on 4x4 patches (defaults: ViT-Tiny's width and heads, half its depth)."""
    return CifarViT(num_classes=num_classes, in_chans=in_chans, width=width, depth=depth, heads=heads,
                    patch_size=patch_size, img_size=img_size, mlp_ratio=mlp_ratio, pool=pool)
