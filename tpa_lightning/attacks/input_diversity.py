"""Input-transformation attacks: DI, TI, BSR and SSA (all with the MI update)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import OptionError, check_int, check_positive
from .base import MomentumMixin, iterate_copies

#: A differentiable map of a batch of images.
ImageFn = Callable[[Tensor], Tensor]
#: One copy's differentiable transform: ``fn(u, rows)``, ``u`` the images ``rows`` of the attacked
#: batch (a slice of ``range(B)``; per-image draws are indexed by it).
BlockFn = Callable[[Tensor, slice], Tensor]


class PerCopyTransform(MomentumMixin):
    """Stacks ``copies`` copies of the batch (copy-major) and applies one random transform per copy
    inside the gradient (chunked by ``max_batch``); the gradient is the mean over the copies.
    Subclasses draw a copy's transform in :meth:`make_transform` (DI, BSR, SIA)."""

    def __init__(self, model: nn.Module, *, copies: int = 1, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.copies = check_int("copies", copies, 1)
        self._fns: list[BlockFn] = []
        self._block = 1

    def passes_per_step(self) -> float:
        return float(self.copies)

    def make_transform(self, x: Tensor) -> BlockFn:
        """One copy's transform for the batch ``x``, its random parameters drawn now."""
        raise NotImplementedError

    def transform(self, u: Tensor, rows: slice) -> Tensor:
        start = rows.start or 0
        n = self._block
        parts = [self._fns[k](u[a:b], slice(start + a - k * n, start + b - k * n))
                 for k, a, b in iterate_copies(start, start + u.shape[0], n)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        self._block = x.shape[0]
        self._fns = [self.make_transform(x) for _ in range(self.copies)]
        u = (x + delta).unsqueeze(0).expand(self.copies, *x.shape)
        return self.stacked_grad(u, labels).mean(0)


class DI(PerCopyTransform):
    """DI-MI-FGSM (Xie et al. 2019): with probability ``p`` the input is resized to a random size
    r in [S, 1.1 S) (nearest), zero-padded at a random position to 1.1 S, and resized back to S
    (bilinear); the gradient flows through it; MI update.

    Defaults: ``p=0.5``, ``resize_rate=1.1``, ``copies=1`` (transformed copies averaged per
    gradient, batched), ``momentum=1.0``, ``eps=8/255``, ``steps=10``. Cost: ``copies`` per iteration.
    One transform is drawn per copy for the whole batch, as in the published code.
    """

    name: ClassVar[str] = "di"

    def __init__(self, model: nn.Module, *, p: float = 0.5, resize_rate: float = 1.1, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if not 0.0 <= p <= 1.0:
            raise OptionError("p", f"must be in [0, 1], got {p}")
        if resize_rate < 1.0:
            raise OptionError("resize_rate", f"must be >= 1, got {resize_rate}")
        self.p = float(p)
        self.resize_rate = float(resize_rate)

    def make_transform(self, x: Tensor) -> BlockFn:
        apply_, a, b, c = self.rand_scalars(4, x.device).tolist()
        if apply_ >= self.p:
            return lambda u, rows: u
        fn = resize_pad(x.shape[-2], x.shape[-1], self.resize_rate, a, b, c)
        return lambda u, rows: fn(u)


def resize_pad(h: int, w: int, resize_rate: float, a: float, b: float, c: float,
               mode: str = "nearest") -> ImageFn:
    """DI's random resize-and-pad of (H, W) = (``h``, ``w``) images, from three U(0, 1) draws: resize
    to ``r`` in [S, ``resize_rate`` S) (``a``; ``mode``, DI's nearest by default), zero-pad at a
    random position (``b``: top, ``c``: left) to ``resize_rate`` S, resize back to S (bilinear).
    Differentiable in its input; the identity when ``int(resize_rate * S) == S``."""
    big_h, big_w = int(h * resize_rate), int(w * resize_rate)
    if big_h == h and big_w == w:
        return lambda u: u
    rh = h + int(a * (big_h - h))
    rw = w + int(a * (big_w - w))
    top = int(b * (big_h - rh + 1))
    left = int(c * (big_w - rw + 1))

    def fn(u: Tensor) -> Tensor:
        r = F.interpolate(u, size=(rh, rw), mode=mode, align_corners=None if mode == "nearest" else False)
        r = F.pad(r, (left, big_w - rw - left, top, big_h - rh - top))
        return F.interpolate(r, size=(h, w), mode="bilinear", align_corners=False)

    return fn


def gaussian_kernel(size: int, nsig: float = 3.0) -> Tensor:
    """2-D Gaussian kernel of ``size`` x ``size`` spanning +-``nsig`` standard deviations, sum 1."""
    t = torch.linspace(-nsig, nsig, size)
    k1 = torch.exp(-0.5 * t * t)
    k = torch.outer(k1, k1)
    return k / k.sum()


def ti_kernel_size(h: int, w: int) -> int:
    """TI's default kernel size for (H, W) inputs: 7 up to 64x64 (CIFAR-style), else 15 (ImageNet)."""
    return 7 if max(h, w) <= 64 else 15


def smooth_gradient(g: Tensor, kernel_size: int | None = None, sigma: float = 3.0) -> Tensor:
    """TI's smoothing: ``g`` (N, C, H, W) convolved per channel with the ``kernel_size`` Gaussian
    kernel spanning +-``sigma`` standard deviations (zero padding, same size); ``kernel_size`` None:
    :func:`ti_kernel_size`."""
    size = kernel_size or ti_kernel_size(g.shape[-2], g.shape[-1])
    c = g.shape[1]
    k = gaussian_kernel(size, sigma).to(g.device, g.dtype).expand(c, 1, size, size)
    return F.conv2d(g, k, padding=size // 2, groups=c)


class TI(MomentumMixin):
    """TI-MI-FGSM (Dong et al. 2019): the gradient is convolved (per channel) with a Gaussian kernel
    before the MI update.

    Defaults: ``kernel_size`` 15, or 7 for inputs of at most 64x64 (CIFAR-style); ``sigma=3``
    meaning the kernel spans +-3 standard deviations (as the published code builds it);
    ``momentum=1.0``, ``eps=8/255``, ``steps=10``. Cost: 1 pass per iteration.
    """

    name: ClassVar[str] = "ti"

    def __init__(self, model: nn.Module, *, kernel_size: int | None = None, sigma: float = 3.0,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if kernel_size is not None:
            check_int("kernel_size", kernel_size, 1)
            if kernel_size % 2 == 0:
                raise OptionError("kernel_size", f"must be odd, got {kernel_size}")
        check_positive("sigma", sigma)
        self.kernel_size = kernel_size
        self.sigma = float(sigma)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        return smooth_gradient(self.input_grad(x + delta, labels), self.kernel_size, self.sigma)


def _random_lengths(total: int, parts: int, r: list[float]) -> list[int]:
    """Split ``total`` into ``parts`` positive random lengths from the uniforms ``r``."""
    if total < parts:
        return [total] + [0] * (parts - 1) if total else [0] * parts
    w = [0.25 + v for v in r]  # keep every strip reasonably long
    s = sum(w)
    lengths = [max(1, int(total * v / s)) for v in w]
    lengths[-1] = total - sum(lengths[:-1])
    while lengths[-1] < 1:
        i = max(range(parts - 1), key=lambda j: lengths[j])
        lengths[i] -= 1
        lengths[-1] += 1
    return lengths


def _rotate(u: Tensor, degrees: float) -> Tensor:
    """Rotate every image of ``u`` about its centre by ``degrees`` (bilinear, zero fill)."""
    h, w = u.shape[-2:]
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=u.dtype, device=u.device)
    grid = F.affine_grid(theta.expand(u.shape[0], 2, 3), list(u.shape), align_corners=False)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BSR(PerCopyTransform):
    """BSR (Wang et al. 2024, block shuffle and rotation): each copy splits the image into
    ``blocks`` x ``blocks`` blocks of random lengths (random-length horizontal strips, each cut into
    random-length pieces), shuffles the strips and the pieces, rotates each block by U(-24, 24)
    degrees; the objective is averaged over the copies; MI update.

    Defaults: ``blocks=3``, ``copies=20``, ``max_angle=24``, ``momentum=1.0``, ``eps=8/255``,
    ``steps=10``. Cost: ``copies`` passes per iteration, batched.
    """

    name: ClassVar[str] = "bsr"

    def __init__(self, model: nn.Module, *, copies: int = 20, blocks: int = 3, max_angle: float = 24.0,
                 **kwargs: Any) -> None:
        super().__init__(model, copies=copies, **kwargs)
        self.blocks = check_int("blocks", blocks, 1)
        check_positive("max_angle", max_angle, allow_zero=True)
        self.max_angle = float(max_angle)

    def make_transform(self, x: Tensor) -> BlockFn:
        n = self.blocks
        h, w = x.shape[-2:]
        r = self.rand_scalars(n + n + n * n, x.device)
        hs = _random_lengths(h, n, r[:n].tolist())
        ws = _random_lengths(w, n, r[n:2 * n].tolist())
        assert self.generator is not None
        row_perm = torch.randperm(n, generator=self.generator, device=x.device).tolist()
        col_perms = [torch.randperm(n, generator=self.generator, device=x.device).tolist() for _ in range(n)]
        angles = ((r[2 * n:] * 2 - 1) * self.max_angle).tolist()

        def fn(u: Tensor, rows: slice) -> Tensor:
            strips = list(torch.split(u, hs, dim=2))
            out_rows = []
            for i, si in enumerate(row_perm):
                pieces = list(torch.split(strips[si], ws, dim=3))
                pieces = [_rotate(pieces[j], angles[i * n + k]) if pieces[j].numel() else pieces[j]
                          for k, j in enumerate(col_perms[i])]
                out_rows.append(torch.cat(pieces, dim=3))
            return torch.cat(out_rows, dim=2)

        return fn


def dct_matrix(n: int, device: torch.device | None = None) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (n x n): ``D @ v`` is the DCT of ``v``, ``D.T @ c`` its inverse."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=torch.float32)


class SSA(MomentumMixin):
    """SSA (Long et al. 2022, spectrum simulation attack): for n = 1..N,
    ``x_n = IDCT(DCT(x' + N(0, sigma^2)) * U(1 - rho, 1 + rho))`` (2-D DCT over H, W, per element
    mask); the gradient is the mean over n of the gradient w.r.t. ``x_n``; sign step.

    Defaults: ``copies`` N = 20, ``rho=0.5``, ``sigma=eps``, ``momentum=0`` (plain sign step; set
    ``momentum=1`` for the MI variant), ``eps=8/255``, ``steps=10``. Cost: N passes per iteration.
    """

    name: ClassVar[str] = "ssa"

    def __init__(self, model: nn.Module, *, copies: int = 20, rho: float = 0.5, sigma: float | None = None,
                 momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(model, momentum=momentum, **kwargs)
        self.copies = check_int("copies", copies, 1)
        check_positive("rho", rho, allow_zero=True)
        self.rho = float(rho)
        self.sigma = float(self.eps if sigma is None else sigma)
        check_positive("sigma", self.sigma, allow_zero=True)

    def passes_per_step(self) -> float:
        return float(self.copies)

    def spectrum_samples(self, u: Tensor) -> Tensor:
        """The N spectrum-simulated samples of ``u``, shape (N, B, C, H, W)."""
        h, w = u.shape[-2:]
        dh, dw = dct_matrix(h, u.device), dct_matrix(w, u.device)
        noisy = u.unsqueeze(0) + self.sigma * self.rand_like_sample(u, self.copies, normal=True)
        spec = dh @ noisy @ dw.T
        mask = self.rand_like_sample(u, self.copies, 1 - self.rho, 1 + self.rho)
        return dh.T @ (spec * mask) @ dw

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        return self.stacked_grad(self.spectrum_samples(x + delta), labels).mean(0)
