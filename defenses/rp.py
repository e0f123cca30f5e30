"""R&P: random resizing and padding (Xie et al., ICLR 2018)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Preprocessor

#: The reference's ratios at 299 x 299 input: r in [310, 330], padded to 331.
RP_LOW, RP_HIGH, RP_PAD = 1.037, 1.104, 1.107


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def rp_sizes(size: int, low: float = RP_LOW, high: float = RP_HIGH, pad: float = RP_PAD) -> tuple[int, int, int]:
    """``(r_min, r_max, padded)`` for an input side ``size``.

    Rule: ``r_min = round(low * S)``, ``r_max = max(r_min, round(high * S))``,
    ``padded = max(r_max, round(pad * S))``, rounding halves up. At S = 299: (310, 330, 331) as in
    the reference; at S = 32: (33, 35, 35); at S = 224: (232, 247, 248)."""
    r_min = _round_half_up(low * size)
    r_max = max(r_min, _round_half_up(high * size))
    return r_min, r_max, max(r_max, _round_half_up(pad * size))


def nearest_source_index(out_size: Tensor, in_size: int, length: int) -> Tensor:
    """Source indices of ``F.interpolate(mode="nearest")`` resizing ``in_size`` -> ``out_size``
    (one output size per row): ``min(floor(j * (in / out)), in - 1)`` for ``j < length``, with the
    scale in float32 as PyTorch computes it."""
    j = torch.arange(length, device=out_size.device, dtype=torch.float32)
    scale = (in_size / out_size.to(torch.float64)).to(torch.float32)[:, None]
    return torch.floor(j[None, :] * scale).long().clamp_(max=in_size - 1)


class RandomResizePad(Preprocessor):
    """R&P: per image, resize (nearest neighbour) to a random r x r, zero-pad at a random position.

    For an input of H x W, with ``rp_sizes(H) = (r_min, r_max, P)``: ``r`` is uniform in
    ``[r_min, r_max]`` (inclusive), the image is resized to ``r x round(r * W / H)`` (so r x r for
    square inputs) and zero-padded to ``P x round(P * W / H)``, with top and left offsets uniform in
    ``[0, P - r]`` and ``[0, P_w - r_w]`` (inclusive). At 299 x 299: r in [310, 330], padded to 331
    (the reference). With ``flip_p`` (default 0.5) the resized image is also flipped horizontally.

    Every image gets its own draw (from the owned generator, ``seed``). Fully batched: the resize,
    flip and pad are one gather with per-image index maps (no loop over images or sizes).
    Differentiable (exact gradients per draw); random, so attacks should use EOT
    (``eot_samples``). Averaging over several draws (the reference: softmax of 30) is done by
    :class:`defenses.Defended` with ``draws=30``."""

    name = "rp"
    gradient = "exact"
    random = True
    shape_preserving = False

    def __init__(self, low: float = RP_LOW, high: float = RP_HIGH, pad: float = RP_PAD, flip_p: float = 0.5,
                 eot_samples: int = 10, seed: int | None = None) -> None:
        super().__init__(eot_samples=eot_samples, seed=seed)
        if not 0 < low <= high <= pad:
            raise ValueError(f"R&P ratios must satisfy 0 < low <= high <= pad, got {low}, {high}, {pad}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be a probability in [0, 1], got {flip_p}")
        self.low, self.high, self.pad, self.flip_p = float(low), float(high), float(pad), float(flip_p)
        self.last_draw: dict[str, Tensor] | None = None   # sizes/offsets/flips of the last call

    def sizes(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(r_min, r_max, P_h, P_w)`` for an H x W input."""
        r_min, r_max, p_h = rp_sizes(h, self.low, self.high, self.pad)
        p_w = max(_round_half_up(p_h * w / h), _round_half_up(r_max * w / h))
        return r_min, r_max, p_h, p_w

    def transform(self, x: Tensor) -> Tensor:
        b, _c, h, w = x.shape
        r_min, r_max, p_h, p_w = self.sizes(h, w)
        gen = self._generator(x)
        dev = x.device
        r_h = torch.randint(r_min, r_max + 1, (b,), generator=gen, device=dev)
        r_w = torch.round(r_h.double() * w / h).long().clamp_(1, p_w)
        # uniform integer offsets in [0, P - r]: floor(u * (P - r + 1))
        top = (torch.rand(b, generator=gen, device=dev, dtype=torch.float64) * (p_h - r_h + 1)).long()
        left = (torch.rand(b, generator=gen, device=dev, dtype=torch.float64) * (p_w - r_w + 1)).long()
        top = torch.minimum(top, p_h - r_h)
        left = torch.minimum(left, p_w - r_w)
        flip = torch.rand(b, generator=gen, device=dev) < self.flip_p
        self.last_draw = {"r_h": r_h, "r_w": r_w, "top": top, "left": left, "flip": flip}

        # output row p comes from resized row (p - top) when 0 <= p - top < r_h
        rows_in = torch.arange(p_h, device=dev)[None, :] - top[:, None]                    # b, P_h
        cols_in = torch.arange(p_w, device=dev)[None, :] - left[:, None]                   # b, P_w
        row_ok = (rows_in >= 0) & (rows_in < r_h[:, None])
        col_ok = (cols_in >= 0) & (cols_in < r_w[:, None])
        cols_in = torch.where(flip[:, None], r_w[:, None] - 1 - cols_in, cols_in)
        src_r = nearest_source_index(r_h, h, p_h).gather(1, rows_in.clamp(0, p_h - 1))
        src_c = nearest_source_index(r_w, w, p_w).gather(1, cols_in.clamp(0, p_w - 1))
        bi = torch.arange(b, device=dev)[:, None, None]
        out = x[bi, :, src_r[:, :, None], src_c[:, None, :]]                               # b, P_h, P_w, c
        mask = (row_ok[:, :, None] & col_ok[:, None, :]).to(x.dtype)
        return (out * mask[..., None]).permute(0, 3, 1, 2).contiguous()

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}, pad={self.pad}, flip_p={self.flip_p}, " + super().extra_repr()
