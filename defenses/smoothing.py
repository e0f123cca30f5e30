"""Randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019), batched.

``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)``. As in the reference (locuslab/smoothing,
``code/core.py``) the noise is added to the [0, 1] image and nothing is clamped: the base model sees
``x + sigma * N(0, I)`` and normalises internally. PREDICT and CERTIFY follow the reference exactly
(two-sided binomial test for PREDICT, one-sided Clopper-Pearson lower bound for CERTIFY, abstain =
class -1 with radius 0), but the noisy copies of all images of a batch go through the model together,
``batch_size`` rows per forward pass.

Noise. The noise of one call is ONE stream of N(0, 1) values over all its rows (image-major, row by
row), drawn from the owned generator in fixed blocks of :data:`NOISE_BLOCK` values whatever the
chunking, so a row's noise does not depend on ``batch_size`` (nor on an out-of-memory back-off of
``"auto"``): same seed, same draws, at any ``batch_size``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tpa_lightning.checks import check_images, check_int, check_positive
from tpa_lightning.chunking import AUTO, ChunkSize, check_max_batch

from .base import SeededRandomness

ABSTAIN = -1

#: Noisy rows per forward pass of ``batch_size="auto"`` on a CPU: the former fixed default, kept
#: (smoothing runs inference-only forward passes, which like larger chunks than the attacks'
#: forward+backward; not re-measured against other sizes). On a GPU ``"auto"`` sends every row at
#: once and halves on out-of-memory (:mod:`tpa_lightning.chunking`).
CPU_ROWS = 1000

#: N(0, 1) values per draw of the noise stream (4 MiB in fp32); fixed, so the noise of a row does
#: not depend on the chunking.
NOISE_BLOCK = 1 << 20


class _NoiseStream:
    """N(0, 1) noise for rows ``[0, total_rows)`` of shape ``row_shape``, drawn from ``generator``
    in blocks of :data:`NOISE_BLOCK` values, in row order. Rows must be asked for in order
    (``start`` never below an earlier ``start``; the same ``start`` again for a retried chunk)."""

    def __init__(self, generator: torch.Generator, total_rows: int, row_shape: tuple[int, ...],
                 device: torch.device, dtype: torch.dtype) -> None:
        self.generator, self.row_shape, self.device, self.dtype = generator, row_shape, device, dtype
        self.per_row = int(np.prod(row_shape))
        self.end = total_rows * self.per_row
        self.drawn = 0                                   # values drawn so far
        self.blocks: list[tuple[int, Tensor]] = []       # (index of the first value, values)

    def rows(self, start: int, stop: int) -> Tensor:
        """The noise of rows ``start:stop``, shaped ``(stop - start, *row_shape)``."""
        a, b = start * self.per_row, stop * self.per_row
        self.blocks = [(s, t) for s, t in self.blocks if s + t.numel() > a]
        if self.blocks and self.blocks[0][0] > a:
            raise RuntimeError("noise rows asked for out of order")
        while self.drawn < b:
            n = min(NOISE_BLOCK, self.end - self.drawn)
            values = torch.randn(n, generator=self.generator, device=self.device, dtype=self.dtype)
            self.blocks.append((self.drawn, values))
            self.drawn += n
        parts = [t[max(a - s, 0):min(b - s, t.numel())] for s, t in self.blocks if s < b]
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        return flat.view(stop - start, *self.row_shape)


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (the allowed failure probability), got {alpha!r}")
    return float(alpha)


def gaussian_noise_augment(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """``x + sigma * N(0, I)`` (no clamping), the training augmentation of a smoothed base model."""
    check_positive("sigma", sigma)
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def lower_confidence_bound(n_a: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion:
    ``Beta.ppf(alpha, nA, n - nA + 1)`` (0 where nA = 0), as the reference's
    ``proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0]``."""
    from scipy.stats import beta

    n_a = np.asarray(n_a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, n_a, n - n_a + 1)
    return np.where(n_a > 0, bound, 0.0)


def abstain_by_binomtest(n_a: int, n_b: int, alpha: float) -> bool:
    """PREDICT's rule: abstain when the two-sided binomial test of nA out of nA + nB at p = 0.5
    has a p-value > alpha."""
    from scipy.stats import binomtest

    if n_a + n_b == 0:
        return True
    return bool(binomtest(int(n_a), int(n_a + n_b), 0.5).pvalue > alpha)


class Smoothed(nn.Module):
    """A smoothed classifier around ``model`` (which takes [0, 1] images and returns logits).

    Args:
        model: the base classifier f.
        sigma: noise level (L2 radius unit), > 0. Typical: 0.12, 0.25, 0.5, 1.0.
        num_classes: number of classes (default: read from the model's first output).
        batch_size: noisy rows per forward pass (default for predict/certify/forward): an int or
            ``"auto"`` (default): :data:`CPU_ROWS` (1000) on a CPU, every row at once on a GPU,
            halved on out-of-memory. The noise, and so every result, does not depend on it.
        forward_samples: noise draws per image in :meth:`forward`.
        vote: ``"soft"`` (default): :meth:`forward` returns ``log(mean softmax f(x + noise))`` over
            ``forward_samples`` draws (differentiable, for attacks with EOT); ``"hard"``: log of
            the vote shares of ``argmax f(x + noise)`` (not differentiable), the Monte-Carlo version
            of g itself.
        eot_samples: forward passes an attacker should average gradients over.
        seed: seed of the owned generators (noise draws are per image and row).
    """

    gradient = "exact"
    random = True

    def __init__(self, model: nn.Module, sigma: float = 0.25, num_classes: int | None = None,
                 batch_size: int | str = AUTO, forward_samples: int = 32, vote: str = "soft", eot_samples: int = 8,
                 seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module classifier, got {type(model).__name__}")
        check_positive("sigma", sigma)
        if vote not in ("soft", "hard"):
            raise ValueError(f"vote must be 'soft' or 'hard', got {vote!r}")
        self.model = model
        self.sigma = float(sigma)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes)
        self.batch_size = check_max_batch("batch_size", batch_size)
        self._chunks = ChunkSize(self.batch_size, cpu_rows=CPU_ROWS)
        self.forward_samples = check_int("forward_samples", forward_samples)
        self.vote = vote
        self.eot_samples = check_int("eot_samples", eot_samples)
        self.rng = SeededRandomness(seed)

    def reseed(self, seed: int | None) -> None:
        self.rng.reseed(seed)

    def describe(self) -> dict[str, Any]:
        return {"defense": "rs", "sigma": self.sigma, "vote": self.vote, "forward_samples": self.forward_samples,
                "gradient": self.gradient, "random": True, "eot_samples": self.eot_samples}

    # --- sampling ----------------------------------------------------------------------------
    def _chunking(self, batch_size: int | str | None) -> ChunkSize:
        """The chunking of ``batch_size`` (None: this classifier's ``batch_size``, whose
        out-of-memory back-off is remembered across calls)."""
        if batch_size is None:
            if self._chunks.max_batch != self.batch_size:      # batch_size reassigned
                self._chunks = ChunkSize(check_max_batch("batch_size", self.batch_size), cpu_rows=CPU_ROWS)
            return self._chunks
        return ChunkSize(check_max_batch("batch_size", batch_size), cpu_rows=CPU_ROWS)

    def _noise(self, x: Tensor, num: int) -> _NoiseStream:
        """The noise stream of ``num`` noisy copies of every image of ``x`` (image-major rows)."""
        return _NoiseStream(self.rng.generator(x.device), x.shape[0] * num, tuple(x.shape[1:]), x.device,
                            x.dtype)

    def _noisy_rows(self, x: Tensor, start: int, stop: int, num: int, noise: _NoiseStream) -> Tensor:
        """Rows ``start:stop`` of the virtual batch of ``num`` noisy copies per image (image-major)."""
        idx = torch.arange(start, stop, device=x.device) // num
        return x.index_select(0, idx).add_(noise.rows(start, stop), alpha=self.sigma)

    def sample_counts(self, x: Tensor, num: int, batch_size: int | str | None = None) -> Tensor:
        """``(B, num_classes)`` int64 counts of ``argmax f(x_i + noise)`` over ``num`` draws per image.

        The ``B * num`` noisy rows are generated and classified ``batch_size`` at a time (default:
        the classifier's ``batch_size``; one forward per chunk, images mixed within a chunk). The
        counts do not depend on ``batch_size`` (module docstring)."""
        check_images(x.detach())
        num = check_int("n", num)
        chunks = self._chunking(batch_size)
        b = x.shape[0]
        noise = self._noise(x, num)
        found: list[Tensor] = []     # the counts, created by the first chunk (it knows the classes)

        def count(start: int, stop: int) -> None:
            logits = self.model(self._noisy_rows(x, start, stop, num, noise))
            pred = logits.argmax(dim=1)
            if self.num_classes is None:
                self.num_classes = int(logits.shape[1])
            k = int(self.num_classes)
            if not found:
                found.append(torch.zeros(b * k, dtype=torch.int64, device=x.device))
            img = torch.arange(start, stop, device=x.device) // num
            found[0].index_add_(0, img * k + pred, torch.ones_like(pred))

        with torch.inference_mode():
            chunks.run(count, b * num, x.device)
        return found[0].view(b, -1).cpu()

    # --- the reference's procedures ----------------------------------------------------------
    def predict(self, x: Tensor, n: int = 1000, alpha: float = 0.001,
                batch_size: int | str | None = None) -> Tensor:
        """PREDICT: ``(B,)`` int64 classes, -1 where the two-sided binomial test of the top two counts
        nA, nB (p = 0.5) has p-value > alpha."""
        n = check_int("n", n)
        alpha = _check_alpha(alpha)
        counts = self.sample_counts(x, n, batch_size)
        top = torch.topk(counts, k=min(2, counts.shape[1]), dim=1)
        out = torch.full((counts.shape[0],), ABSTAIN, dtype=torch.int64)
        for i in range(counts.shape[0]):       # scipy per image (cheap); sampling is batched above
            n_a = int(top.values[i, 0])
            n_b = int(top.values[i, 1]) if top.values.shape[1] > 1 else 0
            if not abstain_by_binomtest(n_a, n_b, alpha):
                out[i] = int(top.indices[i, 0])
        return out

    def certify(self, x: Tensor, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                batch_size: int | str | None = None) -> tuple[Tensor, Tensor]:
        """CERTIFY: ``(classes, radii)``, ``(B,)`` int64 and float64. The class guess is the top count
        of ``n0`` draws; its count nA over ``n`` fresh draws gives ``pA = Beta.ppf(alpha, nA, n - nA + 1)``;
        abstain (class -1, radius 0) if pA < 0.5, else radius ``sigma * Phi^-1(pA)``."""
        from scipy.stats import norm

        n0 = check_int("n0", n0)
        n = check_int("n", n)
        alpha = _check_alpha(alpha)
        guess = self.sample_counts(x, n0, batch_size).argmax(dim=1)
        counts = self.sample_counts(x, n, batch_size)
        n_a = counts.gather(1, guess[:, None])[:, 0].numpy()
        p_a = lower_confidence_bound(n_a, n, alpha)
        ok = p_a >= 0.5
        radii = np.where(ok, self.sigma * norm.ppf(np.where(ok, p_a, 0.5)), 0.0)
        classes = torch.where(torch.from_numpy(ok), guess, torch.full_like(guess, ABSTAIN))
        return classes, torch.from_numpy(radii.astype(np.float64))

    # --- as a classifier for attacks ---------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Monte-Carlo logits of the smoothed classifier over ``forward_samples`` draws per image:
        ``log(mean softmax)`` (soft vote, differentiable) or ``log(vote shares)`` (hard vote)."""
        check_images(x.detach())
        m = self.forward_samples
        b = x.shape[0]
        noise = self._noise(x, m)
        outs: list[Tensor] = []

        def vote(start: int, stop: int) -> None:
            idx = torch.arange(start, stop, device=x.device) // m
            logits = self.model(x.index_select(0, idx) + self.sigma * noise.rows(start, stop))
            if self.vote == "soft":
                outs.append(logits.float().softmax(dim=1))
            else:
                outs.append(nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float())

        self._chunking(None).run(vote, b * m, x.device)
        probs = torch.cat(outs).view(b, m, -1).mean(dim=1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def certified_accuracy(radii: Tensor | np.ndarray | Sequence[float], classes: Tensor | np.ndarray | Sequence[int],
                       labels: Tensor | np.ndarray | Sequence[int],
                       radius_grid: Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """Certified accuracy at each radius r of ``radius_grid``: the share of images whose certified
    class equals the label with certified radius >= r (abstentions never count). Returns a float64
    array aligned with ``radius_grid``."""
    radii_a = np.asarray(torch.as_tensor(radii).cpu(), dtype=np.float64).reshape(-1)
    classes_a = np.asarray(torch.as_tensor(classes).cpu()).reshape(-1)
    labels_a = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
    grid = np.asarray(torch.as_tensor(radius_grid).cpu(), dtype=np.float64).reshape(-1)
    if not radii_a.shape == classes_a.shape == labels_a.shape:
        raise ValueError(f"radii, classes and labels must have the same length, got {radii_a.shape[0]}, "
                         f"{classes_a.shape[0]}, {labels_a.shape[0]}")
    if radii_a.size == 0:
        raise ValueError("certified_accuracy needs at least one image")
    if np.any(grid < 0):
        raise ValueError(f"radius_grid must hold radii >= 0, got min {grid.min()}")
    correct = (classes_a == labels_a) & (classes_a != ABSTAIN)
    return (correct[None, :] & (radii_a[None, :] >= grid[:, None])).mean(axis=1)
