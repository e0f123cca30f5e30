"""Compression defenses: feature distillation (FD), JPEG, bit-depth reduction. All BPDA."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tpa_lightning.checks import check_int, check_positive

from .base import Preprocessor


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float64) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (``D @ v`` = ``scipy.fft.dct(v, norm="ortho")``)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def fd_quantisation_table(q_low: float = 25.0, q_high: float = 30.0, low: int = 4, block: int = 8) -> Tensor:
    """Q[u, v] = ``q_low`` for u, v < ``low`` (the low-frequency corner), ``q_high`` elsewhere."""
    q = torch.full((block, block), float(q_high), dtype=torch.float64)
    q[:low, :low] = float(q_low)
    return q


def smooth_round(c: Tensor) -> Tensor:
    """Differentiable rounding of Shin & Song (2017): round(c) + (c - round(c))^3."""
    r = torch.round(c).detach()
    return r + (c - r) ** 3


class FeatureDistillation(Preprocessor):
    """Feature distillation (Liu et al., CVPR 2019), the DNN-oriented JPEG-like quantisation.

    Per RGB channel (no colour conversion, no level shift), in [0, 255]: zero-pad H and W at the
    bottom/right to multiples of 8, orthonormal 2-D DCT of every 8x8 block, quantise each
    coefficient ``c -> round(c / Q) * Q`` with ``Q = q_low`` (25) for ``u, v < 4`` and ``q_high`` (30)
    elsewhere, inverse DCT, crop, divide by 255, clamp to [0, 1]. Vectorised over the batch and
    the blocks (two batched 8x8 matrix products each way), computed in float64 so the rounding
    decisions do not depend on the input precision; the output has the input's dtype.

    Not differentiable: ``gradient = "bpda"``. ``grad_mode="approx"`` replaces ``round`` with
    the smooth rounding ``round(c) + (c - round(c))^3`` (Shin & Song, 2017)."""

    name = "fd"
    gradient = "bpda"
    has_approx = True

    def __init__(self, q_low: float = 25.0, q_high: float = 30.0) -> None:
        super().__init__()
        check_positive("q_low", q_low)
        check_positive("q_high", q_high)
        self.q_low, self.q_high = float(q_low), float(q_high)
        # plain attributes, not buffers: .half()/.to(dtype) must not lower their precision
        self.dct = dct_matrix(8, torch.float64)
        self.q = fd_quantisation_table(q_low, q_high)

    def _distil(self, x: Tensor, rounding) -> Tensor:
        b, c, h, w = x.shape
        ph, pw = (-h) % 8, (-w) % 8
        work_dtype = torch.float64   # exact rounding decisions whatever the input precision
        v = x.to(work_dtype) * 255.0
        if ph or pw:
            v = F.pad(v, (0, pw, 0, ph))
        hb, wb = v.shape[2] // 8, v.shape[3] // 8
        blocks = v.reshape(b, c, hb, 8, wb, 8).transpose(3, 4)          # b c hb wb 8 8
        d = self.dct.to(device=x.device, dtype=work_dtype)
        q = self.q.to(device=x.device, dtype=work_dtype)
        coef = d @ blocks @ d.T
        coef = rounding(coef / q) * q
        out = d.T @ coef @ d
        out = out.transpose(3, 4).reshape(b, c, hb * 8, wb * 8)[:, :, :h, :w]
        return (out / 255.0).clamp(0.0, 1.0).to(x.dtype)

    def transform(self, x: Tensor) -> Tensor:
        return self._distil(x, torch.round)

    def approx(self, x: Tensor) -> Tensor:
        return self._distil(x, smooth_round)


class JPEGCompression(Preprocessor):
    """JPEG encode + decode at ``quality`` (1..100, default 75) with torchvision's libjpeg codec
    (``torchvision.io.encode_jpeg``/``decode_jpeg``, the whole batch in one call). Pixels are
    quantised to uint8 first (``round(255 x)``). 1- or 3-channel images. ``gradient = "bpda"``."""

    name = "jpeg"
    gradient = "bpda"

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        quality = check_int("quality", quality)
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer in [1, 100], got {quality}")
        self.quality = quality

    def transform(self, x: Tensor) -> Tensor:
        from torchvision.io import decode_jpeg, encode_jpeg

        if x.shape[1] not in (1, 3):
            raise ValueError(f"JPEG needs 1- or 3-channel images, got {x.shape[1]} channels")
        u8 = (x.detach() * 255.0).round().clamp(0, 255).to(torch.uint8).cpu()
        encoded = encode_jpeg(list(u8), quality=self.quality)
        decoded = decode_jpeg(encoded)
        out = torch.stack(decoded).to(device=x.device, dtype=x.dtype) / 255.0
        return out

    def extra_repr(self) -> str:
        return f"quality={self.quality}, " + super().extra_repr()


class BitDepthReduction(Preprocessor):
    """Reduce every pixel to ``bits`` bits (default 4): ``round(x * (2^bits - 1)) / (2^bits - 1)``
    (feature squeezing, Xu et al. 2018). ``gradient = "bpda"``."""

    name = "bitdepth"
    gradient = "bpda"

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        bits = check_int("bits", bits)
        if bits > 16:
            raise ValueError(f"bits must be an integer in [1, 16], got {bits}")
        self.bits = bits

    def transform(self, x: Tensor) -> Tensor:
        levels = float(2 ** self.bits - 1)
        return torch.round(x * levels) / levels

    def extra_repr(self) -> str:
        return f"bits={self.bits}, " + super().extra_repr()
