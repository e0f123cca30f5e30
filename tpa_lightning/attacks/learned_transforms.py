"""L2T (learning to transform): input transformations drawn from a distribution learned during the attack."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..checks import check_int, check_positive
from .base import MomentumMixin
from .transform_pool import PoolOp, transform_pool


class L2T(MomentumMixin):
    """L2T (Zhu et al., CVPR 2024, "Learning to Transform Dynamically for Better Adversarial
    Transferability"): every iteration samples ``paths`` transformation paths of ``ops_per_path``
    operations each (with replacement) from ``softmax(theta)`` over a pool of 98 operations
    (:func:`~.transform_pool.transform_pool`), takes the gradient of the loss averaged over each
    path's transformed copies, and moves ``theta`` towards the paths with the higher loss::

        ids_i ~ softmax(theta),  T_i = op_{i,2} o op_{i,1},   i = 1..paths   # theta = 0 at the start
        L_i = mean over T_i's copies of A(copy),  p_i = prod_j softmax(theta)[ids_ij]
        direction = grad_x' (1/paths) sum_i L_i;  MI update
        theta <- theta + learning_rate * grad_theta (1/paths) sum_i p_i L_i     # L_i held fixed

    Every image has its own ``theta``, updated with its own losses: TransferAttack's ``l2t.py``
    keeps one for the whole batch (learned from the batch-mean loss), which makes an image's result
    depend on its batch; this is that code's computation for a batch of one image.

    The pool (TransferAttack's ``op_list``): identity; rotation by 30 .. 300 degrees (each 5 copies
    at ``angle / 2^i``); SI with 1 .. 10 scale copies; DI's resize-and-pad at rates 1.1 .. 1.55
    (always applied, bilinear); block shuffle with 3 .. 12 strips per axis (10 copies); Admix with
    1 .. 5 partners at strengths 0.2 and 0.4 (3 scales); dropout (IDE) with 10 sets of rates, one
    copy per rate; masking of one block of a 2 .. 11-block grid (5 copies); SSA's spectrum
    simulation at rho 0.1 .. 0.9 (10 copies); centre crops from ratios 0.1 .. 0.9 (5 copies); and
    translations with offsets 0.5 .. 0.9 (5 copies, by ``offset (i + 1) / 5`` pixels). A path's
    copies multiply (e.g. block shuffle then spectrum: 100 copies). Where this differs from that code:

    - Admix mixes each copy with a random permutation of the SAME image's copies (detached): the
      code permutes the whole batch, i.e. mixes in other images, which no batch-independent attack
      can do; on a batch of one image the two coincide.
    - SSA's noise is N(0, ``spectrum_sigma``^2) with ``spectrum_sigma = eps`` by default (the code
      hard-codes 16/255, its eps), as in :class:`~.input_diversity.SSA`.
    - Block-shuffle lengths are rounded by largest remainders (the code rounds each and corrects the
      largest, which goes negative for many strips on small images).

    Units: the rates, ratios, block counts and angles are relative; the translations stay in pixels
    (0.1 .. 0.9 pixel: nearest-neighbour shifts of 0 or 1 pixel at any size; scaled to 32x32 they
    would all be the identity).

    Defaults (TransferAttack's): ``paths=3`` (its ``num_scale``), ``ops_per_path=2``,
    ``learning_rate=0.01``, ``momentum=1.0``; ``eps=8/255``, ``steps=10``, ``step_size=eps/steps``
    (it ran 10 iterations of 1.6/255 at 16/255).

    Cost: the number of copies depends on the operations drawn, so it is random: 3 x 5.83^2 = 101.8
    passes per iteration in expectation under the initial uniform distribution (5.83 copies per
    operation on average; 1018 per image at 10 iterations), and it moves as ``theta`` learns.
    :meth:`passes_per_image` is that expectation (a fixed number, as cost tables and caches need);
    :meth:`realized_passes_per_image` is the exact count of the last call. Each path is one batched
    gradient call (chunked by ``max_batch``); its transformed copies are made at once.

    Randomness: the operations and their random parameters are drawn per image (from its stream with
    ``keys``), or once and shared by the batch (seed without ``keys``); see :mod:`~.base`.
    """

    name: ClassVar[str] = "l2t"

    def __init__(self, model: nn.Module, *, paths: int = 3, ops_per_path: int = 2,
                 learning_rate: float = 0.01, spectrum_sigma: float | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.paths = check_int("paths", paths, 1)
        self.ops_per_path = check_int("ops_per_path", ops_per_path, 1)
        check_positive("learning_rate", learning_rate, allow_zero=True)
        self.learning_rate = float(learning_rate)
        self.spectrum_sigma = float(self.eps if spectrum_sigma is None else spectrum_sigma)
        check_positive("spectrum_sigma", self.spectrum_sigma, allow_zero=True)
        self.pool: tuple[PoolOp, ...] = transform_pool(self.spectrum_sigma)
        self.theta: Tensor | None = None
        self._rows = 0                  # rows sent to the model in the last call, and its images
        self._images = 0

    def passes_per_step(self) -> float:
        """Passes per image per iteration in expectation under the uniform distribution (theta = 0)."""
        mean = sum(op.copies for op in self.pool) / len(self.pool)
        return float(self.paths * mean ** self.ops_per_path)

    def realized_passes_per_image(self) -> float | None:
        """Forward+backward passes per image the last call made (EOT included; times the factor of
        any composed transforms, as :meth:`passes_per_image` has it), None before the first call."""
        if not self._images:
            return None
        factor = getattr(self, "passes_factor", lambda: 1)()
        return float(self._rows / self._images * self.eot_samples * factor)

    def reset(self, x: Tensor) -> None:
        super().reset(x)
        self.theta = torch.zeros(x.shape[0], len(self.pool), device=x.device)
        self._rows, self._images = 0, x.shape[0]

    def sample_paths(self, x: Tensor) -> tuple[list[list[list[int]]], list[list[int]]]:
        """Per image and path: the operation indices drawn from ``softmax(theta)`` (inverse CDF of
        U(0, 1) draws) and a seed for the operations' own random parameters."""
        assert self.theta is not None
        b, o = x.shape[0], self.ops_per_path
        draws = self.rand_like_sample(x.new_empty(b, self.paths, o + 1))
        cdf = self.theta.softmax(1).cumsum(1)
        ids = torch.searchsorted(cdf, draws[..., :o].reshape(b, -1).contiguous(), right=True)
        ids = ids.clamp_max(len(self.pool) - 1).view(b, self.paths, o)
        seeds = (draws[..., o] * 2 ** 24).long()
        return ids.tolist(), seeds.tolist()

    def apply_path(self, u: Tensor, ops: list[int], seed: int) -> Tensor:
        """The path ``ops`` on the images ``u`` (G, C, H, W) that share it: (copies, G, C, H, W)."""
        gen = torch.Generator(device=u.device).manual_seed(seed)
        v = u.unsqueeze(0)
        for i in ops:
            v = self.pool[i](v, gen)
        return v

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        assert self.theta is not None
        u = x + delta
        b = x.shape[0]
        ids, seeds = self.sample_paths(x)
        grad = torch.zeros_like(u)
        losses = torch.zeros(b, self.paths, device=x.device)
        for i in range(self.paths):
            groups: dict[tuple[tuple[int, ...], int], list[int]] = {}
            for img in range(b):                    # images that share their path and its draws
                groups.setdefault((tuple(ids[img][i]), seeds[img][i]), []).append(img)
            owner, weight = [], []
            for (ops, _), members in groups.items():
                copies = 1
                for k in ops:
                    copies *= self.pool[k].copies
                owner += members * copies
                weight += [1.0 / (self.paths * copies)] * (copies * len(members))

            def rows(v: Tensor, groups: dict[tuple[tuple[int, ...], int], list[int]] = groups) -> Tensor:
                return torch.cat([self.apply_path(v[members], list(ops), seed).flatten(0, 1)
                                  for (ops, seed), members in groups.items()])

            who = torch.tensor(owner, device=x.device)
            values = torch.empty(len(owner), device=x.device)
            grad += self.pullback_grad(rows, u, labels[who], torch.tensor(weight, device=x.device), values)
            counts = torch.zeros(b, device=x.device).index_add_(0, who, torch.ones_like(values))
            losses[:, i] = torch.zeros(b, device=x.device).index_add_(0, who, values) / counts
            self._rows += len(owner)
        step = self.theta_grad(self.theta, torch.tensor(ids, device=x.device), losses)
        self.theta = self.theta + self.learning_rate * step
        return grad

    def theta_grad(self, theta: Tensor, ids: Tensor, losses: Tensor) -> Tensor:
        """``grad_theta (1/paths) sum_i p_i(theta) L_i`` per image, with ``ids`` (B, paths, ops) and
        ``losses`` L (B, paths): ``p_i * (count_i - ops * softmax(theta))`` averaged over the paths,
        ``count_i`` how often each operation occurs in path i."""
        probs = theta.softmax(1)
        p = probs.gather(1, ids.flatten(1)).view(ids.shape).prod(2)                     # (B, paths)
        counts = torch.zeros(*ids.shape[:2], theta.shape[1], device=theta.device)
        counts.scatter_add_(2, ids, torch.ones(ids.shape, device=theta.device))
        per_path = counts - ids.shape[2] * probs.unsqueeze(1)                          # (B, paths, n)
        return ((losses * p).unsqueeze(2) * per_path).mean(1)
