"""L2T's pool of candidate input transformations (:func:`transform_pool`; the attack is in
:mod:`.learned_transforms`).

Every operation maps a stack ``u`` of shape (R, G, C, H, W) (R rows per image, G images that share
the operation's random parameters) to (copies * R, G, C, H, W), copy-major, differentiably in ``u``,
drawing what it needs from the generator it is given. Draws have a leading image dimension of 1
(broadcast over G), so an image's result never depends on the other images of its group.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.transforms import functional as TF

from .input_diversity import dct_matrix, resize_pad

#: (R, G, C, H, W) -> (copies * R, G, C, H, W), drawing from the generator
PoolFn = Callable[[Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class PoolOp:
    """One candidate operation: its ``name``, the ``copies`` it makes of each input row, ``fn``."""

    name: str
    copies: int
    fn: PoolFn

    def __call__(self, u: Tensor, gen: torch.Generator) -> Tensor:
        return self.fn(u, gen)


def _uniform(gen: torch.Generator, n: int) -> list[float]:
    return torch.rand(n, generator=gen, device=gen.device).tolist()


def _images(u: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn`` (a map of (N, C, H, W) image batches) applied to every row of every image of ``u``."""
    r, g = u.shape[:2]
    return fn(u.reshape(r * g, *u.shape[2:])).reshape(r, g, *u.shape[2:])


def identity(u: Tensor, gen: torch.Generator) -> Tensor:
    return u


def rotate(u: Tensor, gen: torch.Generator, angle: float, scales: int = 5) -> Tensor:
    """``scales`` copies rotated about the centre by ``angle / 2^i`` degrees, counter-clockwise
    (nearest neighbour, zeros outside: torchvision's ``rotate``)."""
    return torch.cat([_images(u, functools.partial(TF.rotate, angle=angle / 2 ** i)) for i in range(scales)])


def scale(u: Tensor, gen: torch.Generator, copies: int) -> Tensor:
    """SI: ``copies`` copies ``u / 2^i``."""
    return torch.cat([u / 2 ** i for i in range(copies)])


def resize_and_pad(u: Tensor, gen: torch.Generator, rate: float) -> Tensor:
    """DI without its probability: one random resize to [S, ``rate`` S) (bilinear), a random
    zero-pad to ``rate`` S and a resize back (:func:`~.input_diversity.resize_pad`)."""
    a, b, c = _uniform(gen, 3)
    return _images(u, resize_pad(u.shape[-2], u.shape[-1], rate, a, b, c, mode="bilinear"))


def shuffle_lengths(total: int, parts: int, gen: torch.Generator) -> list[int]:
    """``parts`` non-negative lengths summing to ``total``, proportional to U(0, 1) draws (largest
    remainders rounded up)."""
    w = _uniform(gen, parts)
    raw = [total * v / sum(w) for v in w]
    lengths = [math.floor(v) for v in raw]
    order = sorted(range(parts), key=lambda i: lengths[i] - raw[i])
    for i in order[:total - sum(lengths)]:
        lengths[i] += 1
    return lengths


def _shuffle_along(u: Tensor, dim: int, parts: int, gen: torch.Generator) -> list[Tensor]:
    strips = torch.split(u, shuffle_lengths(u.shape[dim], parts, gen), dim=dim)
    return [strips[i] for i in torch.randperm(parts, generator=gen, device=gen.device).tolist()]


def block_shuffle(u: Tensor, gen: torch.Generator, blocks: int, copies: int = 10) -> Tensor:
    """``copies`` copies, each: strips of random lengths along a random axis, shuffled; each strip
    cut into pieces of random lengths along the other axis, shuffled (BSR without its rotation)."""
    out = []
    for _ in range(copies):
        first, second = (3, 4) if _uniform(gen, 1)[0] < 0.5 else (4, 3)
        out.append(torch.cat([torch.cat(_shuffle_along(s, second, blocks, gen), dim=second)
                              for s in _shuffle_along(u, first, blocks, gen)], dim=first))
    return torch.cat(out)


def admix(u: Tensor, gen: torch.Generator, mixes: int, strength: float, scales: int = 3) -> Tensor:
    """Admix: ``u + strength * u'`` for ``mixes`` partners ``u'`` (detached), each at ``scales``
    scales ``/ 2^i``. The partners are a random permutation of the image's OWN rows (see
    :class:`~.learned_transforms.L2T`)."""
    added = [u + strength * u[torch.randperm(u.shape[0], generator=gen, device=gen.device)].detach()
             for _ in range(mixes)]
    mixed = torch.cat(added)
    return torch.cat([mixed / 2 ** i for i in range(scales)])


def dropout(u: Tensor, gen: torch.Generator, rates: Sequence[float]) -> Tensor:
    """One copy per rate p: every element zeroed with probability p (kept ones NOT rescaled)."""
    shape = (u.shape[0], 1, *u.shape[2:])
    return torch.cat([u * (torch.rand(shape, generator=gen, device=u.device) >= p) for p in rates])


def mask(u: Tensor, gen: torch.Generator, blocks: int, copies: int = 5) -> Tensor:
    """``copies`` copies, each with one random block of the ``blocks`` x ``blocks`` grid (edges at
    ``round(i * side / blocks)``) set to zero."""
    h, w = u.shape[-2:]
    hs = [round(i * h / blocks) for i in range(blocks + 1)]
    ws = [round(i * w / blocks) for i in range(blocks + 1)]
    out = []
    for _ in range(copies):
        i, j = (min(int(v * blocks), blocks - 1) for v in _uniform(gen, 2))
        keep = torch.ones(h, w, device=u.device, dtype=u.dtype)
        keep[hs[i]:hs[i + 1], ws[j]:ws[j + 1]] = 0.0
        out.append(u * keep)
    return torch.cat(out)


def spectrum(u: Tensor, gen: torch.Generator, rho: float, sigma: float, copies: int = 10) -> Tensor:
    """SSA's spectrum simulation: ``copies`` copies ``IDCT(DCT(u + N(0, sigma^2)) * U(1 - rho, 1 + rho))``
    (2-D DCT over H, W; noise and mask per element and row)."""
    h, w = u.shape[-2:]
    dh, dw = dct_matrix(h, u.device), dct_matrix(w, u.device)
    shape = (u.shape[0], 1, *u.shape[2:])
    out = []
    for _ in range(copies):
        noisy = u + sigma * torch.randn(shape, generator=gen, device=u.device)
        m = 1 - rho + 2 * rho * torch.rand(shape, generator=gen, device=u.device)
        out.append(dh.T @ ((dh @ noisy @ dw.T) * m) @ dw)
    return torch.cat(out)


def crop(u: Tensor, gen: torch.Generator, ratio: float, copies: int = 5) -> Tensor:
    """``copies`` centre crops of ``r_i = ratio + (1 - ratio)(i + 1) / copies`` of each side, resized
    back (bilinear: torchvision's ``resized_crop``); the last is the whole image."""
    h, w = u.shape[-2:]
    out = []
    for i in range(copies):
        r = ratio + (1 - ratio) * (i + 1) / copies
        ch, cw = max(1, int(h * r)), max(1, int(w * r))
        out.append(_images(u, functools.partial(TF.resized_crop, top=(h - ch) // 2, left=(w - cw) // 2,
                                                height=ch, width=cw, size=[h, w])))
    return torch.cat(out)


def translate(u: Tensor, gen: torch.Generator, offset: float, copies: int = 5) -> Tensor:
    """``copies`` copies translated right and down by ``offset (i + 1) / copies`` pixels
    (nearest neighbour, zeros outside: torchvision's ``affine``; so whole-pixel shifts)."""
    shifts = [offset * (i + 1) / copies for i in range(copies)]
    return torch.cat([_images(u, functools.partial(TF.affine, angle=0.0, translate=[t, t], scale=1.0,
                                                   shear=[0.0, 0.0])) for t in shifts])


def _op(name: str, count: int, fn: Callable[..., Tensor], **params: object) -> PoolOp:
    return PoolOp(name, count, functools.partial(fn, **params))


def transform_pool(sigma: float) -> tuple[PoolOp, ...]:
    """L2T's 98 operations, in the order of TransferAttack's ``l2t.py`` ``op_list`` (its comments
    number them up to 100; it holds 98): identity; rotation by 30 .. 300 degrees (5 halving copies);
    SI with 1 .. 10 copies; DI at rates 1.1 .. 1.55; block shuffle with 3 .. 12 blocks (10 copies);
    Admix with 1 .. 5 partners at strengths 0.2 and 0.4 (3 scales); dropout with 10 sets of rates;
    masking on 2 .. 11-block grids (5 copies); SSA's spectrum at rho 0.1 .. 0.9 (10 copies, noise
    ``sigma``); centre crops from ratios 0.1 .. 0.9 (5 copies); translations with offsets 0.5 .. 0.9
    (5 copies, by ``offset (i + 1) / 5`` pixels)."""
    rates = ((0.1,), (0.1, 0.2), (0.1, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4), (0.1, 0.2, 0.3, 0.4, 0.5),
             (0.2, 0.3, 0.4, 0.5), (0.1, 0.3, 0.4, 0.5), (0.1, 0.2, 0.4, 0.5), (0.1, 0.2, 0.3, 0.5),
             (0.1, 0.2, 0.3, 0.4))
    return (
        _op("identity", 1, identity),
        *(_op(f"rotate({a})", 5, rotate, angle=float(a)) for a in range(30, 301, 30)),
        *(_op(f"scale({k})", k, scale, copies=k) for k in range(1, 11)),
        *(_op(f"resize_pad({r:g})", 1, resize_and_pad, rate=r)
          for r in (1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5, 1.55)),
        *(_op(f"block_shuffle({n})", 10, block_shuffle, blocks=n) for n in range(3, 13)),
        *(_op(f"admix({m}, {s:g})", 3 * m, admix, mixes=m, strength=s)
          for s in (0.2, 0.4) for m in range(1, 6)),
        *(_op(f"dropout({', '.join(f'{r:g}' for r in p)})", len(p), dropout, rates=p) for p in rates),
        *(_op(f"mask({n})", 5, mask, blocks=n) for n in (2, 4, 6, 8, 10, 3, 5, 7, 9, 11)),
        *(_op(f"spectrum({r:g})", 10, spectrum, rho=r, sigma=sigma)
          for r in (0.2, 0.4, 0.5, 0.6, 0.8, 0.1, 0.3, 0.7, 0.9)),
        *(_op(f"crop({r:g})", 5, crop, ratio=r) for r in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
        *(_op(f"translate({o:g})", 5, translate, offset=o)
          for o in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)),
    )
