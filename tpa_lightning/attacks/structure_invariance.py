"""SIA (structure invariant attack): one random transformation per block of a random block grid."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import OptionError, check_int, check_positive
from .input_diversity import BlockFn, PerCopyTransform, dct_matrix

#: SIA's transformations, as the authors' code lists them (xiaosen-wang/SIT, ``attack.py``).
SIA_OPS: tuple[str, ...] = ("resize", "vshift", "hshift", "vflip", "hflip", "rotate180", "scale", "noise",
                            "dct", "dropout")
#: The seven TransferAttack's ``sia.py`` keeps (no resize, DCT or dropout).
TRANSFERATTACK_SIA_OPS: tuple[str, ...] = ("vshift", "hshift", "vflip", "hflip", "rotate180", "scale",
                                           "noise")

#: "resize": down to ``int(RESIZE * side) + 1`` pixels and back (bilinear)
RESIZE = 0.8
#: "dct": the highest ``int(DCT_DROP * side)`` frequencies of each axis are zeroed
DCT_DROP = 0.4
#: "dropout": a channel of the block is zeroed with this probability, the others scaled by 1 / (1 - p)
DROPOUT = 0.1


def _identity(u: Tensor, rows: slice) -> Tensor:
    return u


def _low_pass(n: int, device: torch.device) -> Tensor:
    """(n, n) projection keeping the lowest ``n - int(DCT_DROP * n)`` DCT-II frequencies."""
    d = dct_matrix(n, device)
    keep = torch.ones(n, device=device)
    drop = int(DCT_DROP * n)
    if drop:
        keep[n - drop:] = 0.0
    return d.T @ (keep[:, None] * d)


class SIA(PerCopyTransform):
    """SIA (Wang, Zhang & Zhang, ICCV 2023, "Structure Invariant Transformation for better
    Adversarial Transferability"): each copy cuts the image by ``blocks - 1`` random rows and
    ``blocks - 1`` random columns (distinct, uniform over the interior) into ``blocks`` x ``blocks``
    blocks and applies to every block a transformation drawn uniformly from ``ops``; the gradient is
    the mean over the copies; MI update.

    The transformations (the authors' code; their parameters drawn per block and copy):

    - ``resize``: bilinear down to ``int(0.8 h) + 1`` x ``int(0.8 w) + 1`` and back, clipped to [0, 1];
    - ``vshift`` / ``hshift``: a cyclic shift of the block by U{0 .. h-1} rows / U{0 .. w-1} columns;
    - ``vflip`` / ``hflip`` / ``rotate180``;
    - ``scale``: the block times U(0, 1);
    - ``noise``: U(-``noise_radius``, ``noise_radius``) per element (per image), clipped to [0, 1];
    - ``dct``: the highest ``int(0.4 h)`` and ``int(0.4 w)`` frequencies of the block's 2-D DCT zeroed
      (the authors' code zeroes a block of at most two pixels a side entirely, an artefact of
      ``x[-0:]``; here nothing is dropped when ``int(0.4 side) == 0``);
    - ``dropout``: each channel of the block zeroed with probability 0.1 (per image), the others
      scaled by 1 / 0.9 (``dropout2d``).

    Defaults: ``ops`` all ten (the authors' code's, xiaosen-wang/SIT; ``ops=TRANSFERATTACK_SIA_OPS``
    gives TransferAttack's seven), ``copies=20`` (both codes; both docstrings say 10),
    ``blocks=3``, ``noise_radius=16/255`` (a fixed pixel value in both codes, not tied to eps),
    ``momentum=1.0`` (TransferAttack; the authors' script passes its command-line default 0),
    ``eps=8/255``, ``steps=10``, ``step_size=eps/steps`` (they ran 10 iterations of 1.6/255 at
    16/255). ``blocks`` counts blocks, not pixels, so 224x224 settings carry over to 32x32 images
    (blocks of about 11 pixels); images need at least ``blocks`` pixels a side. Cost: ``copies``
    passes per iteration, batched.

    Randomness: the cuts, the choices and the scalar parameters are drawn once per copy for the whole
    batch (as in both codes); the noise and dropout masks are per image (per-image streams with
    ``keys``; see :mod:`~.base`).
    """

    name: ClassVar[str] = "sia"

    def __init__(self, model: nn.Module, *, copies: int = 20, blocks: int = 3,
                 ops: Iterable[str] | str = SIA_OPS, noise_radius: float = 16 / 255, **kwargs: Any) -> None:
        super().__init__(model, copies=copies, **kwargs)
        self.blocks = check_int("blocks", blocks, 1)
        names = tuple(o.strip() for o in ops.split(",")) if isinstance(ops, str) else tuple(ops)
        unknown = [o for o in names if o not in SIA_OPS]
        if not names or unknown or len(set(names)) != len(names):
            raise OptionError("ops", f"must be distinct names from {', '.join(SIA_OPS)}, got {ops!r}")
        self.ops = names
        check_positive("noise_radius", noise_radius, allow_zero=True)
        self.noise_radius = float(noise_radius)

    def make_transform(self, x: Tensor) -> BlockFn:
        n = self.blocks
        h, w = x.shape[-2:]
        if min(h, w) < n:
            raise ValueError(f"SIA with blocks={n} needs images of at least {n}x{n} pixels, got {h}x{w}")
        hs, ws = self.cuts(h, x.device), self.cuts(w, x.device)
        r = self.rand_scalars(2 * n * n, x.device).tolist()
        fns = [self.block_op(self.ops[min(int(r[2 * k] * len(self.ops)), len(self.ops) - 1)], r[2 * k + 1],
                             x[:, :, hs[k // n]:hs[k // n + 1], ws[k % n]:ws[k % n + 1]])
               for k in range(n * n)]

        def fn(u: Tensor, rows: slice) -> Tensor:
            strips = []
            for i in range(n):
                band = u[:, :, hs[i]:hs[i + 1]]
                pieces = [fns[i * n + j](band[..., ws[j]:ws[j + 1]], rows) for j in range(n)]
                strips.append(torch.cat(pieces, dim=3))
            return torch.cat(strips, dim=2)

        return fn

    def cuts(self, side: int, device: torch.device) -> list[int]:
        """Block edges along a side of ``side`` pixels: 0, ``blocks - 1`` distinct interior cuts
        drawn uniformly from 1 .. side - 1 (sorted), ``side``."""
        assert self.generator is not None
        inner = torch.randperm(side - 1, generator=self.generator, device=device)[:self.blocks - 1] + 1
        return [0, *sorted(inner.tolist()), side]

    def block_op(self, name: str, r: float, block: Tensor) -> BlockFn:
        """The transformation ``name`` of one block (``block``: that block of the batch, for its
        shape and the per-image draws), its scalar parameter taken from the U(0, 1) draw ``r``."""
        h, w = block.shape[-2:]
        if name == "vshift":
            step = min(int(r * h), h - 1)
            return lambda u, rows: u.roll(step, dims=2)
        if name == "hshift":
            step = min(int(r * w), w - 1)
            return lambda u, rows: u.roll(step, dims=3)
        if name == "vflip":
            return lambda u, rows: u.flip(2)
        if name == "hflip":
            return lambda u, rows: u.flip(3)
        if name == "rotate180":
            return lambda u, rows: u.flip(2, 3)
        if name == "scale":
            return lambda u, rows: u * r
        if name == "noise":
            noise = self.rand_like_sample(block, low=-self.noise_radius, high=self.noise_radius)
            return lambda u, rows: (u + noise[rows]).clamp(0.0, 1.0)
        if name == "dropout":
            keep = (self.rand_like_sample(block[:, :, :1, :1]) >= DROPOUT).float() / (1.0 - DROPOUT)
            return lambda u, rows: u * keep[rows]
        if name == "resize":
            small = (int(RESIZE * h) + 1, int(RESIZE * w) + 1)

            def resize(u: Tensor, rows: slice) -> Tensor:
                v = F.interpolate(u, size=small, mode="bilinear", align_corners=False)
                return F.interpolate(v, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)

            return resize
        if name == "dct":
            ph, pw = _low_pass(h, block.device), _low_pass(w, block.device)
            return lambda u, rows: ph @ u @ pw.T
        return _identity
