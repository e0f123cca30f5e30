"""Building blocks: :class:`Preprocessor` (one input transformation) and :class:`Defended` (a chain
of preprocessors in front of a classifier).

Gradient conventions (Athalye et al., 2018):

* every preprocessor declares ``gradient = "exact"`` (differentiable) or ``"bpda"`` (not
  differentiable; the backward pass is the identity, i.e. straight-through
  ``x + (f(x) - x).detach()``; we return exactly ``f(x)`` with an identity backward);
* random ones declare ``random = True`` and ``eot_samples`` (how many forward passes an attacker
  should average gradients over); deterministic ones have ``eot_samples = 1``;
* ``grad_mode`` switches how the forward pass is differentiated, per preprocessor or for the whole
  chain with :meth:`Defended.set_grad_mode`:

  - ``"default"``: exact preprocessors are differentiated, ``bpda`` ones use the identity backward;
  - ``"bpda"``: every shape-preserving preprocessor uses the identity backward (also exact ones);
  - ``"approx"``: a differentiable approximation where one exists (FD's smooth rounding),
    otherwise as ``"default"``;
  - ``"none"``: the plain forward, no gradient trick (non-differentiable transforms then give zero
    or no gradients: useful only to show gradient masking).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tpa_lightning.checks import check_images, check_int, check_positive
from tpa_lightning.chunking import AUTO, ChunkSize, check_max_batch

GRAD_MODES = ("default", "bpda", "approx", "none")




def check_grad_mode(mode: str) -> str:
    if mode not in GRAD_MODES:
        raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {mode!r}")
    return mode


class _StraightThrough(torch.autograd.Function):
    """Returns ``y`` in the forward pass; passes the incoming gradient unchanged to ``x``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor) -> Tensor:
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def straight_through(x: Tensor, y: Tensor) -> Tensor:
    """BPDA with the identity: the value of ``y`` and the gradient of ``x``.

    Same as ``x + (y - x).detach()`` but without its floating-point rounding (the value is exactly
    ``y``)."""
    if y.shape != x.shape:
        raise ValueError(f"BPDA with the identity needs f(x) of the input's shape {tuple(x.shape)}, "
                         f"got {tuple(y.shape)}")
    return _StraightThrough.apply(x, y.detach())


class SeededRandomness:
    """A torch.Generator per device, all seeded from one ``seed``.

    ``seed=None`` draws the seed from torch's global RNG once, so ``torch.manual_seed`` still makes
    a run repeatable."""

    def __init__(self, seed: int | None = None) -> None:
        self.reseed(seed)

    def reseed(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device | str) -> torch.Generator:
        device = torch.device(device)
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        return gen


class Preprocessor(nn.Module):
    """One input transformation of a defense: [0, 1] NCHW in, [0, 1] NCHW out.

    Subclasses implement :meth:`transform` (the defense itself) and, when they have one,
    :meth:`approx` (a differentiable approximation, ``has_approx = True``)."""

    name: str = "preprocessor"
    gradient: str = "exact"          # "exact" or "bpda"
    random: bool = False
    has_approx: bool = False
    shape_preserving: bool = True    # False when the output size differs (R&P)

    def __init__(self, eot_samples: int = 1, seed: int | None = None) -> None:
        super().__init__()
        self.eot_samples = check_int("eot_samples", eot_samples)
        self.grad_mode = "default"
        self.rng = SeededRandomness(seed) if self.random else None

    def reseed(self, seed: int | None) -> None:
        if self.rng is not None:
            self.rng.reseed(seed)

    def transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def approx(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no differentiable approximation")

    def _generator(self, x: Tensor) -> torch.Generator:
        assert self.rng is not None
        return self.rng.generator(x.device)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x.detach())
        mode = self.grad_mode
        if mode == "approx" and self.has_approx:
            return self.approx(x)
        use_bpda = self.shape_preserving and (
            mode == "bpda" or (mode in ("default", "approx") and self.gradient == "bpda")
        )
        if use_bpda and torch.is_grad_enabled() and x.requires_grad:
            with torch.no_grad():
                y = self.transform(x.detach())
            return straight_through(x, y)
        return self.transform(x)

    def extra_repr(self) -> str:
        return f"gradient={self.gradient}, random={self.random}, eot_samples={self.eot_samples}"


class Defended(nn.Module):
    """``model(preprocess(x))`` for a chain of :class:`Preprocessor` s.

    Args:
        model: the classifier (takes [0, 1] images, returns logits).
        preprocessors: one preprocessor or a sequence, applied in order.
        draws: forward passes averaged per call (R&P's reference averages the softmax of 30
            random draws). With ``draws > 1`` the output is ``log(mean softmax)`` over the draws, so
            it stays usable as logits (argmax, cross-entropy). Draws are batched: the input is
            repeated ``draws`` times and the chain and model run on ``B * draws`` rows, chunked
            by ``max_batch``.
        max_batch: largest number of rows sent through the chain and the model at once: an int,
            ``"auto"`` (default) or None (no chunking: every row at once). ``"auto"`` is 64 rows
            on a CPU and every row at once on a GPU, halved on out-of-memory
            (:mod:`tpa_lightning.chunking`). With deterministic preprocessors the output does not
            depend on it. With random preprocessors (R&P, NRP's dynamic inference) each chunk
            draws from the generator in turn, so the draws, and the output, depend on the chunk
            size, hence with ``"auto"`` on the device (and on a GPU on any out-of-memory back-off):
            to reproduce a result across devices pass an int (same seed, same int ``max_batch``,
            same output).
        grad_mode: see the module docstring.

    Attributes read by attacks: ``eot_samples`` (max over the chain, 1 if all are deterministic),
    ``random``, ``gradient`` ("exact" if every preprocessor is exact, else "bpda")."""

    def __init__(self, model: nn.Module, preprocessors: Preprocessor | Sequence[Preprocessor],
                 draws: int = 1, max_batch: int | str | None = AUTO, grad_mode: str = "default") -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module classifier, got {type(model).__name__}")
        chain = [preprocessors] if isinstance(preprocessors, Preprocessor) else list(preprocessors)
        for p in chain:
            if not isinstance(p, Preprocessor):
                raise TypeError(f"preprocessors must be defenses.Preprocessor instances, got {type(p).__name__}")
        self.model = model
        self.preprocessors = nn.ModuleList(chain)
        self.chain: list[Preprocessor] = chain
        self.draws = check_int("draws", draws)
        self.max_batch = None if max_batch is None else check_max_batch("max_batch", max_batch)
        self._chunks: ChunkSize | None = None if self.max_batch is None else ChunkSize(self.max_batch)
        self.set_grad_mode(grad_mode)

    # --- declarations read by attacks and reports -------------------------------------------
    @property
    def eot_samples(self) -> int:
        return max([1] + [p.eot_samples for p in self.chain])

    @property
    def random(self) -> bool:
        return any(p.random for p in self.chain)

    @property
    def gradient(self) -> str:
        return "exact" if all(p.gradient == "exact" for p in self.chain) else "bpda"

    def describe(self) -> dict[str, Any]:
        """Plain-JSON summary for reports."""
        return {
            "preprocessors": [p.name for p in self.chain],
            "gradient": self.gradient,
            "per_preprocessor_gradient": {p.name: p.gradient for p in self.chain},
            "grad_mode": self.grad_mode,
            "random": self.random,
            "eot_samples": self.eot_samples,
            "draws": self.draws,
        }

    def set_grad_mode(self, mode: str) -> Defended:
        self.grad_mode = check_grad_mode(mode)
        for p in self.chain:
            p.grad_mode = mode
        return self

    def reseed(self, seed: int | None) -> None:
        """Reseed every random preprocessor (each gets ``seed + index``)."""
        for i, p in enumerate(self.chain):
            p.reseed(None if seed is None else seed + i)

    # --- forward -------------------------------------------------------------------------------
    def preprocess(self, x: Tensor) -> Tensor:
        check_images(x.detach())
        for p in self.preprocessors:
            x = p(x)
        return x

    def _logits(self, x: Tensor) -> Tensor:
        for p in self.preprocessors:
            x = p(x)
        return self.model(x)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x.detach())
        rows = x.repeat_interleave(self.draws, dim=0) if self.draws > 1 else x
        if self.max_batch is None:
            logits = self._logits(rows)
        else:
            if self._chunks is None or self._chunks.max_batch != self.max_batch:   # reassigned
                self._chunks = ChunkSize(check_max_batch("max_batch", self.max_batch))
            parts: list[Tensor] = []
            self._chunks.run(lambda start, stop: parts.append(self._logits(rows[start:stop])), rows.shape[0],
                             rows.device)
            logits = parts[0] if len(parts) == 1 else torch.cat(parts)
        if self.draws == 1:
            return logits
        probs = logits.float().softmax(dim=-1).view(x.shape[0], self.draws, -1).mean(dim=1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def as_list(x: Iterable[Any] | Any) -> list[Any]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


__all__ = [
    "GRAD_MODES", "Defended", "Preprocessor", "SeededRandomness", "check_grad_mode", "check_int",
    "check_positive", "straight_through",
]
