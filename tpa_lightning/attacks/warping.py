"""DeCowA: the input warped by a thin-plate spline whose control points are adapted against the attack."""
from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_positive
from .base import MomentumMixin


def mesh_points(rows: int, cols: int) -> Tensor:
    """The ``rows`` x ``cols`` control mesh spanning [-1, 1]^2: (rows * cols, 2) points ``(x, y)``
    (x across the width, y down the height; grid_sample's order), row-major, float64."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, rows, dtype=torch.float64),
                          torch.linspace(-1, 1, cols, dtype=torch.float64), indexing="ij")
    return torch.stack([x, y], dim=-1).reshape(-1, 2)


def _radial(d2: Tensor) -> Tensor:
    """The thin-plate kernel as a function of the squared distance: ``d2 log d2`` (0 at 0)."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-300)), torch.zeros_like(d2))


@functools.lru_cache(maxsize=16)
def _tps_matrix(h: int, w: int, rows: int, cols: int) -> Tensor:
    points = mesh_points(rows, cols)
    k = points.shape[0]
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    system[:k, :k] = _radial(torch.cdist(points, points) ** 2)
    affine = torch.cat([torch.ones(k, 1, dtype=torch.float64), points], dim=1)
    system[:k, k:] = affine
    system[k:, :k] = affine.T
    y, x = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                          torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
    pixels = torch.stack([x, y], dim=-1).reshape(-1, 2)
    basis = torch.cat([_radial(torch.cdist(pixels, points) ** 2), torch.ones(h * w, 1, dtype=torch.float64),
                       pixels], dim=1)
    return basis @ torch.linalg.inv(system)[:, :k]


def tps_matrix(h: int, w: int, rows: int, cols: int, device: torch.device | None = None) -> Tensor:
    """(h * w, rows * cols) matrix ``A`` of the thin-plate spline that takes the control mesh
    (:func:`mesh_points`) to targets ``Y``: the spline's value at every pixel (row-major, in
    grid_sample's normalised coordinates) is ``A @ Y``. The spline is linear in ``Y``; with
    ``Y`` = the mesh it is the identity (a thin-plate spline reproduces affine maps exactly)."""
    return _tps_matrix(h, w, rows, cols).to(device=device, dtype=torch.float32)


def tps_warp(u: Tensor, offsets: Tensor, rows: int, cols: int) -> Tensor:
    """Warp the images ``u`` (N, C, H, W) by the thin-plate spline that moves the interior control
    points of the ``rows`` x ``cols`` mesh by ``offsets`` (N, rows - 2, cols - 2, 2), ``(x, y)`` in
    normalised units (the image spans [-1, 1]); the border points stay. Bilinear sampling, zeros
    outside, ``align_corners=True`` (pixel centres at +-1, so zero offsets give ``u`` back).
    Differentiable in ``u`` and ``offsets``."""
    n, _, h, w = u.shape
    moved = F.pad(offsets, (0, 0, 1, 1, 1, 1)).reshape(n, rows * cols, 2)
    targets = mesh_points(rows, cols).to(device=u.device, dtype=u.dtype) + moved
    grid = (tps_matrix(h, w, rows, cols, u.device).to(u.dtype) @ targets).view(n, h, w, 2)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class DeCowA(MomentumMixin):
    """DeCowA (Lin et al., AAAI 2024, "Boosting Adversarial Transferability across Model Genus by
    Deformation-Constrained Warping"; the paper spells it DeCoWA): the gradient is averaged over N
    elastic warps of ``x'``, each a thin-plate spline on a ``mesh_rows`` x ``mesh_cols`` control
    mesh whose interior points are moved by random offsets that are first stepped AGAINST the
    attack (the "deformation constraint")::

        for n = 1..N:  o_n ~ U(-noise_scale / 2, noise_scale / 2)     # per interior point, x and y
                       o_n <- o_n - rho * d A(warp(x', o_n)) / d o_n   # one raw gradient step
                       g_n = d A(warp(x', o_n)) / d x'
        direction = mean_n g_n;  MI update

    Offsets are in normalised units (the image spans [-1, 1]), so the mesh and ``noise_scale`` carry
    over from 224x224 to 32x32 unchanged; ``rho`` multiplies a raw gradient (a sum over the pixels),
    whose size depends on the model and the resolution: kept at its published value.

    Defaults, TransferAttack's ``decowa.py`` (its ``num_warping`` is ``copies``): ``copies`` N = 20,
    ``mesh_rows = mesh_cols = 3`` (one interior point, the centre), ``noise_scale=2`` (offsets
    U(-1, 1)), ``rho=0.01``, ``momentum=1.0``; ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``
    (they ran 10 iterations of 1.6/255 at 16/255).

    Departures from that code: (1) it draws ONE offset map per warp for the whole batch and steps it
    on the batch-mean loss, which makes an image's result depend on its batch; here every image has
    its own map stepped on its own loss (the code's computation for a batch of one image); (2) it
    samples with ``align_corners=False`` at the pixel grid ``linspace(-1, 1)``, which even with zero
    offsets shrinks the image by (S-1)/S and halves the border pixels (1 pixel in 32 here);
    ``align_corners=True`` makes the zero warp the identity.

    Cost: 2N passes per iteration (the offsets' gradient, then the warped gradient), as two
    batched calls of B*N rows (chunked by ``max_batch``); the warps run outside the model
    (:meth:`~.base.Attack.pullback_grad`).
    """

    name: ClassVar[str] = "decowa"

    def __init__(self, model: nn.Module, *, copies: int = 20, mesh_rows: int = 3, mesh_cols: int = 3,
                 noise_scale: float = 2.0, rho: float = 0.01, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.copies = check_int("copies", copies, 1)
        self.mesh_rows = check_int("mesh_rows", mesh_rows, 3)      # 3: one interior point
        self.mesh_cols = check_int("mesh_cols", mesh_cols, 3)
        check_positive("noise_scale", noise_scale, allow_zero=True)
        check_positive("rho", rho, allow_zero=True)
        self.noise_scale, self.rho = float(noise_scale), float(rho)

    def passes_per_step(self) -> float:
        return float(2 * self.copies)

    def warp(self, u: Tensor, offsets: Tensor) -> Tensor:
        """``u`` (N, C, H, W) warped by ``offsets`` (N, mesh_rows - 2, mesh_cols - 2, 2)."""
        return tps_warp(u, offsets, self.mesh_rows, self.mesh_cols)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        u = x + delta
        k, b = self.copies, x.shape[0]
        half = self.noise_scale / 2
        shape = x.new_empty(b, self.mesh_rows - 2, self.mesh_cols - 2, 2)
        offsets = self.rand_like_sample(shape, k, -half, half).reshape(k * b, *shape.shape[1:])
        copies = u.unsqueeze(0).expand(k, *u.shape).reshape(k * b, *u.shape[1:])
        pulled = self.pullback_grad(lambda o: self.warp(copies, o), offsets, labels)
        adapted = offsets - self.rho * pulled
        def warped(v: Tensor) -> Tensor:
            return self.warp(v.unsqueeze(0).expand(k, *v.shape).reshape(k * b, *v.shape[1:]), adapted)

        return self.pullback_grad(warped, u, labels) / k
